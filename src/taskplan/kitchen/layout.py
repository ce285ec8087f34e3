"""Kitchen instances: the JSON instance format, validation, naming, seeded layouts.

An instance is one kitchen as JSON (docs/pipeline.md 3, "instance file"):
`{"task", "width", "height", "stations": [{"kind","x","y"}], "items": [{"kind",
"x","y","level","flags"}], "containers": [{"kind","x","y"}], "robot": {"x","y",
"facing": [dx, dy]}}`. Names come from the position sort of docs/kitchen.md 1.2 (x, then y;
items on one cell by level), never from the file.

`seeded_instance(task, seed)` implements the distribution of docs/kitchen.md 8
with our own `random.Random(seed)` (bit-exact parity with the original's 200
seeded instances is a non-goal, docs/kitchen.md 10.11): distractor stations and items,
task objects at random cells, reachability kept, robot beside a station, every
pile flattened; a failed draw retries with seed + 1.
"""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path

from taskplan.errors import InstanceError
from taskplan.io import read_json_input
from taskplan.kitchen.domain import CONTAINER_KINDS, FLAG_BITS, ITEM_FLAGS, ITEM_KINDS, STATION_KINDS
from taskplan.kitchen.state import NONE, State, World
from taskplan.kitchen.tasks import Task, get_task

_DIRS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # up, down, right, left (y grows upwards)
_DISTRACTOR_FLAGS = {"patty": ["iscookable"], "chicken": ["iscookable"], "lettuce": ["iscuttable"],
                     "onion": ["iscuttable"], "tomato": ["iscuttable"]}
MAX_SEED_RETRIES = 50


def load_instance(path: Path | str) -> dict:
    """Read and validate an instance file; raises a one-line InstanceError."""
    data = read_json_input(path, "instance file", InstanceError, "write one with `taskplan instance`")
    validate_instance(data, where=str(path))
    return data


def validate_instance(data: dict, where: str = "instance") -> None:
    """Check the format and the physical sanity of one kitchen (raises InstanceError)."""
    def bad(msg: str) -> InstanceError:
        return InstanceError(f"{where}: {msg}")

    if not isinstance(data, dict):
        raise bad("must be a JSON object")
    for key in ("task", "width", "height", "stations", "items", "robot"):
        if key not in data:
            raise bad(f"missing key {key!r}")
    if not isinstance(data["task"], str):
        raise bad(f"task must be a task name (a string), not {data['task']!r}; see `taskplan tasks`")
    get_task(data["task"])
    w, h = data["width"], data["height"]
    if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
        raise bad(f"width/height must be positive integers, got {w!r}x{h!r}")
    for key in ("stations", "items", "containers"):
        if not isinstance(data.get(key, []), list):
            raise bad(f"{key} must be a list of objects, not {type(data[key]).__name__}")
    cells: dict[tuple[int, int], str] = {}
    for n, st in enumerate(data["stations"]):
        _check_obj(st, STATION_KINDS, f"stations[{n}]", w, h, bad)
        cell = (st["x"], st["y"])
        if cell in cells:
            raise bad(f"two stations on cell {cell} ({cells[cell]} and {st['kind']}); move one")
        cells[cell] = st["kind"]
    robot = data["robot"]
    if not isinstance(robot, dict) or not all(k in robot for k in ("x", "y", "facing")):
        raise bad("robot needs x, y and facing [dx, dy]")
    rcell = (robot["x"], robot["y"])
    if not (_is_int(rcell[0]) and _is_int(rcell[1])):
        raise bad(f"robot x and y must be integers, got ({rcell[0]!r}, {rcell[1]!r})")
    if not (0 <= rcell[0] < w and 0 <= rcell[1] < h):
        raise bad(f"robot at ({rcell[0]!r}, {rcell[1]!r}) is outside the {w}x{h} grid; put it on an empty cell "
                  "next to a station")
    facing = robot["facing"]
    if rcell in cells:
        raise bad(f"robot stands on station cell {rcell}; put it on an empty cell next to a station")
    if not (isinstance(facing, list) and len(facing) == 2 and all(_is_int(d) for d in facing)
            and tuple(facing) in _DIRS):
        raise bad(f"robot facing {facing!r} must be one of [0,1], [0,-1], [1,0], [-1,0]")
    if (rcell[0] + facing[0], rcell[1] + facing[1]) not in cells:
        raise bad(f"robot at {rcell} faces {facing}, where there is no station; face a station")
    occupied: dict[tuple[int, int], list[int]] = {}
    for n, it in enumerate(data["items"]):
        _check_obj(it, ITEM_KINDS, f"items[{n}]", w, h, bad)
        flags = it.get("flags", [])
        if not isinstance(flags, list) or any(not isinstance(f, str) or f not in ITEM_FLAGS for f in flags):
            raise bad(f"items[{n}] flags {flags!r}; allowed: {', '.join(ITEM_FLAGS)}")
        if not _is_int(it.get("level", 0)) or it.get("level", 0) < 0:
            raise bad(f"items[{n}] level must be a non-negative integer")
        cell = (it["x"], it["y"])
        if cell not in cells and cell != rcell:
            raise bad(f"items[{n}] ({it['kind']}) at {cell} is off every station; put it on a station cell")
        levels = occupied.setdefault(cell, [])
        if it.get("level", 0) in levels:
            raise bad(f"items[{n}] ({it['kind']}) shares level {it.get('level', 0)} at {cell}; give each pile member its own level")
        levels.append(it.get("level", 0))
    if len(occupied.get(rcell, [])) > 1:
        raise bad("the robot can hold only one item; move the others onto stations")
    seen: set[tuple[int, int]] = set()
    for n, co in enumerate(data.get("containers", [])):
        _check_obj(co, CONTAINER_KINDS, f"containers[{n}]", w, h, bad)
        cell = (co["x"], co["y"])
        if cell not in cells:
            raise bad(f"containers[{n}] ({co['kind']}) at {cell} is off every station; put it on a station cell")
        if cell in occupied or cell in seen:
            raise bad(f"containers[{n}] shares station cell {cell} with another object; a station holds one pile or one container")
        seen.add(cell)


