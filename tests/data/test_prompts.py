"""Golden prompts: the exact text the agent sees, written out here (not rebuilt by the code under test),
around an observation recorded from the original engine."""

from __future__ import annotations

import json
from pathlib import Path

from taskplan.data.prompts import answer_text, build_messages

TRACE = Path(__file__).parents[1] / "fixtures" / "robotouille" / "traces" / "burger__default__plan.json"

FULL_SYSTEM = (
    "You control robot1 in a kitchen. Each turn you see the kitchen state, the valid actions and the goal. "
    "Rules: the robot holds one item or container at a time; cook, cut and fry need the item alone on a "
    "stove, cutting board or fryer and empty hands; cutting takes 3 cuts; cooking, frying, filling and "
    "boiling finish 3 steps after they start (wait with 'Do nothing' or do other work); items stack only "
    "on items; a pot must contain water before ingredients are added; meals can be poured from a pot "
    "into a bowl. Recipes: sandwich = bread, fillings, bread; hamburger = bottom bun, fillings, top bun; "
    "soup = fill a pot with water at a sink, boil it on a stove, add the ingredients, pour it into a bowl "
    "on a table. Reply with one line 'Action: <one of the valid actions, copied exactly>'.")


def test_full_prompt_is_the_system_text_then_history_feedback_and_the_observation():
    obs = json.loads(TRACE.read_text())["initial_observation"]
    msgs = build_messages(obs, prev_action="Do nothing", prev_reasoning="next: Stack x", error="missing action",
                          style="full")
    assert msgs == [
        {"role": "system", "content": FULL_SYSTEM},
        {"role": "user", "content": "Previous reasoning: next: Stack x\n\nPrevious action: Do nothing\n\n"
                                    "Error Feedback: missing action\n\n" + obs},
    ]
    assert build_messages(obs)[1]["content"] == obs, "the first turn is the observation alone"


def test_short_and_compact_prompts_share_the_one_line_system_text():
    obs = json.loads(TRACE.read_text())["initial_observation"]
    short = "You control robot1 in a kitchen. Reply with 'Action: <one valid action>'."
    for style in ("short", "compact"):
        assert build_messages(obs, style=style)[0] == {"role": "system", "content": short}
    compact = build_messages(obs, style="compact")[1]["content"]
    assert compact.endswith(obs[obs.index("\n\nValid Actions:"):]), "valid actions and goal are copied verbatim"


def test_expert_replies():
    assert answer_text("Do nothing") == "Action: Do nothing"
    assert answer_text("Do nothing", "next: Cook patty1 on stove1 using robot1") == \
        "Reasoning: next: Cook patty1 on stove1 using robot1\nAction: Do nothing"
