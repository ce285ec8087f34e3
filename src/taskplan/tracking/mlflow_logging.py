"""MLflow runs: one parent run per pipeline run, one nested run per stage.

    with pipeline_run(run_name("pipeline", cfg), params={...}) as parent:
        parent.stage = "sft"                                  # named on the parent if the stage fails
        result = run_sft(cfg)
        log_stage("sft", cfg, result, parent_run_id=parent.run_id)

    log_stage("grpo", cfg, result)                            # a top-level run (e.g. from the CLI)

Backend and experiment: tracking/backend.py. A run records the stage's
flattened config as params, its final metrics (namespaced `<stage>/<key>`
unless already namespaced, e.g. `eval/<policy>/<task>/sr`), the per-step
history as step metrics, and its outputs as artifacts (metrics JSON, plots,
report, GX data docs, a sample of transcripts, the model folder of training
stages). Run names follow `<stage>__<task-or-all>__seed<N>`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from taskplan.tracking.backend import configure

log = logging.getLogger(__name__)

MAX_PARAM_CHARS = 6000            # MLflow's limit on one param value
TRAINING_STAGES = ("model_init", "sft", "grpo")


@dataclasses.dataclass
class PipelineRun:
    """Handle on the open parent run; `stage`/`cfg` name what is running now (recorded on failure)."""

    run_id: str
    stage: str | None = None
    cfg: Any = None
    task: str | None = None       # the pipeline's task label for stage run names (None: from each config)
    started: float = dataclasses.field(default_factory=time.time)


def run_name(stage: str, cfg: Any = None, task: str | None = None, seed: int | None = None) -> str:
    """`<stage>__<task-or-all>__seed<N>`: the config's task when it names exactly one, else `task`, else all."""
    tasks = getattr(cfg, "tasks", None)
    if isinstance(tasks, (tuple, list)) and len(tasks) == 1:
        task = tasks[0]
    if seed is None:
        seed = getattr(cfg, "seed", 42)
    return f"{stage}__{task or 'all'}__seed{seed}"


@contextmanager
def pipeline_run(name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
                 artifacts: Sequence[Path | str] = (), experiment: str | None = None) -> Iterator[PipelineRun]:
    """Open the parent run of a pipeline. Not made the thread's active run: stages nest under it by id,
    whichever thread they run in. On an exception the run ends FAILED, tagged with the error and the stage
    that raised it (plus a FAILED nested run for that stage, with its outputs so far, e.g. GX data docs)."""
    import mlflow

    experiment_id = configure(experiment)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=name, tags={"taskplan.kind": "pipeline", **(tags or {})})
    handle = PipelineRun(run.info.run_id)
    try:
        _log_params(client, handle.run_id, params or {})
        for path in artifacts:
            if Path(path).exists():
                client.log_artifact(handle.run_id, str(path))
        yield handle
    except BaseException as err:
        message = _one_line(err)
        client.set_tag(handle.run_id, "taskplan.error", message)
        if handle.stage:
            client.set_tag(handle.run_id, "taskplan.failed_stage", handle.stage)
            try:
                log_failure(handle.stage, handle.cfg, err, parent_run_id=handle.run_id, experiment=experiment,
                            task=handle.task, since=handle.started)
            except Exception as log_err:  # the original error matters more than a logging problem
                log.warning("could not record the failed stage in MLflow: %s", _one_line(log_err))
        killed = isinstance(err, KeyboardInterrupt) or type(err).__name__ == "TerminationSignal"  # Ctrl-C, SIGTERM
        client.set_terminated(handle.run_id, "KILLED" if killed else "FAILED")
        raise
    client.set_terminated(handle.run_id, "FINISHED")


def log_stage(stage: str, cfg: Any, result: Any, artifacts: Sequence[Path | str] = (), *,
              parent_run_id: str | None = None, tags: Mapping[str, str] | None = None, log_models: bool = True,
              transcripts_sample: int = 20, experiment: str | None = None, task: str | None = None) -> str:
    """Log one stage as a run (nested under `parent_run_id` when given); returns the run id.

    `result` is the stage's Result (`.metrics`, optional `.history`, `.files`) or a mapping with those
    keys. `artifacts` adds paths (files or folders) to the stage's own outputs. Final metrics are logged
    at the last history step, so they extend the per-step curves instead of starting them. `task` names
    the run's task when the config does not (run names: `<stage>__<task-or-all>__seed<N>`)."""
    import mlflow

    experiment_id = configure(experiment)
    nested = bool(parent_run_id) or mlflow.active_run() is not None
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name(stage, cfg, task), nested=nested,
                          parent_run_id=parent_run_id,
                          tags={"taskplan.stage": stage, "taskplan.kind": "stage", **(tags or {})}) as run:
        client = mlflow.MlflowClient()
        run_id = run.info.run_id
        if cfg is not None:
            _log_params(client, run_id, flat_config(cfg))
        history = history_metrics(stage, _get(result, "history") or [])
        last_step = max((step for _, _, step in history), default=0)
        _log_metrics(client, run_id, [(k, v, last_step) for k, v in stage_metrics(stage, result).items()])
        _log_metrics(client, run_id, history)
        summary = _get(result, "summary")
        summary = summary() if callable(summary) else summary
        if summary:
            mlflow.set_tag("taskplan.summary", str(summary)[:5000])
        for path, dest in stage_artifacts(stage, cfg, result, log_models=log_models):
            _log_path(client, run_id, path, dest)
        for path in artifacts:
            _log_path(client, run_id, Path(path), "extra")
        if transcripts_sample > 0:
            _log_samples(client, run_id, transcript_sources(stage, cfg), transcripts_sample)
    return run_id


