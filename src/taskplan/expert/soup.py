"""The soup part of the planner's lower bound (heuristic.py): pot, water, boil, pour, bowl.

    fixed, path, todo = soup_cost(ctx, role_cost)   # ctx: heuristic._Ctx of one state

`fixed` counts the pot's and bowl's own actions (carry to a sink, Fill, carry to
a stove, Boil, pick + carry + pour, the bowl onto a table), `path` the critical
path through the fill and boil timers, and `todo` the ingredient roles still to
add, which the caller prices together with the dishes' roles (distinct objects).
Empty-handed arrivals are counted where nothing else can end the move: at a pot
without water (it takes no ingredient) and at a bowl that must be moved.
"""

from __future__ import annotations

from taskplan.kitchen.domain import TIMER_TICKS
from taskplan.kitchen.state import P_BOIL, P_FILL


def soup_cost(ctx, role_cost: dict[int, tuple[int, int, int]]) -> tuple[int, int, list[int]]:
    """(pot and bowl actions, critical path, ingredient roles still to add: priced by the caller)."""
    s, h, m = ctx.s, ctx.h, ctx.h.model
    meal = s.meals[0] if s.meals else None
    added = [i for i, mm in enumerate(s.added) if mm == 0]
    cost, path, ing_path = 0, 0, 0
    todo = list(m.soup_items)
    for r in list(todo):
        hit = next((i for i in added if ctx.matches(i, m.role_kind[r], m.role_flags[r])), None)
        if hit is not None:
            added.remove(hit)
            todo.remove(r)
    for r in todo:   # add-to replaces the put; same count (charged in combo_cost)
        ing_path = max(ing_path, role_cost[r][1])
    held = s.held
    if todo and 0 <= held < h.world.n_items and s.robot in s.cont_at \
            and any(h.world.item_kinds[held] == m.role_kind[r] for r in todo):
        cost -= 1    # holding an ingredient beside the pot: no carry needed
    pot_at = s.cont_at[h.pots[0]] if h.pots else -1
    pot_held = bool(h.pots) and s.held == h.world.n_items + h.pots[0]
    r = s.robot
    free_here = not s.piles[r] and r not in s.cont_at

    def carry(kind: str) -> int:       # (pick,) (move,) place the pot on a station of `kind`
        if not pot_held:
            return 3
        return 1 if free_here and h.is_kind[kind][r] else 2
    need_fill = meal is None
    need_boil = meal is None or not meal[1]
    in_bowl = meal is not None and meal[0] in h.bowls
    if need_fill:
        prog = ctx.timer.get((P_FILL, h.pots[0]), -1) if h.pots else -1
        if prog >= 0:
            path += TIMER_TICKS - prog
        else:
            at_sink = pot_at >= 0 and h.is_kind["sink"][pot_at]
            # unless held, an empty-handed arrival: at the pot to pick it, or at the sink to fill it
            # (a pot without water takes no ingredient, so no carried item can end the move there)
            cost += 1 + (0 if at_sink else carry("sink")) + (0 if pot_held else 1)
            path += (0 if at_sink else carry("sink")) + TIMER_TICKS
    if need_boil:
        prog = ctx.timer.get((P_BOIL, 0), -1)
        if prog >= 0 and not need_fill:
            path += TIMER_TICKS - prog
        else:
            on_stove = not need_fill and pot_at >= 0 and h.is_kind["stove"][pot_at]
            setup = 0 if on_stove else (3 if need_fill else carry("stove"))
            cost += 1 + setup
            path += setup + TIMER_TICKS
    if not in_bowl:
        # pick the pot, carry it to the bowl, pour
        bowl_here = bool(h.bowls) and s.cont_at[h.bowls[0]] == s.robot
        pour = 3 if not pot_held or need_boil else (1 if bowl_here else 2)
        cost += pour
        path += pour
    if m.bowl_on_table and h.bowls:
        b_at = s.cont_at[h.bowls[0]]
        if not (b_at >= 0 and h.is_kind["table"][b_at]):
            cost += 1 if b_at < 0 else 4             # (empty-handed arrival, pick,) move, place
    return cost, max(path, ing_path), todo
