"""The taskplan pipeline as a Prefect 3 flow: the stages of dvc.yaml, in the same order, as tasks.

    taskplan pipeline                                  # run it here, in-process
    taskplan pipeline --stages sft,grpo,evaluate,compare,register --set grpo.max_steps=20
    prefect deploy --prefect-file flows/prefect.yaml --all   # the nightly deployment (see prefect.yaml)

generate -> validate -> build_dataset -> model_init -> sft -> grpo -> evaluate
-> compare -> register. Every task calls the package's `run_*` function (no
shell). A stage's result is cached by the hash of its inputs (its config, the
content of the files and folders it reads, the package code it runs, and the
task's source); Prefect keeps results and cache keys under `pipeline.cache_dir`.
A cached stage whose outputs have gone missing runs again. Only tasks that do
flaky IO retry (hub downloads in model_init, chat endpoints in evaluate, the
MLflow server in tracking and register), and only on connection-type errors.

A failing stage stops the flow with its own one-line error (validate: the
first failed GX check); the MLflow parent run ends FAILED, tagged with it.
SFT and GRPO keep a marker in their checkpoint folder: when the previous run
with the very same inputs was interrupted, the next one resumes from its last
complete checkpoint.
"""

import hashlib
import logging
import os
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
from taskplan.io import path_digest

log = logging.getLogger("taskplan.flows")

STAGES = ("generate", "validate", "build_dataset", "model_init", "sft", "grpo", "evaluate", "compare", "register")
STAGE_CACHE = (INPUTS - "resume") + TASK_SOURCE   # `resume` changes how a stage runs, not what it produces
# package code each stage runs (as dvc.yaml's deps): a change there invalidates the cached result
CODE = {"generate": ("kitchen", "expert", "data"), "validate": ("kitchen", "data"), "build_dataset": ("data",),
        "model_init": ("model",), "sft": ("train", "model"), "grpo": ("train", "model"),
        "evaluate": ("evaluate", "kitchen", "expert", "model", "data"), "compare": ("evaluate",)}
BIG_FILE = 64 << 20                               # larger files are fingerprinted by size + mtime
TRANSIENT = {"ConnectionError", "TimeoutError", "ConnectTimeout", "ReadTimeout", "TransportError",
             "RemoteProtocolError", "ChunkedEncodingError", "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    stages: tuple[str, ...] = STAGES          # run these (pipeline order); others' outputs are used as they are
    experiment: str = "taskplan"              # MLflow experiment
    track: bool = True                        # MLflow parent run + one nested run per stage
    log_models: bool = True                   # model folders of training stages as run artifacts
    transcripts_sample: int = 20              # lines of each transcript/trajectory file logged as a sample
    cache_dir: Path = Path(".prefect/results")   # Prefect task results and cache keys
    resume: bool = True                       # resume SFT/GRPO interrupted with the same inputs
    seed: int = 42                            # common.seed (run names)

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"pipeline.stages: unknown stage(s) {', '.join(unknown)}; use: {', '.join(STAGES)}")
        if self.transcripts_sample < 0:
            raise ConfigError("pipeline.transcripts_sample must be >= 0")


# --- tasks: one per stage, each a thin call into the package ---------------------------------------------

