"""Goal semantics (docs/kitchen.md 6): existential match of typed placeholders.

A goal is a list of positive literals over placeholders `<kind><tag>`. Same
tag = same object; different tags of one kind = different objects; any object
of the kind may be used (seeded distractors too); `water` binds to `water1`.
We match with a small backtracking search instead of the original's up-front
expansion of every assignment (same semantics, docs/kitchen.md 10.9).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from taskplan.kitchen.domain import COOKED, CUT, FRIED, ITEM_KINDS, STATION_KINDS
from taskplan.kitchen.state import State, World

_LIT = re.compile(r"(\w+)\(([^)]*)\)")
_UNARY_FLAG = {"iscut": CUT, "iscooked": COOKED, "isfried": FRIED}
PREDICATES = ("item_on", "item_at", "atop", "clear", "iscut", "iscooked", "isfried",
              "in", "isboiling", "addedto", "container_at")


def parse_goal(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`"item_on(bread1,table2) atop(cheese3,bread1)"` -> ((pred, (placeholders...)), ...)."""
    lits = tuple((m.group(1), tuple(a.strip() for a in m.group(2).split(","))) for m in _LIT.finditer(text))
    for pred, _ in lits:
        if pred not in PREDICATES:
            raise ValueError(f"unknown goal predicate {pred!r}")
    return lits


def placeholder_kind(ph: str) -> str:
    return ph.rstrip("0123456789")


@dataclass(frozen=True)
class CompiledGoal:
    """A goal bound to one World: placeholder candidates as object indices."""

    literals: tuple[tuple[str, tuple[int, ...]], ...]   # (pred, placeholder indices)
    kinds: tuple[str, ...]                              # per placeholder: station/item/container/meal
    candidates: tuple[tuple[int, ...], ...]             # per placeholder
    order: tuple[int, ...]                              # assignment order

    def satisfied(self, state: State) -> bool:
        return self.match(state) is not None

    def match(self, state: State) -> tuple[int, ...] | None:
        """One satisfying assignment (object index per placeholder), or None."""
        where: dict[int, tuple[int, int]] = {}
        for s, pile in enumerate(state.piles):
            for k, i in enumerate(pile):
                where[i] = (s, k)
        binding = [-1] * len(self.kinds)
        used: dict[str, set[int]] = {"station": set(), "item": set(), "container": set(), "meal": set()}
        checks = self.checks
        return self._search(0, binding, used, state, where, checks)

    @cached_property
    def checks(self) -> list[list[tuple[str, tuple[int, ...]]]]:
        # literals to test right after assigning the n-th placeholder of `order`
        pos = {ph: n for n, ph in enumerate(self.order)}
        out: list[list] = [[] for _ in self.order]
        for pred, args in self.literals:
            out[max(pos[a] for a in args)].append((pred, args))
        return out

    def _search(self, n, binding, used, state, where, checks):
        if n == len(self.order):
            return tuple(binding)
        ph = self.order[n]
        kind = self.kinds[ph]
        for obj in self.candidates[ph]:
            if obj in used[kind]:
                continue
            binding[ph] = obj
            if all(_holds(pred, [binding[a] for a in args], state, where) for pred, args in checks[n]):
                used[kind].add(obj)
                found = self._search(n + 1, binding, used, state, where, checks)
                used[kind].discard(obj)
                if found is not None:
                    return found
        binding[ph] = -1
        return None


def compile_goal(goal: tuple[tuple[str, tuple[str, ...]], ...], world: World) -> CompiledGoal:
    names: list[str] = []
    for _, args in goal:
        for a in args:
            if a not in names:
                names.append(a)
    kinds, cands = [], []
    for ph in names:
        k = placeholder_kind(ph)
        if k in STATION_KINDS:
            kinds.append("station")
            cands.append(tuple(s for s, sk in enumerate(world.station_kinds) if sk == k))
        elif k in ITEM_KINDS:
            kinds.append("item")
            cands.append(tuple(i for i, ik in enumerate(world.item_kinds) if ik == k))
        elif k == "water":
            kinds.append("meal")
            cands.append((0,))  # no meal exists at reset, so the original binds water to water1
        else:
            kinds.append("container")
            cands.append(tuple(c for c, ck in enumerate(world.container_kinds) if ck == k))
    index = {ph: n for n, ph in enumerate(names)}
    lits = tuple((pred, tuple(index[a] for a in args)) for pred, args in goal)
    return CompiledGoal(lits, tuple(kinds), tuple(cands), _greedy_order(lits, cands))


def _greedy_order(lits, cands) -> tuple[int, ...]:
    """Assign next the placeholder that completes the most literals (then fewest candidates),
    so each literal prunes as early as possible (e.g. a bottom bread, then its table)."""
    order: list[int] = []
    left = set(range(len(cands)))
    while left:
        def score(p):
            done = set(order) | {p}
            completed = sum(1 for _, args in lits if p in args and set(args) <= done)
            return (-completed, len(cands[p]), p)
        best = min(left, key=score)
        order.append(best)
        left.remove(best)
    return tuple(order)


def _holds(pred: str, args: list[int], state: State, where: dict[int, tuple[int, int]]) -> bool:
    if pred in _UNARY_FLAG:
        return bool(state.flags[args[0]] & _UNARY_FLAG[pred])
    if pred == "item_on":
        w = where.get(args[0])
        return w is not None and w[1] == 0 and w[0] == args[1]
    if pred == "item_at":
        w = where.get(args[0])
        return w is not None and w[0] == args[1]
    if pred == "atop":
        a, b = where.get(args[0]), where.get(args[1])
        return a is not None and b is not None and a[0] == b[0] and a[1] == b[1] + 1
    if pred == "clear":
        w = where.get(args[0])
        return w is not None and w[1] == len(state.piles[w[0]]) - 1
    if pred == "container_at":
        return state.cont_at[args[0]] == args[1]
    m = args[0] if pred in ("in", "isboiling") else args[1]
    if m >= len(state.meals):
        return False
    if pred == "in":
        return state.meals[m][0] == args[1]
    if pred == "isboiling":
        return state.meals[m][1]
    return state.added[args[0]] == m  # addedto(item, meal)
