"""The expert: optimal plans, made unique by a fixed tie-break.

    plan = plan_instance(seeded_instance("cheeseburger", 42))
    plan.texts   # a minimal action sequence, the same on every machine and run

Search: A* over canonical states (hidden process progress included) with the
admissible bound of `heuristic.py` finds the optimal length C*; a depth-first
pass in valid-action order, bounded by C* and pruned by the same bound plus a
table of (state, budget) pairs already proven hopeless, then returns the
*lexicographically first* minimal plan. Its suffix from any state on it is
again the lexicographically first minimal plan from that state, so the expert
action of a state never depends on search order, hash seeds or how the state
was reached.

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
import time
from dataclasses import dataclass

from taskplan.errors import PlanningError
from taskplan.expert.heuristic import INF, Heuristic
from taskplan.kitchen.domain import BOIL, COOK, COOKED, CUT, CUT_ACTION, FRIED, FRY, MOVE, WAIT
from taskplan.kitchen.goals import CompiledGoal, compile_goal
from taskplan.kitchen.state import P_BOIL, P_COOK, P_CUTC, P_CUTG, P_FILL, P_FRY, Action, State, World, step, valid_actions


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
    from taskplan.kitchen.layout import build
    from taskplan.kitchen.tasks import get_task

    world, state = build(instance, legacy_skip=legacy_skip)
    goal = compile_goal(get_task(instance["task"]).goal, world)
    return plan_state(world, state, goal, max_seconds=max_seconds)


def plan_state(world: World, state: State, goal: CompiledGoal, max_seconds: float | None = None) -> Plan:
    """Lexicographically first minimal plan from `state` (see module docstring)."""
    t0 = time.perf_counter()
    search = Search(world, goal, max_seconds)
    cost = search.astar(state)
    actions = search.first_plan(state, cost)
    return Plan(actions, [world.action_text(a) for a in actions], search.expanded, time.perf_counter() - t0)


class Search:
    def __init__(self, world: World, goal: CompiledGoal, max_seconds: float | None = None):
        self.world, self.goal = world, goal
        self.h_fn = Heuristic(world, goal)
        self.h_cache: dict[State, int] = {}
        self.expanded = 0
        self.deadline = None if max_seconds is None else time.perf_counter() + max_seconds
        self.max_seconds = max_seconds
        self.succ_cache: dict[State, list[tuple[Action, State]]] = {}

    def h(self, s: State) -> int:
        v = self.h_cache.get(s)
        if v is None:
            v = self.h_fn(s)   # admissible, so 0 wherever the goal holds; confirm those only
            if v == 0 and not self.goal.satisfied(s):
                v = 1
            self.h_cache[s] = v
        return v

    def successors(self, s: State) -> list[tuple[Action, State]]:
        out = self.succ_cache.get(s)
        if out is None:
            out = [(a, step(self.world, s, a)) for a in useful_actions(self.world, s)]
            self.succ_cache[s] = out
        return out

    def astar(self, start: State) -> int:
        """Optimal plan length (A*, consistent tie-breaking on larger g)."""
        if self.h(start) == 0:
            return 0
        tick = itertools.count()
        g_best = {start: 0}
        heap = [(self.h(start), 0, next(tick), start)]
        while heap:
            f, neg_g, _, s = heapq.heappop(heap)
            g = -neg_g
            if g > g_best.get(s, INF):
                continue
            if self.h(s) == 0:
                return g
            self._check_time()
            self.expanded += 1
            for _, child in self.successors(s):
                ng = g + 1
                if ng < g_best.get(child, INF):
                    hc = self.h(child)
                    if hc >= INF:
                        continue
                    g_best[child] = ng
                    heapq.heappush(heap, (ng + hc, -ng, next(tick), child))
        raise PlanningError(f"{self.world.task}: the goal is unreachable from this state")

    def first_plan(self, start: State, cost: int) -> list[Action]:
        """The lexicographically first plan of length `cost` (depth-first, valid-action order)."""
        hopeless: dict[State, int] = {}   # state -> largest budget proven insufficient

        def dfs(s: State, budget: int) -> list[Action] | None:
            if self.h(s) == 0:
                return []
            if self.h(s) > budget or hopeless.get(s, -1) >= budget:
                return None
            self._check_time()
            self.expanded += 1
            for a, child in self.successors(s):
                rest = dfs(child, budget - 1)
                if rest is not None:
                    return [a] + rest
            hopeless[s] = budget
            return None

        plan = dfs(start, cost)
        if plan is None:  # cannot happen with an admissible bound; keep the failure loud
            raise PlanningError(f"{self.world.task}: no plan of the optimal length {cost} found")
        return plan

    def _check_time(self) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise PlanningError(f"{self.world.task}: no optimal plan within {self.max_seconds:g} s; "
                                "raise --max-seconds")


def useful_actions(world: World, s: State) -> list[Action]:
    """Valid actions minus those a minimal plan never needs, in tie-break order (module docstring)."""
    acts = valid_actions(world, s)
    acts.insert(0, acts.pop())   # `Do nothing` first: while a timer runs, waiting beats wandering
    timers = _timer_running(s)
    out = []
    twins_seen: set[tuple] = set()
    for a in acts:
        sch = a[0]
        if sch == MOVE:
            if not _can_act_at(world, s, a[2]):
                continue
            key = _twin_key(world, s, a[2])
            if key is not None:
                if key in twins_seen:
                    continue
                twins_seen.add(key)
        elif sch == WAIT:
            if not timers:
                continue
        elif sch == COOK and s.flags[a[2]] & COOKED:
            continue
        elif sch == CUT_ACTION and s.flags[a[2]] & CUT:
            continue
        elif sch == FRY and s.flags[a[2]] & FRIED:
            continue
        elif sch == BOIL and s.meals[a[4]][1]:
            continue
        out.append(a)
    return out


def _can_act_at(world: World, s: State, st: int) -> bool:
    """Whether anything but moving on or waiting is possible at station st with what the robot holds."""
    pile = s.piles[st]
    cont = next((c for c, at in enumerate(s.cont_at) if at == st), -1)
    if s.held < 0:
        return bool(pile) or cont >= 0
    if s.held < world.n_items:           # an item: place, stack, or add it to a pot with water
        if cont < 0:
            return True
        return world.container_kinds[cont] == "pot" and any(mc == cont for mc, _ in s.meals)
    if cont >= 0:                        # a container: place it, or pour a pot into an empty bowl
        held = s.held - world.n_items
        return world.container_kinds[cont] == "bowl" and world.container_kinds[held] == "pot" \
            and not any(mc == cont for mc, _ in s.meals) and any(mc == held for mc, _ in s.meals)
    return not pile


def _twin_key(world: World, s: State, st: int) -> tuple | None:
    """Stations with the same kind and the same contents (item kinds and flags, bottom-up), untouched
    by any process, are interchangeable: swapping them and their items maps plans onto plans."""
    if st in s.cont_at:
        return None
    pile = s.piles[st]
    for kind, a, b, c, _, _ in s.pending:
        if (kind in (P_COOK, P_FRY, P_FILL) and b == st) or (kind == P_BOIL and c == st):
            return None
        if kind in (P_COOK, P_FRY, P_CUTC, P_CUTG) and a in pile:
            return None
    return (world.station_kinds[st],) + tuple((world.item_kinds[i], s.flags[i]) for i in pile)


def _timer_running(s: State) -> bool:
    for kind, a, b, c, _, done in s.pending:
        if done:
            continue
        if kind in (P_COOK, P_FRY):
            pile = s.piles[b]
            if pile and pile[0] == a:
                return True
        elif kind == P_FILL and s.cont_at[a] == b:
            return True
        elif kind == P_BOIL and s.cont_at[b] == c:
            return True
    return False
