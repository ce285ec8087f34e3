"""MLflow tracking and registry: the only package that imports mlflow (imported by cli commands and flows/).

    from taskplan.tracking import stage_run, log_stage, pipeline_run, register, load_champion

Importing this package is light: mlflow loads inside the functions. Telemetry is
off unless the environment says otherwise (MLFLOW_DISABLE_TELEMETRY=true).
Backend: `MLFLOW_TRACKING_URI`, else `sqlite:///<cwd>/mlflow.db` with artifacts
in `<cwd>/mlartifacts/`. `taskplan ui` prints the address of the experiment's runs page and the
command that serves the UI on the default store:

    mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts
"""

from taskplan.env import quiet_env

quiet_env()

from taskplan.tracking.backend import configure, registry_lock, tracking_uri  # noqa: E402
from taskplan.tracking.registry import (  # noqa: E402
                                        Decision,
                                        RegisterConfig,
                                        RegisterResult,
                                        decide,
                                        load_champion,
                                        promote,
                                        register,
)
from taskplan.tracking.runs import PipelineRun, StageRun, log_stage, pipeline_run, run_name, stage_run  # noqa: E402
from taskplan.tracking.values import flat_config, stage_metrics  # noqa: E402

__all__ = ["PipelineRun", "StageRun", "stage_run", "configure", "flat_config", "log_stage", "pipeline_run", "run_name",
           "stage_metrics", "tracking_uri", "registry_lock", "Decision", "RegisterConfig", "RegisterResult", "decide",
           "load_champion", "promote", "register"]
