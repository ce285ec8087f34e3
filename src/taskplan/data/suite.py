"""The frozen task suite (data/suite.json, versioned by data.dvc).

`data/` normally comes from the DVC remote (`dvc pull data.dvc`); on a fresh
clone whose remote is empty, `taskplan suite --out data/suite.json` writes the
same bytes, so data.dvc's hash still matches.
"""

from __future__ import annotations

import json

from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS

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
