"""Stage subcommands. Each module (data, train, evaluate, tracking) declares its commands on its own
`app = typer.Typer()`; `taskplan.cli` adds them to the one command line explicitly. Modules keep
module-level imports light (typer, pathlib, taskplan.config). The option types they share live here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameters file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="section.key=value override, e.g. sft.max_steps=2 "
                                                     "(repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TrackOpt = Annotated[bool, typer.Option("--track/--no-track", help="Log params, metrics and artifacts to MLflow "
                                        "(MLFLOW_TRACKING_URI, default ./mlflow.db).")]


def track_stage(stage: str, cfg: Any, result: Any, track: bool = True) -> None:
    """Hand a finished stage to MLflow (the only door to it); TASKPLAN_TRACK=0 turns it off everywhere."""
    if not track or os.environ.get("TASKPLAN_TRACK", "1") == "0":
        return
    from taskplan.tracking import log_stage

    log_stage(stage, cfg, result)


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr, or None when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    task_id = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task_id, completed=done, total=total)

    with bar:
        yield update
