"""The planner's bound (expert/heuristic.py): how it reads a goal, that it never overestimates the steps
left, that it is informative, and that it answers INF where no plan exists. (Random states against
breadth-first distances: tests/expert/test_search_parts.py.)"""

import pytest

from taskplan.expert.heuristic import INF, Heuristic, goal_model
from taskplan.expert.planner import plan_state
from taskplan.kitchen.domain import COOKED, CUT
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import default_instance, seeded_instance
from taskplan.kitchen.state import step

CASES = [("burger", None), ("cheese_sandwich", 126), ("cheeseburger", None), ("cheeseburger", 42),
         ("lettuce_sandwich", None), ("potato_soup", None), ("cheese_chicken_sandwich", None)]


def _env(task: str, seed: int | None) -> KitchenEnv:
    return KitchenEnv(default_instance(task) if seed is None else seeded_instance(task, seed))


def _kinds(world, goal) -> dict[str, list[str]]:
    model = goal_model(world, goal)
    return {"chain": [model.role_kind[r] for d in model.dishes for r in d.chain],
            "members": sorted(model.role_kind[r] for d in model.dishes for r in d.members),
            "ends": [model.role_kind[r] for d in model.dishes for r in (d.bottom, d.top) if r is not None]}


def test_goal_model_reads_exact_stacks_free_fillings_flags_and_soups():
    env = _env("burger", None)
    model = goal_model(env.world, env.goal)
    assert _kinds(env.world, env.goal)["chain"] == ["bottombun", "patty", "topbun"], "atop: an exact order"
    patty = next(r for r, k in model.role_kind.items() if k == "patty")
    assert model.role_flags[patty] == COOKED and not model.has_soup

    env = _env("cheeseburger", None)
    kinds = _kinds(env.world, env.goal)
    assert kinds["chain"] == [] and kinds["members"] == ["cheese", "patty"], "item_at: fillings in any order"
    assert kinds["ends"] == ["bottombun", "topbun"], "the bottom, and the clear item on top"

    env = _env("lettuce_sandwich", None)
    model = goal_model(env.world, env.goal)
    lettuce = next(r for r, k in model.role_kind.items() if k == "lettuce")
    assert model.role_flags[lettuce] == CUT

    env = _env("potato_soup", None)
    model = goal_model(env.world, env.goal)
    assert model.has_soup and model.bowl_on_table and model.dishes == []
    assert [model.role_kind[r] for r in model.soup_items] == ["potato"]


@pytest.mark.parametrize("task, seed", CASES)
def test_bound_never_exceeds_the_steps_left_on_an_optimal_plan(task, seed):
    """Every suffix of an optimal plan is optimal from its first state, so len(plan) - k is the exact
    distance of the k-th state: the bound may not exceed it, and is 0 where the goal holds."""
    env = _env(task, seed)
    h = Heuristic(env.world, env.goal)
    plan = plan_state(env.world, env.initial, env.goal)
    state = env.initial
    for k, action in enumerate(plan.actions):
        assert 0 < h(state) <= len(plan.actions) - k, (k, env.world.action_text(action))
        state = step(env.world, state, action)
    assert env.goal.satisfied(state) and h(state) == 0


@pytest.mark.parametrize("task, seed", CASES)
def test_bound_is_informative_at_the_start(task, seed):
    """A bound of 0 everywhere is admissible too and would make A* a breadth-first search; ours counts
    the unavoidable actions: at least three quarters of the optimum on these kitchens."""
    env = _env(task, seed)
    optimum = plan_state(env.world, env.initial, env.goal).optimal_steps
    assert Heuristic(env.world, env.goal)(env.initial) >= 0.75 * optimum


def test_bound_is_inf_where_no_plan_exists():
    one_bread = default_instance("cheese_sandwich")
    breads = [i for i in one_bread["items"] if i["kind"] == "bread"]
    assert len(breads) == 2
    one_bread["items"].remove(breads[0])
    env = KitchenEnv(one_bread)
    assert Heuristic(env.world, env.goal)(env.initial) >= INF, "two bread roles need two distinct breads"

    raw_patty = default_instance("burger")
    for item in raw_patty["items"]:
        if item["kind"] == "patty":
            item["flags"] = []               # neither cooked nor cookable
    env = KitchenEnv(raw_patty)
    assert Heuristic(env.world, env.goal)(env.initial) >= INF
    env = _env("burger", None)               # the same kitchen with its cooked patty
    assert Heuristic(env.world, env.goal)(env.initial) < INF
