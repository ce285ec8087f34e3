#!/usr/bin/env python3
"""Record reference data from the ORIGINAL Robotouille engine and normalize it.

This script documents (and can redo) how the files in this directory were made.
It never imports Robotouille itself: it drives the shared harness
``/work/shared/tools/robotouille-ref/ref.py`` (one process per episode, as that
harness requires, because a soup episode can leak state into the next episode
of the same process) and converts the harness output into the formats below.

Usage (the harness venv is built by ``RT_HOME=/tmp/rt bash setup.sh GITDIR``):

    export RT_HOME=/tmp/rt
    python3 record.py record  [--raw /tmp/rt_raw]   # run ref.py (sequentially)
    python3 record.py convert [--raw /tmp/rt_raw]   # raw harness JSON -> data files

``record`` writes raw harness output to ``--raw`` (outside the repo) except
``list.json`` and ``instances/*.raw.json``, which are kept verbatim here.
``convert`` writes ``traces/*.json`` and ``instances/*.json``.
Only the Python standard library is used.
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("RT_REF", "/work/shared/tools/robotouille-ref/ref.py")
RT_HOME = os.environ.get("RT_HOME", "/tmp/rt")
PY = os.environ.get("RT_PY", os.path.join(RT_HOME, "venv", "bin", "python"))

# snake_case task name (KITCHEN.md 7.1) -> environment name used by ref.py
TASKS = {
    "cheese_sandwich": "synchronous/0_cheese_sandwich",
    "lettuce_sandwich": "synchronous/1_lettuce_sandwich",
    "lettuce_tomato_sandwich": "synchronous/2_lettuce_tomato_sandwich",
    "burger": "synchronous/3_burger",
    "cheeseburger": "synchronous/4_cheeseburger",
    "double_cheeseburger": "synchronous/5_double_cheeseburger",
    "lettuce_tomato_cheeseburger": "synchronous/6_lettuce_tomato_cheeseburger",
    "two_lettuce_chicken_sandwich": "synchronous/7_two_lettuce_chicken_sandwich",
    "two_lettuce_tomato_burger": "synchronous/8_two_lettuce_tomato_burger",
    "onion_cheese_burger_and_lettuce_tomato_chicken_sandwich":
        "synchronous/9_onion_cheese_burger_and_lettuce_tomato_chicken_sandwich",
    "cheese_chicken_sandwich": "asynchronous/0_cheese_chicken_sandwich",
    "lettuce_chicken_sandwich": "asynchronous/1_lettuce_chicken_sandwich",
    "lettuce_tomato_fried_chicken_sandwich": "asynchronous/2_lettuce_tomato_fried_chicken_sandwich",
    "tomato_burger_and_fries": "asynchronous/3_tomato_burger_and_fries",
    "onion_cheese_burger_and_fried_onion": "asynchronous/4_onion_cheese_burger_and_fried_onion",
    "potato_soup": "asynchronous/5_potato_soup",
    "onion_soup": "asynchronous/6_onion_soup",
    "tomato_soup_and_lettuce_chicken_sandwich": "asynchronous/7_tomato_soup_and_lettuce_chicken_sandwich",
    "onion_tomato_soup_and_two_chicken_sandwich": "asynchronous/8_onion_tomato_soup_and_two_chicken_sandwich",
    "onion_potato_soup_and_fried_onion_ring_lettuce_burger_and_onion_cheese_sandwich":
        "asynchronous/9_onion_potato_soup_and_fried_onion_ring_lettuce_burger_and_onion_cheese_sandwich",
}
PAPER_TASKS = ["cheese_sandwich", "burger", "cheeseburger", "double_cheeseburger"]
SEEDS = [42, 84]

# Walks on the default layout: (rng, weighted, bias, steps)
DEFAULT_WALKS = [(1, True, 0.0, 40), (2, True, 0.0, 40), (3, False, 0.5, 40)]
SEEDED_WALK = (1, True, 0.0, 30)

FLAGS = ("iscuttable", "iscookable", "isfryable", "isfryableifcut", "iscooked")
MAX_FILE_BYTES = 300_000
OBS_KEEP_IF_HUGE = 10


def walk_name(rng, weighted, bias):
    suffix = "_w" if weighted else ""
    return f"rng{rng}{suffix}"


def run_ref(args):
    env = dict(os.environ, RT_HOME=RT_HOME)
    cmd = [PY, REF] + args
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"ref.py failed: {' '.join(args)}")
    return r.stdout


def walk_args(env, seed, rng, weighted, bias, steps, out):
    a = ["walk", "--env", env, "--seed", str(seed), "--steps", str(steps), "--rng", str(rng), "--out", out]
    if weighted:
        a.append("--weighted")
    if bias:
        a += ["--bias", str(bias)]
    return a


def cmd_record(args):
    raw = args.raw
    os.makedirs(os.path.join(raw, "walks"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "instances"), exist_ok=True)
    text = run_ref(["list", "--json"])
    rows = json.loads(text)
    with open(os.path.join(HERE, "list.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    # one process per episode, strictly sequential
    for task, env in TASKS.items():
        out = os.path.join(raw, f"{task}__default.show.json")
        run_ref(["show", "--env", env, "--seed", "none", "--out", out])
        for rng, weighted, bias, steps in DEFAULT_WALKS:
            out = os.path.join(raw, "walks", f"{task}__default__{walk_name(rng, weighted, bias)}.json")
            run_ref(walk_args(env, "none", rng, weighted, bias, steps, out))
    for task in PAPER_TASKS:
        env = TASKS[task]
        for seed in SEEDS:
            out = os.path.join(HERE, "instances", f"{task}__seed{seed}.raw.json")
            run_ref(["show", "--env", env, "--seed", str(seed), "--out", out])
            rng, weighted, bias, steps = SEEDED_WALK
            out = os.path.join(raw, "walks", f"{task}__seed{seed}__{walk_name(rng, weighted, bias)}.json")
            run_ref(walk_args(env, seed, rng, weighted, bias, steps, out))


# ---------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------
def base_kind(name):
    return re.sub(r"\d+$", "", name)


def _pred_args(p):
    m = re.fullmatch(r"(\w+)\((.*)\)", p)
    return m.group(1), (m.group(2).split(",") if m.group(2) else [])


def to_instance(task, show):
    """Convert a `ref.py show` object to the taskplan instance format.

    Positions come from the generated layout; the pile level is recomputed from the
    engine's own true predicates (item_on -> 0, atop(a, b) -> level(b) + 1) and
    cross-checked with the layout's "stack-level"."""
    lay = show["layout"]
    preds = [_pred_args(p) for p in show["true_predicates"]]
    on_station = {a[0] for n, a in preds if n == "item_on"}
    below = {a[0]: a[1] for n, a in preds if n == "atop"}
    held = {a[1] for n, a in preds if n == "has_item"}
    notes = []

    def level(name, depth=0):
        if name in on_station:
            return 0
        if name in below and depth < 50:
            return level(below[name], depth + 1) + 1
        return None

    stations = [{"kind": base_kind(s["name"]), "x": s["x"], "y": s["y"]} for s in lay["stations"]]
    items = []
    for it in lay.get("items", []):
        lv = level(it["name"])
        if it["name"] in held:
            notes.append(f"{it['name']} starts held by the robot")
        elif lv is None:
            notes.append(f"{it['name']}: no level derivable")
        if lv is not None and "stack-level" in it and it["stack-level"] != lv:
            notes.append(f"{it['name']}: stack-level {it['stack-level']} != level from predicates {lv}")
        flags = [p for p in it.get("predicates", []) if p in FLAGS]
        items.append({"kind": base_kind(it["name"]), "x": it["x"], "y": it["y"],
                      "level": lv if lv is not None else it.get("stack-level", 0), "flags": flags})
    containers = [{"kind": base_kind(c["name"]), "x": c["x"], "y": c["y"]} for c in lay.get("containers", []) or []]
    players = lay["players"]
    if len(players) != 1:
        notes.append(f"{len(players)} players")
    p = players[0]
    inst = {"task": task, "width": lay["width"], "height": lay["height"],
            "stations": stations, "items": items, "containers": containers,
            "robot": {"x": p["x"], "y": p["y"], "facing": list(p["direction"])}}
    if lay.get("meals"):
        notes.append("layout has meals: " + json.dumps(lay["meals"]))
    return inst, notes, check_names(lay)


