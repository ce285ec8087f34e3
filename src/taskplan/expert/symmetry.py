"""Symmetry reduction: one canonical key per class of interchangeable states.

    canon = Canonicalizer(world)
    canon.key(state) == canon.key(other)   # True => the two states have the same future, up to names

Why it is sound: nothing in the kitchen's rules or in a goal depends on *which*
object of a kind plays a part (goals bind placeholders existentially by kind,
spec KITCHEN.md 6; actions test kinds and facts only). So renaming items of
one kind among themselves, and stations of one kind among themselves, maps
states onto states, valid actions onto valid actions and goal states onto goal
states; the distance to the goal is the same for every member of a class. The
key is the state *after* one such renaming (chosen by sorting objects on what
can be seen of them), encoded as bytes, so equal keys always mean isomorphic
states. Two isomorphic states may still get different keys when a tie hides a
difference the sort cannot see; that only costs a missed merge, never a wrong one.

Used by the planner for its tables of distances and proven lower bounds; the
plan itself is always made from the real states, so names and the tie-break
are untouched. Containers (one pot, one bowl at most in every task) and meals
keep their indices.
"""

from __future__ import annotations

from taskplan.kitchen.state import P_BOIL, P_COOK, P_CUTC, P_CUTG, P_FILL, P_FRY, State, World

_ITEM_PROCS = (P_COOK, P_FRY, P_CUTC, P_CUTG)


class Canonicalizer:
    """key(state) -> bytes, equal for states that differ only by renaming same-kind objects."""

    def __init__(self, world: World):
        self.world = world
        self.n_items = world.n_items
        self.station_groups = _groups(world.station_kinds)   # only kinds with two or more members
        self.item_groups = _groups(world.item_kinds)
        self.trivial = not self.station_groups and not self.item_groups

    def key(self, s: State) -> bytes:
        if self.trivial:
            return encode(s, None, None)
        return encode(s, *self.renaming(s))

    def renaming(self, s: State) -> tuple[list[int] | None, list[int] | None]:
        """(new index per station, new index per item); None where no kind has twins."""
        n_items = self.n_items
        iproc: dict[int, list] = {}
        sproc: dict[int, list] = {}
        for kind, a, b, c, prog, done in s.pending:
            if kind in _ITEM_PROCS:
                iproc.setdefault(a, []).append((kind, prog, done))
                if kind in (P_COOK, P_FRY):
                    sproc.setdefault(b, []).append((kind, prog, done, s.flags[a]))
            elif kind == P_FILL:
                sproc.setdefault(b, []).append((kind, prog, done, a))
            elif kind == P_BOIL:
                sproc.setdefault(c, []).append((kind, prog, done, b))

        def idesc(i: int) -> tuple:   # what can be seen of an item without naming stations
            return (s.flags[i], s.added[i], s.held == i, tuple(iproc.get(i, ())))

        smap = None
        if self.station_groups:
            smap = list(range(len(s.piles)))
            for group in self.station_groups:
                descs = []
                for st in group:
                    descs.append(((s.robot == st, s.cont_at.index(st) if st in s.cont_at else -1,
                                   tuple(idesc(i) for i in s.piles[st]), tuple(sproc.get(st, ()))), st))
                descs.sort()
                for target, (_, st) in zip(group, descs):
                    smap[st] = target
        imap = None
        if self.item_groups:
            where: dict[int, tuple[int, int]] = {}
            for st, pile in enumerate(s.piles):
                st2 = st if smap is None else smap[st]
                for k, i in enumerate(pile):
                    where[i] = (st2, k)
            imap = list(range(n_items))
            for group in self.item_groups:
                descs = sorted((idesc(i), where.get(i, (-1, -1)), i) for i in group)
                for target, (_, _, i) in zip(group, descs):
                    imap[i] = target
        return smap, imap


def encode(s: State, smap: list[int] | None, imap: list[int] | None) -> bytes:
    """The renamed state as bytes (every field length-prefixed or fixed, so the encoding is unambiguous)."""
    n_items = len(s.flags)
    out: list[int] = []
    ren_i = (lambda i: i) if imap is None else (lambda i: i if i < 0 else imap[i])
    ren_s = (lambda st: st) if smap is None else (lambda st: st if st < 0 else smap[st])
    out.append(ren_s(s.robot))
    held = s.held
    out.append(held if held < 0 or held >= n_items else ren_i(held))
    if smap is None:
        piles = s.piles
    else:
        piles = [()] * len(s.piles)
        for st, pile in enumerate(s.piles):
            piles[smap[st]] = pile
    for pile in piles:
        out.append(len(pile))
        out.extend(ren_i(i) for i in pile)
    out.extend(ren_s(st) for st in s.cont_at)
    if imap is None:
        out.extend(s.flags)
        out.extend(s.added)
    else:
        flags, added = [0] * n_items, [0] * n_items
        for i in range(n_items):
            flags[imap[i]] = s.flags[i]
            added[imap[i]] = s.added[i]
        out.extend(flags)
        out.extend(added)
    out.append(len(s.meals))
    for c, boiling in s.meals:
        out += (c, boiling)
    for kind, a, b, c, prog, done in s.pending:   # list order kept: it matters under legacy_skip
        if kind in (P_COOK, P_FRY):
            a, b = ren_i(a), ren_s(b)
        elif kind in (P_CUTC, P_CUTG):
            a = ren_i(a)
        elif kind == P_FILL:
            b = ren_s(b)
        else:   # P_BOIL: (meal, container, station)
            c = ren_s(c)
        out += (kind, a, b, c, prog, done)
    return bytes(x & 0xFF for x in out)   # -1 -> 255: no index reaches 255 in any kitchen


def _groups(kinds: tuple[str, ...]) -> list[list[int]]:
    by: dict[str, list[int]] = {}
    for n, k in enumerate(kinds):
        by.setdefault(k, []).append(n)
    return [g for g in by.values() if len(g) > 1]
