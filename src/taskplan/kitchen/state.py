"""Kitchen state and transition function (Robotouille semantics, docs/kitchen.md 2-3).

A `World` is the static part of one kitchen instance (object names, kinds,
initial flags). A `State` is an immutable, hashable tuple of everything that can
change, including the hidden progress of pending processes (timer ticks per
(item, stove), cut counts per item), so two states are equal exactly when every
future behaves the same. `step(world, state, action)` applies one *valid*
action: immediate effects, then the action update of its processes, then one
tick of the pending list (docs/kitchen.md 3.3).

Decisions (docs/kitchen.md 10; where there is a choice, we follow Robotouille):
- Timers take 4 ticks, counting the triggering step; cutting takes 3 Cut actions
  (task-file `cook_time`/`num_cuts` are ignored, as in the original).
- Re-processing is allowed (Cook on a cooked item, Cut on a cut item ...); the cut
  guard forces `isfryable` off for cut items that are not fryable-if-cut, as the
  original does (harmless for every shipped task).
- Clean ticks by default: every pending process ticks every step. With
  `legacy_skip=True` a process that finishes and is removed makes its successor in
  the pending list miss that tick, as the original's remove-while-iterating does.
- Action groundings that print the same text (only possible with two meals in one
  pot) are offered once, with the lowest meal index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from taskplan.kitchen.domain import (
    ACTION_TEMPLATES,
    ADD_TO,
    BOIL,
    COOK,
    COOKABLE,
    COOKED,
    COOKING,
    CUT,
    CUT_ACTION,
    CUTS_NEEDED,
    CUTTABLE,
    FILL_BOWL,
    FILL_POT,
    FRIED,
    FRY,
    FRYABLE,
    FRYABLEIFCUT,
    MOVE,
    PICK_CONTAINER,
    PICK_ITEM,
    PLACE_CONTAINER,
    PLACE_ITEM,
    STACK,
    TIMER_TICKS,
    UNSTACK,
    WAIT,
)

# Process kinds in the pending list; a process is (kind, a, b, c, progress, done).
P_COOK, P_FRY, P_FILL, P_BOIL, P_CUTC, P_CUTG = range(6)
NONE = -1


class State(NamedTuple):
    """Everything that changes. Indices refer to the World's object lists."""

    robot: int                                   # station the robot stands at
    held: int                                    # -1 nothing, i < n_items an item, n_items + c a container
    piles: tuple[tuple[int, ...], ...]           # per station: items bottom -> top
    cont_at: tuple[int, ...]                     # per container: station, or -1 when held
    flags: tuple[int, ...]                       # per item: flag bits (domain.FLAG_BITS)
    added: tuple[int, ...]                       # per item: meal it was added to, or -1
    meals: tuple[tuple[int, bool], ...]          # per meal (water1, water2, ...): (container, boiling)
    pending: tuple[tuple[int, int, int, int, int, bool], ...]  # processes, in list order


Action = tuple[int, int, int, int, int]          # (schema, station, a, b, meal); -1 where unused


@dataclass(frozen=True)
class World:
    """The static part of one instance; names are assigned by the position sort (docs/kitchen.md 1.2)."""

    task: str
    goal_text: str
    stations: tuple[str, ...]
    station_kinds: tuple[str, ...]
    items: tuple[str, ...]
    item_kinds: tuple[str, ...]
    containers: tuple[str, ...]
    container_kinds: tuple[str, ...]
    robot_name: str = "robot1"
    legacy_skip: bool = False
    _texts: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def meal_name(self, m: int) -> str:
        return f"water{m + 1}"

    def action_text(self, action: Action) -> str:
        text = self._texts.get(action)
        if text is None:
            text = self._texts[action] = self._format(action)
        return text

    def _format(self, action: Action) -> str:
        sch, s, a, b, _ = action
        p = self.robot_name
        if sch == MOVE:
            return ACTION_TEMPLATES[sch].format(p=p, s=self.stations[s], s2=self.stations[a])
        if sch in (PICK_ITEM, PLACE_ITEM, COOK, CUT_ACTION, FRY):
            return ACTION_TEMPLATES[sch].format(p=p, i=self.items[a], s=self.stations[s])
        if sch in (PICK_CONTAINER, PLACE_CONTAINER, FILL_POT, BOIL):
            return ACTION_TEMPLATES[sch].format(p=p, c=self.containers[a], s=self.stations[s])
        if sch == ADD_TO:
            return ACTION_TEMPLATES[sch].format(p=p, i=self.items[a], c=self.containers[b])
        if sch == FILL_BOWL:
            return ACTION_TEMPLATES[sch].format(p=p, c=self.containers[a], c2=self.containers[b])
        if sch in (STACK, UNSTACK):
            return ACTION_TEMPLATES[sch].format(p=p, i=self.items[a], i2=self.items[b])
        return ACTION_TEMPLATES[WAIT]


