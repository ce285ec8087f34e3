"""Prefect entry point of the taskplan pipeline (named in flows/prefect.yaml): the flow lives in the
package, `taskplan.orchestrate.flow`, and reads its stages from dvc.yaml.

    taskplan pipeline                                        # the same flow, in-process
    python flows/pipeline.py                                 # one local run with params.yaml
    prefect deploy --prefect-file flows/prefect.yaml --all   # the nightly deployment
"""

from taskplan.env import quiet_env
from taskplan.orchestrate.flow import taskplan_pipeline

__all__ = ["taskplan_pipeline"]

if __name__ == "__main__":
    quiet_env()
    taskplan_pipeline()
