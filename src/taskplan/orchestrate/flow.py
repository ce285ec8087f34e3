"""The taskplan pipeline as a Prefect 3 flow: the stages of dvc.yaml, in the same order, as tasks.

    taskplan pipeline                                  # run it here, in-process
    taskplan pipeline --stages sft,grpo,evaluate,compare,register --set grpo.max_steps=20
    prefect deploy --prefect-file flows/prefect.yaml --all   # the nightly deployment (flows/pipeline.py)

The stage list, each stage's inputs (its cache key) and outputs (checked before a cached result is used)
come from dvc.yaml (taskplan.orchestrate.stages). Every task calls the package's `run_*` function (no
shell). A stage's result is cached by the hash of its inputs (its config, the content of the files,
folders and package code dvc.yaml lists as its deps, and the task's source); Prefect keeps results and
cache keys under `pipeline.cache_dir`. A cached stage whose outputs have gone missing runs again. Only
stages that do flaky IO retry (hub downloads in model_init, chat endpoints in evaluate, the MLflow server
in tracking and register), and only on connection-type errors.

A failing stage stops the flow with its own one-line error (validate: the first failed GX check); the
MLflow parent run ends FAILED, tagged with it. SFT and GRPO resume an interrupted run only from a
checkpoint of the very same inputs (train/checkpoints.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from taskplan.config import config_dict, load_config
from taskplan.errors import ConfigError
from taskplan.evaluate.policies import parse_policy_spec
from taskplan.orchestrate.stages import (
    Stage,
    check_wiring,
    find_dvc_yaml,
    inputs_digest,
    load_stages,
    outputs_exist,
    stage_configs,
    stage_io,
)
from taskplan.tracking import configure, log_stage, pipeline_run, run_name, stage_run
from taskplan.tracking import register as register_model  # the flow's own task is called `register`

log = logging.getLogger("taskplan.flows")

# `resume` changes how a stage runs and `tracking` where it is recorded, not what it produces
STAGE_CACHE = (INPUTS - "resume" - "tracking") + TASK_SOURCE
TRANSIENT = {"ConnectionError", "TimeoutError", "ConnectTimeout", "ReadTimeout", "TransportError",
             "RemoteProtocolError", "ChunkedEncodingError", "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    stages: tuple[str, ...] = ()              # run these (dvc.yaml order; empty: all); others' outputs are used
    experiment: str = "taskplan"              # MLflow experiment
    track: bool = True                        # MLflow parent run + one nested run per stage
    log_models: bool = True                   # model folders of training stages as run artifacts
    transcripts_sample: int = 20              # lines of each transcript/trajectory file logged as a sample
    cache_dir: Path = Path(".prefect/results")   # Prefect task results and cache keys
    resume: bool = True                       # resume SFT/GRPO interrupted with the same inputs
    seed: int = 42                            # common.seed (run names)

    def __post_init__(self) -> None:
        if self.transcripts_sample < 0:
            raise ConfigError("pipeline.transcripts_sample must be >= 0")


def is_transient(err: BaseException) -> bool:
    names = {c.__name__ for c in type(err).__mro__}
    if names & TRANSIENT:
        return True
    text = str(err)
    return any(s in text for s in ("Max retries exceeded", "Connection refused", "Temporary failure in name",
                                   "503 Service Unavailable", "504 Gateway"))


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only connection-type failures (a bad config or a bug fails at once)."""
    try:
        err = state.result(raise_on_failure=False)
    except Exception:  # the state holds no readable exception: do not retry blindly
        return False
    return is_transient(err)


IO_RETRIES = {"retries": 3, "retry_delay_seconds": [10, 60, 300], "retry_condition_fn": _transient}


# --- tasks: one generic stage task, the registry, the MLflow record ---------------------------------------

@task(name="stage", cache_policy=STAGE_CACHE, persist_result=True)
def run_stage_task(stage: Stage, cfg: Any, extra: tuple[Any, ...], digest: str, resume: bool = True,
                   tracking: dict[str, Any] | None = None) -> dict:
    """Run one stage's package function; `digest` (inputs_digest) makes the cache key follow its inputs.
    With `tracking` (stage_run's keyword arguments), the stage runs inside its MLflow run: opened now,
    training metrics logged live, ended FAILED if the stage raises."""
    start = time.perf_counter()
    spec = stage.spec
    kwargs = {key: extra[n] for n, (key, _) in enumerate(spec.needs)}
    if spec.resumable:
        kwargs["resume"] = resume
    if tracking is None:
        return _outcome(stage.name, spec.run(cfg, **kwargs), start)
    with stage_run(stage.name, cfg, **tracking) as run:
        if spec.live:
            kwargs["callbacks"] = run.callbacks()
        result = spec.run(cfg, **kwargs)
        outcome = _outcome(stage.name, result, start)
        run.finish({**outcome, "child_runs": getattr(result, "child_runs", None)})
    return {**outcome, "run_id": run.run_id}


