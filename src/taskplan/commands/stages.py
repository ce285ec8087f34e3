"""One CLI command per stage of the catalog: `taskplan generate`, `taskplan sft --resume`, `taskplan evaluate --json`.

    taskplan generate
    taskplan sft --set sft.max_steps=2 --resume
    taskplan evaluate --set evaluate.seeds=[42] --json

Each command is built from the stage's `StageSpec` (taskplan/catalog.py): it loads the stage's params
section (profile applied, `--set` overrides last) and the sections its run needs, runs the stage inside
its MLflow run (`run_tracked`) with a progress bar on stderr when it has one, and prints one summary line
(or, with --json, one JSON document). Options a stage does not take are not offered: --resume only for
resumable stages, --json only where the result has a document. Under `accelerate launch` only rank 0
prints. A failure whose exception carries `details()` (validate's failed checks) prints those lines on
stderr before the one error line.
"""

# no `from __future__ import annotations`: typer reads the option types from the signature built below
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from taskplan.catalog import StageSpec, stage_specs
from taskplan.commands import JsonOpt, ParamsOpt, SetOpt, TrackOpt, progress_bar, run_tracked
from taskplan.config import load_config
from taskplan.errors import TaskplanError
from taskplan.train.backend import is_main_process

ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume",
                                         help="Continue from the last complete checkpoint (optimizer, scheduler "
                                              "and RNG state included) instead of starting over.")]

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)


def run_stage(spec: StageSpec, params: Path, overrides: list[str], track: bool = True, resume: bool = False,
              as_json: bool = False) -> Any:
    """What every stage command does; returns the stage's result after printing it."""
    cfg = load_config(spec.config, spec.name, params, overrides)
    kwargs: dict[str, Any] = {key: load_config(stage_specs()[section].config, section, params, overrides)
                              for key, section in spec.needs}
    if spec.resumable:
        kwargs["resume"] = resume
    try:
        with progress_bar(spec.progress, enabled=bool(spec.progress) and not as_json) as progress:
            if spec.progress:
                kwargs["progress"] = progress
            if spec.tracked:
                result = run_tracked(spec.name, cfg, params, track, spec.run, live=spec.live, **kwargs)
            else:
                result = spec.run(cfg, **kwargs)
    except TaskplanError as err:
        for line in getattr(err, "details", list)():
            typer.echo(line, err=True)
        raise
    if is_main_process():   # one summary line under accelerate launch too
        typer.echo(json.dumps(result.to_json(), default=str) if as_json else result.summary())
    return result


def _command(spec: StageSpec) -> Callable[..., None]:
    """A typer command for `spec` whose signature offers only the options this stage takes."""

    def command(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, track: TrackOpt = True,
                resume: ResumeOpt = False, as_json: JsonOpt = False) -> None:
        # the spec is looked up when the command runs, so a test can swap a stage's run in the catalog
        run_stage(stage_specs()[spec.name], params, list(overrides or []), track, resume, as_json)

    signature = inspect.signature(command)
    keep = [p for p in signature.parameters.values()
            if not (p.name == "resume" and not spec.resumable) and not (p.name == "as_json" and not spec.json)
            and not (p.name == "track" and not spec.tracked)]
    command.__signature__ = signature.replace(parameters=keep)   # type: ignore[attr-defined]
    command.__doc__ = spec.help
    command.__name__ = spec.name
    return command


for _spec in stage_specs().values():
    if _spec.command:
        app.command(name=_spec.command_name)(_command(_spec))
