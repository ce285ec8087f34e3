"""The frozen task suite (data/suite.json, versioned by data.dvc).

`data/` normally comes from the DVC remote (`dvc pull data.dvc`); on a fresh
clone whose remote is empty, `taskplan suite --out data/suite.json` writes the
same bytes, so data.dvc's hash still matches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskplan.errors import ConfigError
from taskplan.io import read_json_input
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, get_task

DESCRIPTION = (
    "Frozen task suite of taskplan (arXiv 2509.20616 setting). eval_tasks x eval_seeds are held out for "
    "multi-turn evaluation; training seeds must come from train_seed_range, which excludes every eval seed. "
    "Change this file only on purpose: it is versioned by data.dvc."
)


def suite_text() -> str:
    fields = [("name", "paper-v1"), ("description", DESCRIPTION), ("eval_tasks", list(PAPER_TASKS)),
              ("eval_seeds", list(EVAL_SEEDS)), ("train_seed_range", [1000, 1000000])]
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in fields)
    return "{\n" + body + "\n}\n"


def read_suite(path: Path | str) -> dict[str, Any]:
    """The suite file, checked: an object whose eval_tasks are task names, eval_seeds non-negative integers
    and train_seed_range [lo, hi) with lo < hi; anything else (a list, nested seeds, a bad range, non-UTF-8,
    a folder, an endless file) is one line."""
    hint = "restore it with `dvc pull data.dvc` or `taskplan suite --out data/suite.json`"
    doc = read_json_input(path, "suite file", ConfigError, hint, max_bytes=1 << 20)

    def bad(why: str) -> ConfigError:
        return ConfigError(f"suite file {str(path)[:200]} {why}; {hint}")

    if not isinstance(doc, dict):
        raise bad("must hold an object with eval_tasks, eval_seeds and train_seed_range")
    tasks, seeds, span = doc.get("eval_tasks", []), doc.get("eval_seeds", []), doc.get("train_seed_range")
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise bad("has eval_tasks that are not a list of task names")
    for t in tasks:
        get_task(t)
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in seeds):
        raise bad("has eval_seeds that are not a list of non-negative integers")
    if span is not None and not (isinstance(span, list) and len(span) == 2
                                 and all(isinstance(s, int) and not isinstance(s, bool) for s in span)
                                 and 0 <= span[0] < span[1]):
        raise bad(f"has train_seed_range {str(span)[:40]}, not [lo, hi) with 0 <= lo < hi")
    return doc
