"""Single-turn accuracy beside exact match: by row kind (move / other) and by outcome.

    rows = validation_rows("outputs/single_turn", limit=400)      # clean expert-path rows, evenly spread
    doc = single_turn_outcomes(policy, rows)                       # {"all": {...}, "move": {...}, ...}

Exact match against the expert's action undercounts a reply that is another
optimal action and hides whether a miss is harmless (a valid detour of one
step) or fatal (an invalid reply). Each validation row's reply is therefore
put in one of four outcomes, with the planner as the judge:

- `expert`: the expert's action a*(s) (what the exact-match reward pays);
- `other_optimal`: another action after which the planner's optimum is still
  reached in the same number of steps (1 + plan length from the next state);
- `suboptimal`: a valid action that costs at least one extra step;
- `invalid`: the reply names no valid action.

Rows are split by the expert action's kind: `move` (the "where to go" decision,
about half the rows and the hardest) and `other`. The state of a row is
rebuilt by replaying the expert's plan of (task, seed) for `step` actions; a
row whose replay does not reach its own label is a data error and raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskplan.errors import DatasetError
from taskplan.expert.planner import plan_state
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.parse import parse_action

OUTCOMES = ("expert", "other_optimal", "suboptimal", "invalid")
KINDS = ("move", "other")


def row_kind(action: str) -> str:
    return "move" if action.startswith("Move ") else "other"


def validation_rows(dataset_dir: str | Path, limit: int = 0, tasks: Sequence[str] = ()) -> list[dict]:
    """Expert-path rows of the validation split (no error-feedback repeats), `limit` of them spread evenly."""
    from datasets import load_from_disk

    try:
        split = load_from_disk(str(dataset_dir))["validation"]
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise DatasetError(f"no validation split in {dataset_dir} ({err}); run `taskplan build-dataset`") from None
    rows = [r for r in split if "+feedback" not in r.get("source", "") and (not tasks or r["task"] in tasks)]
    if limit and len(rows) > limit:
        stride = len(rows) / limit
        rows = [rows[int(i * stride)] for i in range(limit)]
    return rows


class _Judge:
    """Replays expert plans per (task, seed) and tells whether an action keeps the optimum."""

    def __init__(self, planner_seconds: float = 60.0):
        self.planner_seconds = planner_seconds
        self.plans: dict[tuple[str, int], list[str]] = {}

    def _env_at(self, task: str, seed: int, step: int) -> tuple[KitchenEnv, list[str]]:
        env = KitchenEnv.from_spec(task, seed=seed)
        env.reset()
        key = (task, seed)
        if key not in self.plans:
            self.plans[key] = list(plan_state(env.world, env.state, env.goal, max_seconds=self.planner_seconds).texts)
        plan = self.plans[key]
        for action in plan[:step]:
            env.step(action)
        return env, plan

    def outcome(self, row: dict, action: str | None) -> str:
        if action is None:
            return "invalid"
        if action == row["answer"]:
            return "expert"
        env, plan = self._env_at(row["task"], int(row["seed"]), int(row["step"]))
        if plan[int(row["step"])] != row["answer"]:
            raise DatasetError(f"row {row['task']} seed {row['seed']} step {row['step']}: the expert plan's action "
                               f"is {plan[int(row['step'])]!r}, not the row's label {row['answer']!r}")
        left = len(plan) - int(row["step"])
        env.step(action)
        if env.done:
            return "other_optimal" if left == 1 else "suboptimal"
        rest = plan_state(env.world, env.state, env.goal, max_seconds=self.planner_seconds).texts
        return "other_optimal" if 1 + len(rest) == left else "suboptimal"


def single_turn_outcomes(policy: Any, rows: Sequence[dict], planner_seconds: float = 60.0) -> dict[str, Any]:
    """Greedy replies of an HFPolicy to `rows`, counted by kind and outcome (see the module docstring).

    Returns {"all" | "move" | "other" | "task/<task>" | "task/<task>/<kind>":
    {"rows", "accuracy", "optimal", <outcome>: share}}."""
    prompts = [policy.prompt_text(list(r["prompt"])) for r in rows]
    replies = policy.generate(prompts)
    judge = _Judge(planner_seconds)
    counts: dict[str, dict[str, int]] = {}
    for row, reply in zip(rows, replies):
        outcome = judge.outcome(row, parse_action(reply, list(row["valid_actions"])).action)
        kind = row_kind(row["answer"])
        for group in ("all", kind, f"task/{row['task']}", f"task/{row['task']}/{kind}"):
            bucket = counts.setdefault(group, dict.fromkeys(OUTCOMES, 0))
            bucket[outcome] += 1
    return {group: summarise_counts(c) for group, c in counts.items()}


def summarise_counts(counts: dict[str, int]) -> dict[str, Any]:
    n = sum(counts.values())
    out: dict[str, Any] = {"rows": n}
    out.update({k: round(v / n, 4) if n else None for k, v in counts.items()})
    out["accuracy"] = out["expert"]
    out["optimal"] = round((counts["expert"] + counts["other_optimal"]) / n, 4) if n else None
    return out
