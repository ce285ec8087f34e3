"""Evaluation stages: `taskplan evaluate`, `taskplan cross-task`, `taskplan compare`.

    taskplan evaluate --set evaluate.policies=[random,expert,sft=models/sft]
    taskplan cross-task --set "cross_task.models=[burger=models/cross/burger]"
    taskplan compare

Each command loads its section of params.yaml (+ `--set key=value`), calls the
stage's `run_*` function and prints one summary line (or, with --json, one
JSON document) on stdout. A progress bar goes to stderr when it is a terminal.
Heavy imports (torch, transformers, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from taskplan.commands import JsonOpt, ParamsOpt, SetOpt, TrackOpt, progress_bar, run_tracked
from taskplan.config import load_config

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, as_json: JsonOpt = False,
             track: TrackOpt = True) -> None:
    """Multi-turn episodes of each policy on tasks x seeds: SR/ASAT/ASST, bound -> metrics/eval.json."""
    from taskplan.evaluate.stage import EvaluateConfig, run_evaluate

    _episodes("evaluate", EvaluateConfig, run_evaluate, params, overrides, as_json, track)


@app.command("cross-task")
def cross_task(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, as_json: JsonOpt = False,
               track: TrackOpt = True) -> None:
    """Evaluate one model per training task on every evaluation task -> metrics/cross_task/<task>.json."""
    from taskplan.evaluate.cross_task import CrossTaskConfig, run_cross_task

    _episodes("cross_task", CrossTaskConfig, run_cross_task, params, overrides, as_json, track)


def _episodes(section: str, config_cls: Any, run: Callable[..., Any], params: Path, overrides: list[str] | None,
              as_json: bool, track: bool) -> None:
    """A stage that plays episodes: its section of params, its tracked run with a progress bar (not under
    --json), then its result document or summary line."""
    cfg = load_config(config_cls, section, params, overrides or [])
    with progress_bar("episodes", enabled=not as_json) as progress:
        result = run_tracked(section, cfg, params, track, run, progress=progress)
    typer.echo(json.dumps(result.doc) if as_json else result.summary())


@app.command()
def compare(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, as_json: JsonOpt = False,
            track: TrackOpt = True) -> None:
    """Report (markdown), plots (PNG) and CSVs from metrics/eval.json and the cross-task rows."""
    from taskplan.evaluate.report import CompareConfig, run_compare

    cfg = load_config(CompareConfig, "compare", params, overrides or [])
    result = run_tracked("compare", cfg, params, track, run_compare)
    if as_json:
        typer.echo(json.dumps({"files": [str(f) for f in result.files], "verdict": result.verdict}))
    else:
        typer.echo(result.summary())
