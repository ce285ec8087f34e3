"""Goal semantics: chains need the exact order, piles only the bottom, fillings and a clear top."""

from tests.kitchen.helpers import kitchen, run

SANDWICH = [("table", 0, 1), ("table", 0, 3), ("table", 2, 3), ("table", 3, 3)]


def test_chain_goal_needs_the_exact_order():
    # cheese_sandwich: table -> bread -> cheese -> bread
    env = kitchen("cheese_sandwich", SANDWICH,
                  [("bread", 0, 1, 0, []), ("bread", 0, 3, 0, []), ("cheese", 2, 3, 0, [])], robot=(0, 2, (0, -1)))
    run(env, "Move robot1 from table1 to table2", "Pick up bread2 from table2 using robot1",
        "Move robot1 from table2 to table1", "Stack bread2 on top of bread1 using robot1",
        "Move robot1 from table1 to table3", "Pick up cheese1 from table3 using robot1",
        "Move robot1 from table3 to table1", "Stack cheese1 on top of bread2 using robot1")
    assert not env.done, "bread / bread / cheese is not a cheese sandwich"
    env.reset()
    run(env, "Move robot1 from table1 to table3", "Pick up cheese1 from table3 using robot1",
        "Move robot1 from table3 to table1", "Stack cheese1 on top of bread1 using robot1",
        "Move robot1 from table1 to table2", "Pick up bread2 from table2 using robot1",
        "Move robot1 from table2 to table1")
    assert not env.done
    run(env, "Stack bread2 on top of cheese1 using robot1")
    assert env.done


def _burger_kitchen(extra_cheese: bool = False):
    tables = SANDWICH + [("table", 4, 3), ("table", 5, 3)]
    items = [("bottombun", 0, 1, 0, []), ("patty", 0, 3, 0, ["iscooked"]), ("cheese", 2, 3, 0, []),
             ("topbun", 3, 3, 0, [])] + ([("cheese", 4, 3, 0, [])] if extra_cheese else [])
    return kitchen("cheeseburger", tables, items, robot=(0, 2, (0, -1)))


def _fetch(item: str, station: str, onto: str) -> list[str]:
    return [f"Move robot1 from table1 to {station}", f"Pick up {item} from {station} using robot1",
            f"Move robot1 from {station} to table1", f"Stack {item} on top of {onto} using robot1"]


def test_pile_goal_accepts_either_filling_order():
    # cheeseburger: [bottombun | cheese, patty | topbun], fillings in any order
    env = _burger_kitchen()
    run(env, *_fetch("patty1", "table2", "bottombun1"), *_fetch("cheese1", "table3", "patty1"),
        *_fetch("topbun1", "table4", "cheese1"))
    assert env.done and env.goal.match(env.state) is not None, "patty then cheese"
    env = _burger_kitchen()
    run(env, *_fetch("cheese1", "table3", "bottombun1"), *_fetch("patty1", "table2", "cheese1"))
    assert not env.done, "no top bun yet"
    run(env, *_fetch("topbun1", "table4", "patty1"))
    assert env.done, "cheese then patty"


def test_pile_goal_needs_a_clear_top():
    env = _burger_kitchen(extra_cheese=True)   # cheese1 on table3, a spare cheese2 on table5
    run(env, *_fetch("patty1", "table2", "bottombun1"), *_fetch("cheese1", "table3", "patty1"),
        *_fetch("topbun1", "table4", "cheese1"))
    assert env.done
    run(env, *_fetch("cheese2", "table5", "topbun1"))
    assert not env.done, "something on the top bun breaks the burger"


def test_goal_requires_processed_ingredients():
    env = kitchen("cheeseburger", SANDWICH + [("table", 4, 3)],
                  [("bottombun", 0, 1, 0, []), ("patty", 0, 3, 0, ["iscookable"]), ("cheese", 2, 3, 0, []),
                   ("topbun", 3, 3, 0, [])], robot=(0, 2, (0, -1)))
    run(env, "Move robot1 from table1 to table2", "Pick up patty1 from table2 using robot1",
        "Move robot1 from table2 to table1", "Stack patty1 on top of bottombun1 using robot1",
        "Move robot1 from table1 to table3", "Pick up cheese1 from table3 using robot1",
        "Move robot1 from table3 to table1", "Stack cheese1 on top of patty1 using robot1",
        "Move robot1 from table1 to table4", "Pick up topbun1 from table4 using robot1",
        "Move robot1 from table4 to table1", "Stack topbun1 on top of cheese1 using robot1")
    assert not env.done, "the patty is raw"
