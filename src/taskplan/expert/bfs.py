"""Plain breadth-first search: the reference the planner is tested and benchmarked against.

No heuristic and no pruning, only a visited set over the same canonical states;
it returns the optimal length (not the tie-broken plan) and gives up after
`max_seconds` (returns None), so benchmarks can report "> N x" when it is cut off.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from taskplan.kitchen.goals import CompiledGoal
from taskplan.kitchen.state import State, World, step, valid_actions


@dataclass
class BfsResult:
    length: int | None     # None when cut off
    expanded: int
    seconds: float


def bfs(world: World, start: State, goal: CompiledGoal, max_seconds: float | None = None) -> BfsResult:
    t0 = time.perf_counter()
    if goal.satisfied(start):
        return BfsResult(0, 0, 0.0)
    depth = {start: 0}
    queue = deque([start])
    expanded = 0
    while queue:
        s = queue.popleft()
        expanded += 1
        if max_seconds is not None and expanded % 512 == 0 and time.perf_counter() - t0 > max_seconds:
            return BfsResult(None, expanded, time.perf_counter() - t0)
        d = depth[s] + 1
        for a in valid_actions(world, s):
            child = step(world, s, a)
            if child in depth:
                continue
            if goal.satisfied(child):
                return BfsResult(d, expanded, time.perf_counter() - t0)
            depth[child] = d
            queue.append(child)
    return BfsResult(None, expanded, time.perf_counter() - t0)
