"""Admissible lower bound on the steps left to reach a task goal.

The bound counts actions that no plan can avoid, per goal role, relaxing which
object fills a role and which table holds a dish (a relaxation can only lower
the bound, so it stays admissible):

- a role already *settled* on some table costs 0 (the table's pile already holds a
  correct prefix of the dish: chain in exact order, or bottom + fillings in any
  order with harmless extras in between, top last);
- any other role needs some object moved there: an empty-handed arrival and a pick
  (unless held), a put, and one move while carrying it (unless held at the table);
  plus the cuts still missing, a place + pick + carried move for a trip to a board,
  stove or fryer, and the Cook/Fry action when the item must be processed there;
  a Cook/Fry trip also pays one step between the Cook and the pick (wait there, or
  leave and come back empty-handed);
- roles of one kind are filled by *distinct* objects: a min-cost assignment per
  kind (assignment.py), where a settled role may keep its object for free;
- soups: fill, boil and pour actions and the pot's trips between sink, stove and
  bowl (soup.py);
- obstacles: blockers on a dish's table, items occupying the only boards, stoves
  or fryers (obstacles.py).

Moves are counted as "carried moves" (one item in hand) and "empty arrivals" (one
per first pick), which no two roles can share. Timers give a second bound, the
critical path (remaining ticks + pick, move, put), and the heuristic is the max.
Checked against breadth-first distances on sampled states
(tests/expert/test_search_parts.py) and, through the plans, against the recorded
plans of the previous bound (tests/expert/test_golden_plans.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from taskplan.expert.assignment import min_assignment
from taskplan.expert.obstacles import blocker_cost, occupant_cost
from taskplan.expert.soup import soup_cost
from taskplan.kitchen.domain import (
    COOKABLE,
    COOKED,
    CUT,
    CUTS_NEEDED,
    CUTTABLE,
    FRIED,
    FRYABLE,
    FRYABLEIFCUT,
    TIMER_TICKS,
)
from taskplan.kitchen.goals import CompiledGoal
from taskplan.kitchen.state import P_BOIL, P_COOK, P_CUTC, P_FILL, P_FRY, State, World

INF = 10 ** 6
_NEED_FLAGS = {"iscut": CUT, "iscooked": COOKED, "isfried": FRIED}


@dataclass
class Dish:
    """Item roles assembled on one table placeholder."""

    chain: list[int] = field(default_factory=list)    # roles bottom->top when order is exact
    bottom: int | None = None
    members: list[int] = field(default_factory=list)  # order-free fillings
    top: int | None = None
    table: int = -1                                   # placeholder index of the table

    @property
    def roles(self) -> list[int]:
        return self.chain or [r for r in (self.bottom, *self.members, self.top) if r is not None]


@dataclass
class GoalModel:
    role_kind: dict[int, str]        # item placeholder -> item kind
    role_flags: dict[int, int]       # item placeholder -> required flag bits
    dishes: list[Dish]
    soup_items: list[int]            # placeholders added to the water
    has_soup: bool
    bowl_on_table: bool


def goal_model(world: World, goal: CompiledGoal) -> GoalModel:
    kinds = goal.kinds
    # recover the placeholders' object kinds from their candidates
    role_kind: dict[int, str] = {}
    role_flags: dict[int, int] = {}
    for p, k in enumerate(kinds):
        if k == "item":
            cands = goal.candidates[p]
            role_kind[p] = world.item_kinds[cands[0]] if cands else "?"
            role_flags[p] = 0
    atop: dict[int, int] = {}
    dishes: dict[int, Dish] = {}
    soup_items, has_soup, bowl_on_table = [], False, False
    clear: set[int] = set()
    for pred, args in goal.literals:
        if pred in _NEED_FLAGS:
            role_flags[args[0]] |= _NEED_FLAGS[pred]
        elif pred == "item_on":
            dishes.setdefault(args[1], Dish(table=args[1])).bottom = args[0]
        elif pred == "item_at":
            dishes.setdefault(args[1], Dish(table=args[1])).members.append(args[0])
        elif pred == "atop":
            atop[args[1]] = args[0]
        elif pred == "clear":
            clear.add(args[0])
        elif pred == "addedto":
            soup_items.append(args[0])
        elif pred in ("in", "isboiling"):
            has_soup = True
        elif pred == "container_at":
            bowl_on_table = True
    for d in dishes.values():
        if d.bottom is not None and d.bottom in atop:   # exact chain
            d.chain = [d.bottom]
            while d.chain[-1] in atop:
                d.chain.append(atop[d.chain[-1]])
        tops = [m for m in d.members if m in clear]
        if tops:
            d.top = tops[0]
            d.members = [m for m in d.members if m != d.top]
    return GoalModel(role_kind, role_flags, list(dishes.values()), soup_items, has_soup, bowl_on_table)


class Heuristic:
    """h(state): admissible bound on remaining steps (see module docstring)."""

    def __init__(self, world: World, goal: CompiledGoal):
        self.world, self.goal = world, goal
        self.model = goal_model(world, goal)
        self.kind_objects: dict[str, tuple[int, ...]] = {}
        for i, k in enumerate(world.item_kinds):
            self.kind_objects[k] = self.kind_objects.get(k, ()) + (i,)
        sk = world.station_kinds
        self.tables = tuple(s for s, k in enumerate(sk) if k == "table")
        self.is_kind = {k: tuple(x == k for x in sk) for k in ("board", "stove", "fryer", "sink", "table")}
        self.pots = tuple(c for c, k in enumerate(world.container_kinds) if k == "pot")
        self.role_key = {p: (self.model.role_kind[p], self.model.role_flags[p]) for p in self.model.role_kind}
        self.role_keys = sorted(set(self.role_key.values()))
        self.bowls = tuple(c for c, k in enumerate(world.container_kinds) if k == "bowl")

    def __call__(self, state: State) -> int:
        m = self.model
        ctx = _Ctx(self, state)
        by_need: dict[tuple[str, int], tuple[int, int, int]] = {}
        for key in self.role_keys:
            by_need[key] = ctx.role_cost(*key)
        role_cost = {p: by_need[key] for p, key in self.role_key.items()}
        # Each dish goes on its own table: one already holding a correct prefix, or any other table.
        raw = [ctx.dish_options(d) for d in m.dishes]
        path = 0
        for d, opts in zip(m.dishes, raw):   # critical path of roles open whatever the table
            for r in d.roles:
                if not any(r in settled for _, settled, _ in opts):
                    path = max(path, role_cost[r][1])
        soup_fixed, soup_todo = 0, []
        if m.has_soup:
            soup_fixed, p, soup_todo = soup_cost(ctx, role_cost)
            path = max(path, p)
        best = INF
        for combo in itertools.product(*raw):
            used = [o[0] for o in combo if o[0] >= 0]
            if len(used) != len(set(used)):
                continue
            best = min(best, ctx.combo_cost(combo, soup_todo))
        if best >= INF:
            return INF
        total = best + soup_fixed
        if total and state.held < 0:
            total -= 1   # the first pick may happen where the robot already stands
        return max(total, path)


class _Ctx:
    """Per-state helpers for Heuristic."""

    def __init__(self, h: Heuristic, state: State):
        self.h, self.s = h, state
        self.icost: dict[tuple[int, int], tuple[int, int, int]] = {}
        self.assign_memo: dict[tuple, int] = {}
        self.rows: dict[tuple[str, int, int], tuple[int, ...]] = {}
        self.where: dict[int, tuple[int, int]] = {}
        for st, pile in enumerate(state.piles):
            for k, i in enumerate(pile):
                self.where[i] = (st, k)
        self.cut_prog: dict[int, int] = {}
        self.timer: dict[tuple[int, int], int] = {}
        for kind, a, b, c, prog, done in state.pending:
            if done:
                continue
            if kind == P_CUTC:
                self.cut_prog[a] = prog
            elif kind in (P_COOK, P_FRY):
                self.timer[(kind, a)] = max(self.timer.get((kind, a), 0), prog if self._item_on(a, b) else -1)
            elif kind == P_FILL and state.cont_at[a] == b:
                self.timer[(P_FILL, a)] = prog
            elif kind == P_BOIL and state.cont_at[b] == c:
                self.timer[(P_BOIL, a)] = prog

    def _item_on(self, i: int, s: int) -> bool:
        pile = self.s.piles[s]
        return bool(pile) and pile[0] == i

    def matches(self, i: int, kind: str, flags: int) -> bool:
        return self.h.world.item_kinds[i] == kind and self.s.flags[i] & flags == flags

    def dish_options(self, d: Dish) -> list[tuple[int, dict[int, int], list[int]]]:
        """(table, settled roles -> objects, blocking items) per table whose pile starts the dish,
        plus a bare table."""
        m = self.h.model
        bottom = d.chain[0] if d.chain else d.bottom
        out: list[tuple[int, dict[int, int], list[int]]] = [(-1, {}, [])]
        if bottom is None:
            return out
        for t in self.h.tables:
            pile = self.s.piles[t]
            if pile and self.matches(pile[0], m.role_kind[bottom], m.role_flags[bottom]):
                settled, n = self.settled(d, pile)
                out.append((t, settled, list(pile[n:])))
        return out

    def settled(self, d: Dish, pile: tuple[int, ...]) -> tuple[dict[int, int], int]:
        """Roles the pile already fills correctly (role -> the object filling it), and how many
        pile items may stay."""
        m = self.h.model
        if d.chain:
            out = {}
            for k, r in enumerate(d.chain):
                if k >= len(pile) or not self.matches(pile[k], m.role_kind[r], m.role_flags[r]):
                    break
                out[r] = pile[k]
            return out, len(out)
        out = {d.bottom: pile[0]}
        todo = list(d.members)
        kinds = {m.role_kind[r] for r in d.members} | ({m.role_kind[d.top]} if d.top is not None else set())
        for k in range(1, len(pile)):
            i = pile[k]
            hit = next((r for r in todo if self.matches(i, m.role_kind[r], m.role_flags[r])), None)
            if hit is not None:
                todo.remove(hit)
                out[hit] = i
            elif d.top is not None and not todo and k == len(pile) - 1 \
                    and self.matches(i, m.role_kind[d.top], m.role_flags[d.top]):
                out[d.top] = i
            elif self.h.world.item_kinds[i] in kinds:
                return out, k          # in the way: it and everything above must move
        return out, len(pile)

    @staticmethod
    def deferred(d: Dish, r: int, settled: dict[int, int]) -> bool:
        """Role r can only be filled after another open role of its dish (chain order; top last)."""
        if d.chain:
            k = d.chain.index(r)
            return k > 0 and d.chain[k - 1] not in settled
        if r == d.bottom:
            return False
        if d.bottom not in settled:
            return True
        return r == d.top and any(x not in settled for x in d.members)

    def combo_cost(self, combo, soup_todo: list[int]) -> int:
        """Roles, each filled by its own object (assignment.py): a settled role costs 0 with the
        object already in place, or what another object would cost to take its place (so a
        settled object is never also priced for a second role); minus a carry when the held item
        can be put at its dish's table right here; plus obstacles (obstacles.py)."""
        m, h = self.h.model, self.h
        roles: list[tuple[int, bool, int]] = []   # (role, deferred, object in place or -1)
        kinds_per_dish: list[dict[str, int]] = []
        refund = False
        held, robot = self.s.held, self.s.robot
        for d, (t, settled, _) in zip(m.dishes, combo):
            kinds: dict[str, int] = {}
            for r in d.roles:
                if r in settled:
                    roles.append((r, False, settled[r]))
                else:
                    roles.append((r, self.deferred(d, r, settled), -1))
                    kinds[m.role_kind[r]] = kinds.get(m.role_kind[r], 0) + 1
            kinds_per_dish.append(kinds)
            if not refund and 0 <= held < h.world.n_items:   # holding an item at the dish's own table
                here = robot == t or (t < 0 and h.is_kind["table"][robot] and not self.s.piles[robot])
                refund = here and h.world.item_kinds[held] in kinds
        roles += [(r, False, -1) for r in soup_todo]
        total = self.assigned(tuple(roles))
        if total >= INF:
            return INF
        total -= refund
        return total + blocker_cost(self, combo, kinds_per_dish, soup_todo) + occupant_cost(self, combo, soup_todo)

    def assigned(self, roles: tuple[tuple[int, bool, int], ...]) -> int:
        """Least cost of filling the roles with distinct objects, kind by kind (memoised per state:
        the combos of one state share most kinds' roles)."""
        m = self.h.model
        by_kind: dict[str, list[tuple[int, int, int]]] = {}
        for r, deferred, in_place in roles:
            by_kind.setdefault(m.role_kind[r], []).append((m.role_flags[r], 2 if deferred else 0, in_place))
        total = 0
        for kind, specs in by_kind.items():
            key = (kind, tuple(sorted(specs)))
            v = self.assign_memo.get(key)
            if v is None:
                rows = []
                for need, col, in_place in specs:
                    row = self.cost_row(kind, need, col)
                    if in_place >= 0:   # the object already in place fills the role for free
                        row = tuple(0 if i == in_place else c for i, c in zip(self.h.kind_objects[kind], row))
                    rows.append(row)
                v = self.assign_memo[key] = min_assignment(rows)
            total += v
            if total >= INF:
                return INF
        return total

    def cost_row(self, kind: str, need: int, col: int) -> tuple[int, ...]:
        """Per object of `kind`: its cost for a role needing `need` (col 0) or deferred (col 2)."""
        key = (kind, need, col)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = tuple(self.item_cost(i, need)[col] for i in self.h.kind_objects.get(kind, ()))
        return row

    def role_cost(self, kind: str, need: int) -> tuple[int, int, int]:
        """(actions, critical path, actions if deferred) of the cheapest object of `kind` for a role."""
        best, best_path, best_later = INF, INF, INF
        for i in self.h.kind_objects.get(kind, ()):
            c, p, later = self.item_cost(i, need)
            best, best_path, best_later = min(best, c), min(best_path, p), min(best_later, later)
        return best, best_path, best_later

    def item_cost(self, i: int, need: int) -> tuple[int, int, int]:
        """(actions, critical path, actions when the put must wait for other roles first)."""
        out = self.icost.get((i, need))
        if out is None:
            out = self.icost[(i, need)] = self._item_cost_uncached(i, need)
        return out

    def _item_cost_uncached(self, i: int, need: int) -> tuple[int, int, int]:
        c, p, trip = self._item_cost(i, need)
        if c >= INF:
            return INF, INF, INF
        s = self.s
        if s.held == i and not trip:
            later = 5    # put it down now, come back, pick, carry, put
        else:      # held during a trip: it must wait on the board/stove while the robot leaves
            later = c + (1 if trip and s.held == i else 0)
        return c, p, later

    def _item_cost(self, i: int, need: int) -> tuple[int, int, bool]:
        s = self.s
        if s.added[i] >= 0:
            return INF, INF, False
        held = s.held == i
        f = s.flags[i]
        w = self.where.get(i)
        pile = s.piles[w[0]] if w else ()
        lone_at = w[0] if w and len(pile) == 1 else -1
        r = s.robot
        # arrival + pick unless held; the put; one carried move unless held where it may be put
        if held:
            cost = 2     # put, carried move (the caller refunds the move when the robot stands at the target)
        else:
            cost = 4     # arrival (the caller refunds one when the hands are empty), pick, put, carried move
        at_empty = held and not s.piles[r] and r not in s.cont_at   # could place right here
        path, trip = 0, False
        if need & CUT and not f & CUT:
            if not f & CUTTABLE:
                return INF, INF, False
            trip = True
            cost += CUTS_NEEDED - self.cut_prog.get(i, 0)
            if not (lone_at >= 0 and self.h.is_kind["board"][lone_at]):
                # place on a board, pick again, one more carried move (none if already at an empty board)
                cost += 2 if at_empty and self.h.is_kind["board"][r] else 3
        fryable_later = f & FRYABLE or (f & FRYABLEIFCUT and (f & CUT or need & CUT or f & CUTTABLE))
        for flag, proc, kind, able in ((COOKED, P_COOK, "stove", f & COOKABLE), (FRIED, P_FRY, "fryer", fryable_later)):
            if not need & flag or f & flag:
                continue
            if not able:
                return INF, INF, False
            prog = self.timer.get((proc, i), -1)
            if prog >= 0:                    # running where it lies: wait, then pick, carry, put
                path = max(path, TIMER_TICKS - prog + 3)
                continue
            trip = True
            on_station = lone_at >= 0 and self.h.is_kind[kind][lone_at]
            here = at_empty and self.h.is_kind[kind][r]
            # Cook/Fry, (place, pick again, carried move,) and one more step: between the Cook (the
            # first tick) and the pick three ticks pass, so the robot waits or leaves and comes back
            # empty-handed (nothing else can be done at a station whose only item is cooking)
            cost += 2 + (0 if on_station else 2 if here else 3)
            setup = 0 if on_station else (1 if held else 3)
            path = max(path, setup + 1 + (TIMER_TICKS - 1) + 3)
        return cost, path, trip