def build(instance: dict, legacy_skip: bool = False) -> tuple[World, State]:
    """Name the objects by position sort and build the initial World and State (docs/kitchen.md 1.2, 4)."""
    task = get_task(instance["task"])
    st_sorted = sorted(instance["stations"], key=lambda s: (s["x"], s["y"]))
    it_sorted = sorted(instance["items"], key=lambda i: (i["x"], i["y"], i.get("level", 0)))
    co_sorted = sorted(instance.get("containers", []), key=lambda c: (c["x"], c["y"]))
    stations, items, conts = _names(st_sorted), _names(it_sorted), _names(co_sorted)
    cell_of = {(s["x"], s["y"]): n for n, s in enumerate(st_sorted)}
    r = instance["robot"]
    rcell = (r["x"], r["y"])
    robot = cell_of[(r["x"] + r["facing"][0], r["y"] + r["facing"][1])]
    piles: list[list[int]] = [[] for _ in st_sorted]
    held = NONE
    flags = []
    for n, it in enumerate(it_sorted):
        bits = 0
        for f in it.get("flags", []):
            bits |= FLAG_BITS[f]
        flags.append(bits)
        cell = (it["x"], it["y"])
        if cell == rcell:
            held = n
        else:
            piles[cell_of[cell]].append(n)  # it_sorted is ordered by level within a cell
    cont_at = tuple(cell_of[(c["x"], c["y"])] for c in co_sorted)
    world = World(task=task.name, goal_text=task.goal_text,
                  stations=stations, station_kinds=tuple(s["kind"] for s in st_sorted),
                  items=items, item_kinds=tuple(i["kind"] for i in it_sorted),
                  containers=conts, container_kinds=tuple(c["kind"] for c in co_sorted),
                  legacy_skip=legacy_skip)
    state = State(robot, held, tuple(tuple(p) for p in piles), cont_at, tuple(flags),
                  tuple(NONE for _ in it_sorted), (), ())
    return world, state


def default_instance(task: Task | str) -> dict:
    task = get_task(task) if isinstance(task, str) else task
    return json.loads(json.dumps(task.default))


def seeded_instance(task: Task | str, seed: int) -> dict:
    """The task on a random layout drawn from the distribution of docs/kitchen.md 8 (deterministic in seed)."""
    task = get_task(task) if isinstance(task, str) else task
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InstanceError(f"seed {seed!r} must be a non-negative integer")
    for attempt in range(MAX_SEED_RETRIES):
        inst = _draw(task, random.Random(seed + attempt))
        if inst is not None:
            return inst
    raise InstanceError(f"no valid layout for {task.name} from seed {seed} after {MAX_SEED_RETRIES} retries")


