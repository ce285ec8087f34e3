"""Things in the way: the part of the planner's lower bound (heuristic.py) that prices obstacles.

    extra = blocker_cost(ctx, combo, kinds_per_dish, soup_todo) + occupant_cost(ctx, combo, soup_todo)

`ctx` is heuristic._Ctx (one state), `combo` one choice of table per dish. Each
rule adds only actions that no other part of the bound counts, in every plan:

- Blockers: items stacked on a dish's table above the part of the dish already
  in place. Each costs an empty-handed arrival, a pick, a carried move and a put
  (4), unless that one move fills an open role of another dish or the soup. The
  blocker removed *first* cannot go into a dish that still has blockers (every
  open role there waits for them), so when only such dishes want its kind, one
  blocker fewer is matched.
- Occupants: when every board (stove, fryer) holds a lone item that cannot be
  processed there, yet some role still needs a cut (cook, fry) that no existing
  object provides, one occupant must leave first. If it can go nowhere useful
  right away (no open role it fits that is not itself waiting for such a
  process, no soup, no trip to another station), it is either removed for good
  or parked and fetched again: 4 actions (put, empty-handed arrival, pick, carried
  move) beyond the 4 its own role already pays. The S9 kitchen with a bread on the
  only board is the case that motivated it: the bread is the sandwich's top,
  which waits for the cut lettuce and tomato, which wait for the board.
"""

from __future__ import annotations

from taskplan.expert.assignment import INF, matched_blockers
from taskplan.kitchen.domain import COOKABLE, COOKED, CUT, CUTTABLE, FRIED, FRYABLE

# station kind -> (flag the process gives, flag that allows it there)
_PROCESSES = {"board": (CUT, CUTTABLE), "stove": (COOKED, COOKABLE), "fryer": (FRIED, FRYABLE)}


def blocker_cost(ctx, combo, kinds_per_dish: list[dict[str, int]], soup_todo: list[int]) -> int:
    h, m = ctx.h, ctx.h.model
    blocked: dict[str, list[int]] = {}
    for n, (_, _, blockers) in enumerate(combo):
        for b in blockers:
            blocked.setdefault(h.world.item_kinds[b], [0] * len(combo))[n] += 1
    if not blocked:
        return 0
    soup_kinds: dict[str, int] = {}
    for r in soup_todo:
        soup_kinds[m.role_kind[r]] = soup_kinds.get(m.role_kind[r], 0) + 1
    has_blockers = [bool(o[2]) for o in combo]
    total, best_loss = 0, INF
    for k, per_dish in blocked.items():
        roles = [kinds.get(k, 0) for kinds in kinds_per_dish] + [soup_kinds.get(k, 0)]
        per = per_dish + [0]                       # the soup has no blockers
        saved = matched_blockers(per, roles)
        total += 4 * (sum(per_dish) - saved)
        # roles of kind k open in a dish without blockers (or the soup): the first blocker may use one
        free = any(n_roles and not (n < len(combo) and has_blockers[n]) for n, n_roles in enumerate(roles))
        if free:
            best_loss = 0
        else:
            for n, count in enumerate(per_dish):   # the first blocker is one of dish n's, left unmatched
                if count:
                    per[n] -= 1
                    best_loss = min(best_loss, 4 * (saved - matched_blockers(per, roles)))
                    per[n] += 1
    return total + (best_loss if best_loss < INF else 0)


def occupant_cost(ctx, combo, soup_todo: list[int]) -> int:
    h, s = ctx.h, ctx.s
    sk = h.world.station_kinds
    extra = 0
    for kind, (gives, allows) in _PROCESSES.items():
        stations = [st for st, k in enumerate(sk) if k == kind]
        if not stations:
            continue
        waiting = _roles_waiting_for(ctx, combo, gives)
        if waiting is None:          # no open role needs this process from a new object
            continue
        best = INF
        for st in stations:
            pile = s.piles[st]
            if len(pile) != 1 or st in s.cont_at:
                best = 0                     # empty, a pile or a container: not worth a rule
                break
            o = pile[0]
            if _processable(ctx, o, gives, allows) or _useful_now(ctx, o, combo, soup_todo, waiting):
                best = 0
                break
            best = min(best, 4)
        extra += 0 if best >= INF else best
    return extra


def _roles_waiting_for(ctx, combo, gives: int) -> set[int] | None:
    """Open roles that cannot be put before some object gets `gives` from a new process: the
    roles above an open role whose kind has more open roles needing it than objects having it.
    None when no open role needs the process at all."""
    m, s = ctx.h.model, ctx.s
    need: dict[str, int] = {}
    for d, (_, settled, _) in zip(m.dishes, combo):
        for r in d.roles:
            if r not in settled and m.role_flags[r] & gives:
                need[m.role_kind[r]] = need.get(m.role_kind[r], 0) + 1
    short = {k for k, n in need.items()
             if n > sum(1 for i in ctx.h.kind_objects.get(k, ()) if s.flags[i] & gives and s.added[i] < 0)}
    if not short:
        return None
    waiting: set[int] = set()
    for d, (_, settled, _) in zip(m.dishes, combo):
        def short_open(r: int, settled=settled) -> bool:
            return r not in settled and bool(m.role_flags[r] & gives) and m.role_kind[r] in short
        if d.chain:
            for k, r in enumerate(d.chain):
                if any(short_open(q) for q in d.chain[:k]):
                    waiting.add(r)
        else:
            if d.bottom is not None and short_open(d.bottom):
                waiting.update(x for x in (*d.members, d.top) if x is not None)
            if d.top is not None and any(short_open(q) for q in (d.bottom, *d.members) if q is not None):
                waiting.add(d.top)
    return waiting


def _processable(ctx, o: int, gives: int, allows: int) -> bool:
    """The occupant is itself an object this station should process."""
    f = ctx.s.flags[o]
    if not f & allows or f & gives:
        return False
    m = ctx.h.model
    kind = ctx.h.world.item_kinds[o]
    return any(m.role_kind[r] == kind and m.role_flags[r] & gives for r in m.role_kind)


def _useful_now(ctx, o: int, combo, soup_todo: list[int], waiting: set[int]) -> bool:
    """The occupant can leave straight for something useful: an open role it fits that is not
    waiting for the process, the soup, or another station's process on its way to a role."""
    m = ctx.h.model
    kind = ctx.h.world.item_kinds[o]
    f = ctx.s.flags[o]
    open_roles = list(soup_todo)
    for d, (_, settled, _) in zip(m.dishes, combo):
        open_roles += [r for r in d.roles if r not in settled]
    for r in open_roles:
        if m.role_kind[r] != kind or ctx.item_cost(o, m.role_flags[r])[0] >= INF:
            continue
        if m.role_flags[r] & ~f or r in soup_todo or r not in waiting:
            return True    # a trip elsewhere starts with this move, or the role can take it now
    return False
