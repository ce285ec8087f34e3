"""evaluate/single_turn.py: replies judged by kind and outcome, with plain BFS as the independent referee."""

from __future__ import annotations

import pytest

from taskplan.data.dataset import BuildDatasetConfig, build_rows, read_episodes
from taskplan.evaluate.single_turn import OUTCOMES, row_kind, single_turn_outcomes, summarise_counts
from taskplan.expert.bfs import bfs
from taskplan.expert.planner import plan_state
from taskplan.kitchen import KitchenEnv


class ReplyByRow:
    """A stand-in for HFPolicy: the reply to a row's prompt is chosen by a function of the row."""

    def __init__(self, rows, choose):
        self.by_prompt = {self.prompt_text(list(r["prompt"])): choose(r) for r in rows}

    @staticmethod
    def prompt_text(messages):
        return "\n".join(m["content"] for m in messages)

    def generate(self, prompts):
        return [self.by_prompt[p] for p in prompts]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    from tests.data.conftest import generate_into

    trajectories = tmp_path_factory.mktemp("gen") / "trajectories"
    generate_into(trajectories)
    cfg = BuildDatasetConfig(trajectories_dir=trajectories, out_dir=tmp_path_factory.mktemp("st") / "d",
                             stats_path=tmp_path_factory.mktemp("s") / "s.json", validation_report=None,
                             prompt_style="compact")
    return [r for r in build_rows(read_episodes(cfg.trajectories_path), cfg) if r["source"] == "eps0.0"]


def _bfs_outcome(row, action):
    """The referee: true distances by breadth-first search, no planner involved."""
    env = KitchenEnv.from_spec(row["task"], seed=row["seed"])
    env.reset()
    for a in plan_state(env.world, env.state, env.goal).texts[:row["step"]]:
        env.step(a)
    left = bfs(env.world, env.state, env.goal).length
    env.step(action)
    after = 0 if env.done else bfs(env.world, env.state, env.goal).length
    return "other_optimal" if 1 + after == left else "suboptimal"


def test_expert_and_invalid_replies_are_counted_as_such(rows):
    policy = ReplyByRow(rows, lambda r: f"Reasoning: x\nAction: {r['answer']}" if r["step"] % 2 else "Action: fly")
    doc = single_turn_outcomes(policy, rows)
    n = len(rows)
    odd = sum(r["step"] % 2 for r in rows)
    assert doc["all"]["rows"] == n and doc["all"]["expert"] == round(odd / n, 4)
    assert doc["all"]["invalid"] == round((n - odd) / n, 4) and doc["all"]["suboptimal"] == 0
    moves = [r for r in rows if row_kind(r["answer"]) == "move"]
    assert doc["move"]["rows"] == len(moves) and doc["other"]["rows"] == n - len(moves)
    task = rows[0]["task"]
    assert doc[f"task/{task}"]["rows"] == sum(r["task"] == task for r in rows)
    assert doc[f"task/{task}/move"]["rows"] == sum(r["task"] == task and r in moves for r in rows)


def test_another_valid_action_is_optimal_exactly_when_bfs_says_so(rows):
    """Every non-expert valid action of a few states, judged by the planner, agrees with plain BFS."""
    sample = rows[:6]
    checked = set()
    for k in range(max(len(r["valid_actions"]) for r in sample)):
        picks = {id(r): r["valid_actions"][k] for r in sample if k < len(r["valid_actions"])
                 and r["valid_actions"][k] != r["answer"]}
        chosen = [r for r in sample if id(r) in picks]
        if not chosen:
            continue
        policy = ReplyByRow(chosen, lambda r, picks=picks: f"Action: {picks[id(r)]}")
        for r in chosen:
            doc = single_turn_outcomes(policy, [r])
            outcome = next(o for o in OUTCOMES if doc["all"][o] == 1.0)
            assert outcome == _bfs_outcome(r, picks[id(r)]), (r["task"], r["step"], picks[id(r)])
            checked.add(outcome)
    assert checked == {"suboptimal", "other_optimal"} or checked == {"suboptimal"}


def test_shares_add_up():
    s = summarise_counts({"expert": 3, "other_optimal": 1, "suboptimal": 4, "invalid": 2})
    assert s["rows"] == 10 and s["accuracy"] == 0.3 and s["optimal"] == 0.4
    assert sum(s[o] for o in OUTCOMES) == pytest.approx(1.0)
