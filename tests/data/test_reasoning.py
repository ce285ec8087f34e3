"""Expert reasoning: the subgoal of a step is the first non-move, non-wait action of the plan from its state."""

from __future__ import annotations

from taskplan.data.dataset import BuildDatasetConfig, build_rows, read_episodes
from taskplan.data.reasoning import episode_reasonings, plan_stations, reasoning_text, robot_location, subgoal_steps
from taskplan.expert.planner import plan_state
from taskplan.kitchen import KitchenEnv


def test_subgoal_of_each_plan_step():
    plan = ["Move robot1 from a1 to b1", "Do nothing", "Pick up x1 from b1 using robot1",
            "Move robot1 from b1 to c1", "Stack x1 on top of y1 using robot1"]
    assert plan_stations(plan, "z1") == ["z1", "b1", "b1", "b1", "c1"]
    both = [(plan[2], "b1"), (plan[4], "c1")]
    assert subgoal_steps(plan, "z1") == [both, both, both, both[1:], both[1:]]
    assert subgoal_steps(["Move robot1 from a1 to b1"], "a1") == [[]]
    assert reasoning_text(both, 1) == "next: Pick up x1 from b1 using robot1; at: b1"
    assert reasoning_text(both, 3) == f"next: {plan[2]}; at: b1; then: {plan[4]}"
    assert reasoning_text([], 1) is None and reasoning_text(both, 0) is None


def test_the_station_of_a_subgoal_is_where_the_robot_acts(clean_trajectories):
    """The `at:` station is robot1's location when the subgoal is executed, and the move before it goes there."""
    for ep in read_episodes(clean_trajectories / "trajectories_eps0.0.jsonl"):
        plan = [st["action"] for st in ep["steps"]]
        where = [robot_location(st["observation"]) for st in ep["steps"]]
        assert plan_stations(plan, where[0]) == where
        for st, reason in zip(ep["steps"], episode_reasonings(ep, 1)):
            if st["action"].startswith("Move ") and reason:
                assert st["action"].endswith(" to " + reason.split("; at: ")[1])


def test_noisy_episode_reasoning_matches_a_fresh_plan_at_every_state(generate, tmp_path):
    traj = tmp_path / "trajectories"
    generate(traj, noise_levels=(0.3,), seeds=2)
    episodes = read_episodes(traj / "trajectories_eps0.3.jsonl")
    assert any(st["action"] != st["expert_action"] for ep in episodes for st in ep["steps"]), "noise happened"
    for ep in episodes:
        env = KitchenEnv.from_spec(ep["task"], seed=ep["seed"])
        env.reset()
        for st, reason, deep in zip(ep["steps"], episode_reasonings(ep, 1), episode_reasonings(ep, 3)):
            plan = subgoal_steps(plan_state(env.world, env.state, env.goal).texts, robot_location(env.observation()))
            assert reason == reasoning_text(plan[0], 1), (ep["task"], ep["seed"], st["step"])
            assert deep == reasoning_text(plan[0], 3), (ep["task"], ep["seed"], st["step"])
            env.step(st["action"])


def test_rows_with_reasoning_carry_it_in_the_reply_and_the_next_prompt(clean_trajectories, tmp_path):
    cfg = BuildDatasetConfig(trajectories_dir=clean_trajectories, out_dir=tmp_path / "st", stats_path=tmp_path / "s",
                             validation_report=None, reasoning=1, prompt_style="compact")
    rows = build_rows(read_episodes(cfg.trajectories_path), cfg)
    first, second = rows[0], rows[1]
    reply = first["completion"][0]["content"]
    assert reply.startswith("Reasoning: next: ") and reply.endswith("\nAction: " + first["answer"])
    reasoning = reply.split("\n")[0][len("Reasoning: "):]
    assert second["prompt"][1]["content"].startswith(f"Previous reasoning: {reasoning}\n\nPrevious action: ")
