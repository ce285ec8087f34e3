"""Registry and orchestration: `taskplan register`, `taskplan pipeline`, `taskplan ui`.

    taskplan register                      # log models/grpo as a new version; promote if it beats @champion
    taskplan pipeline                      # the Prefect flow (taskplan.orchestrate, stages from dvc.yaml), in-process
    taskplan pipeline --stages evaluate,compare,register --set evaluate.seeds=[42]
    taskplan ui                            # the command that opens the MLflow UI on the local store

mlflow and prefect load inside the commands, so importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from taskplan.commands import JsonOpt, ParamsOpt, SetOpt
from taskplan.config import load_config

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command()
def register(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, as_json: JsonOpt = False,
             if_missing: Annotated[bool, typer.Option(
                 "--if-missing", help="Only when this store has no version of the model folder yet (a fresh "
                 "clone whose DVC stage is up to date); leaves the committed decision file as it is.")] = False,
             ) -> None:
    """Register the trained planner in MLflow; move @champion only if it beats the current one."""
    from taskplan.tracking import RegisterConfig
    from taskplan.tracking import register as register_model
    from taskplan.tracking.registry import registered_version

    cfg = load_config(RegisterConfig, "register", params, overrides or [])
    if if_missing:
        version = registered_version(cfg)
        if version is not None:
            typer.echo(f"register: {cfg.model_dir} is already {cfg.model_name} v{version} in this store")
            return
    result = register_model(cfg, write_decision=not if_missing)
    typer.echo(json.dumps(result.to_json()) if as_json else result.summary())


@app.command()
def pipeline(
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated subset, e.g. sft,grpo,evaluate.")] = None,
    refresh: Annotated[bool, typer.Option(help="Ignore cached stage results and run every stage.")] = False,
    flow_file: Annotated[Optional[str], typer.Option("--flow", help="Another flow entrypoint (file:function); "
                                                     "default: the package's (taskplan.orchestrate).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline as the Prefect flow (locally, in this process): cached stages are skipped."""
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one INFO line per Prefect API call otherwise
    flow = load_pipeline_flow(flow_file)
    outcomes = flow(params=str(params), overrides=list(overrides or []),
                    stages=[s.strip() for s in stages.split(",") if s.strip()] if stages else None, refresh=refresh)
    if as_json:
        typer.echo(json.dumps(outcomes, default=str))
        return
    for stage, outcome in outcomes.items():
        typer.echo(f"{stage:13} {'(cached) ' if outcome.get('cached') else ''}{outcome.get('summary', '')}")


@app.command()
def ui(run: Annotated[bool, typer.Option("--run", help="Start it instead of printing it.")] = False,
       port: Annotated[int, typer.Option(help="Port of the UI.")] = 5000) -> None:
    """Print (or --run) the command that opens the MLflow UI on the tracking store."""
    from taskplan.tracking.backend import DEFAULT_ARTIFACTS, tracking_uri

    uri = tracking_uri()
    if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")) == (Path.cwd() / "mlflow.db").resolve():
        uri = "sqlite:///mlflow.db"
    if not uri.startswith("sqlite:"):
        typer.echo(f"MLFLOW_TRACKING_URI={uri}: open that server's address in a browser")
        return
    argv = ["mlflow", "ui", "--backend-store-uri", uri, "--default-artifact-root", f"./{DEFAULT_ARTIFACTS}",
            "--port", str(port)]
    if not run:
        typer.echo(shlex.join(argv))
        return
    exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    os.execv(exe, [exe, *argv[1:]])


def load_pipeline_flow(entrypoint: str | None = None):  # noqa: ANN201 (a prefect Flow)
    """The package's flow, or the flow object of `file.py:function` (relative to the current directory)."""
    from taskplan.errors import ConfigError

    if entrypoint is None:
        from taskplan.orchestrate import taskplan_pipeline

        return taskplan_pipeline
    path, _, _ = entrypoint.partition(":")
    if not Path(path).is_file():
        raise ConfigError(f"flow file {path} not found; run from the project root or pass --flow FILE:FUNCTION")
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(entrypoint)
