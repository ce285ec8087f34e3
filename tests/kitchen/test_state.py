"""Preconditions and effects of every action, timers, cutting, frying, soups (docs/kitchen.md 3)."""

from taskplan.kitchen.env import KitchenEnv
from tests.kitchen.helpers import kitchen, run

# A kitchen with one of every station, robot facing table1 at (0,1).
STATIONS = [("table", 0, 1), ("table", 0, 3), ("stove", 1, 1), ("board", 2, 1), ("fryer", 3, 1),
            ("sink", 4, 1), ("table", 5, 1)]


def lines(env: KitchenEnv, header: str) -> list[str]:
    block = [b for b in env.observation().split("\n\n") if b.startswith(header)]
    return block[0].splitlines()[1:] if block else []


def test_pick_place_preconditions_and_effects():
    env = kitchen("cheese_sandwich", STATIONS, [("cheese", 0, 1, 0, []), ("bread", 0, 3, 0, [])])
    acts = env.action_texts()
    assert "Pick up cheese1 from table1 using robot1" in acts
    assert acts[-1] == "Do nothing"
    assert not env.step("Place cheese1 on table1 using robot1").valid, "cannot place what is not held"
    run(env, "Pick up cheese1 from table1 using robot1")
    assert "robot1 is holding cheese1" in lines(env, "Player robot1")
    assert "table1 has nothing on it" in lines(env, "Station table1")
    assert "cheese1 is held by robot1" in lines(env, "Item cheese1")
    assert not any(a.startswith("Pick up") for a in env.action_texts()), "one item in hand"
    run(env, "Move robot1 from table1 to table2")
    assert "Place cheese1 on table2 using robot1" not in env.action_texts(), "table2 is occupied"
    run(env, "Stack cheese1 on top of bread1 using robot1")
    assert "cheese1 is directly on top of bread1" in lines(env, "Item cheese1")
    assert "bread1 is directly under cheese1" in lines(env, "Item bread1")
    assert "Pick up bread1 from table2 using robot1" not in env.action_texts(), "only lone items are picked"
    run(env, "Unstack cheese1 from bread1 using robot1")
    assert "robot1 is holding cheese1" in lines(env, "Player robot1")


def test_invalid_action_changes_nothing():
    env = kitchen("cheese_sandwich", STATIONS, [("cheese", 0, 1, 0, [])])
    before = env.state
    res = env.step("Cut cheese1 on table1 using robot1")
    assert not res.valid and env.state == before and env.steps == 0


def test_cook_takes_three_more_steps_and_resumes_after_leaving():
    env = kitchen("burger", STATIONS, [("patty", 1, 1, 0, ["iscookable"])])
    run(env, "Move robot1 from table1 to stove1", "Cook patty1 on stove1 using robot1")
    assert "patty1 is cooking" in lines(env, "Item patty1")
    assert "Cook patty1 on stove1 using robot1" not in env.action_texts(), "not while cooking"
    run(env, "Do nothing")                                         # tick 2
    run(env, "Pick up patty1 from stove1 using robot1")            # guard fails: paused at 2
    assert "patty1 is cooking" not in lines(env, "Item patty1")
    run(env, "Do nothing", "Place patty1 on stove1 using robot1")  # resumes: tick 3
    assert "patty1 is cooking" in lines(env, "Item patty1")
    assert "patty1 is cooked" not in lines(env, "Item patty1")
    run(env, "Do nothing")                                         # tick 4
    assert "patty1 is cooked" in lines(env, "Item patty1")
    assert "patty1 is cooking" not in lines(env, "Item patty1")


def test_cook_progress_does_not_transfer_between_stoves():
    stations = STATIONS + [("stove", 5, 3)]
    env = kitchen("burger", stations, [("patty", 1, 1, 0, ["iscookable"])])
    run(env, "Move robot1 from table1 to stove1", "Cook patty1 on stove1 using robot1", "Do nothing",
        "Pick up patty1 from stove1 using robot1", "Move robot1 from stove1 to stove2",
        "Place patty1 on stove2 using robot1", "Cook patty1 on stove2 using robot1", "Do nothing", "Do nothing")
    assert "patty1 is cooked" not in lines(env, "Item patty1")
    run(env, "Do nothing")
    assert "patty1 is cooked" in lines(env, "Item patty1")


