"""The expert: optimal plans, made unique by a fixed tie-break.

    plan = plan_instance(seeded_instance("cheeseburger", 42))
    plan.texts   # a minimal action sequence, the same on every machine and run

Search: A* with the admissible bound of `heuristic.py` finds the optimal
length C*; a depth-first pass in tie-break order, bounded by C*, then returns
the *lexicographically first* minimal plan. Its suffix from any state on it is
again the lexicographically first minimal plan from that state, so the expert
action of a state never depends on search order, hash seeds or how the state
was reached. Both passes key their tables by symmetry class (`symmetry.py`:
states equal up to renaming same-kind items and stations have the same goal
distance), which merges the interleavings of interchangeable breads, lettuces
and tables; the depth-first pass walks the real states, so names and the
tie-break are untouched. It cuts a branch when the bound exceeds the budget,
when the class was already proven to need more, or when A* reached the class
at a smaller depth g (its goal distance is then >= C* - g). Speed-ups that keep
this definition keep the plans: tests/expert/golden_plans.json holds the plans
from before them.

Measured on one core (benchmarks/bench_planner.py): every catalogue task at
seed 42 and on its default layout, sync <= 0.25 s, async <= ~5 s.

Tie-break, precisely: among the shortest plans that take no useless action (no
move to a station where nothing but moving on is possible, no `Do nothing` while no timer is running, no Cook/Cut/Fry/
Boil of something already cooked/cut/fried/boiling, no move to a station that is
an interchangeable twin of a lower-numbered one: same kind, same
contents, no process attached), the first step by step in the order of the
valid-action list, except that `Do nothing` ranks first (so the expert waits
for a timer rather than walking around while it runs). Each pruned action can be replaced by an
equally long alternative or dropped, so the pruned plans are as short as any.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass

from taskplan.errors import ConfigError, PlanningError, PlanningTimeout
from taskplan.expert.heuristic import INF, Heuristic
from taskplan.expert.pruning import useful_actions
from taskplan.expert.symmetry import Canonicalizer
from taskplan.kitchen.goals import CompiledGoal, compile_goal
from taskplan.kitchen.layout import build
from taskplan.kitchen.state import Action, State, World, step
from taskplan.kitchen.tasks import get_task

__all__ = ["Plan", "Search", "plan_instance", "plan_state", "useful_actions"]


@dataclass
class Plan:
    actions: list[Action]
    texts: list[str]
    expanded: int        # states expanded by A* and the tie-break pass together
    seconds: float

    @property
    def optimal_steps(self) -> int:
        return len(self.actions)


def plan_instance(instance: dict, legacy_skip: bool = False, max_seconds: float | None = None) -> Plan:
    world, state = build(instance, legacy_skip=legacy_skip)
    goal = compile_goal(get_task(instance["task"]).goal, world)
    return plan_state(world, state, goal, max_seconds=max_seconds)


# Small searches (the paper tasks: tens of nodes) run faster on plain states than on symmetry
# keys; past this many expansions the search restarts with keys. Same plan either way.
PLAIN_EXPANSIONS = 150


def plan_state(world: World, state: State, goal: CompiledGoal, max_seconds: float | None = None) -> Plan:
    """Lexicographically first minimal plan from `state` (see module docstring)."""
    if max_seconds is not None and not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ConfigError(f"planner time limit {max_seconds!r}: give a positive number of seconds")
    t0 = time.perf_counter()
    deadline = None if max_seconds is None else t0 + max_seconds
    try:
        search = Search(world, goal, max_seconds, symmetric=False, max_expanded=PLAIN_EXPANSIONS)
        cost = search.astar(state)
        actions = search.first_plan(state, cost)
    except _TooBig:
        left = None if deadline is None else max(0.0, deadline - time.perf_counter())
        search = Search(world, goal, left)
        search.max_seconds = max_seconds   # the caller's budget, for the error message
        cost = search.astar(state)
        actions = search.first_plan(state, cost)
    return Plan(actions, [world.action_text(a) for a in actions], search.expanded, time.perf_counter() - t0)


class _TooBig(Exception):
    """The plain search passed its expansion cap."""


class Search:
    """A* for the optimal length, then the tie-break pass; tables keyed by symmetry class (symmetry.py)."""

    def __init__(self, world: World, goal: CompiledGoal, max_seconds: float | None = None,
                 symmetric: bool = True, max_expanded: int | None = None):
        self.world, self.goal = world, goal
        self.h_fn = Heuristic(world, goal)
        self.canon = Canonicalizer(world) if symmetric else None   # None: the state is its own key
        self.h_cache: dict[bytes | State, int] = {}
        self.g_best: dict[bytes | State, int] = {}   # class -> shortest depth A* reached it at
        self.keys: dict[State, bytes] = {}
        self.max_expanded = max_expanded
        self.expanded = 0
        self.deadline = None if max_seconds is None else time.perf_counter() + max_seconds
        self.max_seconds = max_seconds

    def h(self, s: State, key: bytes | State) -> int:
        v = self.h_cache.get(key)
        if v is None:
            v = self.h_fn(s)   # admissible, so 0 wherever the goal holds; confirm those only
            if v == 0 and not self.goal.satisfied(s):
                v = 1
            self.h_cache[key] = v
        return v

    def key(self, s: State) -> bytes | State:
        """Symmetry class of s, cached: the tie-break pass revisits the states A* generated."""
        if self.canon is None:
            return s
        k = self.keys.get(s)
        if k is None:
            k = self.keys[s] = self.canon.key(s)
        return k

    def successors(self, s: State) -> list[tuple[Action, State]]:
        return [(a, step(self.world, s, a)) for a in useful_actions(self.world, s)]

    def astar(self, start: State) -> int:
        """Optimal plan length: A* over symmetry classes (goal distance is a class property),
        ties broken towards larger g.

        Deferred evaluation: a child is queued under its parent's bound minus one (still a lower
        bound on its distance) and its own bound is computed only when it comes up; on a plateau
        most children never do. A child whose bound then turns out larger goes back in the queue."""
        key0 = self.key(start)
        h0 = self.h(start, key0)
        if h0 == 0:
            return 0
        tick = itertools.count()
        g_best = self.g_best
        g_best[key0] = 0
        heap = [(h0, 0, next(tick), start, key0)]
        h_cache = self.h_cache
        while heap:
            f, neg_g, _, s, key = heapq.heappop(heap)
            g = -neg_g
            if g > g_best[key]:
                continue
            hs = h_cache.get(key)
            if hs is None:
                hs = self.h(s, key)
                if hs >= INF:
                    continue
                if g + hs > f:
                    heapq.heappush(heap, (g + hs, neg_g, next(tick), s, key))
                    continue
            if hs == 0:
                return g
            self._check_time()
            self.expanded += 1
            ng = g + 1
            f_child = max(f, ng + hs - 1)
            for _, child in self.successors(s):
                ck = self.key(child)
                if ng < g_best.get(ck, INF):
                    g_best[ck] = ng
                    hc = h_cache.get(ck)
                    heapq.heappush(heap, (f_child if hc is None else ng + hc, -ng, next(tick), child, ck))
        raise PlanningError(f"{self.world.task}: the goal is unreachable from this state")

    def first_plan(self, start: State, cost: int) -> list[Action]:
        """The lexicographically first plan of length `cost` (depth-first, tie-break order), on real states.

        A branch is cut when the bound, a proven failure, or A*'s table shows it cannot
        finish in time: a class A* reached at depth g has goal distance >= cost - g."""
        hopeless: dict[bytes, int] = {}   # class -> largest budget proven insufficient
        g_best = self.g_best

        def dfs(s: State, depth: int) -> list[Action] | None:
            budget = cost - depth
            key = self.key(s)
            if hopeless.get(key, -1) >= budget or g_best.get(key, INF) < depth:   # cheap tests first
                return None
            hv = self.h(s, key)
            if hv == 0:
                return []
            if hv > budget:
                return None
            self._check_time()
            self.expanded += 1
            for a, child in self.successors(s):
                rest = dfs(child, depth + 1)
                if rest is not None:
                    return [a] + rest
            hopeless[key] = budget
            return None

        plan = dfs(start, 0)
        if plan is None:  # cannot happen with an admissible bound; keep the failure loud
            raise PlanningError(f"{self.world.task}: no plan of the optimal length {cost} found")
        return plan

    def _check_time(self) -> None:
        if self.max_expanded is not None and self.expanded > self.max_expanded:
            raise _TooBig
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise PlanningTimeout(f"{self.world.task}: no optimal plan within {self.max_seconds:g} s; "
                                  "raise the planner's time limit (--max-seconds, generate.max_plan_seconds, "
                                  "evaluate.planner_seconds)")
