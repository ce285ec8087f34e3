"""Orchestration: the pipeline of dvc.yaml as a Prefect flow (`taskplan pipeline`, flows/pipeline.py).

    from taskplan.orchestrate import taskplan_pipeline
    taskplan_pipeline(params="params.yaml", overrides=["sft.max_steps=2"], stages=["sft", "grpo"])

Importing this package imports Prefect; the CLI imports it only inside `taskplan pipeline`.
"""

from taskplan.orchestrate.flow import Pipeline, PipelineConfig, is_transient, taskplan_pipeline

__all__ = ["Pipeline", "PipelineConfig", "is_transient", "taskplan_pipeline"]
