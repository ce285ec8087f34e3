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
    assert len(TRACES) == 66, "reference traces missing (66 recorded, see the fixtures README)"


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


PLANS = json.loads((FIXTURES / "plans.json").read_text())
FOUND = [(task, layout, rec) for task, layouts in PLANS.items() for layout, rec in layouts.items()
         if rec.get("result") == "found"]


@pytest.mark.parametrize("task,layout,rec", FOUND, ids=[f"{t}-{lay}" for t, lay, _ in FOUND])
def test_planner_matches_the_reference_optimum(task, layout, rec):
    """The original engine's shortest plans (recorded by breadth-first search) have our optimal length,
    and replay as valid, goal-reaching plans in our kitchen."""
    from taskplan.expert.planner import plan_state

    env = KitchenEnv(json.loads((FIXTURES / "instances" / f"{task}__{layout}.json").read_text()), legacy_skip=True)
    env.reset()
    ours = plan_state(env.world, env.state, env.goal, max_seconds=60).texts
    assert len(ours) == rec["length"], f"{task}/{layout}: ours {len(ours)} vs the original's {rec['length']}"
    for action in rec["plan"]:
        assert env.step(action).valid, f"{task}/{layout}: reference action {action!r} rejected"
    assert env.done, f"{task}/{layout}: the reference plan does not reach the goal here"