def _draw(task: Task, rng: random.Random) -> dict | None:
    d = task.default
    w, h = d["width"], d["height"]
    # 1. distractors
    n_ds = rng.randint(0, w * h - 1)
    dstations = [(rng.choice(STATION_KINDS), rng.randrange(w), rng.randrange(h)) for _ in range(n_ds)]
    n_di = rng.randint(0, n_ds)
    ditems = []
    for _ in range(n_di):
        kind = rng.choice(ITEM_KINDS)
        x = dstations[rng.randrange(n_ds)][1] if n_ds else 0
        y = dstations[rng.randrange(n_ds)][2] if n_ds else 0
        ditems.append((kind, x, y, list(_DISTRACTOR_FLAGS.get(kind, []))))
    # 2. task objects at random cells
    tstations = [(s["kind"], rng.randrange(w), rng.randrange(h)) for s in d["stations"]]
    titems = [(i["kind"], rng.randrange(w), rng.randrange(h), list(i["flags"])) for i in d["items"]]
    tconts = [(c["kind"], rng.randrange(w), rng.randrange(h)) for c in d["containers"]]
    # 3. stations: distractors first, then task stations
    grid: dict[tuple[int, int], list] = {}   # cell -> [kind, is_task]
    order: list[tuple[int, int]] = []        # insertion order of occupied cells
    for kind, x, y in dstations:
        if (x, y) not in grid and _reachable(set(grid) | {(x, y)}, w, h):
            grid[(x, y)] = [kind, False]
            order.append((x, y))
    for kind, x, y in tstations:
        cell = (x, y)
        if cell in grid and not grid[cell][1]:
            grid[cell] = [kind, True]
        elif cell not in grid and _reachable(set(grid) | {cell}, w, h):
            grid[cell] = [kind, True]
            order.append(cell)
        else:
            spare = [c for c in order if not grid[c][1]]
            if not spare:
                return None
            grid[rng.choice(spare)] = [kind, True]
    # 4. robot: first free cell beside a station (insertion order; up, down, right, left)
    robot = None
    for cell in order:
        for dx, dy in _DIRS:
            n = (cell[0] + dx, cell[1] + dy)
            if 0 <= n[0] < w and 0 <= n[1] < h and n not in grid and _all_reach_from(n, set(grid), w, h):
                robot = (n, (cell[0] - n[0], cell[1] - n[1]))
                break
        if robot:
            break
    if robot is None:
        return None
    rcell = robot[0]
    holders = order + [rcell]                # where an item may end up, in order
    content: dict[tuple[int, int], tuple] = {}   # holder -> ("item", kind, flags, is_task) or ("container", kind)
    # 5. items: distractors only onto item-free holders; task items evict distractors
    for kind, x, y, flags in ditems:
        if ((x, y) in grid or (x, y) == rcell) and (x, y) not in content:
            content[(x, y)] = ("item", kind, flags, False)
    for kind, x, y, flags in titems:
        cell = (x, y)
        if not _place(content, cell, holders, grid, rcell, ("item", kind, flags, True)):
            return None
    # 6. containers: like task items, but never onto the robot
    for kind, x, y in tconts:
        if not _place(content, (x, y), order, grid, None, ("container", kind, [], True)):
            return None
    stations = [{"kind": grid[c][0], "x": c[0], "y": c[1]} for c in order]
    items = [{"kind": v[1], "x": c[0], "y": c[1], "level": 0, "flags": v[2]}
             for c, v in content.items() if v[0] == "item"]
    conts = [{"kind": v[1], "x": c[0], "y": c[1]} for c, v in content.items() if v[0] == "container"]
    return {"task": task.name, "width": w, "height": h, "stations": stations, "items": items,
            "containers": conts, "robot": {"x": rcell[0], "y": rcell[1], "facing": list(robot[1])}}


def _place(content, cell, holders, grid, rcell, obj) -> bool:
    def free(c):
        return c not in content or not content[c][3]  # empty, or a distractor to evict
    on_holder = cell in grid or (rcell is not None and cell == rcell)
    if on_holder and free(cell):
        content[cell] = obj
        return True
    for c in holders:
        if free(c):
            content[c] = obj
            return True
    return False


def _reachable(occupied: set, w: int, h: int) -> bool:
    """Some component of empty cells touches every station (4-neighbour moves)."""
    seen: set = set()
    for x in range(w):
        for y in range(h):
            if (x, y) in occupied or (x, y) in seen:
                continue
            comp, touched = _component((x, y), occupied, w, h)
            seen |= comp
            if touched == occupied:
                return True
    return False


def _all_reach_from(start, occupied: set, w: int, h: int) -> bool:
    return _component(start, occupied, w, h)[1] == occupied


def _component(start, occupied: set, w: int, h: int) -> tuple[set, set]:
    """Empty cells connected to `start`, and the stations they touch."""
    seen = {start}
    queue = deque([start])
    touched: set = set()
    while queue:
        x, y = queue.popleft()
        for dx, dy in _DIRS:
            n = (x + dx, y + dy)
            if not (0 <= n[0] < w and 0 <= n[1] < h):
                continue
            if n in occupied:
                touched.add(n)
            elif n not in seen:
                seen.add(n)
                queue.append(n)
    return seen, touched


def _names(objs: list[dict]) -> tuple[str, ...]:
    count: dict[str, int] = {}
    out = []
    for o in objs:
        count[o["kind"]] = count.get(o["kind"], 0) + 1
        out.append(f"{o['kind']}{count[o['kind']]}")
    return tuple(out)


def _check_obj(obj, kinds, where, w, h, bad) -> None:
    if not isinstance(obj, dict):
        raise bad(f"{where} must be an object with kind, x, y")
    if not isinstance(obj.get("kind"), str) or obj["kind"] not in kinds:
        raise bad(f"{where} has unknown kind {obj.get('kind')!r}; allowed: {', '.join(kinds)}")
    x, y = obj.get("x"), obj.get("y")
    if not (_is_int(x) and _is_int(y) and 0 <= x < w and 0 <= y < h):
        raise bad(f"{where} ({obj['kind']}) at ({x!r}, {y!r}) is outside the {w}x{h} grid")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
