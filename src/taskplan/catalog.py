"""The stage catalog: each stage declares itself once, in its own module, as a `StageSpec`.

    # train/sft.py, at the end of the module
    STAGE = StageSpec("sft", SftConfig, run_sft, "Supervised warm start on the single-turn rows.",
                      resumable=True, live=True)

    specs = stage_specs()            # {"generate": StageSpec(...), ...}, found in the package's source

A spec says what the rest of the project needs to know about a stage: its params.yaml section (= dvc.yaml
stage name; the CLI command is the same with '-'), its config class, its run function and the keyword
arguments that function takes (other sections' configs, a progress callback, the MLflow run's live
callbacks, `resume`), and how the Prefect flow treats it (resumable, retried on flaky I/O). From it come:

- the stage commands of the CLI (taskplan/commands/stages.py builds one per spec);
- the flow's runners and retry/resume choices (orchestrate/stages.py, orchestrate/flow.py);
- `taskplan params` (every section with its fields' help).

dvc.yaml stays the wiring (deps, outs, order); tests/test_catalog.py holds the two against each other.
A stage module is found by its `STAGE = StageSpec(` line, so no list names the modules: adding a stage
touches its module, dvc.yaml and params.yaml (CONTRIBUTING.md walks through one).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MARKER = "\nSTAGE = StageSpec("


@dataclass(frozen=True)
class StageSpec:
    name: str                               # params.yaml section == dvc.yaml stage; command: '_' -> '-'
    config: type                            # the section's dataclass
    run: Callable[..., Any]                 # run(cfg, **kwargs) -> result with .summary() (.to_json() for --json)
    help: str                               # the command's help line
    needs: tuple[tuple[str, str], ...] = ()  # (keyword, section): other sections' configs that run() takes
    progress: str = ""                      # progress bar label; run() takes progress=
    live: bool = False                      # run() takes callbacks= (step metrics into the MLflow run)
    resumable: bool = False                 # run() takes resume= (--resume; the flow resumes a same-input run)
    flaky_io: bool = False                  # the flow retries it on connection errors (hub, chat endpoints)
    json: bool = False                      # --json prints result.to_json()
    tracked: bool = True                    # runs inside its MLflow stage run (register opens its own)
    pipeline: bool = True                   # one of dvc.yaml's flow stages (cross_task, model_card: not)
    command: bool = True                    # the generic CLI command (register has its own: --if-missing)

    @property
    def command_name(self) -> str:
        return self.name.replace("_", "-")


@cache
def stage_specs() -> dict[str, StageSpec]:
    """Every stage's spec, from the modules of the package whose source declares `STAGE = StageSpec(`,
    in a fixed order (module path). Importing them is cheap: stage modules import heavy packages inside
    their functions."""
    root = Path(__file__).resolve().parent
    specs: dict[str, StageSpec] = {}
    for path in sorted(root.rglob("*.py")):
        if MARKER not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        spec = module.STAGE
        if spec.name in specs:
            raise RuntimeError(f"stage {spec.name!r} is declared twice ({module.__name__})")
        specs[spec.name] = spec
    return specs


def stage_spec(name: str) -> StageSpec:
    """The spec of stage `name` (KeyError names the known ones)."""
    specs = stage_specs()
    if name not in specs:
        raise KeyError(f"no stage {name!r}; known: {', '.join(specs)}")
    return specs[name]
