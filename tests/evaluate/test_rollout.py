"""Batched rollouts under the original episode protocol (docs/kitchen.md 9)."""

from __future__ import annotations

import pytest

from taskplan.data.prompts import answer_text
from taskplan.errors import ConfigError
from taskplan.evaluate.policies import RandomPolicy
from taskplan.evaluate.rollout import (
    EpisodeSpec,
    RolloutSettings,
    extract_reasoning,
    read_transcripts,
    run_episodes,
    write_transcripts,
)

GARBAGE = "I am not sure what to do."


def first_valid(turn, n):
    return answer_text(turn.valid_actions[0])


def test_garbage_five_times_exhausts_one_turn_without_a_step(scripted):
    # given a policy that answers garbage 5 times, then valid actions
    policy = scripted(lambda turn, n: GARBAGE if n < 5 else first_valid(turn, n))
    # when one episode runs
    [ep] = run_episodes(policy, [EpisodeSpec("burger", 42)])
    # then the 5 invalid replies cost no step and count as one exhausted turn
    assert ep.invalid == 5, "each unparseable reply is an invalid action"
    assert ep.exhausted == 1, "5 invalid replies in a row exhaust one turn"
    assert ep.turns[4]["step"] == 0 and ep.turns[5]["step"] == 0, "no step was spent on invalid replies"
    assert ep.end == "cap" and ep.steps == ep.cap == 15, "the episode then runs to the step cap"
    assert ep.replies == 5 + ep.cap


def test_three_exhausted_turns_fail_the_episode(scripted):
    policy = scripted(lambda turn, n: GARBAGE)
    [ep] = run_episodes(policy, [EpisodeSpec("cheese_sandwich", 42)])
    assert (ep.success, ep.end, ep.steps) == (False, "invalid", 0)
    assert ep.exhausted == 3 and ep.invalid == 15 and ep.replies == 15, "3 rounds of 5 retries, then failure"


def test_invalid_replies_cost_no_step_and_reset_the_retry_count(scripted):
    # 4 garbage replies before every valid one never exhausts a turn
    policy = scripted(lambda turn, n: GARBAGE if n % 5 < 4 else first_valid(turn, n))
    [ep] = run_episodes(policy, [EpisodeSpec("burger", 84)])
    assert ep.exhausted == 0, "a valid action resets the consecutive-failure count"
    assert ep.steps == ep.cap and ep.invalid == 4 * ep.cap


def test_error_feedback_names_the_problem_then_clears(scripted):
    bad = "Action: Fly to the moon"
    policy = scripted(lambda turn, n: bad if n in (0, 5, 6, 7, 8, 9) else first_valid(turn, n))
    run_episodes(policy, [EpisodeSpec("burger", 42)])
    turns = policy.seen["burger/42"]
    user = [t.messages[-1]["content"] for t in turns]
    assert "Error Feedback:" not in user[0]
    assert "Error Feedback: action 'Fly to the moon' is not valid" in user[1], "rejected reply is named"
    assert "Error Feedback:" not in user[2], "feedback disappears after a valid action"
    assert "Error Feedback:" not in user[10], "an exhausted turn is asked afresh"


def test_prompt_carries_previous_action_and_reasoning_when_history_is_on(scripted):
    def script(turn, n):
        return f"Reasoning: step {n} looks good.\nAction: {turn.valid_actions[0]}"

    policy = scripted(script)
    run_episodes(policy, [EpisodeSpec("burger", 42)])
    second = policy.seen["burger/42"][1].messages[-1]["content"]
    first_action = policy.seen["burger/42"][0].valid_actions[0]
    assert f"Previous action: {first_action}" in second
    assert "Previous reasoning: step 0 looks good." in second

    policy = scripted(script)
    run_episodes(policy, [EpisodeSpec("burger", 42)], RolloutSettings(history=False))
    assert "Previous" not in policy.seen["burger/42"][1].messages[-1]["content"]


def test_finish_ends_the_episode_as_a_failure(scripted):
    [ep] = run_episodes(scripted(lambda turn, n: "Action: Finish"), [EpisodeSpec("burger", 42)])
    assert (ep.success, ep.end, ep.steps, ep.invalid) == (False, "finish", 0, 0)


def test_success_stops_the_episode_at_the_goal(scripted):
    plan = iter([])

    def expert_like(turn, n):   # replay a known minimal plan
        nonlocal plan
        if n == 0:
            from taskplan.evaluate.bound import optimal_plans
            plan = iter(optimal_plans([EpisodeSpec("cheese_sandwich", 42)])["cheese_sandwich/42"])
        return answer_text(next(plan))

    [ep] = run_episodes(scripted(expert_like), [EpisodeSpec("cheese_sandwich", 42)])
    assert ep.success and ep.end == "goal" and ep.steps == len(ep.actions) == ep.replies


def test_all_active_episodes_share_one_call_per_step(scripted):
    policy = scripted(lambda turn, n: GARBAGE)
    specs = [EpisodeSpec(t, s) for t in ("burger", "cheeseburger") for s in (42, 84, 126)]
    episodes = run_episodes(policy, specs)
    assert policy.batches == [6] * 15, "one batched call per step over all 6 active episodes"
    assert [e.key for e in episodes] == [s.key for s in specs], "results keep the order of the specs"


def test_max_batch_bounds_active_episodes_and_refills(scripted):
    policy = scripted(lambda turn, n: GARBAGE)
    specs = [EpisodeSpec("burger", s) for s in (42, 84, 126)]
    run_episodes(policy, specs, RolloutSettings(max_batch=2))
    assert max(policy.batches) == 2 and sum(policy.batches) == 45


def test_batched_and_sequential_rollouts_agree_for_random_policy():
    specs = [EpisodeSpec(t, s) for t in ("cheese_sandwich", "burger") for s in (42, 84)]
    batched = run_episodes(RandomPolicy(7), specs)
    sequential = run_episodes(RandomPolicy(7), specs, RolloutSettings(max_batch=1))
    assert [e.actions for e in batched] == [e.actions for e in sequential], "per-episode seeded streams"


def test_progress_reports_finished_episodes(scripted):
    calls = []
    specs = [EpisodeSpec("burger", s) for s in (42, 84)]
    run_episodes(scripted(lambda turn, n: GARBAGE), specs, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (2, 2)


def test_transcripts_round_trip(tmp_path):
    episodes = run_episodes(RandomPolicy(1), [EpisodeSpec("burger", 42), EpisodeSpec("burger", 84)],
                            RolloutSettings(keep_prompts=True))
    path = tmp_path / "t" / "random.jsonl"
    assert write_transcripts(path, episodes) == 2
    assert len(path.read_text().splitlines()) == 2, "one episode a line"
    back = read_transcripts(path)
    assert [e.actions for e in back] == [e.actions for e in episodes]
    assert "Valid Actions:" in back[0].turns[0]["prompt"]


def test_settings_and_specs_reject_bad_values():
    with pytest.raises(ConfigError, match="prompt_style"):
        RolloutSettings(prompt_style="fancy")
    with pytest.raises(ConfigError, match=">= 1"):
        RolloutSettings(max_batch=0)
    with pytest.raises(ConfigError, match="duplicate"):
        run_episodes(RandomPolicy(), [EpisodeSpec("burger", 42), EpisodeSpec("burger", 42)])


def test_extract_reasoning():
    assert extract_reasoning("Reasoning: pick the bun\nfirst.\nAction: Do nothing") == "pick the bun first."
    assert extract_reasoning("Action: Do nothing") is None
