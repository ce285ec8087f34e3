"""Observation text (docs/kitchen.md 5), byte-compatible with Robotouille's.

Object blocks (stations, items, player, containers, meals), one line per true
fact in predicate order, then `Valid Actions:` and `Goal: ...`, no trailing
newline.
"""

from __future__ import annotations

from taskplan.kitchen.domain import FLAG_PHRASE, KIND_PHRASE
from taskplan.kitchen.state import State, World, container_on, valid_actions


def render_observation(world: World, state: State, actions: list[str] | None = None) -> str:
    if actions is None:
        actions = [world.action_text(a) for a in valid_actions(world, state)]
    blocks = render_blocks(world, state)
    return "\n\n".join(blocks) + "\n\nValid Actions:\n" + "\n".join(actions) + "\n\nGoal: " + world.goal_text


def render_blocks(world: World, state: State) -> list[str]:
    n_items = world.n_items
    robot = world.robot_name
    held_item = state.held if 0 <= state.held < n_items else -1
    held_cont = state.held - n_items if state.held >= n_items else -1
    where: dict[int, tuple[int, int]] = {}
    for s, pile in enumerate(state.piles):
        for k, i in enumerate(pile):
            where[i] = (s, k)
    blocks = []
    for s, name in enumerate(world.stations):
        pile = state.piles[s]
        cont = container_on(state, s)
        lines = [f"Station {name}:", f"{name} is {KIND_PHRASE[world.station_kinds[s]]}"]
        if state.robot == s:
            lines.append(f"{name} is occupied by {robot}")
        lines += [f"{name} has {world.items[i]}" for i in sorted(pile)]
        if not pile and cont < 0:
            lines.append(f"{name} has nothing on it")
        if pile:
            lines.append(f"{name} has {world.items[pile[0]]} directly on top of it")
        if state.robot != s:
            lines.append(f"{name} has no players at it")
        if cont >= 0:
            lines.append(f"{name} has {world.containers[cont]}")
        blocks.append("\n".join(lines))
    for i, name in enumerate(world.items):
        lines = [f"Item {name}:", f"{name} is {KIND_PHRASE[world.item_kinds[i]]}"]
        f = state.flags[i]
        lines += [f"{name} {phrase}" for bit, phrase in FLAG_PHRASE if f & bit]
        if i in where:
            s, k = where[i]
            pile = state.piles[s]
            lines.append(f"{name} is at {world.stations[s]}")
            if k == 0:
                lines.append(f"{name} is directly on top of {world.stations[s]}")
            if k == len(pile) - 1:
                lines.append(f"{name} has nothing above it")
            # atop(x, y) facts that mention i, ordered by first argument in object order
            atop = []
            if k > 0:
                atop.append((i, f"{name} is directly on top of {world.items[pile[k - 1]]}"))
            if k < len(pile) - 1:
                atop.append((pile[k + 1], f"{name} is directly under {world.items[pile[k + 1]]}"))
            lines += [text for _, text in sorted(atop)]
        if held_item == i:
            lines.append(f"{name} is held by {robot}")
        if state.added[i] >= 0:
            lines.append(f"{name} is added to {world.meal_name(state.added[i])}")
        blocks.append("\n".join(lines))
    lines = [f"Player {robot}:", f"{robot} is a robot", f"{robot} is at {world.stations[state.robot]}"]
    if state.held < 0:
        lines.append(f"{robot} is holding nothing")
    elif held_item >= 0:
        lines.append(f"{robot} is holding {world.items[held_item]}")
    else:
        lines.append(f"{robot} is holding {world.containers[held_cont]}")
    blocks.append("\n".join(lines))
    for c, name in enumerate(world.containers):
        lines = [f"Container {name}:", f"{name} is {KIND_PHRASE[world.container_kinds[c]]}"]
        inside = [m for m, (mc, _) in enumerate(state.meals) if mc == c]
        if not inside:
            lines.append(f"{name} has nothing inside it")
        if held_cont == c:
            lines.append(f"{name} is held by {robot}")
        lines += [f"{name} contains {world.meal_name(m)}" for m in inside]
        if state.cont_at[c] >= 0:
            lines.append(f"{name} is at {world.stations[state.cont_at[c]]}")
        blocks.append("\n".join(lines))
    for m, (c, boiling) in enumerate(state.meals):
        name = world.meal_name(m)
        lines = [f"Meal {name}:", f"{name} is water"]
        if boiling:
            lines.append(f"{name} is boiling")
        lines.append(f"{name} is inside of {world.containers[c]}")
        lines += [f"{name} has {world.items[i]} added to it" for i in range(n_items) if state.added[i] == m]
        blocks.append("\n".join(lines))
    return blocks