def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only connection-type failures (a bad config or a bug fails at once)."""
    try:
        err = state.result(raise_on_failure=False)
    except Exception:  # the state holds no readable exception: do not retry blindly
        return False
    return is_transient(err)


def is_transient(err: BaseException) -> bool:
    names = {c.__name__ for c in type(err).__mro__}
    if names & TRANSIENT:
        return True
    text = str(err)
    return any(s in text for s in ("Max retries exceeded", "Connection refused", "Temporary failure in name",
                                   "503 Service Unavailable", "504 Gateway"))


IO_RETRIES = {"retries": 3, "retry_delay_seconds": [10, 60, 300], "retry_condition_fn": _transient}


@task(name="generate", cache_policy=STAGE_CACHE, persist_result=True)
def generate(cfg: Any, digest: str) -> dict:
    from taskplan.data.trajectories import run_generate

    start = time.perf_counter()
    return _outcome("generate", run_generate(cfg), start)


@task(name="validate", cache_policy=STAGE_CACHE, persist_result=True)
def validate(cfg: Any, dataset_cfg: Any, digest: str) -> dict:
    from taskplan.data.validate import run_validate

    start = time.perf_counter()
    return _outcome("validate", run_validate(cfg, dataset_cfg), start)


@task(name="build_dataset", cache_policy=STAGE_CACHE, persist_result=True)
def build_dataset(cfg: Any, digest: str) -> dict:
    from taskplan.data.dataset import run_build_dataset

    start = time.perf_counter()
    return _outcome("build_dataset", run_build_dataset(cfg), start)


@task(name="model_init", cache_policy=STAGE_CACHE, persist_result=True, **IO_RETRIES)
def model_init(cfg: Any, digest: str) -> dict:
    from taskplan.model.builder import run_model_init

    start = time.perf_counter()
    return _outcome("model_init", run_model_init(cfg), start)


@task(name="sft", cache_policy=STAGE_CACHE, persist_result=True)
def sft(cfg: Any, digest: str, resume: bool = True) -> dict:
    from taskplan.train.sft import run_sft

    start = time.perf_counter()
    return _outcome("sft", run_sft(cfg, resume=resume), start)   # resumes only a checkpoint of these inputs


@task(name="grpo", cache_policy=STAGE_CACHE, persist_result=True)
def grpo(cfg: Any, digest: str, resume: bool = True) -> dict:
    from taskplan.train.grpo import run_grpo

    start = time.perf_counter()
    return _outcome("grpo", run_grpo(cfg, resume=resume), start)   # resumes only a checkpoint of these inputs


@task(name="evaluate", cache_policy=STAGE_CACHE, persist_result=True, **IO_RETRIES)
def evaluate(cfg: Any, digest: str) -> dict:
    from taskplan.evaluate.stage import run_evaluate

    start = time.perf_counter()
    return _outcome("evaluate", run_evaluate(cfg), start)


@task(name="compare", cache_policy=STAGE_CACHE, persist_result=True)
def compare(cfg: Any, digest: str) -> dict:
    from taskplan.evaluate.report import run_compare

    start = time.perf_counter()
    return _outcome("compare", run_compare(cfg), start)


@task(name="register", cache_policy=NO_CACHE, **IO_RETRIES)
def register(cfg: Any, parent_run_id: str | None, experiment: str) -> dict:
    """Never cached: the registry is the state. Registering a folder twice reuses its version."""
    from taskplan.tracking import register as register_model

    start = time.perf_counter()
    result = register_model(cfg, parent_run_id=parent_run_id, experiment=experiment)
    return {**_outcome("register", result, start), "version": result.version, "promoted": result.promoted,
            "run_id": result.run_id}


@task(name="track", cache_policy=NO_CACHE, **IO_RETRIES)
def track(stage: str, cfg: Any, outcome: dict, parent_run_id: str, settings: PipelineConfig,
          task: str | None = None) -> str:
    """A nested MLflow run for a finished stage (a cached one is logged too, tagged cached, without models)."""
    from taskplan.tracking import log_stage

    cached = outcome["flow_run_id"] != _flow_run_id()
    return log_stage(stage, cfg, outcome, parent_run_id=parent_run_id, experiment=settings.experiment, task=task,
                     log_models=settings.log_models and not cached, transcripts_sample=settings.transcripts_sample,
                     tags={"taskplan.cached": str(cached).lower(), "taskplan.flow_run_id": _flow_run_id()})


TASKS = {"generate": generate, "validate": validate, "build_dataset": build_dataset, "model_init": model_init,
         "sft": sft, "grpo": grpo, "evaluate": evaluate, "compare": compare}


# --- the flow: ordering and parameters only ---------------------------------------------------------------

@flow(name="taskplan-pipeline")
def taskplan_pipeline(params: str = "params.yaml", overrides: list[str] | None = None,
                      stages: list[str] | None = None, refresh: bool = False) -> dict[str, Any]:
    """Run the pipeline stages in order. `overrides`: `section.key=value` as `--set`; `stages`: a subset
    (default `pipeline.stages`); `refresh`: ignore cached results."""
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; use: {', '.join(STAGES)}")
    overrides = list(overrides or [])
    settings = load_config(PipelineConfig, "pipeline", params, overrides)
    selected = [s for s in STAGES if s in (stages or settings.stages)]
    cfgs = stage_configs(params, overrides)
    check_wiring(cfgs, selected)
    outcomes: dict[str, Any] = {}
    with _pipeline_run(settings, params, cfgs, selected) as parent:
        for stage in selected:
            if parent is not None:
                parent.stage, parent.cfg = stage, cfgs[stage]
            outcomes[stage] = run_stage(stage, cfgs, settings, parent, refresh)
    return outcomes


def run_stage(stage: str, cfgs: dict[str, Any], settings: PipelineConfig, parent: Any = None,
              refresh: bool = False) -> dict[str, Any]:
    """One stage: its cached-or-run task, then its nested MLflow run under `parent` (a PipelineRun, or None
    without tracking). Returns the outcome without the per-step history."""
    cfg = cfgs[stage]
    parent_run_id = parent.run_id if parent is not None else None
    if stage == "register":
        outcome = register(cfg, parent_run_id, settings.experiment)
        return {k: v for k, v in outcome.items() if k != "history"}
    digest = inputs_digest(stage, cfg)
    stage_task = TASKS[stage].with_options(
        result_storage=settings.cache_dir.resolve(),
        refresh_cache=refresh or not outputs_exist(stage, cfg))
    args: list[Any] = [cfg, cfgs["build_dataset"], digest] if stage == "validate" else [cfg, digest]
    kwargs = {"resume": settings.resume} if stage in ("sft", "grpo") else {}
    outcome = stage_task(*args, **kwargs)
    outcome = {**outcome, "cached": outcome["flow_run_id"] != _flow_run_id()}
    if parent_run_id:
        outcome["run_id"] = track.with_options(task_run_name=f"track-{stage}")(
            stage, cfg, outcome, parent_run_id, settings, parent.task)
    return {k: v for k, v in outcome.items() if k != "history"}


def stage_configs(params: str | Path, overrides: list[str]) -> dict[str, Any]:
    """Every stage's config from the params file (profile applied, overrides last): fails before any work."""
    from taskplan.data.dataset import BuildDatasetConfig
    from taskplan.data.trajectories import GenerateConfig
    from taskplan.data.validate import ValidateConfig
    from taskplan.evaluate.report import CompareConfig
    from taskplan.evaluate.stage import EvaluateConfig
    from taskplan.model.builder import ModelInitConfig
    from taskplan.tracking import RegisterConfig
    from taskplan.train.grpo import GrpoConfig
    from taskplan.train.sft import SftConfig

    classes = {"generate": GenerateConfig, "validate": ValidateConfig, "build_dataset": BuildDatasetConfig,
               "model_init": ModelInitConfig, "sft": SftConfig, "grpo": GrpoConfig, "evaluate": EvaluateConfig,
               "compare": CompareConfig, "register": RegisterConfig}
    return {name: load_config(cls, name, params, overrides) for name, cls in classes.items()}