def check_names(lay):
    """Do the engine's object names equal KITCHEN.md 1.2 (per base name, sorted by
    (x, y), ties in file order)?  Returns a list of mismatch descriptions."""
    bad = []
    for field in ("stations", "items", "containers"):
        ents = lay.get(field) or []
        order = sorted(range(len(ents)), key=lambda i: (ents[i]["x"], ents[i]["y"], i))
        count = {}
        for i in order:
            k = base_kind(ents[i]["name"])
            count[k] = count.get(k, 0) + 1
            want = f"{k}{count[k]}"
            if ents[i]["name"] != want:
                bad.append(f"{field}: {ents[i]['name']} at ({ents[i]['x']},{ents[i]['y']}) would be {want}")
    return bad


def convert_walk(task, raw, layout, instance_rel=None, keep_obs=None):
    steps_in = raw["steps"]
    has_obs = "observation" in steps_in[0] if steps_in else "final_observation" in raw
    obs_seq = [s.get("observation") for s in steps_in] + [raw.get("final_observation")]
    steps = []
    for i, s in enumerate(steps_in):
        rec = {"valid_actions": s["valid_actions"], "action": s["action"], "valid": True,
               "goal": bool(s["done"]), "observation": obs_seq[i + 1] if has_obs else None}
        if "duplicate_action_strings" in s:
            rec["duplicate_action_strings"] = s["duplicate_action_strings"]
        steps.append(rec)
    out = {"task": task, "original_env": raw["env"], "layout": layout}
    if instance_rel:
        out["instance"] = instance_rel
    out.update({
        "legacy_skip": True,
        "seed": raw["seed"], "effective_seed": raw["effective_seed"],
        "walk": {"rng": raw["rng"], "requested_steps": raw["requested_steps"]},
        "initial_observation": obs_seq[0] if has_obs else None,
        "steps": steps,
        "final_goal_reached": raw["final_goal_reached"],
        "final_true_predicates": raw["final_true_predicates"],
    })
    if keep_obs is not None:
        for s in out["steps"][keep_obs:]:
            s["observation"] = None
        out["observations_truncated_after_step"] = keep_obs
    return out