@task(name="register", cache_policy=NO_CACHE, **IO_RETRIES)
def register(cfg: Any, parent_run_id: str | None, experiment: str) -> dict:
    """Never cached: the registry is the state. Registering a folder twice reuses its version."""
    start = time.perf_counter()
    result = register_model(cfg, parent_run_id=parent_run_id, experiment=experiment)
    return {**_outcome("register", result, start), "version": result.version, "promoted": result.promoted,
            "run_id": result.run_id}


@task(name="track", cache_policy=NO_CACHE, **IO_RETRIES)
def track_cached(stage: str, cfg: Any, outcome: dict, io: Any, parent_run_id: str, settings: PipelineConfig,
                 task: str | None = None) -> str:
    """A nested MLflow run for a stage served from the cache: its recorded metrics, tagged cached (the run
    that computed it, in an earlier flow run, holds the live curves and the models)."""
    return log_stage(stage, cfg, outcome, io, parent_run_id=parent_run_id, experiment=settings.experiment,
                     task=task, log_models=False, transcripts_sample=0,
                     tags={"taskplan.cached": "true", "taskplan.flow_run_id": _flow_run_id(),
                           "taskplan.cached_from_run_id": str(outcome.get("run_id", ""))})


# --- the flow: ordering and parameters only ---------------------------------------------------------------

@flow(name="taskplan-pipeline")
def taskplan_pipeline(params: str = "params.yaml", overrides: list[str] | None = None,
                      stages: list[str] | None = None, refresh: bool = False) -> dict[str, Any]:
    """Run the pipeline stages in order. `overrides`: `section.key=value` as `--set`; `stages`: a subset
    (default `pipeline.stages`, else all of dvc.yaml's); `refresh`: ignore cached results."""
    plan = Pipeline(params, list(overrides or []), stages)
    outcomes: dict[str, Any] = {}
    with _pipeline_run(plan) as parent:
        for name in plan.selected:
            if parent is not None:
                parent.stage, parent.cfg = name, plan.cfgs[name]
            outcomes[name] = plan.run(name, parent, refresh)
    return outcomes


class Pipeline:
    """dvc.yaml's stages with this run's configs; checks names and wiring before any work."""

    def __init__(self, params: str | Path, overrides: list[str], stages: list[str] | None = None):
        self.params = params
        self.stages = load_stages(find_dvc_yaml(params))
        names = list(self.stages)
        self.settings = load_config(PipelineConfig, "pipeline", params, overrides)
        wanted = list(stages or self.settings.stages or names)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; use: {', '.join(names)}")
        self.selected = [s for s in names if s in wanted]
        self.cfgs = stage_configs(names, params, overrides)
        self.defaults = stage_configs(names, params, [])
        check_wiring(self.stages, self.cfgs, self.defaults, self.selected)
        _check_register_policy(self.cfgs, self.selected)

    def run(self, name: str, parent: Any = None, refresh: bool = False) -> dict[str, Any]:
        """One stage: its cached-or-run task, then its nested MLflow run under `parent` (a PipelineRun, or
        None without tracking). Returns the outcome without the per-step history."""
        stage, cfg, settings = self.stages[name], self.cfgs[name], self.settings
        parent_run_id = parent.run_id if parent is not None else None
        if not stage.spec.tracked:   # register: it records its own run in the registry, linked to this one
            outcome = register(cfg, parent_run_id, settings.experiment)
            return {k: v for k, v in outcome.items() if k != "history"}
        io = stage_io(stage, cfg, self.defaults[name])
        tracking = None if parent_run_id is None else {
            "io": io, "parent_run_id": parent_run_id, "experiment": settings.experiment, "task": parent.task,
            "log_models": settings.log_models, "transcripts_sample": settings.transcripts_sample,
            "tags": {"taskplan.cached": "false", "taskplan.flow_run_id": _flow_run_id()}}
        stage_task = run_stage_task.with_options(
            name=name, task_run_name=name, result_storage=settings.cache_dir.resolve(),
            refresh_cache=refresh or not outputs_exist(stage, cfg, self.defaults[name]),
            **(IO_RETRIES if stage.spec.flaky_io else {}))
        extra = tuple(self.cfgs[section] for _, section in stage.spec.needs)
        outcome = stage_task(stage, cfg, extra, inputs_digest(stage, cfg, self.defaults[name]),
                             resume=settings.resume, tracking=tracking)
        outcome = {**outcome, "cached": outcome["flow_run_id"] != _flow_run_id()}
        if parent_run_id and outcome["cached"]:
            outcome["run_id"] = track_cached.with_options(task_run_name=f"track-{name}")(
                name, cfg, outcome, io, parent_run_id, settings, parent.task)
        return {k: v for k, v in outcome.items() if k != "history"}


