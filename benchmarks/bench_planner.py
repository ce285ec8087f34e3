"""Planner benchmark: optimal plans against plain breadth-first search, measured in the same run.

    python -m benchmarks.bench_planner                 # full run (~5-10 min on one core)
    python -m benchmarks.bench_planner --quick         # paper tasks, 3 seeds, short BFS budget

For every synchronous task (seed 42) and the four paper tasks on all ten
evaluation seeds it prints plan length, nodes expanded, seconds, peak Python
memory (tracemalloc, separate pass) and the speed-up against BFS on the same
instance (BFS capped at --bfs-seconds; "> N x" when it is cut off). The
asynchronous tasks are planned with a 60 s budget and reported as solved or
not. Last, environment steps per second on random rollouts. Each line reads
`name  value unit  ratio x anchor`.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from taskplan.errors import PlanningError
from taskplan.expert.bfs import bfs
from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import default_instance, seeded_instance
from taskplan.kitchen.state import step, valid_actions
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, task_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="paper tasks on 3 seeds, BFS budget 2 s")
    ap.add_argument("--bfs-seconds", type=float, default=10.0)
    ap.add_argument("--async-seconds", type=float, default=60.0)
    args = ap.parse_args()
    bfs_budget = 2.0 if args.quick else args.bfs_seconds
    cases = [(t, s) for t in PAPER_TASKS for s in (EVAL_SEEDS[:3] if args.quick else EVAL_SEEDS)]
    if not args.quick:
        cases += [(t, 42) for t in task_names("sync") if t not in PAPER_TASKS]
    plan_case(*cases[0], bfs_budget=0.1, quiet=True)            # burn-in (imports, caches)
    worst = 0.0
    for task, seed in cases:
        worst = max(worst, plan_case(task, seed, bfs_budget))
    print(f"planner/worst_paper_or_sync  {worst:.3f} s/instance")
    if not args.quick:
        for task in task_names("async"):
            async_case(task, args.async_seconds)
        for task in ("lettuce_tomato_cheeseburger", "two_lettuce_chicken_sandwich", "two_lettuce_tomato_burger"):
            env = KitchenEnv(default_instance(task))
            t0 = time.perf_counter()
            plan = plan_state(env.world, env.initial, env.goal, max_seconds=120)
            print(f"planner/default/{task}  {time.perf_counter() - t0:.3f} s  opt={plan.optimal_steps} "
                  f"listed={env.task.listed_opt}")
    env_steps_per_second()


def plan_case(task: str, seed: int, bfs_budget: float, quiet: bool = False) -> float:
    env = KitchenEnv(seeded_instance(task, seed))
    seconds = float("inf")
    for _ in range(3):   # best of 3: sub-millisecond plans are noisy
        t0 = time.perf_counter()
        plan = plan_state(env.world, env.initial, env.goal)
        seconds = min(seconds, time.perf_counter() - t0)
    tracemalloc.start()
    plan_state(env.world, env.initial, env.goal)
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    ref = bfs(env.world, env.initial, env.goal, max_seconds=bfs_budget)
    if ref.length is not None and ref.length != plan.optimal_steps:
        raise SystemExit(f"planner/{task}/seed{seed}: plan {plan.optimal_steps} != BFS optimum {ref.length}")
    ratio = ref.seconds / max(seconds, 1e-6)
    speed = f"{ratio:.0f}x bfs" if ref.length is not None else f"> {ratio:.0f}x bfs (cut off at {bfs_budget:g} s)"
    if not quiet:
        print(f"planner/{task}/seed{seed}  {seconds * 1000:.1f} ms/instance  {speed}  "
              f"steps={plan.optimal_steps} expanded={plan.expanded} bfs_expanded={ref.expanded} peak={peak:.1f} MiB")
    return seconds


def async_case(task: str, budget: float) -> None:
    env = KitchenEnv(seeded_instance(task, 42))
    t0 = time.perf_counter()
    try:
        plan = plan_state(env.world, env.initial, env.goal, max_seconds=budget)
        print(f"planner/async/{task}/seed42  {time.perf_counter() - t0:.2f} s  solved optimally "
              f"steps={plan.optimal_steps} expanded={plan.expanded} listed_opt={env.task.listed_opt}")
    except PlanningError:
        print(f"planner/async/{task}/seed42  > {budget:g} s  not solved within the budget")


def env_steps_per_second(seconds: float = 3.0) -> None:
    """Random valid actions on the paper tasks: transitions + valid-action lists + goal checks."""
    rng = random.Random(0)
    envs = [KitchenEnv(seeded_instance(t, s)) for t in PAPER_TASKS for s in EVAL_SEEDS]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env = envs[n % len(envs)]
        state, goal, world = env.initial, env.goal, env.world
        for _ in range(50):
            state = step(world, state, rng.choice(valid_actions(world, state)))
            n += 1
            if goal.satisfied(state):
                break
    rate = n / (time.perf_counter() - t0)
    print(f"env/random_rollout  {rate:,.0f} steps/s  {rate / 20000:.2f}x target(20k steps/s/core)")


if __name__ == "__main__":
    main()
