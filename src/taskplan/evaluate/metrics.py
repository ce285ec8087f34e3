"""Episode metrics: SR, ASAT, ASST and the invalid-action rate, per task.

    doc = {"sft": task_table(episodes)}      # the metrics/eval.json shape
    flat = flat_metrics(doc)                 # {"eval/sft/burger/sr": 0.7, ...} for MLflow

Definitions (docs/pipeline.md 4, as in the paper):
- `sr`: successful episodes / episodes.
- `asat`: mean steps over all episodes, a failed episode counting as the cap.
- `asst`: mean steps over successful episodes only; null when none succeeded.
- `invalid_actions`: replies that were not executed (unparseable or not a
  valid action), summed over the task's episodes; `invalid_rate` divides
  them by all replies.
- `sr_opt`: episodes that succeeded in exactly the instance's true optimum
  (what the product bound lower-bounds); `opt_mean`: mean true optimum.
- `bound`: filled in by the caller (mean product bound), null otherwise;
  `bound_log10`: the mean log10 of the bound (readable when the bound underflows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from taskplan.evaluate.policies import parse_policy_spec, policy_kind
from taskplan.kitchen.tasks import get_task

CONTRACT_KEYS = ("sr", "asat", "asst", "episodes", "invalid_actions", "bound")
_DIGITS = 4


class EpisodeLike(Protocol):
    task: str
    success: bool
    steps: int
    cap: int
    replies: int
    invalid: int
    optimum: int | None


def task_metrics(episodes: Sequence[EpisodeLike]) -> dict[str, Any]:
    """Metrics of the episodes of one task (see the module docstring)."""
    n = len(episodes)
    if n == 0:
        return {"sr": None, "asat": None, "asst": None, "episodes": 0, "invalid_actions": 0, "bound": None}
    wins = [e for e in episodes if e.success]
    replies = sum(e.replies for e in episodes)
    invalid = sum(e.invalid for e in episodes)
    optima = [e.optimum for e in episodes if e.optimum is not None]
    known = len(optima) == n
    task = get_task(episodes[0].task)
    return {
        "sr": _r(len(wins) / n),
        "asat": _r(sum(e.steps if e.success else e.cap for e in episodes) / n),
        "asst": _r(sum(e.steps for e in wins) / len(wins)) if wins else None,
        "episodes": n,
        "invalid_actions": invalid,
        "bound": None,
        "invalid_rate": _r(invalid / replies) if replies else 0.0,
        "sr_opt": _r(sum(e.success and e.steps == e.optimum for e in episodes) / n) if known else None,
        "opt_mean": _r(sum(optima) / len(optima)) if known else None,
        "listed_opt": task.listed_opt,
        "cap": max(e.cap for e in episodes),
    }


def task_table(episodes: Iterable[EpisodeLike]) -> dict[str, dict[str, Any]]:
    """{task: metrics} for one policy, tasks in order of first appearance."""
    by_task: dict[str, list[EpisodeLike]] = {}
    for ep in episodes:
        by_task.setdefault(ep.task, []).append(ep)
    return {task: task_metrics(eps) for task, eps in by_task.items()}


def add_bounds(table: dict[str, dict[str, Any]], bounds: Mapping[str, float | None],
               log10: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """Put each task's mean bound (and mean log10 bound) into its metrics (in place; returns the table)."""
    for task, row in table.items():
        value = bounds.get(task)
        row["bound"] = None if value is None else float(f"{value:.6g}")
        if log10 is not None and task in log10:
            row["bound_log10"] = _r(log10[task], 3)
    return table


def add_sampled_sr_opt(table: dict[str, dict[str, Any]], counts: Mapping[str, tuple[int, int]]) -> dict:
    """Put each task's sampled SR@opt (share of temperature-1 rollouts finishing in the optimum) and its
    number of rollouts into its metrics (in place; returns the table)."""
    for task, row in table.items():
        if task in counts and counts[task][1]:
            wins, n = counts[task]
            row["sr_opt_sampled"], row["sr_opt_samples"] = _r(wins / n), n
    return table


def flat_metrics(doc: Mapping[str, Mapping[str, Mapping[str, Any]]], prefix: str = "eval") -> dict[str, float]:
    """`{policy: {task: metrics}}` -> `{"<prefix>/<policy>/<task>/<key>": value}` (numbers only)."""
    out = {}
    for policy, table in doc.items():
        for task, row in table.items():
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{prefix}/{policy}/{task}/{key}"] = float(value)
    return out


def check_contract(doc: Mapping[str, Any]) -> list[str]:
    """Problems with an eval.json document (empty when it follows the contract of docs/pipeline.md 4)."""
    problems = []
    if not isinstance(doc, Mapping):
        return ["top level is not an object {policy: {task: metrics}}"]
    for policy, table in doc.items():
        if not isinstance(table, Mapping):
            problems.append(f"{policy}: not an object {{task: metrics}}")
            continue
        for task, row in table.items():
            missing = [k for k in CONTRACT_KEYS if not isinstance(row, Mapping) or k not in row]
            if missing:
                problems.append(f"{policy}/{task}: missing {', '.join(missing)}")
    return problems


def _r(value: float, digits: int = _DIGITS) -> float:
    return round(float(value), digits)


RUN_METRICS = ("sr", "asat", "asst", "invalid_rate", "bound_log10", "sr_opt_sampled")


def policy_runs(doc: Mapping[str, Mapping[str, Mapping[str, Any]]], specs: Sequence[str]) -> dict[str, dict]:
    """One MLflow child run per evaluated policy, with the same metric names for every policy
    (`sr/<task>`, `asat/<task>`, ..., `sr_mean`) so the UI's compare views line them up."""
    targets = dict(parse_policy_spec(s) for s in specs)
    runs = {}
    for name, table in doc.items():
        base = name.removesuffix("_constrained") if name not in targets else name
        target = targets.get(base, name)
        kind = policy_kind(target)
        metrics = {f"{key}/{task}": float(row[key]) for task, row in table.items() for key in RUN_METRICS
                   if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)}
        srs = [float(row["sr"]) for row in table.values() if isinstance(row.get("sr"), (int, float))]
        if srs:
            metrics["sr_mean"] = sum(srs) / len(srs)
        runs[name] = {"metrics": metrics, "model_dir": target if kind == "model" else None,
                      "tags": {"taskplan.policy": name, "taskplan.kind": kind, "taskplan.target": target,
                               "taskplan.mode": "constrained" if name != base else "free"}}
    return runs