def check_wiring(cfgs: dict[str, Any], selected: list[str]) -> None:
    """Each selected stage must read what the selected stage before it writes (one-line ConfigError if not)."""
    from taskplan.evaluate.policies import parse_policy_spec

    c = cfgs
    links = [("validate", "trajectories_dir", "generate", c["generate"].out_dir),
             ("build_dataset", "trajectories_dir", "generate", c["generate"].out_dir),
             ("build_dataset", "validation_report", "validate", c["validate"].report_path),
             ("sft", "dataset_dir", "build_dataset", c["build_dataset"].out_dir),
             ("grpo", "dataset_dir", "build_dataset", c["build_dataset"].out_dir),
             ("sft", "model_dir", "model_init", c["model_init"].out_dir),
             ("grpo", "model_dir", "sft", c["sft"].out_dir),
             ("compare", "eval_path", "evaluate", c["evaluate"].out_path),
             ("register", "eval_path", "evaluate", c["evaluate"].out_path),
             ("register", "verdict_path", "compare", c["compare"].verdict_path)]
    if c["model_init"].source == "tiny":
        links.append(("model_init", "dataset_dir", "build_dataset", c["build_dataset"].out_dir))
    specs = dict(parse_policy_spec(p) for p in c["evaluate"].policies)
    reg = c["register"]
    if reg.policy in specs:
        links.append(("register", "model_dir", "evaluate", Path(specs[reg.policy])))
    elif "evaluate" in selected and "register" in selected:
        raise ConfigError(f"register.policy={reg.policy!r} is not among evaluate.policies; add "
                          f"{reg.policy}=<model dir> there or change register.policy")
    for stage, attr, upstream, expected in links:
        got = getattr(c[stage], attr)
        if stage in selected and upstream in selected and got is not None and not _same_path(got, expected):
            raise ConfigError(f"{stage}.{attr}={got} but {upstream} writes {expected}; make them the same "
                              "in the params file")


