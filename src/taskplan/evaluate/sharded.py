"""Evaluation on a Dask cluster: (policy, task, seed chunk) shards, merged into what the serial run writes.

    cfg = load_config(EvaluateConfig, "evaluate", "params.yaml", ["evaluate.cluster=tcp://10.0.0.5:8786"])
    run_evaluate(cfg)     # stage.py hands the episodes to `evaluate_on_cluster`, then writes as always

Shards (orchestrate/fanout.py runs them):
- episodes: one per (policy, decoding mode, task, chunk of `shard_seeds` seeds), for the evaluation seeds
  and for the held-out seeds of `holdout_policies`; a model policy's shard also scores the expert's
  replies (the bound) and plays the sampled SR@opt rollouts of its episodes;
- single-turn rows: one per model policy (its counts are not split).

Every worker loads the policy its shard names, plays, and frees it, so the machine that asked loads no
model. The merge concatenates each policy's episodes in shard order (the serial order) and computes the
metrics with the serial run's functions, so `metrics/eval.json` and the transcripts are byte for byte the
serial run's wherever an episode does not depend on which others share its batch: random, expert and
endpoint policies, and model policies with `batch_size: 1`. A batched model policy pads its prompts to
the batch, and float sums over other paddings may flip a near-tied greedy token. Sampled SR@opt starts
its sampling streams afresh in every shard, so its counts match the serial run's only in distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskplan.evaluate.outcome import (
    MODES,
    PolicyOutcome,
    play_mode,
    policy_evaluation,
    policy_modes,
    release_policy,
    set_cpu_threads,
)
from taskplan.evaluate.policies import (
    PolicyOptions,
    make_policy,
)
from taskplan.evaluate.rollout import Episode, EpisodeSpec, Progress, RolloutSettings
from taskplan.evaluate.single_turn import single_turn_outcomes
from taskplan.orchestrate.fanout import run_shards

if TYPE_CHECKING:
    from taskplan.evaluate.stage import EvaluateConfig


@dataclass(frozen=True)
class EvalShard:
    """What a worker needs to play one shard: no reference to the driver's state."""

    policy: str                                  # the spec, NAME=TARGET
    mode: str                                    # one of MODES
    specs: tuple[EpisodeSpec, ...] = ()
    plans: Mapping[str, Sequence[str]] = field(default_factory=dict)   # the optimum of each spec
    settings: RolloutSettings = RolloutSettings()
    options: PolicyOptions = PolicyOptions()
    bound: bool = False
    opt_samples: int = 0
    rows: tuple[dict, ...] = ()                  # single_turn rows
    planner_seconds: float = 300.0
    cpu_threads: int = 0                         # torch threads on the worker (evaluate.cpu_threads)


@dataclass
class ShardResult:
    name: str                                    # the mode's policy name (NAME or NAME_constrained)
    episodes: list[Episode] = field(default_factory=list)
    bounds: list[Any] = field(default_factory=list)
    sampled: dict[str, tuple[int, int]] | None = None
    single_turn: dict[str, Any] | None = None


def play_shard(shard: EvalShard) -> ShardResult:
    """On a worker: load the shard's policy, play or judge, free it."""
    set_cpu_threads(shard.cpu_threads)   # a worker process per core: one thread each, as the serial run
    policy = make_policy(shard.policy, shard.options)
    try:
        if shard.mode == "single_turn":
            return ShardResult(policy.name, single_turn=single_turn_outcomes(policy, shard.rows, shard.planner_seconds))
        play = play_mode(policy, shard.mode, shard.specs, shard.plans, shard.settings, shard.bound,
                         shard.opt_samples, shard.options.seed)
        return ShardResult(play.name, play.episodes, play.bounds, play.sampled)
    finally:
        release_policy(policy)


def plan_shards(cfg: EvaluateConfig, specs: Sequence[EpisodeSpec], holdout_specs: Sequence[EpisodeSpec],
                plans: Mapping[str, Sequence[str]], rows: Sequence[dict]) -> list[EvalShard]:
    """The shards of every policy, policy by policy, each policy's modes in the serial order."""
    shards = []
    for spec in cfg.policies:
        for mode in policy_modes(spec, cfg.constrained, cfg.holdout_policies, bool(holdout_specs), bool(rows)):
            if mode == "single_turn":
                shards.append(EvalShard(spec, mode, rows=tuple(rows), options=cfg.options,
                                        planner_seconds=cfg.planner_seconds, cpu_threads=cfg.cpu_threads))
                continue
            mode_specs = holdout_specs if mode == "holdout" else specs
            for chunk in _task_chunks(mode_specs, cfg.shard_seeds):
                shards.append(EvalShard(spec, mode, tuple(chunk), {s.key: plans[s.key] for s in chunk},
                                        cfg.settings, cfg.options, cfg.bound and mode == "plain", cfg.opt_samples,
                                        planner_seconds=cfg.planner_seconds, cpu_threads=cfg.cpu_threads))
    return shards


def evaluate_on_cluster(cfg: EvaluateConfig, specs: Sequence[EpisodeSpec], holdout_specs: Sequence[EpisodeSpec],
                        plans: Mapping[str, Sequence[str]], rows: Sequence[dict],
                        progress: Progress | None = None) -> list[PolicyOutcome]:
    """Run every shard on `cfg.cluster`; one PolicyOutcome per policy spec, in `cfg.policies` order."""
    shards = plan_shards(cfg, specs, holdout_specs, plans, rows)
    results = run_shards(play_shard, shards, cfg.cluster, "evaluate", progress)
    outcomes = []
    for spec in cfg.policies:
        outcome = PolicyOutcome()
        for mode in MODES:
            mine = [r for s, r in zip(shards, results) if s.policy == spec and s.mode == mode]
            if not mine:
                continue
            if mode == "single_turn":
                outcome.single_turn = mine[0].single_turn
                continue
            episodes = [ep for r in mine for ep in r.episodes]
            ev = policy_evaluation(episodes, plans, [b for r in mine for b in r.bounds])
            if mode == "holdout":
                outcome.holdout = ev
                continue
            sampled = _sum_counts([r.sampled for r in mine if r.sampled is not None])
            outcome.modes.append((mine[0].name, ev, sampled))
        outcomes.append(outcome)
    return outcomes


def _task_chunks(specs: Sequence[EpisodeSpec], size: int) -> list[list[EpisodeSpec]]:
    """Consecutive specs of one task, at most `size` at a time (specs come task-major)."""
    out: list[list[EpisodeSpec]] = []
    for spec in specs:
        if out and out[-1][0].task == spec.task and len(out[-1]) < size:
            out[-1].append(spec)
        else:
            out.append([spec])
    return out


def _sum_counts(parts: Sequence[dict[str, tuple[int, int]]]) -> dict[str, tuple[int, int]] | None:
    """Per-task (successes, episodes) summed over shards, tasks in first-seen order; None if no shard had any."""
    if not parts:
        return None
    total: dict[str, list[int]] = {}
    for part in parts:
        for task, (wins, n) in part.items():
            acc = total.setdefault(task, [0, 0])
            acc[0] += wins
            acc[1] += n
    return {task: (w, n) for task, (w, n) in total.items()}