def log_failure(stage: str, cfg: Any, err: BaseException, *, parent_run_id: str | None = None,
                experiment: str | None = None, task: str | None = None, since: float | None = None) -> str:
    """A FAILED run for a stage that raised: its params, the error as a tag, and the outputs it wrote before
    failing (validate: report + GX data docs). With `since`, older files (an earlier run's) are left out."""
    import mlflow

    experiment_id = configure(experiment)
    client = mlflow.MlflowClient()
    tags = {"taskplan.stage": stage, "taskplan.kind": "stage", "taskplan.error": _one_line(err)}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name(stage, cfg, task), tags=tags)
    if cfg is not None:
        _log_params(client, run.info.run_id, flat_config(cfg))
    for path, dest in stage_artifacts(stage, cfg, None, log_models=False):
        if since is None or _newest_mtime(path) >= since:
            _log_path(client, run.info.run_id, path, dest)
    client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id


def flat_config(cfg: Any) -> dict[str, str]:
    """A config (dataclass or mapping) as flat MLflow params: nested keys joined with '.', lists as JSON."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    elif isinstance(cfg, Mapping):
        values = dict(cfg)
    else:
        return {}
    return {k: _param_value(v) for k, v in _flatten(values, sep=".").items()}


def stage_metrics(stage: str, result: Any) -> dict[str, float]:
    """Final numeric metrics, flattened with '/', namespaced `<stage>/...` unless already namespaced.
    Stages without `.metrics` (build_dataset) contribute their `.stats`."""
    raw = _get(result, "metrics")
    if raw is None:
        raw = _get(result, "stats") or {}
    out = {}
    for top, value in raw.items():
        name = str(top) if "/" in str(top) else f"{stage}/{top}"
        flat = _flatten(value, "/", name) if isinstance(value, Mapping) else {name: value}
        for key, item in flat.items():
            number = _number(item)
            if number is not None:
                out[key] = number
    return out


def history_metrics(stage: str, history: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, int]]:
    """Per-step history rows -> (`<stage>/<key>`, value, step)."""
    out = []
    for n, row in enumerate(history):
        step = int(row.get("step", n))
        for key, value in row.items():
            number = _number(value)
            if key != "step" and number is not None:
                out.append((f"{stage}/{key}", number, step))
    return out


def stage_artifacts(stage: str, cfg: Any, result: Any, log_models: bool = True) -> list[tuple[Path, str]]:
    """(path, artifact folder) of what a stage wrote, found through its config and result."""
    out: list[tuple[Path, str]] = []
    for attr in ("metrics_path", "stats_path", "out_path", "verdict_path", "report_path", "cross_task_path"):
        path = getattr(cfg, attr, None)
        if isinstance(path, Path):
            out.append((path, "outputs"))
    plots = getattr(cfg, "plots_dir", None)
    if isinstance(plots, Path):
        out.append((plots, "plots"))
    out_dir = getattr(cfg, "out_dir", None)
    if stage == "validate" and isinstance(out_dir, Path):
        out.append((out_dir, "validate"))                    # report.json + GX data docs
    elif stage == "generate" and isinstance(out_dir, Path):
        out.append((out_dir / "manifest.json", "outputs"))
    elif stage in TRAINING_STAGES and log_models and isinstance(out_dir, Path):
        out.append((out_dir, "model"))
    for path in _get(result, "files") or ():
        path = Path(path)
        if stage == "compare" and not any(path == p or p in path.parents for p, _ in out):
            out.append((path, "report"))
    return out


def transcript_sources(stage: str, cfg: Any) -> list[Path]:
    """JSONL files whose first lines are logged as a sample: episodes (generate) or transcripts (evaluate)."""
    folder = getattr(cfg, "outputs_dir", None) if stage in ("evaluate", "cross_task") else \
        getattr(cfg, "out_dir", None) if stage == "generate" else None
    if not isinstance(folder, Path) or not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.jsonl"))


def _log_samples(client: Any, run_id: str, sources: Sequence[Path], lines: int) -> None:
    """The first `lines` lines of each JSONL file, under `transcripts_sample/`."""
    if not sources:
        return
    with tempfile.TemporaryDirectory(prefix="taskplan-sample-") as tmp:
        for src in sources:
            with src.open(encoding="utf-8") as fh, (Path(tmp) / src.name).open("w", encoding="utf-8") as out:
                for n, line in enumerate(fh):
                    if n >= lines:
                        break
                    out.write(line)
        client.log_artifacts(run_id, tmp, "transcripts_sample")


def _log_path(client: Any, run_id: str, path: Path, dest: str) -> None:
    if path.is_dir():
        client.log_artifacts(run_id, str(path), dest)
    elif path.is_file():
        client.log_artifact(run_id, str(path), dest)


def _newest_mtime(path: Path) -> float:
    """Latest modification time of a file, or of any file under a folder (0 when absent)."""
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)
    return 0.0


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k[:250], _param_value(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def _log_metrics(client: Any, run_id: str, rows: Sequence[tuple[str, float, int]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, value, now, step) for key, value, step in rows]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i:i + 1000])


def _flatten(values: Mapping[str, Any], sep: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, sep, name))
        else:
            out[name] = value
    return out


def _param_value(value: Any) -> str:
    if isinstance(value, Path):
        text = str(value)
    elif isinstance(value, (tuple, list)):
        text = json.dumps([str(v) if isinstance(v, Path) else v for v in value])
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value:   # NaN is dropped
        return float(value)
    return None


def _get(result: Any, name: str) -> Any:
    if result is None:
        return None
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:5000]
