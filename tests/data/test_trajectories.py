"""Generation: format, determinism, noisy-expert labels, seed hygiene."""

from __future__ import annotations

import json

import pytest

from taskplan.data.trajectories import GenerateConfig, expert_episode, run_generate, trajectory_file_name
from taskplan.errors import ConfigError, UnknownTaskError


def test_episode_format_and_expert_plan(clean_trajectories):
    episodes = [json.loads(x) for x in (clean_trajectories / "trajectories_eps0.0.jsonl").read_text().splitlines()]
    assert [(e["task"], e["seed"]) for e in episodes] == [
        ("cheese_sandwich", 1000), ("cheese_sandwich", 1001), ("burger", 1000), ("burger", 1001)], "task-major order"
    for ep in episodes:
        assert set(ep) == {"task", "seed", "eps", "optimal_steps", "steps"}
        assert len(ep["steps"]) == ep["optimal_steps"], "eps=0 episodes are the minimal expert plan"
        for n, st in enumerate(ep["steps"]):
            assert set(st) == {"step", "observation", "valid_actions", "goal", "expert_action", "action", "is_noise"}
            assert st["step"] == n and st["action"] == st["expert_action"] and st["is_noise"] is False
            assert st["expert_action"] in st["valid_actions"]
            assert st["observation"].endswith("Goal: " + st["goal"])
    manifest = json.loads((clean_trajectories / "manifest.json").read_text())
    assert manifest["files"]["trajectories_eps0.0.jsonl"]["episodes"] == 4


def test_generation_is_byte_identical_across_runs_and_worker_counts(tmp_path, generate):
    a = generate(tmp_path / "a", noise_levels=(0.0, 0.3), workers=0, tasks=("burger",))
    generate(tmp_path / "b", noise_levels=(0.0, 0.3), workers=2, tasks=("burger",))
    for name in a.files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    generate(tmp_path / "c", noise_levels=(0.3,), workers=0, tasks=("burger",), seed=7)
    name = trajectory_file_name(0.3)
    assert (tmp_path / "c" / name).read_bytes() != (tmp_path / "a" / name).read_bytes(), "common.seed seeds the noise"


def test_noisy_expert_labels_are_optimal_from_the_visited_state():
    from taskplan.expert.planner import plan_state
    from taskplan.kitchen.env import KitchenEnv
    from taskplan.kitchen.layout import seeded_instance

    ep = expert_episode("burger", 1002, eps=0.5, noise_seed=3)
    noise = [s for s in ep["steps"] if s["is_noise"]]
    assert noise, "eps=0.5 should produce noise steps"
    assert all(s["action"] != s["expert_action"] for s in noise)
    env = KitchenEnv(seeded_instance("burger", 1002))
    env.reset()
    for st in ep["steps"]:
        assert plan_state(env.world, env.state, env.goal).texts[0] == st["expert_action"]
        assert env.step(st["action"]).valid
    assert env.done and len(ep["steps"]) >= ep["optimal_steps"]


def test_config_rejects_evaluation_seeds_and_bad_values():
    with pytest.raises(ConfigError, match="evaluation seed"):
        GenerateConfig(train_seeds_start=400, num_train_seeds=30)
    with pytest.raises(ConfigError, match="noise_levels"):
        GenerateConfig(noise_levels=(0.0, 1.0))
    with pytest.raises(ConfigError, match="repeats"):
        GenerateConfig(tasks=("burger", "burger"))
    with pytest.raises(UnknownTaskError, match="burgr"):
        GenerateConfig(tasks=("burgr",))


def test_suite_file_held_out_seeds_are_refused(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"eval_seeds": [1001], "train_seed_range": [1000, 2000]}))
    cfg = GenerateConfig(tasks=("burger",), num_train_seeds=3, suite=suite, out_dir=tmp_path / "t",
                         metrics_path=tmp_path / "m.json", workers=0)
    with pytest.raises(ConfigError, match=r"held-out evaluation seed\(s\) \[1001\]"):
        run_generate(cfg)
    assert not (tmp_path / "t").exists(), "nothing is written when the seeds are refused"


def test_project_suite_matches_the_evaluation_seeds():
    from pathlib import Path

    from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS

    path = Path(__file__).parents[2] / "data" / "suite.json"
    if not path.exists():
        pytest.skip("data/ is not checked out (dvc pull data.dvc)")
    suite = json.loads(path.read_text())
    assert tuple(suite["eval_seeds"]) == EVAL_SEEDS and tuple(suite["eval_tasks"]) == PAPER_TASKS
    assert suite["train_seed_range"][0] > max(EVAL_SEEDS)


def test_pool_workers_end_quietly_on_sigterm_whatever_handler_the_parent_has():
    """Under a Prefect worker the parent's SIGTERM handler raises; forked pool workers must not inherit it
    (the pool ends them with SIGTERM: a traceback per worker otherwise)."""
    import multiprocessing as mp
    import signal

    from taskplan.data.trajectories import _worker_signals

    def raising(signum, frame):
        raise RuntimeError("TerminationSignal")

    old = signal.signal(signal.SIGTERM, raising)
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(1, initializer=_worker_signals) as pool:
            assert pool.apply(signal.getsignal, (signal.SIGTERM,)) == signal.SIG_DFL
            assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, old)


# The parent raises on SIGTERM (as under a Prefect worker), and the second worker is slow to start (an
# at-fork hook that sleeps): the first worker ends both jobs, and the pool terminates the second while it is
# still in that hook, where Python drops what a signal handler raises.
SLOW_SECOND_WORKER = """
import os, signal, time
from taskplan.data.trajectories import _run_jobs

def raising(sig, frame):
    raise RuntimeError("the parent's SIGTERM handler ran in a pool worker")

signal.signal(signal.SIGTERM, raising)
forks = []
os.register_at_fork(before=lambda: forks.append(1),
                    after_in_child=lambda: time.sleep(2) if len(forks) >= 2 else None)
jobs = [("cheese_sandwich", seed, 0.0, seed, 60.0, False) for seed in (1000, 1001)]
print(len(_run_jobs(jobs, 2, None)), signal.pthread_sigmask(signal.SIG_BLOCK, []) == set())
"""


def test_a_pool_worker_terminated_while_it_starts_ends_instead_of_hanging_the_pool():
    """The stack tests once hung here: the worker lived on, and the pool waited for it for ever."""
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", SLOW_SECOND_WORKER], capture_output=True, text=True,
                             timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the pool never ended: a worker outlived its SIGTERM")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2", "True"], "two episodes, and the parent's signal mask put back"
    assert "RuntimeError" not in out.stderr, out.stderr[-2000:]


def test_episodes_whose_planning_runs_out_of_time_fail_or_are_skipped_and_counted(tmp_path):
    from taskplan.errors import PlanningTimeout

    kw = dict(tasks=("burger",), num_train_seeds=2, out_dir=tmp_path / "t", metrics_path=tmp_path / "m.json",
              suite=None, workers=0, max_plan_seconds=1e-9)
    with pytest.raises(PlanningTimeout, match="time limit"):
        run_generate(GenerateConfig(**kw))
    assert not (tmp_path / "t").exists(), "nothing written when a planner call fails"
    result = run_generate(GenerateConfig(**kw, skip_slow=True))
    assert result.skipped == {"burger": 2} and result.episodes == 0
    assert json.loads((tmp_path / "m.json").read_text())["skipped"] == {"burger": 2}
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert manifest["skipped"] == [["burger", 1000, 0.0], ["burger", 1001, 0.0]]
