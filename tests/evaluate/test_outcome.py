"""evaluate/outcome.py: which modes a policy spec is evaluated in (the serial run and the shards ask the same
function), and how finished episodes become a policy's metrics."""

from __future__ import annotations

from taskplan.evaluate.outcome import MODES, play_mode, policy_evaluation, policy_modes
from taskplan.evaluate.rollout import Episode


def test_modes_follow_the_policy_kind_and_the_lists_it_is_named_in():
    every = {"constrained": ["sft", "random"], "holdout_policies": ["sft", "random"]}
    assert policy_modes("sft=models/sft", **every, holdout_seeds=True, single_turn_rows=True) == list(MODES)
    # constrained decoding and single-turn rows need a model's logits: never for a built-in or an endpoint
    assert policy_modes("random", **every, holdout_seeds=True, single_turn_rows=True) == ["plain", "holdout"]
    assert policy_modes("sft=http://127.0.0.1:8000/v1", **every, holdout_seeds=False,
                        single_turn_rows=True) == ["plain"]
    # a model not named in the lists, or lists without their data
    assert policy_modes("grpo=models/grpo", **every, holdout_seeds=True, single_turn_rows=False) == ["plain"]
    assert policy_modes("sft=models/sft", **every, holdout_seeds=False, single_turn_rows=False) == [
        "plain", "constrained"]


def test_policy_evaluation_gives_each_episode_its_instance_optimum():
    episodes = [Episode("cheese_sandwich", 1, cap=9, success=True, steps=3),
                Episode("cheese_sandwich", 2, cap=9, success=True, steps=4)]
    plans = {episodes[0].key: ["a", "b", "c"], episodes[1].key: ["a", "b"]}
    ev = policy_evaluation(episodes, plans)
    assert [ep.optimum for ep in ev.episodes] == [3, 2]
    row = ev.table["cheese_sandwich"]
    assert row["sr"] == 1.0 and row["sr_opt"] == 0.5 and row["opt_mean"] == 2.5 and ev.bounds == []


def test_play_mode_asks_for_the_bound_only_of_a_policy_that_can_score():
    from taskplan.evaluate.policies import RandomPolicy
    from taskplan.evaluate.rollout import EpisodeSpec, RolloutSettings

    specs = [EpisodeSpec("cheese_sandwich", 42)]
    play = play_mode(RandomPolicy(7, name="random"), "plain", specs, {}, RolloutSettings(), bound=True,
                     opt_samples=4, seed=7)
    assert play.name == "random" and [ep.key for ep in play.episodes] == ["cheese_sandwich/42"]
    assert play.bounds == [] and play.sampled is None
