"""What playing one policy produced, and the helpers the serial and the sharded evaluation share.

    ev = policy_evaluation(episodes, plans, bound_records)   # metrics per task, bound where scored
    outcome = PolicyOutcome(modes=[("sft", ev, None)])        # what evaluate writes for one policy spec

evaluate/stage.py plays a policy in this process, evaluate/sharded.py merges the shards a cluster played;
both end in a `PolicyOutcome`, which stage.py turns into files the same way.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskplan.evaluate.bound import expert_bounds, mean_bound_by_task, mean_log10_bound_by_task, sampled_sr_opt
from taskplan.evaluate.metrics import add_bounds, task_table
from taskplan.evaluate.policies import (
    ConstrainedPolicy,
    HFPolicy,
    Policy,
    Scorer,
    parse_policy_spec,
    policy_kind,
)
from taskplan.evaluate.rollout import Episode, EpisodeSpec, Progress, RolloutSettings, run_episodes

MODES = ("plain", "constrained", "holdout", "single_turn")   # the order a policy's results are written in


def policy_modes(spec: str, constrained: Sequence[str], holdout_policies: Sequence[str], holdout_seeds: bool,
                 single_turn_rows: bool) -> list[str]:
    """What one policy spec is evaluated in, in MODES order: plain always; constrained decoding for a model
    named in `constrained` (it needs the model's logits); the held-out seeds for a policy named in
    `holdout_policies`, when there are any; the single-turn rows for a model, when there are any."""
    name, target = parse_policy_spec(spec)
    model = policy_kind(target) == "model"
    wanted = {"plain": True, "constrained": model and name in constrained,
              "holdout": name in holdout_policies and holdout_seeds, "single_turn": model and single_turn_rows}
    return [mode for mode in MODES if wanted[mode]]


@dataclass
class PolicyEvaluation:
    table: dict[str, dict[str, Any]]            # {task: metrics}
    episodes: list[Episode]
    bounds: list[Any] = field(default_factory=list)   # BoundRecord per instance (model policies)


@dataclass
class PolicyOutcome:
    """Everything one policy spec produced: a (name, evaluation, sampled SR@opt counts) per decoding mode,
    its held-out seeds' evaluation, its single-turn outcomes. The serial run and the cluster's merged shards
    both end in this, and `run_evaluate` turns it into files the same way."""

    modes: list[tuple[str, PolicyEvaluation, dict[str, tuple[int, int]] | None]] = field(default_factory=list)
    holdout: PolicyEvaluation | None = None
    single_turn: dict[str, Any] | None = None


@dataclass
class ModePlay:
    """One mode's raw results, before metrics: the serial run turns them into a PolicyEvaluation at once,
    a cluster shard sends them back to be merged with the other shards' first."""

    name: str                                   # the mode's policy name (NAME, or NAME_constrained)
    episodes: list[Episode]
    bounds: list[Any]                           # BoundRecord per instance, where the bound was asked for
    sampled: dict[str, tuple[int, int]] | None  # sampled SR@opt counts per task, where asked for


def play_mode(policy: Policy, mode: str, specs: Sequence[EpisodeSpec], plans: Mapping[str, Sequence[str]] | None,
              settings: RolloutSettings, bound: bool = False, opt_samples: int = 0, seed: int = 0,
              progress: Progress | None = None) -> ModePlay:
    """Play `specs` with `policy`, or with its constrained decoding (same weights) for mode "constrained".
    With `bound`, a policy that can score also scores the expert's plans; with `opt_samples` too, a model
    plays that many temperature-1 rollouts per episode (streams seeded from `seed`) for sampled SR@opt."""
    player = ConstrainedPolicy(policy) if mode == "constrained" else policy
    episodes = run_episodes(player, specs, settings, progress)
    bounds = []
    if bound and plans is not None and isinstance(player, Scorer):
        bounds = expert_bounds(player, specs, plans, settings)
    sampled = None
    if bound and plans is not None and opt_samples and isinstance(player, HFPolicy):
        sampled = sampled_sr_opt(lambda k: player.sampler(seed + 1 + k), specs, plans, settings, opt_samples)
    return ModePlay(player.name, episodes, bounds, sampled)


def policy_evaluation(episodes: list[Episode], plans: Mapping[str, Sequence[str]] | None,
                      records: Sequence[Any] = ()) -> PolicyEvaluation:
    """Metrics per task of finished episodes (each given its instance's true optimum), with the mean bound
    of `records` (one per instance) where there are any."""
    for ep in episodes:
        if plans is not None and ep.key in plans:
            ep.optimum = len(plans[ep.key])
    table = task_table(episodes)
    if records:
        add_bounds(table, mean_bound_by_task(records), mean_log10_bound_by_task(records))
    return PolicyEvaluation(table, episodes, list(records))


def set_cpu_threads(n: int) -> None:
    """Process-wide torch CPU threads; on a shared, busy CPU one thread avoids stalls at thread barriers."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


def release_policy(policy: Policy) -> None:
    """Free a model's memory (or close an endpoint's connections) before the next policy loads."""
    close: Callable[[], None] | None = getattr(policy, "close", None)
    if close is not None:
        close()
    if getattr(policy, "model", None) is not None:
        import torch

        policy.model = None   # type: ignore[attr-defined]
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
