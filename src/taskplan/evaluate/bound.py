"""The product bound: P(finish in the minimal number of steps) >= prod_t pi(a*_t | s*_t).

    plans = optimal_plans(specs)                         # expert trajectory per instance
    records = expert_bounds(policy, specs, plans, settings)
    by_task = mean_bound_by_task(records)                # {task: mean bound}

Along the expert trajectory s*_0, a*_0, s*_1, ... of an instance, the policy is
shown exactly the prompt a rollout would show it there (same prompt style, the
previous expert action as history) and scored, teacher-forced, on the exact
expert reply `answer_text(a*_t)` (with the expert's reasoning line when the
policy was trained on it) followed by its stop token. Any other way of
producing the same action (other reasoning, other spacing) is not counted, and
re-prompts after an invalid reply only add chances, so the product is a lower
bound on the probability that the policy, sampled at temperature 1, finishes
the instance in its minimal number of steps (`sr_opt` in the metrics).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskplan.data.prompts import answer_text, build_messages
from taskplan.data.reasoning import reasoning_text, robot_location, subgoal_steps
from taskplan.evaluate.policies import Scorer
from taskplan.evaluate.rollout import EpisodeSpec, RolloutSettings, run_episodes
from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BoundRecord:
    task: str
    seed: int
    logprobs: tuple[float, ...]     # log pi(a*_t | s*_t) per expert step

    @property
    def log_bound(self) -> float:
        return sum(self.logprobs)

    @property
    def bound(self) -> float:
        return math.exp(self.log_bound)

    @property
    def weakest_step(self) -> int | None:
        """The expert step the policy is least sure of (where the bound is lost)."""
        return min(range(len(self.logprobs)), key=self.logprobs.__getitem__) if self.logprobs else None

    def to_json(self) -> dict:
        return {"task": self.task, "seed": self.seed, "bound": self.bound, "log_bound": self.log_bound,
                "step_probs": [math.exp(x) for x in self.logprobs], "weakest_step": self.weakest_step}


def optimal_plans(specs: Sequence[EpisodeSpec], max_seconds: float | None = 300.0) -> dict[str, list[str]]:
    """The expert's minimal plan (action texts) of every instance, keyed by `spec.key`."""
    plans = {}
    for spec in specs:
        env = KitchenEnv.from_spec(spec.task, seed=spec.seed)
        env.reset()
        plans[spec.key] = list(plan_state(env.world, env.state, env.goal, max_seconds=max_seconds).texts)
    return plans


def expert_turns(spec: EpisodeSpec, plan: Sequence[str],
                 settings: RolloutSettings = RolloutSettings()) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, expert reply) at each state of the expert trajectory."""
    env = KitchenEnv.from_spec(spec.task, seed=spec.seed)
    env.reset()
    reasons = [reasoning_text(g, settings.reasoning) for g in subgoal_steps(plan, robot_location(env.observation()))]
    out, prev, prev_reason = [], None, None
    for action, reason in zip(plan, reasons):
        messages = build_messages(env.observation(), prev if settings.history else None,
                                  prev_reason if settings.history else None, None, settings.prompt_style)
        out.append((messages, answer_text(action, reason)))
        result = env.step(action)
        if not result.valid:
            raise RuntimeError(f"expert plan of {spec.key} has an invalid action {action!r} (planner bug)")
        prev, prev_reason = action, reason
    return out


def expert_bounds(scorer: Scorer, specs: Sequence[EpisodeSpec], plans: Mapping[str, Sequence[str]],
                  settings: RolloutSettings = RolloutSettings(),
                  progress: Callable[[int, int], None] | None = None) -> list[BoundRecord]:
    """Score every expert step of every instance (in the scorer's batches); one record per instance."""
    pairs, owner = [], []
    for n, spec in enumerate(specs):
        for messages, reply in expert_turns(spec, plans[spec.key], settings):
            pairs.append((messages, reply))
            owner.append(n)
    logprobs: list[float] = []
    chunk = 256                              # progress granularity; the scorer batches inside
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        logprobs += scorer.completion_logprobs([p for p, _ in part], [c for _, c in part])
        if progress is not None:
            progress(len(logprobs), len(pairs))
    per: list[list[float]] = [[] for _ in specs]
    for n, lp in zip(owner, logprobs):
        per[n].append(lp)
    return [BoundRecord(spec.task, spec.seed, tuple(lps)) for spec, lps in zip(specs, per)]


def mean_bound_by_task(records: Sequence[BoundRecord]) -> dict[str, float]:
    """Mean over a task's instances of the per-instance product bound."""
    return _mean_by_task(records, lambda r: r.bound)


def mean_log10_bound_by_task(records: Sequence[BoundRecord]) -> dict[str, float]:
    """Mean log10 of the bound (readable where the bound itself underflows to 0, e.g. untrained models)."""
    return _mean_by_task(records, lambda r: r.log_bound / math.log(10))


def _mean_by_task(records: Sequence[BoundRecord], value: Callable[[BoundRecord], float]) -> dict[str, float]:
    by_task: dict[str, list[float]] = {}
    for rec in records:
        by_task.setdefault(rec.task, []).append(value(rec))
    return {task: sum(v) / len(v) for task, v in by_task.items()}


def sampled_sr_opt(make_sampler: Callable[[int], Any], specs: Sequence[EpisodeSpec],
                   plans: Mapping[str, Sequence[str]], settings: RolloutSettings, samples: int,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, tuple[int, int]]:
    """What the bound is a bound on: the share of episodes that the policy, sampled at temperature 1,
    finishes in exactly the instance's optimum. `samples` rollouts per instance, each with its own
    sampling seed (`make_sampler(k)` builds the k-th sampler), capped at the optimum (a longer episode
    cannot count) and ended by the first invalid reply: the bound multiplies first-reply probabilities
    only, so it bounds this stricter rate too, and a weak policy's episodes end in a few turns instead of
    fifteen retries. Returns {task: (successes, episodes)}."""
    capped = [EpisodeSpec(s.task, s.seed, len(plans[s.key])) for s in specs]
    settings = dataclasses.replace(settings, max_retries=1, max_exhausted=1)
    out: dict[str, list[int]] = {}
    for k in range(samples):
        for ep in run_episodes(make_sampler(k), capped, settings):
            wins = out.setdefault(ep.task, [0, 0])
            wins[0] += int(ep.success)
            wins[1] += 1
        if progress is not None:
            progress(k + 1, samples)
    return {task: (w, n) for task, (w, n) in out.items()}
