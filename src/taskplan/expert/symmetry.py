"""Symmetry reduction: one canonical key per class of interchangeable states.

    canon = Canonicalizer(world)
    canon.key(state) == canon.key(other)   # True => the two states have the same future, up to names

Why it is sound: nothing in the kitchen's rules or in a goal depends on *which*
object of a kind plays a part (goals bind placeholders existentially by kind,
docs/kitchen.md 6; actions test kinds and facts only). So renaming items of
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

from array import array

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
        flags, added, held, piles = s.flags, s.added, s.held, s.piles
        iproc: dict[int, tuple] = {}
        sproc: dict[int, tuple] = {}
        for kind, a, b, c, prog, done in s.pending:
            if kind in _ITEM_PROCS:
                iproc[a] = iproc.get(a, ()) + ((kind, prog, done),)
                if kind in (P_COOK, P_FRY):
                    sproc[b] = sproc.get(b, ()) + ((kind, prog, done, flags[a]),)
            elif kind == P_FILL:
                sproc[b] = sproc.get(b, ()) + ((kind, prog, done, a),)
            elif kind == P_BOIL:
                sproc[c] = sproc.get(c, ()) + ((kind, prog, done, b),)
        # what can be seen of an item without naming stations
        idesc = [(flags[i], added[i], i == held, iproc.get(i, ())) for i in range(self.n_items)]
        smap = None
        if self.station_groups:
            smap = list(range(len(piles)))
            cont = {st: c for c, st in enumerate(s.cont_at)}
            robot = s.robot
            for group in self.station_groups:
                descs = sorted(((st == robot, cont.get(st, -1), tuple([idesc[i] for i in piles[st]]),
                                 sproc.get(st, ())), st) for st in group)
                for target, (_, st) in zip(group, descs):
                    smap[st] = target
        imap = None
        if self.item_groups:
            where = [(-1, -1)] * self.n_items
            for st, pile in enumerate(piles):
                if pile:
                    st2 = st if smap is None else smap[st]
                    for k, i in enumerate(pile):
                        where[i] = (st2, k)
            imap = list(range(self.n_items))
            for group in self.item_groups:
                descs = sorted((idesc[i], where[i], i) for i in group)
                for target, (_, _, i) in zip(group, descs):
                    imap[i] = target
        return smap, imap


def encode(s: State, smap: list[int] | None, imap: list[int] | None) -> bytes:
    """The renamed state as bytes (every field length-prefixed or fixed, so the encoding is unambiguous)."""
    n_items = len(s.flags)
    held = s.held
    if imap is not None:
        ext = imap + [-1]            # ext[-1] == -1: "none" stays "none"
        if 0 <= held < n_items:
            held = imap[held]
    out = [s.robot if smap is None else smap[s.robot], held]
    if smap is None:
        piles = s.piles
        out.extend(s.cont_at)
    else:
        piles = [()] * len(s.piles)
        for st, pile in enumerate(s.piles):
            piles[smap[st]] = pile
        out.extend([-1 if st < 0 else smap[st] for st in s.cont_at])
    for pile in piles:
        out.append(len(pile))
        if pile:
            out.extend(pile if imap is None else [imap[i] for i in pile])
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
        if imap is not None and kind in _ITEM_PROCS:
            a = ext[a]
        if smap is not None:
            if kind in (P_COOK, P_FRY, P_FILL):
                b = smap[b]
            elif kind == P_BOIL:   # (meal, container, station)
                c = smap[c]
        out += (kind, a, b, c, prog, done)
    return array("h", out).tobytes()   # bytes: hashed once, compared with memcmp


def _groups(kinds: tuple[str, ...]) -> list[list[int]]:
    by: dict[str, list[int]] = {}
    for n, k in enumerate(kinds):
        by.setdefault(k, []).append(n)
    return [g for g in by.values() if len(g) > 1]
