"""Subcommands. `stages` builds one command per stage of the catalog; `data` (suite) and `tracking`
(register, pipeline, ui) declare theirs on their own `app = typer.Typer()`; `taskplan.cli` adds them to the
one command line. Module-level imports stay light (no torch, mlflow, prefect). The option types they share,
the MLflow door (`run_tracked`) and the progress bar live here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from taskplan.orchestrate.stages import stage_io_for
from taskplan.tracking import stage_run
from taskplan.train.backend import is_main_process

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameters file.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="section.key=value override, e.g. sft.max_steps=2 "
                                                     "(repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TrackOpt = Annotated[bool, typer.Option("--track/--no-track", help="Log params, metrics and artifacts to MLflow "
                                        "(MLFLOW_TRACKING_URI, default ./mlflow.db).")]


def run_tracked(stage: str, cfg: Any, params: Path, track: bool, run: Callable[..., Any], *, live: bool = False,
                **kwargs: Any) -> Any:
    """`run(cfg, **kwargs)` inside the stage's MLflow run (the only door to it): opened before the stage
    starts, with what dvc.yaml says it reads and writes; `live` passes the run's TrainerCallbacks as
    `callbacks` (step metrics as training goes). TASKPLAN_TRACK=0 or --no-track: just `run(cfg)`; so do
    the ranks other than 0 of a multi-process launch (one run, not one per process)."""
    if not track or os.environ.get("TASKPLAN_TRACK", "1") == "0" or not is_main_process():
        return run(cfg, **kwargs)
    with stage_run(stage, cfg, stage_io_for(stage, cfg, params)) as mlrun:
        if live:
            kwargs["callbacks"] = mlrun.callbacks()
        result = run(cfg, **kwargs)
        mlrun.finish(result)
    return result


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
