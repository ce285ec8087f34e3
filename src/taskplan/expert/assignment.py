"""Distinct-object assignment for the planner's lower bound.

    min_assignment([(4, 9, 6), (4, 9, 6)])   # two roles, three objects -> 4 + 6 = 10

A goal's placeholders of one kind must be filled by *different* objects
(distinct tags => distinct objects, docs/kitchen.md 6), so the cheapest way
to fill k roles of a kind is a minimum-cost matching of roles to objects, not
k times the cheapest object. Charging every role the cheapest object (what the
bound did before) is admissible but loose: with two lettuces, one nearly cut on
the board, both lettuce roles were priced as that one lettuce, and the search
had to explore every state the gap allowed.

Roles come in few *types* (same row of costs: same need, same deferral), so the
matching is a small dynamic programme over objects with the remaining count
per type as state: a handful of entries for every task in the catalogue.
"""

from __future__ import annotations

INF = 10 ** 6


def min_assignment(rows: list[tuple[int, ...]]) -> int:
    """Least total cost of giving each row (a role) its own column (an object); INF if impossible."""
    if not rows:
        return 0
    n_obj = len(rows[0])
    if len(rows) > n_obj:
        return INF
    if len(rows) == 1:
        return min(rows[0])
    types: dict[tuple[int, ...], int] = {}
    for row in rows:
        types[row] = types.get(row, 0) + 1
    if len(types) == 1:   # identical roles: the k cheapest objects
        total = sum(sorted(rows[0])[:len(rows)])
        return min(INF, total)
    tlist = list(types.items())
    dp: dict[tuple[int, ...], int] = {tuple(n for _, n in tlist): 0}
    for o in range(n_obj):
        new = dict(dp)                         # object o left unused
        for counts, v in dp.items():
            for t, (row, _) in enumerate(tlist):
                if not counts[t] or row[o] >= INF:
                    continue
                nc = counts[:t] + (counts[t] - 1,) + counts[t + 1:]
                nv = v + row[o]
                if nv < new.get(nc, INF):
                    new[nc] = nv
        dp = new
    return dp.get((0,) * len(tlist), INF)


def matched_blockers(blockers: list[int], roles: list[int]) -> int:
    """Most blockers that can each fill a distinct open role of *another* dish.

    blockers[n] / roles[n]: counts of one item kind in dish n. Blockers of dish n
    may use any role outside n; by Hall's theorem the deficiency of this bipartite
    graph is max(0, B - R, max_n blockers[n] - (R - roles[n]))."""
    total_b, total_r = sum(blockers), sum(roles)
    deficiency = max(0, total_b - total_r, *(b - (total_r - r) for b, r in zip(blockers, roles)))
    return total_b - deficiency
