"""Registry and orchestration: `taskplan register`, `taskplan pipeline`, `taskplan ui`.

    taskplan register                      # log models/grpo as a new version; promote if it beats @champion
    taskplan pipeline                      # the Prefect flow (taskplan.orchestrate, stages from dvc.yaml), in-process
    taskplan pipeline --stages evaluate,compare,register --set evaluate.seeds=[42]
    taskplan ui                            # the address of the runs page, and the command that serves it

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
from taskplan.errors import ConfigError
from taskplan.tracking import RegisterConfig
from taskplan.tracking import backend as tracking_backend
from taskplan.tracking import register as register_model
from taskplan.tracking.registry import registered_version

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command()
def register(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, as_json: JsonOpt = False,
             if_missing: Annotated[bool, typer.Option(
                 "--if-missing", help="Only when this store has no version of the model folder yet (a fresh "
                 "clone whose DVC stage is up to date); leaves the committed decision file as it is.")] = False,
             ) -> None:
    """Register the trained planner in MLflow; move @champion only if it beats the current one."""
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
def ui(run: Annotated[bool, typer.Option("--run", help="Start the UI on the local store (after printing).")] = False,
       port: Annotated[int, typer.Option(help="Port of the UI on the local store.")] = 5000,
       as_json: JsonOpt = False) -> None:
    """Print the address of the experiment's runs page and, for the local store, the command that serves it.

    MLflow 3's UI opens on a GenAI overview; the runs page is where stage runs, their charts and the
    evaluate child runs to compare are."""
    uri, name = tracking_backend.tracking_uri(), tracking_backend.experiment_name()
    local = not uri.startswith(("http://", "https://"))   # a database or folder store that `mlflow ui` can serve
    if run and not local:
        raise ConfigError(f"--run serves the local store; {uri} is a server with its own UI: run `taskplan ui` "
                          "without --run for the address")
    experiment_id = tracking_backend.find_experiment(name, uri)
    if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")) == (Path.cwd() / "mlflow.db").resolve():
        uri = "sqlite:///mlflow.db"      # the command reads the same from the project root, and is shorter
    base = f"http://127.0.0.1:{port}" if local else uri.rstrip("/")   # a server serves its UI at its own URI
    url = runs_page(base, experiment_id)
    argv = ["mlflow", "ui", "--backend-store-uri", uri, "--default-artifact-root", f"./{tracking_backend.DEFAULT_ARTIFACTS}",
            "--host", "127.0.0.1", "--port", str(port)] if local else None
    if as_json:
        typer.echo(json.dumps({"tracking_uri": uri, "experiment": name, "experiment_id": experiment_id,
                               "url": url, "command": shlex.join(argv) if argv else None}))
    else:
        typer.echo(f"runs page: {url}" if experiment_id else
                   f"no experiment {name!r} in {uri} yet (the first tracked stage creates it); the UI: {url}")
        if argv:
            typer.echo(f"serve it:  {shlex.join(argv)}")
    if run and argv:
        sys.stdout.flush()
        exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
        os.execv(exe, [exe, *argv[1:]])


def runs_page(base: str, experiment_id: str | None) -> str:
    """The UI's address of an experiment's runs table (MLflow 3 routes by URL fragment), or of the
    experiment list when there is no experiment yet."""
    return f"{base}/#/experiments/{experiment_id}/runs" if experiment_id else f"{base}/#/experiments"


def load_pipeline_flow(entrypoint: str | None = None):  # noqa: ANN201 (a prefect Flow)
    """The package's flow, or the flow object of `file.py:function` (relative to the current directory)."""
    if entrypoint is None:
        from taskplan.orchestrate import taskplan_pipeline

        return taskplan_pipeline
    path, _, _ = entrypoint.partition(":")
    if not Path(path).is_file():
        raise ConfigError(f"flow file {path} not found; run from the project root or pass --flow FILE:FUNCTION")
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(entrypoint)