def dump(obj, path):
    text = json.dumps(obj, indent=1, ensure_ascii=False) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return len(text.encode())


def cmd_convert(args):
    raw = args.raw
    tdir = os.path.join(HERE, "traces")
    idir = os.path.join(HERE, "instances")
    os.makedirs(tdir, exist_ok=True)
    os.makedirs(idir, exist_ok=True)
    report = {"name_mismatches": {}, "instance_notes": {}}

    def write_trace(obj, path, raw_obj, **kw):
        n = dump(obj, path)
        if n > MAX_FILE_BYTES:
            obj = convert_walk(obj["task"], raw_obj, obj["layout"], obj.get("instance"),
                               keep_obs=OBS_KEEP_IF_HUGE)
            n = dump(obj, path)
        return n

    for task, env in TASKS.items():
        show = json.load(open(os.path.join(raw, f"{task}__default.show.json")))
        inst, notes, bad = to_instance(task, show)
        dump(inst, os.path.join(idir, f"{task}__default.json"))
        if notes:
            report["instance_notes"][f"{task}__default"] = notes
        if bad:
            report["name_mismatches"][f"{task}__default"] = bad
        for rng, weighted, bias, steps in DEFAULT_WALKS:
            stem = f"{task}__default__{walk_name(rng, weighted, bias)}"
            r = json.load(open(os.path.join(raw, "walks", stem + ".json")))
            obj = convert_walk(task, r, "default")
            obj["walk"].update({"weighted": weighted, "bias": bias})
            write_trace(obj, os.path.join(tdir, stem + ".json"), r)
    for task in PAPER_TASKS:
        for seed in SEEDS:
            show = json.load(open(os.path.join(idir, f"{task}__seed{seed}.raw.json")))
            inst, notes, bad = to_instance(task, show)
            rel = f"instances/{task}__seed{seed}.json"
            dump(inst, os.path.join(HERE, rel))
            if notes:
                report["instance_notes"][f"{task}__seed{seed}"] = notes
            if bad:
                report["name_mismatches"][f"{task}__seed{seed}"] = bad
            rng, weighted, bias, steps = SEEDED_WALK
            stem = f"{task}__seed{seed}__{walk_name(rng, weighted, bias)}"
            r = json.load(open(os.path.join(raw, "walks", stem + ".json")))
            obj = convert_walk(task, r, f"seed{seed}", rel)
            obj["walk"].update({"weighted": weighted, "bias": bias})
            write_trace(obj, os.path.join(tdir, stem + ".json"), r)
    print(json.dumps(report, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("record", cmd_record), ("convert", cmd_convert)):
        p = sub.add_parser(name)
        p.add_argument("--raw", default="/tmp/rt_raw", help="scratch dir for raw harness output")
        p.set_defaults(fn=fn)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
