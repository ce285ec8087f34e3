"""The expert's action filter: valid actions minus those no minimal plan needs, in tie-break order.

    for action in useful_actions(world, state): ...   # `Do nothing` first, then valid-action order

This list *is* the tie-break (planner.py): the expert's plan is the first
minimal plan in this order. Each pruned action can be replaced by an equally
long alternative or dropped, so the pruned plans are as short as any:
- a move to a station where nothing but moving on (or waiting) is possible;
- `Do nothing` while no timer is running;
- Cook/Cut/Fry of something already cooked/cut/fried, Boil of boiling water;
- a move to a station that is an interchangeable twin of a lower-numbered one
  (same kind, same contents, no process attached).
Changing anything here changes the expert's plans, hence the training data.
"""

from __future__ import annotations

from taskplan.kitchen.domain import BOIL, COOK, COOKED, CUT, CUT_ACTION, FRIED, FRY, MOVE, WAIT
from taskplan.kitchen.state import P_BOIL, P_COOK, P_CUTC, P_CUTG, P_FILL, P_FRY, Action, State, World, valid_actions


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
