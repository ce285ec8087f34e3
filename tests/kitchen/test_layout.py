"""Instances: default layouts as docs/kitchen.md 7.3 lists them, seeded layouts, instance-file validation."""

import json

import pytest

from taskplan.errors import InstanceError, UnknownTaskError
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import build, default_instance, load_instance, seeded_instance, validate_instance
from taskplan.kitchen.tasks import EVAL_SEEDS, all_tasks, get_task, task_names


def describe(task: str) -> str:
    """The docs/kitchen.md 7.3 notation of a default layout: table1*[bread1/bread2] ..."""
    world, state = build(default_instance(task))
    flag = {"iscuttable": "cut", "iscookable": "cook", "isfryable": "fry", "isfryableifcut": "fic", "iscooked": "done"}
    inst = default_instance(task)
    items = sorted(inst["items"], key=lambda i: (i["x"], i["y"], i["level"]))
    out = []
    for s, name in enumerate(world.stations):
        pile = "/".join(world.items[i] + ("{" + ",".join(flag[f] for f in items[i]["flags"]) + "}"
                                           if items[i]["flags"] else "") for i in state.piles[s])
        conts = [world.containers[c] for c, at in enumerate(state.cont_at) if at == s]
        out.append(name + ("*" if state.robot == s else "") + (f"[{pile}]" if pile else "")
                   + (f"[{conts[0]}]" if conts else ""))
    return " ".join(out)


SPEC_7_3 = {
    "cheese_sandwich": "table1*[bread1] table2[bread2] table3[cheese1] table4",
    "burger": "table1*[bottombun1] table2[topbun1] table3[patty1{done}]",
    "double_cheeseburger": "table1*[bottombun1/topbun1] table2[cheese1/cheese2] table3[patty1{done}/patty2{done}] table4",
    "two_lettuce_tomato_burger": "table1*[bottombun1/topbun1] table2[bottombun2/topbun2] table3[patty1{done}/patty2{done}] "
                                 "board1 table4[lettuce1{cut}] table5[tomato1{cut}] table6[lettuce2{cut}] table7[tomato2{cut}] table8",
    "tomato_burger_and_fries": "table1*[bottombun1/topbun1] stove1 board1 table2[potato1{cut,fic}] fryer1 table3[patty1{cook}] table4[tomato1{cut}]",
    "potato_soup": "table1*[potato1{cut}] table2[bowl1] stove1 table3[pot1] board1 sink1",
    "onion_potato_soup_and_fried_onion_ring_lettuce_burger_and_onion_cheese_sandwich":
        "fryer1* table1[onion1{cut,fic}] table2[bread1/bread2] stove1 table3[potato1{cut,fic}] table4[onion2{cut,fic}] "
        "table5[pot1] table6[onion3{cut,fic}] table7[chicken1{cook}] board1 table8[lettuce1{cut}] table9[bowl1] sink1 "
        "table10[bottombun1/topbun1]",
}


@pytest.mark.parametrize("task", sorted(SPEC_7_3))
def test_default_layouts_match_the_spec_listing(task):
    assert describe(task) == SPEC_7_3[task]


def test_catalogue_has_twenty_evaluable_tasks_with_caps():
    assert len(task_names("sync")) == 10 and len(task_names("async")) == 10
    assert get_task("double_cheeseburger").step_cap == 35 and get_task("burger").step_cap == 15
    with pytest.raises(UnknownTaskError, match="unknown task 'cheeseburgr'"):
        get_task("cheeseburgr")


def test_seeded_layouts_are_deterministic_and_differ_across_seeds():
    a, b = seeded_instance("cheeseburger", 42), seeded_instance("cheeseburger", 42)
    assert a == b
    layouts = {json.dumps(seeded_instance("cheeseburger", s), sort_keys=True) for s in EVAL_SEEDS}
    assert len(layouts) == len(EVAL_SEEDS)


@pytest.mark.parametrize("task", [t.name for t in all_tasks()])
def test_every_evaluation_seed_gives_a_valid_flattened_instance(task):
    for seed in EVAL_SEEDS:
        inst = seeded_instance(task, seed)
        validate_instance(inst)
        assert all(i["level"] == 0 for i in inst["items"]), "seeded piles are flattened"
        kinds = [i["kind"] for i in inst["items"]]
        for need in get_task(task).default["items"]:
            assert need["kind"] in kinds, f"{task}/{seed} lost a task item"
        env = KitchenEnv(inst)
        assert "Valid Actions:" in env.reset()


def test_instance_file_round_trip(tmp_path):
    inst = seeded_instance("burger", 84)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(inst))
    assert KitchenEnv.from_spec(instance=path).reset() == KitchenEnv(inst).reset()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["stations"].append({"kind": "oven", "x": 4, "y": 4}), "unknown kind 'oven'"),
    (lambda d: d["stations"].append(dict(d["stations"][0])), "two stations on cell"),
    (lambda d: d["items"][0].update(x=4, y=4), "off every station"),
    (lambda d: d["items"][0].update(flags=["isburnt"]), "flags"),
    (lambda d: d["robot"].update(facing=[1, 1]), "facing"),
    (lambda d: d.update(task="pizza"), "unknown task"),
    (lambda d: d.pop("robot"), "missing key 'robot'"),
    (lambda d: d["stations"][0].update(x=99), "outside the"),
    (lambda d: d["robot"].update(x=-1, y=3, facing=[1, 0]), r"robot at \(-1, 3\) is outside the 5x5 grid"),
    (lambda d: d["robot"].update(x=5), "robot at .* outside the 5x5 grid"),
    (lambda d: d["robot"].update(x=[0]), "robot x and y must be integers"),
    (lambda d: d.update(stations=5), "stations must be a list"),
    (lambda d: d.update(task=["burger"]), "task must be a task name"),
])
def test_malformed_instances_are_rejected_with_one_line(tmp_path, mutate, message):
    inst = default_instance("burger")
    mutate(inst)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(inst))
    with pytest.raises((InstanceError, UnknownTaskError), match=message) as err:
        load_instance(path)
    assert "\n" not in str(err.value)


JUNK = [None, True, -1, 10**6, 1.5, "x", [], [1], [[0]], {}, {"kind": "table"}]


def _paths(doc, prefix=()):
    yield prefix
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in children:
        yield from _paths(value, prefix + (key,))


def test_any_junk_value_anywhere_is_a_one_line_error_or_accepted():
    """Hostile instance files: every value of a valid instance replaced by junk of every JSON type."""
    base = default_instance("burger")
    for path in [p for p in _paths(base) if p]:
        for junk in JUNK:
            inst = json.loads(json.dumps(base))
            parent = inst
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = junk
            try:
                validate_instance(inst)
            except (InstanceError, UnknownTaskError) as err:
                assert "\n" not in str(err)
                continue
            build(inst)   # accepted: it must also build


def test_unreadable_instance_files_are_one_line_errors(tmp_path, unreadable_files):
    f = unreadable_files
    for path, message in [(f["directory"], "a directory"), (f["loop"], "symbolic links"), (f["binary"], "not UTF-8"),
                          (f["deep"], "nested too deeply"), (tmp_path / "absent.json", "no such file")]:
        with pytest.raises(InstanceError, match=message) as err:
            load_instance(path)
        assert "\n" not in str(err.value)


def test_not_json_is_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(InstanceError, match="not JSON"):
        load_instance(path)