def inputs_digest(stage: str, cfg: Any) -> str:
    """sha256 over the stage's input files/folders and the package code it runs."""
    import taskplan

    h = hashlib.sha256()
    for path in stage_inputs(stage, cfg):
        h.update(f"{path}\0{path_digest(Path(path), quick_over=BIG_FILE)}\0".encode())
    root = Path(taskplan.__file__).parent
    for sub in CODE.get(stage, ()):
        for src in sorted((root / sub).rglob("*.py")):
            h.update(src.relative_to(root).as_posix().encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def stage_inputs(stage: str, cfg: Any) -> list[Path]:
    """What a stage reads (dvc.yaml's data deps)."""
    from taskplan.evaluate.policies import parse_policy_spec, policy_kind

    if stage == "generate":
        return [p for p in (cfg.suite,) if p]
    if stage == "validate":
        return [p for p in (cfg.trajectories_dir, cfg.suite, cfg.dataset_dir) if p]
    if stage == "build_dataset":
        return [p for p in (cfg.trajectories_path, cfg.validation_report) if p]
    if stage == "model_init":
        base = Path(cfg.base_model)
        return [cfg.dataset_dir] + ([base] if cfg.source != "tiny" and base.exists() else [])
    if stage in ("sft", "grpo"):
        return [Path(cfg.model_dir), cfg.dataset_dir]
    if stage == "evaluate":
        models = [Path(t) for _, t in map(parse_policy_spec, cfg.policies) if policy_kind(t) == "model"]
        return [p for p in (*models, cfg.suite) if p]
    if stage == "compare":
        return [cfg.eval_path, cfg.cross_task_dir]
    return []


def outputs_exist(stage: str, cfg: Any) -> bool:
    """False when a cached result would point at outputs that are gone (then the stage runs again)."""
    if stage == "generate":
        outs = [cfg.out_dir / "manifest.json"]
    elif stage == "validate":
        outs = [cfg.report_path]
    elif stage == "build_dataset":
        outs = [cfg.out_dir, cfg.stats_path]
    elif stage == "model_init":
        outs = [cfg.out_dir / "config.json"]
    elif stage in ("sft", "grpo"):
        outs = [cfg.out_dir / "config.json", cfg.metrics_path]
    elif stage == "evaluate":
        outs = [cfg.out_path]
    elif stage == "compare":
        outs = [cfg.report_path, cfg.verdict_path]
    else:
        outs = []
    return all(Path(p).exists() for p in outs)


# --- helpers ----------------------------------------------------------------------------------------------

def _outcome(stage: str, result: Any, start: float) -> dict[str, Any]:
    """What a task returns (and Prefect caches): plain data, never the trainer or the model. `wall_seconds`
    (the stage's time, logged as `<stage>/wall_seconds`) stays the original run's when the result is cached."""
    metrics = getattr(result, "metrics", None)
    if metrics is None:
        metrics = getattr(result, "stats", {})
    metrics = {**metrics, "wall_seconds": round(time.perf_counter() - start, 3)}
    return {"stage": stage, "summary": result.summary(), "metrics": metrics,
            "history": list(getattr(result, "history", None) or []),
            "files": [str(f) for f in getattr(result, "files", ()) or ()], "flow_run_id": _flow_run_id()}


@contextmanager
def _pipeline_run(settings: PipelineConfig, params: str | Path, cfgs: dict[str, Any],
                  selected: list[str]) -> Iterator[Any]:
    """The MLflow parent run (None without tracking); stage runs are named after the pipeline's task."""
    if not settings.track:
        yield None
        return
    from taskplan.tracking import pipeline_run, run_name

    tasks = cfgs["generate"].tasks
    task = tasks[0] if len(tasks) == 1 else None
    tags = {"taskplan.flow_run_id": _flow_run_id(), "taskplan.stages": ",".join(selected)}
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    with pipeline_run(run_name("pipeline", task=task, seed=settings.seed),
                      params={"stages": ",".join(selected), "params_file": str(params),
                              **{f"pipeline.{k}": v for k, v in config_dict(settings).items()}},
                      tags=tags, artifacts=[Path(params)], experiment=settings.experiment) as parent:
        parent.task = task
        yield parent


def _flow_run_id() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.id or "")


def _same_path(a: Any, b: Any) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _git_commit() -> str | None:
    head = Path(".git/HEAD")
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (Path(".git") / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


if __name__ == "__main__":   # python flows/pipeline.py: one local run with params.yaml
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    taskplan_pipeline()