def _check_register_policy(cfgs: dict[str, Any], selected: list[str]) -> None:
    """register promotes a policy that evaluate measured: it must be one of evaluate's policies."""
    if not {"evaluate", "register"} <= set(selected):
        return
    specs = dict(parse_policy_spec(p) for p in cfgs["evaluate"].policies)
    reg = cfgs["register"]
    if reg.policy not in specs:
        raise ConfigError(f"register.policy={reg.policy!r} is not among evaluate.policies; add "
                          f"{reg.policy}=<model dir> there or change register.policy")
    if Path(specs[reg.policy]).resolve() != Path(reg.model_dir).resolve():
        raise ConfigError(f"register.model_dir={reg.model_dir} but evaluate measured {reg.policy} at "
                          f"{specs[reg.policy]}; make them the same in the params file")


# --- helpers ----------------------------------------------------------------------------------------------

def _outcome(stage: str, result: Any, start: float) -> dict[str, Any]:
    """What a task returns (and Prefect caches): plain data, never the trainer or the model. `wall_seconds`
    (the stage's time, logged as `<stage>/wall_seconds`) stays the original run's when the result is cached."""
    metrics = {**result.metrics, "wall_seconds": round(time.perf_counter() - start, 3)}
    return {"stage": stage, "summary": result.summary(), "metrics": metrics,
            "history": list(getattr(result, "history", None) or []), "flow_run_id": _flow_run_id()}


@contextmanager
def _pipeline_run(plan: Pipeline) -> Iterator[Any]:
    """The MLflow parent run (None without tracking); stage runs are named after the pipeline's task."""
    settings = plan.settings
    if not settings.track:
        yield None
        return
    close_orphaned_runs(settings.experiment)
    tasks = plan.cfgs["generate"].tasks
    task = tasks[0] if len(tasks) == 1 else None
    tags = {"taskplan.flow_run_id": _flow_run_id(), "taskplan.stages": ",".join(plan.selected)}
    commit = _git_commit(Path(plan.params).resolve().parent)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    with pipeline_run(run_name("pipeline", task=task, seed=settings.seed),
                      params={"stages": ",".join(plan.selected), "params_file": str(plan.params),
                              **{f"pipeline.{k}": v for k, v in config_dict(settings).items()}},
                      tags=tags, artifacts=[Path(plan.params)], experiment=settings.experiment) as parent:
        parent.task = task
        yield parent


def close_orphaned_runs(experiment: str) -> list[str]:
    """End as KILLED the MLflow runs a killed process left RUNNING: pipeline runs (and their stage runs)
    whose Prefect flow run is already in a final state (e.g. Crashed after a SIGKILL of the worker).
    Returns their run ids; a tracking or Prefect API problem only logs a warning."""
    import mlflow
    from prefect.client.orchestration import get_client

    closed: list[str] = []
    try:
        experiment_id = configure(experiment)
        client = mlflow.MlflowClient()
        running = client.search_runs([experiment_id], "tags.`taskplan.kind` = 'pipeline' and "
                                     "attributes.status = 'RUNNING'")
        with get_client(sync_client=True) as prefect:
            for run in running:
                flow_run_id = run.data.tags.get("taskplan.flow_run_id")
                if not flow_run_id or flow_run_id == _flow_run_id():
                    continue
                state = prefect.read_flow_run(flow_run_id).state
                if state is None or not state.is_final():
                    continue
                children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}' "
                                              "and attributes.status = 'RUNNING'")
                for r in [*children, run]:
                    client.set_tag(r.info.run_id, "taskplan.error", f"flow run {flow_run_id} ended {state.name}")
                    client.set_terminated(r.info.run_id, "KILLED")
                    closed.append(r.info.run_id)
    except Exception as err:  # noqa: BLE001 (housekeeping must not stop a pipeline)
        log.warning("could not close orphaned MLflow runs: %s", str(err).splitlines()[0] if str(err) else err)
    return closed


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


def _git_commit(root: Path) -> str | None:
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (root / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None
