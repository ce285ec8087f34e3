"""Rewards: 1 exactly on the expert action, parsed like the environment parses replies."""

import pytest

from taskplan.data.prompts import answer_text
from taskplan.train.rewards import completion_text, exact_match_reward, format_reward, is_expert_action

VALID = ["Move robot1 from table1 to table2", "Pick up patty1 from table1 using robot1", "Do nothing"]
EXPERT = "Pick up patty1 from table1 using robot1"


def _conv(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_reward_is_one_exactly_on_the_expert_action():
    # given every valid action as a conversational completion (as TRL passes them)
    completions = [_conv(answer_text(a)) for a in VALID]
    # when scored against the expert action
    rewards = exact_match_reward(completions, answer=[EXPERT] * 3, valid_actions=[VALID] * 3)
    # then only the expert action earns 1
    assert rewards == [1.0 if a == EXPERT else 0.0 for a in VALID], "reward must be 1 iff the action matches"


@pytest.mark.parametrize("reply, expected", [
    ("Action: Pick up patty1 from table1 using robot1", 1.0),
    ("Reasoning: the patty is here.\nAction: pick up patty1 from table1 using robot1.", 1.0),  # parser tolerance
    ("Action: Move robot1 from table1 to table2", 0.0),        # valid, but not the expert's
    ("Action: Pick up patty2 from table1 using robot1", 0.0),  # not a valid action
    ("I would pick up the patty", 0.0),                        # no action line
    ("", 0.0),
])
def test_exact_match_uses_the_environment_parser(reply, expected):
    assert exact_match_reward([reply], answer=[EXPERT], valid_actions=[VALID]) == [expected]


def test_format_reward_is_one_for_any_valid_action():
    replies = ["Action: Do nothing", "Action: Move robot1 from table1 to table2", "Action: Fly away", "hello"]
    assert format_reward([_conv(r) for r in replies], valid_actions=[VALID] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_rewards_ignore_extra_dataset_columns():
    # TRL passes every dataset column plus trainer_state etc. as keyword arguments
    out = exact_match_reward([_conv("Action: Do nothing")], answer=["Do nothing"], valid_actions=[VALID],
                             prompts=[[]], task=["burger"], seed=[1], step=[0], trainer_state=None)
    assert out == [1.0]


def test_reward_rejects_misaligned_columns():
    with pytest.raises(ValueError, match="answer"):
        exact_match_reward(["Action: Do nothing"] * 2, answer=["Do nothing"], valid_actions=[VALID] * 2)


def test_completion_text_accepts_strings_and_messages():
    assert completion_text("Action: Do nothing") == "Action: Do nothing"
    assert completion_text(_conv("Action: Do nothing")) == "Action: Do nothing"
    assert completion_text(None) == ""


def test_is_expert_action_on_real_rows(tiny_rows):
    # given rows built from real observations, the stored completion is the expert action
    for row in tiny_rows["train"]:
        assert is_expert_action(row["completion"], row["answer"], row["valid_actions"])
