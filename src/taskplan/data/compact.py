"""Compact observation text: the same facts as the kitchen's observation, in about a third of the tokens.

    compact_observation(env.observation())   # str -> str, a pure function of the text

The `compact` prompt style (the cpu-tiny profile's) rewrites the observation the
environment prints (docs/kitchen.md 5) before it goes into the prompt. It drops
only the lines that the pile of each station already says, and strips the
repeated subject name from the rest:

    Station table1:                         table1 is a table, on it: bread2 cheese1
    table1 is a table                 ->    ...
    table1 has bread2                       cheese1 is at table1, is a cheese slice
    table1 has cheese1
    table1 has bread2 directly on top of it (pile bottom-up: item_on, atop, clear and
    table1 has no players at it              the station's "has X" lines are implied)

A station's `is occupied by` / `has no players at it` lines are implied by the
robot's `is at` line, which stays. Every other fact (kinds, flags, holding,
containers, meals, added-to) is kept as it is, with an object's location first
(`is at`, `is held by`), so nothing the agent could see is hidden: `tests/data/test_compact.py` checks that distinct observations of the
trajectories never map to the same compact text. The valid actions and the goal
are copied unchanged, so a reply is parsed against exactly the environment's
action strings. Text that does not look like an observation is returned as is.
"""

from __future__ import annotations

_HEADERS = ("Station ", "Item ", "Player ", "Container ", "Meal ")


def compact_observation(text: str) -> str:
    """The compact form of one observation (unchanged if it is not in the block format of docs/kitchen.md 5)."""
    blocks = text.split("\n\n")
    objects: list[tuple[str, str, list[str]]] = []    # (type, name, fact phrases without the name)
    tail: list[str] = []
    for block in blocks:
        lines = block.split("\n")
        head = lines[0]
        if head.startswith(_HEADERS) and head.endswith(":"):
            kind, name = head[:-1].split(" ", 1)
            facts = [ln[len(name) + 1:] if ln.startswith(name + " ") else ln for ln in lines[1:]]
            objects.append((kind, name, facts))
        else:
            tail.append(block)
    if not objects:
        return text
    piles = _piles(objects)    # None: facts that do not form piles, so every line is kept
    out = [_object_line(kind, name, facts, piles) for kind, name, facts in objects]
    return "\n".join(out) + ("\n\n" + "\n\n".join(tail) if tail else "")


def _piles(objects: list[tuple[str, str, list[str]]]) -> dict[str, list[str]] | None:
    """Station -> items bottom-up, rebuilt from `is directly on top of` facts; None if inconsistent."""
    stations = {name for kind, name, _ in objects if kind == "Station"}
    below: dict[str, str] = {}
    for kind, name, facts in objects:
        if kind != "Item":
            continue
        for f in facts:
            if f.startswith("is directly on top of "):
                below[name] = f[len("is directly on top of "):]
    piles: dict[str, list[str]] = {}
    above = {v: k for k, v in below.items()}
    if len(above) != len(below):
        return None
    for station in stations:
        pile, cur = [], station
        while cur in above and len(pile) <= len(below):
            cur = above[cur]
            pile.append(cur)
        if pile:
            piles[station] = pile
    if sum(len(p) for p in piles.values()) != len(below):
        return None
    return piles


def _object_line(kind: str, name: str, facts: list[str], piles: dict[str, list[str]] | None) -> str:
    if kind == "Station" and piles is not None:
        pile = piles.get(name, [])
        implied = {f"has {i}" for i in pile} | ({f"has {pile[0]} directly on top of it"} if pile else set())
        kept = [f for f in facts if f not in implied and f != "has no players at it"
                and not f.startswith("is occupied by ")]
        if pile:
            kept.append("on it: " + " ".join(pile))
        return f"{name} " + ", ".join(kept)
    if kind == "Item" and piles is not None and any(name in p for p in piles.values()):
        kept = [f for f in facts if not f.startswith(("is directly on top of ", "is directly under "))
                and f != "has nothing above it"]
        return f"{name} " + ", ".join(_where_first(kept))
    return f"{name} " + ", ".join(_where_first(facts))


def _where_first(facts: list[str]) -> list[str]:
    """Where an object is goes right after its name (`patty1 is at stove3, ...`): then the name of the
    station sits two tokens after the item's, the pattern a small model learns to copy from."""
    where = [f for f in facts if f.startswith(("is at ", "is held by "))]
    return where + [f for f in facts if f not in where]
