"""Stage `cross_task`: one model per training task, evaluated on every evaluation task (the SR matrix rows).

    cfg = load_config(CrossTaskConfig, "cross_task", "params.yaml")
    result = run_cross_task(cfg)     # metrics/cross_task/<train_task>.json + outputs/cross_task/<train_task>.jsonl

    doc, files = cross_task_matrix({"burger": "models/cross/burger"}, tasks=PAPER_TASKS)
    sr_matrix(doc)                   # {"burger": {"cheese_sandwich": 0.4, "burger": 0.9, ...}}

Episodes are played exactly as `taskplan evaluate` plays them: the config
inherits the evaluation settings (tasks, seeds, suite, prompt, retries, batch,
decoding, device; see stage.py `EvalSettings`) and the episodes go through
`evaluate_policy`. Each model writes one row file
`<out_dir>/<train_task>.json`, shaped like eval.json with the training task in
place of the policy; `taskplan compare` merges the rows into the SR matrix.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError
from taskplan.evaluate.bound import optimal_plans
from taskplan.evaluate.metrics import flat_metrics
from taskplan.evaluate.outcome import release_policy, set_cpu_threads
from taskplan.evaluate.policies import PolicyOptions, make_policy, parse_policy_spec, policy_kind
from taskplan.evaluate.rollout import Progress, RolloutSettings, write_transcripts
from taskplan.evaluate.stage import (
    EvalSettings,
    evaluate_policy,
    offset_progress,
    precheck_targets,
    resolve_specs,
    sr_line,
    with_caps,
)
from taskplan.io import atomic_write_json
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, get_task


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossTaskConfig(EvalSettings):
    """params.yaml `cross_task:`; the evaluation settings it shares with `evaluate:` are EvalSettings'."""

    section: ClassVar[str] = "cross_task"
    models: tuple[str, ...] = tuple(f"{t}=models/cross/{t}" for t in PAPER_TASKS)  # TRAIN_TASK=MODEL_DIR
    out_dir: Path = Path("metrics/cross_task")     # one <train_task>.json row per model
    outputs_dir: Path = Path("outputs/cross_task")  # transcripts <train_task>.jsonl

    def check(self) -> None:
        if not self.models:
            raise ConfigError("cross_task.models is empty; e.g. [burger=models/cross/burger]")
        for spec in self.models:
            name, target = parse_policy_spec(spec)
            if get_task(name).name != name:
                raise ConfigError(f"cross_task.models: use the task name {get_task(name).name!r}, not {name!r}")
            if policy_kind(target) != "model":
                raise ConfigError(f"cross_task.models: {spec!r} must name a model folder or hub id")


@dataclass(frozen=True, slots=True)
class CrossTaskResult:
    doc: dict[str, dict[str, dict[str, Any]]]   # {train_task: {eval_task: metrics}}
    files: tuple[Path, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return self.doc

    @property
    def metrics(self) -> dict[str, float]:
        return {**flat_metrics(self.doc, prefix="cross_task"), "cross_task/seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        return f"cross_task: {sr_line(self.doc)} -> {', '.join(map(str, self.files[:4]))} ({self.seconds:.1f} s)"


def run_cross_task(cfg: CrossTaskConfig, progress: Progress | None = None) -> CrossTaskResult:
    start = time.perf_counter()
    models = dict(parse_policy_spec(m) for m in cfg.models)
    set_cpu_threads(cfg.cpu_threads)
    doc, files = cross_task_matrix(models, cfg.tasks, cfg.seeds, cfg.suite, cfg.settings, cfg.options,
                                   cfg.outputs_dir, progress)
    rows = []
    for train_task, row in doc.items():
        rows.append(cfg.out_dir / f"{train_task}.json")
        atomic_write_json(rows[-1], {train_task: row})
    return CrossTaskResult(doc, (*rows, *files), time.perf_counter() - start)


def cross_task_matrix(models: Mapping[str, str | Path], tasks: Sequence[str] = PAPER_TASKS,
                      seeds: Sequence[int] = EVAL_SEEDS, suite: Path | None = None,
                      settings: RolloutSettings = RolloutSettings(), options: PolicyOptions = PolicyOptions(),
                      outputs_dir: Path | None = None,
                      progress: Progress | None = None) -> tuple[dict[str, dict[str, dict[str, Any]]], list[Path]]:
    """{train_task: model_dir} -> ({train_task: {eval_task: metrics}}, transcript files)."""
    specs = resolve_specs(tuple(tasks), tuple(seeds), suite)
    precheck_targets([f"{k}={v}" for k, v in models.items()])
    plans = optimal_plans(specs, options.planner_seconds)
    specs = with_caps(specs, plans)
    doc, files = {}, []
    for n, (train_task, target) in enumerate(models.items()):
        policy = make_policy(f"{train_task}={target}", options)
        try:
            ev = evaluate_policy(policy, specs, settings, plans,
                                 progress=offset_progress(progress, n * len(specs), len(models) * len(specs)))
        finally:
            release_policy(policy)
        doc[train_task] = ev.table
        if outputs_dir is not None:
            files.append(Path(outputs_dir) / f"{train_task}.jsonl")
            write_transcripts(files[-1], ev.episodes)
    return doc, files


def sr_matrix(doc: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """{row: {task: metrics}} -> {row: {task: sr}}."""
    return {row: {task: m.get("sr") for task, m in table.items()} for row, table in doc.items()}


STAGE = StageSpec("cross_task", CrossTaskConfig, run_cross_task,
                  "Evaluate one model per training task on every evaluation task -> metrics/cross_task/<task>.json.",
                  progress="episodes", json=True, pipeline=False)   # dvc.yaml runs it as a foreach template
