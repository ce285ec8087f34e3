"""The product bound along the expert trajectory."""

from __future__ import annotations

import math

import pytest

from taskplan.data.prompts import answer_text
from taskplan.evaluate.bound import (
    BoundRecord,
    expert_bounds,
    expert_turns,
    mean_bound_by_task,
    mean_log10_bound_by_task,
    optimal_plans,
)
from taskplan.evaluate.rollout import EpisodeSpec, RolloutSettings

SPECS = [EpisodeSpec("cheese_sandwich", 42), EpisodeSpec("burger", 84)]


class HalfScorer:
    """Gives every expert reply probability 1/2 and records what it was asked."""

    def __init__(self):
        self.asked = []

    def completion_logprobs(self, prompts, completions):
        self.asked += list(zip(prompts, completions))
        return [math.log(0.5)] * len(prompts)


def test_expert_turns_follow_the_plan_with_the_previous_action_as_history():
    plan = optimal_plans(SPECS[:1])["cheese_sandwich/42"]
    turns = expert_turns(SPECS[0], plan)
    assert [reply for _, reply in turns] == [answer_text(a) for a in plan]
    assert "Previous action" not in turns[0][0][-1]["content"]
    assert f"Previous action: {plan[0]}" in turns[1][0][-1]["content"]
    no_history = expert_turns(SPECS[0], plan, RolloutSettings(history=False))
    assert all("Previous action" not in m[-1]["content"] for m, _ in no_history)


def test_bound_is_the_product_over_the_expert_trajectory():
    plans = optimal_plans(SPECS)
    scorer = HalfScorer()
    records = expert_bounds(scorer, SPECS, plans)
    assert len(scorer.asked) == sum(len(p) for p in plans.values()), "one score per expert step"
    for rec, spec in zip(records, SPECS):
        n = len(plans[spec.key])
        assert (rec.task, rec.seed, len(rec.logprobs)) == (spec.task, spec.seed, n)
        assert rec.bound == pytest.approx(0.5 ** n)
    by_task = mean_bound_by_task(records)
    assert by_task["burger"] == pytest.approx(0.5 ** len(plans["burger/84"]))
    assert mean_log10_bound_by_task(records)["burger"] == pytest.approx(len(plans["burger/84"]) * math.log10(0.5))


def test_bound_record_json_names_the_weakest_step():
    rec = BoundRecord("burger", 42, (math.log(0.9), math.log(0.2), math.log(0.8)))
    doc = rec.to_json()
    assert doc["weakest_step"] == 1 and doc["bound"] == pytest.approx(0.9 * 0.2 * 0.8)
    assert doc["step_probs"] == pytest.approx([0.9, 0.2, 0.8])


def test_sampled_sr_opt_counts_only_optimal_finishes():
    from taskplan.evaluate.bound import optimal_plans, sampled_sr_opt
    from taskplan.evaluate.policies import ExpertPolicy, RandomPolicy
    from taskplan.evaluate.rollout import EpisodeSpec, RolloutSettings

    specs = [EpisodeSpec("burger", 42), EpisodeSpec("burger", 84), EpisodeSpec("cheese_sandwich", 42)]
    plans = optimal_plans(specs)
    expert = sampled_sr_opt(lambda k: ExpertPolicy(), specs, plans, RolloutSettings(), samples=2)
    assert expert == {"burger": (4, 4), "cheese_sandwich": (2, 2)}, "the expert always finishes in the optimum"
    seen = []
    rand = sampled_sr_opt(lambda k: seen.append(k) or RandomPolicy(seed=k), specs, plans, RolloutSettings(), 3)
    assert seen == [0, 1, 2], "one sampler (seed) per round of samples"
    assert rand["burger"][1] == 6 and rand["burger"][0] < 6
