"""Step-by-step conformance with traces recorded from the original Robotouille engine.

The traces (tests/fixtures/robotouille, see its README) hold, per step, the sorted
valid actions before the action, whether it was valid, whether the goal held after
it, and the full observation text after it. They were recorded with the original's
timer behaviour, so we replay with `legacy_skip=True`.
"""

import json
from pathlib import Path

import pytest

from taskplan.kitchen.env import KitchenEnv

FIXTURES = Path(__file__).parents[1] / "fixtures" / "robotouille"
TRACES = sorted((FIXTURES / "traces").glob("*.json"))


def _instance(trace: dict) -> dict:
    if trace.get("instance"):
        return json.loads((FIXTURES / trace["instance"]).read_text())
    return json.loads((FIXTURES / "instances" / f"{trace['task']}__default.json").read_text())


def test_fixtures_present():
    assert len(TRACES) >= 40, "reference traces missing"


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_replay_matches_original(path):
    trace = json.loads(path.read_text())
    env = KitchenEnv(_instance(trace), legacy_skip=True)
    assert env.reset() == trace["initial_observation"], "initial observation differs"
    for n, st in enumerate(trace["steps"]):
        assert sorted(env.action_texts()) == st["valid_actions"], f"step {n}: valid actions differ"
        res = env.step(st["action"])
        assert res.valid == st["valid"], f"step {n}: validity of {st['action']!r} differs"
        assert env.done == st["goal"], f"step {n}: goal flag differs after {st['action']!r}"
        assert env.observation() == st["observation"], f"step {n}: observation differs after {st['action']!r}"