def container_on(state: State, s: int) -> int:
    """The container standing on station s, or -1."""
    for c, at in enumerate(state.cont_at):
        if at == s:
            return c
    return NONE


def meals_in(state: State, c: int) -> list[int]:
    return [m for m, (mc, _) in enumerate(state.meals) if mc == c]


def valid_actions(world: World, state: State) -> list[Action]:
    """All valid actions in the order of docs/kitchen.md 5: schema, then object order; `Do nothing` last."""
    r, held, piles = state.robot, state.held, state.piles
    n_items = world.n_items
    kind = world.station_kinds[r]
    pile = piles[r]
    cont = container_on(state, r)
    empty_station = not pile and cont == NONE
    out: list[Action] = [(MOVE, r, s2, NONE, NONE) for s2 in range(len(world.stations)) if s2 != r]
    hand_empty = held == NONE
    held_item = held if 0 <= held < n_items else NONE
    held_cont = held - n_items if held >= n_items else NONE
    lone = pile[0] if len(pile) == 1 else NONE
    if hand_empty and lone != NONE:
        out.append((PICK_ITEM, r, lone, NONE, NONE))
    if held_item != NONE and empty_station:
        out.append((PLACE_ITEM, r, held_item, NONE, NONE))
    if hand_empty and cont != NONE:
        out.append((PICK_CONTAINER, r, cont, NONE, NONE))
    if held_cont != NONE and empty_station:
        out.append((PLACE_CONTAINER, r, held_cont, NONE, NONE))
    if hand_empty and lone != NONE:
        f = state.flags[lone]
        if kind == "stove" and f & COOKABLE and not f & COOKING:
            out.append((COOK, r, lone, NONE, NONE))
        if kind == "board" and f & CUTTABLE:
            out.append((CUT_ACTION, r, lone, NONE, NONE))
        if kind == "fryer" and f & FRYABLE:
            out.append((FRY, r, lone, NONE, NONE))
    if hand_empty and cont != NONE and world.container_kinds[cont] == "pot":
        inside = meals_in(state, cont)
        if kind == "sink" and not inside:
            out.append((FILL_POT, r, cont, NONE, NONE))
        if kind == "stove" and inside:
            out.append((BOIL, r, cont, NONE, inside[0]))
    if held_item != NONE and cont != NONE and world.container_kinds[cont] == "pot":
        for m in meals_in(state, cont):
            if state.added[held_item] != m:
                out.append((ADD_TO, r, held_item, cont, m))
                break
    if held_cont != NONE and cont != NONE and world.container_kinds[cont] == "bowl" \
            and world.container_kinds[held_cont] == "pot" and not meals_in(state, cont):
        inside = meals_in(state, held_cont)
        if inside:
            out.append((FILL_BOWL, r, cont, held_cont, inside[0]))
    if held_item != NONE and pile:
        out.append((STACK, r, held_item, pile[-1], NONE))
    if hand_empty and len(pile) >= 2:
        out.append((UNSTACK, r, pile[-1], pile[-2], NONE))
    out.append((WAIT, NONE, NONE, NONE, NONE))
    return out


