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

from taskplan.evaluate.bound import mean_bound_by_task, mean_log10_bound_by_task
from taskplan.evaluate.metrics import add_bounds, task_table
from taskplan.evaluate.policies import Policy, parse_policy_spec, policy_kind
from taskplan.evaluate.rollout import Episode

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
