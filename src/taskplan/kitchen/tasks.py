"""Task catalogue (docs/kitchen.md 7): goals, listed optima, step caps, default layouts.

Ten synchronous tasks (S0-S9) and ten asynchronous ones (A0-A9) are the
evaluation suite; `lettuce_cheeseburger` and the two one-shot example tasks
(`cheese_onion_sandwich`, `chicken_onion_sandwich`) are extras without a listed
optimum, kept out of held-out evaluation.

Decisions:
- S1's goal file names a cheese with the lettuce's tag; the original resolves
  tags first, so the literal means "bread atop the lettuce" and that is the
  chain we check (docs/kitchen.md 7.1 note 2).
- S8 is literal: its goal does not mention tomatoes, so tomatoes are not
  checked (fidelity with the original; docs/kitchen.md 10.6).
- The step cap is ceil(1.5 x listed optimum), the same for every seed; extras
  without a listed optimum have no cap of their own (evaluation uses 1.5 x the
  instance's true optimum for them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from taskplan.errors import UnknownTaskError
from taskplan.kitchen.goals import parse_goal
from taskplan.kitchen.task_table import TASK_ROWS

PAPER_TASKS = ("cheese_sandwich", "burger", "cheeseburger", "double_cheeseburger")
EVAL_SEEDS = tuple(range(42, 421, 42))


@dataclass(frozen=True)
class Task:
    id: str                  # S0..S9, A0..A9, or X1/T0/T1 for the extras
    name: str
    kind: str                # "sync" or "async"
    listed_opt: int | None   # the original's listed optimum (sets the step cap)
    goal_text: str
    goal: tuple              # parsed goal literals
    default: dict            # default layout in the instance format

    @property
    def step_cap(self) -> int | None:
        return None if self.listed_opt is None else math.ceil(1.5 * self.listed_opt)

    @property
    def evaluable(self) -> bool:
        return self.listed_opt is not None

    def summary(self) -> dict:
        return {"name": self.name, "id": self.id, "kind": self.kind, "listed_opt": self.listed_opt,
                "step_cap": self.step_cap, "goal": self.goal_text}


@cache
def all_tasks() -> tuple[Task, ...]:
    out = []
    for tid, name, kind, opt, sentence, w, h, stations, items, containers, robot, goal in TASK_ROWS:
        default = {
            "task": name, "width": w, "height": h,
            "stations": [{"kind": k, "x": x, "y": y} for k, x, y in stations],
            "items": [{"kind": k, "x": x, "y": y, "level": lv, "flags": list(fl)} for k, x, y, lv, fl in items],
            "containers": [{"kind": k, "x": x, "y": y} for k, x, y in containers],
            "robot": {"x": robot[0], "y": robot[1], "facing": list(robot[2])},
        }
        out.append(Task(tid, name, kind, opt, sentence, parse_goal(goal), default))
    return tuple(out)


def get_task(name: str) -> Task:
    for task in all_tasks():
        if task.name == name or task.id == name:
            return task
    names = ", ".join(t.name for t in all_tasks() if t.evaluable)
    raise UnknownTaskError(f"unknown task {name!r}; try one of: {names}")


def task_names(kind: str | None = None, evaluable_only: bool = True) -> tuple[str, ...]:
    return tuple(t.name for t in all_tasks() if (kind is None or t.kind == kind)
                 and (t.evaluable or not evaluable_only))