def step(world: World, state: State, action: Action) -> State:
    """Apply one valid action: immediate effects, process action-updates, one tick."""
    sch, s, a, b, m = action
    robot, held, piles, cont_at, flags, added, meals, pending = state
    n_items = world.n_items
    new_procs: list[tuple[int, int, int, int]] = []   # process keys this action touches, in template order
    if sch == MOVE:
        robot = a
    elif sch == PICK_ITEM:
        piles = _set(piles, s, ())
        held = a
    elif sch == PLACE_ITEM:
        piles = _set(piles, s, (a,))
        held = NONE
    elif sch == PICK_CONTAINER:
        cont_at = _set(cont_at, a, NONE)
        held = n_items + a
    elif sch == PLACE_CONTAINER:
        cont_at = _set(cont_at, a, s)
        held = NONE
    elif sch == STACK:
        piles = _set(piles, s, piles[s] + (a,))
        held = NONE
    elif sch == UNSTACK:
        piles = _set(piles, s, piles[s][:-1])
        held = a
    elif sch == ADD_TO:
        added = _set(added, a, m)
        held = NONE
    elif sch == FILL_BOWL:
        meals = _set(meals, m, (a, meals[m][1]))
    elif sch == COOK:
        new_procs.append((P_COOK, a, s, NONE))
    elif sch == FRY:
        new_procs.append((P_FRY, a, s, NONE))
    elif sch == FILL_POT:
        new_procs.append((P_FILL, a, s, NONE))
    elif sch == BOIL:
        new_procs.append((P_BOIL, m, a, s))
    elif sch == CUT_ACTION:
        new_procs.append((P_CUTC, a, NONE, NONE))
        new_procs.append((P_CUTG, a, NONE, NONE))
    if not new_procs and not pending:
        return State(robot, held, piles, cont_at, flags, added, meals, pending)
    w = _Work(piles, cont_at, list(flags), list(meals))
    procs = list(pending)
    for key in new_procs:  # docs/kitchen.md 3.3 step 3: reuse a pending process with the same identity key
        for idx, p in enumerate(procs):  # noqa: B007 (idx is used after the loop's break)
            if p[:4] == key:
                break
        else:
            procs.append(key + (0, False))
            idx = len(procs) - 1
        procs[idx] = _update(w, procs[idx], active=True)
    kept = []
    skip = False
    for p in procs:  # docs/kitchen.md 3.3 step 4: tick
        if skip:
            kept.append(p)
            skip = False
            continue
        p = _update(w, p, active=False)
        if p[5]:
            skip = world.legacy_skip
        else:
            kept.append(p)
    return State(robot, held, piles, cont_at, tuple(w.flags), added, tuple(w.meals), tuple(kept))


class _Work:
    __slots__ = ("piles", "cont_at", "flags", "meals")

    def __init__(self, piles, cont_at, flags, meals):
        self.piles, self.cont_at, self.flags, self.meals = piles, cont_at, flags, meals


def _update(w: _Work, p: tuple, active: bool) -> tuple:
    """One update of process p (action update if `active`, else a tick); returns the new tuple."""
    kind, a, b, c, prog, done = p
    if done:
        return p
    if kind == P_CUTC:
        if not active:
            return p
        prog += 1
        if prog == CUTS_NEEDED:
            w.flags[a] |= CUT
            done = True
        return (kind, a, b, c, prog, done)
    if kind == P_CUTG:
        if w.flags[a] & FRYABLEIFCUT and w.flags[a] & CUT:
            w.flags[a] |= FRYABLE
            return (kind, a, b, c, prog, True)
        w.flags[a] &= ~FRYABLE
        return p
    # Guarded timers: cook/fry guard item_on(item, station); fill/boil guard container_at(pot, station).
    if kind in (P_COOK, P_FRY):
        pile = w.piles[b]
        holds = bool(pile) and pile[0] == a
    elif kind == P_FILL:  # (pot, sink)
        holds = w.cont_at[a] == b
    else:  # P_BOIL: (meal, pot, stove)
        holds = w.cont_at[b] == c
    if not holds:
        if kind == P_COOK:
            w.flags[a] &= ~COOKING
        return p
    if kind == P_COOK:
        w.flags[a] |= COOKING
    if active:
        return p
    prog += 1
    if prog < TIMER_TICKS:
        return (kind, a, b, c, prog, False)
    if kind == P_COOK:
        w.flags[a] = (w.flags[a] | COOKED) & ~COOKING
    elif kind == P_FRY:
        w.flags[a] |= FRIED
    elif kind == P_FILL:
        w.meals.append((a, False))
    else:  # P_BOIL: (meal, pot, stove)
        w.meals[a] = (w.meals[a][0], True)
    return (kind, a, b, c, prog, True)


def _set(t: tuple, i: int, v) -> tuple:
    return t[:i] + (v,) + t[i + 1:]
