"""Tiny hand-built kitchens for unit tests."""

from taskplan.kitchen.env import KitchenEnv


def kitchen(task: str, stations, items, containers=(), robot=(0, 0, (0, 1)), width=6, height=6) -> KitchenEnv:
    """stations: [(kind, x, y)], items: [(kind, x, y, level, flags)], robot (x, y, facing)."""
    inst = {"task": task, "width": width, "height": height,
            "stations": [{"kind": k, "x": x, "y": y} for k, x, y in stations],
            "items": [{"kind": k, "x": x, "y": y, "level": lv, "flags": list(fl)} for k, x, y, lv, fl in items],
            "containers": [{"kind": k, "x": x, "y": y} for k, x, y in containers],
            "robot": {"x": robot[0], "y": robot[1], "facing": list(robot[2])}}
    env = KitchenEnv(inst)
    env.reset()
    return env


def run(env: KitchenEnv, *actions: str) -> None:
    for a in actions:
        res = env.step(a)
        assert res.valid, f"{a!r} should be valid; valid: {env.action_texts()}"
