"""Orchestration: the pipeline of dvc.yaml as a Prefect flow (`taskplan pipeline`, flows/pipeline.py).

    from taskplan.orchestrate import taskplan_pipeline
    taskplan_pipeline(params="params.yaml", overrides=["sft.max_steps=2"], stages=["sft", "grpo"])

taskplan.orchestrate.stages (dvc.yaml's stages, inputs and outputs) is light; the flow imports Prefect,
so this package loads it only when asked for (`taskplan pipeline`).
"""

from typing import Any

__all__ = ["Pipeline", "PipelineConfig", "is_transient", "taskplan_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from taskplan.orchestrate import flow

        return getattr(flow, name)
    raise AttributeError(name)
