"""The planner's parts: distinct-object assignment, symmetry keys, and the admissible bound."""

import itertools
import random

import pytest

from taskplan.expert.assignment import INF, matched_blockers, min_assignment
from taskplan.expert.bfs import bfs
from taskplan.expert.heuristic import Heuristic
from taskplan.expert.planner import plan_state
from taskplan.expert.symmetry import Canonicalizer
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import default_instance, seeded_instance
from taskplan.kitchen.state import State, step, valid_actions


def _brute_assignment(rows):
    n = len(rows[0]) if rows else 0
    best = INF
    for cols in itertools.permutations(range(n), len(rows)):
        best = min(best, sum(r[c] for r, c in zip(rows, cols)))
    return min(best, INF)


def test_min_assignment_uses_distinct_objects():
    assert min_assignment([(4, 9, 6), (4, 9, 6)]) == 10          # not 4 + 4
    assert min_assignment([(0, 10), (3, 4)]) == 4                # the in-place object stays
    assert min_assignment([(1,), (1,)]) == INF                   # two roles, one object
    assert min_assignment([]) == 0


def test_min_assignment_matches_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        n_obj = rng.randint(1, 5)
        kinds = [tuple(rng.choice((0, 2, 4, 5, 9, INF)) for _ in range(n_obj)) for _ in range(rng.randint(1, 3))]
        rows = [rng.choice(kinds) for _ in range(rng.randint(1, n_obj))]
        assert min_assignment(rows) == _brute_assignment(rows)


def test_matched_blockers_is_a_maximum_matching():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(1, 3)
        blockers = [rng.randint(0, 2) for _ in range(n)]
        roles = [rng.randint(0, 2) for _ in range(n)]
        slots = [(j, k) for j in range(n) for k in range(roles[j])]
        items = [i for i in range(n) for _ in range(blockers[i])]
        best = 0
        for size in range(len(items), 0, -1):        # brute force: largest set of blockers with distinct roles
            if any(all(s[0] != i for i, s in zip(chosen, assign))
                   for chosen in itertools.combinations(items, size)
                   for assign in itertools.permutations(slots, size)):
                best = size
                break
        assert matched_blockers(blockers, roles) == best


def _swap_items(state: State, a: int, b: int) -> State:
    """The same kitchen with items a and b trading names (they must be of one kind)."""
    ren = {a: b, b: a}
    r = lambda i: ren.get(i, i)
    piles = tuple(tuple(r(i) for i in p) for p in state.piles)
    flags, added = list(state.flags), list(state.added)
    flags[a], flags[b] = state.flags[b], state.flags[a]
    added[a], added[b] = state.added[b], state.added[a]
    held = r(state.held) if 0 <= state.held < len(state.flags) else state.held
    pending = tuple((k, r(x) if k in (0, 1, 4, 5) else x, y, z, p, d) for k, x, y, z, p, d in state.pending)
    return State(state.robot, held, piles, state.cont_at, tuple(flags), tuple(added), state.meals, pending)


def test_renamed_twins_share_a_key_and_different_states_do_not():
    env = KitchenEnv(default_instance("two_lettuce_chicken_sandwich"))
    canon = Canonicalizer(env.world)
    breads = [i for i, k in enumerate(env.world.item_kinds) if k == "bread"]
    rng = random.Random(2)
    s = env.initial
    for _ in range(12):
        s = step(env.world, s, rng.choice(valid_actions(env.world, s)))
        twin = _swap_items(s, breads[0], breads[2])
        assert canon.key(twin) == canon.key(s)
    moved = step(env.world, s, valid_actions(env.world, s)[0])
    assert canon.key(moved) != canon.key(s)


def test_states_sharing_a_key_have_the_same_optimum():
    env = KitchenEnv(seeded_instance("cheese_chicken_sandwich", 42))
    canon = Canonicalizer(env.world)
    by_key: dict[bytes, list[State]] = {}
    rng = random.Random(3)
    for _ in range(40):
        s = env.initial
        for _ in range(rng.randint(1, 6)):
            s = step(env.world, s, rng.choice(valid_actions(env.world, s)))
        by_key.setdefault(canon.key(s), []).append(s)
    groups = [g for g in by_key.values() if len(set(g)) > 1]
    for group in groups[:3]:
        lengths = {plan_state(env.world, s, env.goal).optimal_steps for s in set(group)}
        assert len(lengths) == 1


@pytest.mark.parametrize("task, seed", [("burger", 42), ("cheese_chicken_sandwich", None),
                                        ("potato_soup", None), ("lettuce_sandwich", None), ("cheeseburger", None)])
def test_bound_never_exceeds_the_breadth_first_distance(task, seed):
    env = KitchenEnv(default_instance(task) if seed is None else seeded_instance(task, seed))
    h = Heuristic(env.world, env.goal)
    rng = random.Random(4)
    checked = 0
    for _ in range(6):
        s = env.initial
        for _ in range(rng.randint(0, 14)):
            s = step(env.world, s, rng.choice(valid_actions(env.world, s)))
        ref = bfs(env.world, s, env.goal, max_seconds=3.0)   # None: a dead end (soup poured too early) or cut off
        if ref.length is not None:
            checked += 1
            assert h(s) <= ref.length
    assert checked >= 2