def test_cutting_needs_three_cuts_and_progress_follows_the_item():
    stations = STATIONS + [("board", 5, 3)]
    env = kitchen("lettuce_sandwich", stations, [("lettuce", 2, 1, 0, ["iscuttable"])])
    run(env, "Move robot1 from table1 to board1", "Cut lettuce1 on board1 using robot1",
        "Cut lettuce1 on board1 using robot1", "Pick up lettuce1 from board1 using robot1",
        "Move robot1 from board1 to board2", "Place lettuce1 on board2 using robot1")
    assert "lettuce1 is cut" not in lines(env, "Item lettuce1")
    run(env, "Cut lettuce1 on board2 using robot1")
    assert "lettuce1 is cut" in lines(env, "Item lettuce1")


def test_fryable_after_cut_then_fry():
    env = kitchen("tomato_burger_and_fries", STATIONS, [("potato", 2, 1, 0, ["iscuttable", "isfryableifcut"])])
    run(env, "Move robot1 from table1 to board1", *["Cut potato1 on board1 using robot1"] * 3)
    item = lines(env, "Item potato1")
    assert "potato1 is cut" in item and "potato1 can be fried in a fryer" in item
    run(env, "Pick up potato1 from board1 using robot1", "Move robot1 from board1 to fryer1",
        "Place potato1 on fryer1 using robot1", "Fry potato1 on fryer1 using robot1", "Do nothing", "Do nothing")
    assert "potato1 is fried" not in lines(env, "Item potato1")
    run(env, "Do nothing")
    assert "potato1 is fried" in lines(env, "Item potato1")


def test_soup_fill_boil_add_pour():
    env = kitchen("potato_soup", STATIONS, [("potato", 0, 1, 0, ["iscuttable"])],
                  containers=[("pot", 0, 3), ("bowl", 5, 1)])
    run(env, "Move robot1 from table1 to table2", "Pick up pot1 from table2 using robot1",
        "Move robot1 from table2 to sink1", "Place pot1 on sink1 using robot1",
        "Fill pot1 with water from sink1 using robot1", "Do nothing", "Do nothing")
    assert not lines(env, "Meal water1")
    run(env, "Do nothing")
    assert "water1 is inside of pot1" in lines(env, "Meal water1")
    run(env, "Pick up pot1 from sink1 using robot1", "Move robot1 from sink1 to stove1",
        "Place pot1 on stove1 using robot1", "Boil pot1's contents on stove1 using robot1",
        "Move robot1 from stove1 to table1", "Pick up potato1 from table1 using robot1",
        "Move robot1 from table1 to stove1", "Add potato1 into pot1 using robot1")
    assert "potato1 is added to water1" in lines(env, "Item potato1")
    assert "water1 is boiling" in lines(env, "Meal water1")
    assert not env.done
    run(env, "Pick up pot1 from stove1 using robot1", "Move robot1 from stove1 to table3",
        "Fill bowl1 with pot1's contents using robot1")
    assert "bowl1 contains water1" in lines(env, "Container bowl1")
    assert env.done, "boiling water with a potato served in a bowl on a table"


def test_legacy_skip_delays_the_successor_timer():
    """Spec 3.3: a finishing process makes its successor in the pending list miss that tick."""
    def cook_done_after(legacy: bool) -> int:
        inst = {"task": "tomato_burger_and_fries", "width": 6, "height": 6,
                "stations": [{"kind": k, "x": x, "y": y} for k, x, y in STATIONS],
                "items": [{"kind": "chicken", "x": 3, "y": 1, "level": 0, "flags": ["isfryable"]},
                          {"kind": "patty", "x": 1, "y": 1, "level": 0, "flags": ["iscookable"]}],
                "containers": [], "robot": {"x": 3, "y": 0, "facing": [0, 1]}}
        env = KitchenEnv(inst, legacy_skip=legacy)
        env.reset()
        run(env, "Fry chicken1 on fryer1 using robot1", "Move robot1 from fryer1 to stove1",
            "Cook patty1 on stove1 using robot1")
        while "patty1 is cooked" not in lines(env, "Item patty1"):
            run(env, "Do nothing")
        return env.steps
    assert cook_done_after(False) == 6      # cook at step 3 -> cooked after step 6
    assert cook_done_after(True) == 7       # the fry finishing at step 4 steals one tick


def test_states_are_immutable_and_hashable():
    env = kitchen("cheese_sandwich", STATIONS, [("cheese", 0, 1, 0, [])])
    s0 = env.state
    run(env, "Pick up cheese1 from table1 using robot1")
    assert s0 != env.state and hash(s0) != hash(env.state)
    assert {s0: 1}[env.initial] == 1
