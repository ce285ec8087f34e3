"""Planner benchmark: optimal plans for every task, against plain breadth-first search in the same run.

    python -m benchmarks.bench_planner                 # every task, seed 42 + default layout (~5 min, one core)
    python -m benchmarks.bench_planner --quick         # paper tasks only, 3 seeds, short BFS budget
    python -m benchmarks.bench_planner --paper-seeds   # also the paper tasks on all ten evaluation seeds

For every task of the catalogue, at seed 42 and on its default layout, it
prints plan length, listed optimum, nodes expanded, seconds (best of 3 below
0.2 s) and the speed-up against BFS on the same instance (BFS capped at
--bfs-seconds; "> N x" when it is cut off, and then the ratio is only a lower
bound). A plan longer than a finished BFS, or longer than the listed optimum on
a default layout, stops the run. Then one summary line (worst sync and async
case against the issue-16 targets, instances solved), and environment steps per
second on random rollouts. Each line reads `name  value unit  ratio x anchor`.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from dataclasses import dataclass

from taskplan.errors import PlanningError
from taskplan.expert.bfs import bfs
from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import default_instance, seeded_instance
from taskplan.kitchen.state import step, valid_actions
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, get_task, task_names

TARGET_SECONDS = {"sync": 1.0, "async": 10.0}   # issue 16: per instance, one core


@dataclass
class Case:
    task: str
    where: str                 # "seed42" or "default"
    kind: str
    seconds: float | None      # None: not solved within the budget
    steps: int | None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="paper tasks on 3 seeds, BFS budget 2 s")
    ap.add_argument("--paper-seeds", action="store_true", help="also the paper tasks on all evaluation seeds")
    ap.add_argument("--bfs-seconds", type=float, default=10.0)
    ap.add_argument("--plan-seconds", type=float, default=60.0, help="planner budget per instance")
    ap.add_argument("--memory", action="store_true", help="peak Python memory per plan (tracemalloc, extra pass)")
    args = ap.parse_args()
    bfs_budget = 2.0 if args.quick else args.bfs_seconds
    plan_case("cheese_sandwich", 42, bfs_budget=0.1, plan_budget=10, memory=False, quiet=True)   # burn-in
    cases: list[Case] = []
    if args.quick:
        specs = [(t, s) for t in PAPER_TASKS for s in EVAL_SEEDS[:3]]
    else:
        specs = [(t, w) for t in task_names() for w in (42, None)]
        if args.paper_seeds:
            specs += [(t, s) for t in PAPER_TASKS for s in EVAL_SEEDS if s != 42]
    for task, seed in specs:
        cases.append(plan_case(task, seed, bfs_budget, args.plan_seconds, args.memory))
    summary(cases)
    env_steps_per_second()


def plan_case(task: str, seed: int | None, bfs_budget: float, plan_budget: float, memory: bool,
              quiet: bool = False) -> Case:
    env = KitchenEnv(default_instance(task) if seed is None else seeded_instance(task, seed))
    where = "default" if seed is None else f"seed{seed}"
    kind = get_task(task).kind
    seconds = float("inf")
    try:
        for _ in range(3):   # best of 3 for short plans: sub-millisecond timings are noisy
            t0 = time.perf_counter()
            plan = plan_state(env.world, env.initial, env.goal, max_seconds=plan_budget)
            seconds = min(seconds, time.perf_counter() - t0)
            if seconds > 0.2:
                break
    except PlanningError:
        print(f"planner/{task}/{where}  > {plan_budget:g} s  not solved within the budget")
        return Case(task, where, kind, None, None)
    peak = ""
    if memory:
        tracemalloc.start()
        plan_state(env.world, env.initial, env.goal)
        peak = f" peak={tracemalloc.get_traced_memory()[1] / 2 ** 20:.1f} MiB"
        tracemalloc.stop()
    ref = bfs(env.world, env.initial, env.goal, max_seconds=bfs_budget)
    if ref.length is not None and ref.length != plan.optimal_steps:
        raise SystemExit(f"planner/{task}/{where}: plan {plan.optimal_steps} != BFS optimum {ref.length}")
    listed = env.task.listed_opt
    if seed is None and listed is not None and plan.optimal_steps > listed:
        raise SystemExit(f"planner/{task}/{where}: plan {plan.optimal_steps} > listed optimum {listed}")
    ratio = ref.seconds / max(seconds, 1e-6)
    shown = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2g}"   # tiny kitchens: BFS can win
    speed = f"{shown}x bfs" if ref.length is not None else f"> {shown}x bfs (cut off at {bfs_budget:g} s)"
    if not quiet:
        print(f"planner/{task}/{where}  {seconds * 1000:,.1f} ms/instance  {speed}  steps={plan.optimal_steps} "
              f"listed={listed} expanded={plan.expanded} bfs_expanded={ref.expanded}{peak}", flush=True)
    return Case(task, where, kind, seconds, plan.optimal_steps)


def summary(cases: list[Case]) -> None:
    solved = [c for c in cases if c.seconds is not None]
    parts = []
    for kind in ("sync", "async"):
        mine = [c for c in cases if c.kind == kind]
        if not mine:
            continue
        done = [c for c in mine if c.seconds is not None]
        worst = max(done, key=lambda c: c.seconds) if done else None
        target = TARGET_SECONDS[kind]
        if len(done) < len(mine):
            parts.append(f"{kind}: {len(mine) - len(done)} unsolved")
        elif worst is not None:
            parts.append(f"{kind} worst {worst.seconds:.2f} s ({worst.task}/{worst.where}) "
                         f"{worst.seconds / target:.2f}x target({target:g} s)")
    print(f"planner/summary  {len(solved)}/{len(cases)} instances solved optimally  " + "  ".join(parts))


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
