"""The compact observation: fewer tokens, the same facts (distinct observations never collide)."""

from __future__ import annotations

import json

from taskplan.data.compact import compact_observation
from taskplan.data.prompts import build_messages
from taskplan.kitchen import KitchenEnv

# The actions and the goal, which the compact observation keeps as they are.
SPEC_TAIL = """Valid Actions:
Move robot1 from table1 to stove1
Move robot1 from table1 to board1
Pick up tomato1 from table1 using robot1
Do nothing

Goal: Prepare a tomato patty snack on a table"""

SPEC_EXAMPLE = """Station table1:
table1 is a table
table1 is occupied by robot1
table1 has tomato1
table1 has tomato1 directly on top of it

Station stove1:
stove1 is a stove
stove1 has patty1
stove1 has patty1 directly on top of it
stove1 has no players at it

Station board1:
board1 is a cutting board
board1 has nothing on it
board1 has no players at it

Item tomato1:
tomato1 is a tomato
tomato1 can be cut on a cutting board
tomato1 is at table1
tomato1 is directly on top of table1
tomato1 has nothing above it

Item patty1:
patty1 is a hamburger patty
patty1 can be cooked on a stove
patty1 is cooking
patty1 is at stove1
patty1 is directly on top of stove1
patty1 has nothing above it

Player robot1:
robot1 is a robot
robot1 is at table1
robot1 is holding nothing

""" + SPEC_TAIL


def test_spec_example_is_rewritten_line_per_object():
    assert compact_observation(SPEC_EXAMPLE) == """table1 is a table, on it: tomato1
stove1 is a stove, on it: patty1
board1 is a cutting board, has nothing on it
tomato1 is at table1, is a tomato, can be cut on a cutting board
patty1 is at stove1, is a hamburger patty, can be cooked on a stove, is cooking
robot1 is at table1, is a robot, is holding nothing

""" + SPEC_TAIL


def test_piles_are_bottom_up_and_held_items_keep_their_lines():
    env = KitchenEnv.from_spec("cheese_sandwich", layout="default")
    env.reset()
    plan = json.loads(_plan("cheese_sandwich"))["actions"]
    for action in plan[:-1]:
        env.step(action)
    text = compact_observation(env.observation())
    held = [ln for ln in text.splitlines() if "is held by robot1" in ln]
    assert len(held) == 1, "the item in hand keeps its holding fact"
    for action in plan[-1:]:
        env.step(action)
    piles = [ln for ln in compact_observation(env.observation()).splitlines() if "on it: " in ln]
    assert any(ln.split("on it: ")[1].split()[0].startswith("bread") and
               ln.split("on it: ")[1].split()[-1].startswith("bread") and
               len(ln.split("on it: ")[1].split()) == 3 for ln in piles), piles


def test_distinct_observations_stay_distinct_on_a_random_walk():
    import random

    seen: dict[str, str] = {}
    for task in ("cheeseburger", "onion_soup", "lettuce_tomato_sandwich"):
        env = KitchenEnv.from_spec(task, layout="default")
        env.reset()
        rng = random.Random(7)
        for _ in range(150):
            obs = env.observation()
            short = compact_observation(obs)
            assert seen.setdefault(short, obs) == obs, "two observations share one compact text"
            assert len(short) < len(obs)
            env.step(rng.choice(env.action_texts()))


def test_non_observation_text_is_unchanged_and_prompt_style_applies_it():
    assert compact_observation("hello\n\nworld") == "hello\n\nworld"
    msgs = build_messages(SPEC_EXAMPLE, prev_action="Do nothing", style="compact")
    assert msgs[1]["content"] == "Previous action: Do nothing\n\n" + compact_observation(SPEC_EXAMPLE)
    assert build_messages(SPEC_EXAMPLE, style="short")[1]["content"] == SPEC_EXAMPLE


def _plan(task: str) -> str:
    from typer.testing import CliRunner

    from taskplan.cli import app

    return CliRunner().invoke(app, ["plan", "--task", task, "--layout", "default", "--json"]).stdout
