"""Data stages: `taskplan generate`, `taskplan validate`, `taskplan build-dataset`.

Each command loads its config from params.yaml (+ `--set key=value`), calls the
stage's `run_*` function and prints a one-line summary on stdout. A rich
progress bar goes to stderr when stderr is a terminal. Heavy imports (pandas,
datasets, great_expectations) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from taskplan.commands import ParamsOpt, SetOpt, TrackOpt, progress_bar, run_tracked
from taskplan.config import load_config
from taskplan.io import atomic_write_text

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command()
def generate(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, track: TrackOpt = True) -> None:
    """Expert trajectories (one JSONL per noise level) for the training tasks x training seeds."""
    from taskplan.data.trajectories import GenerateConfig, run_generate

    cfg = load_config(GenerateConfig, "generate", params, overrides or [])
    with progress_bar("expert episodes") as progress:
        result = run_tracked("generate", cfg, params, track, run_generate, progress=progress)
    typer.echo(result.summary())


@app.command()
def validate(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, track: TrackOpt = True) -> None:
    """Great Expectations suites on the trajectories and the rows build-dataset will write."""
    from taskplan.data.dataset import BuildDatasetConfig
    from taskplan.data.validate import ValidateConfig, ValidationFailed, run_validate

    cfg = load_config(ValidateConfig, "validate", params, overrides or [])
    dataset_cfg = load_config(BuildDatasetConfig, "build_dataset", params, overrides or [])
    try:
        with progress_bar("replaying episodes") as progress:
            result = run_tracked("validate", cfg, params, track, run_validate, dataset_cfg=dataset_cfg,
                                 progress=progress)
    except ValidationFailed as err:                   # its MLflow run ended FAILED with the GX data docs
        for report in err.reports:
            for line in report.lines():
                typer.echo(f"FAILED {line}", err=True)
        raise
    typer.echo(result.summary())


@app.command("build-dataset")
def build_dataset(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, track: TrackOpt = True) -> None:
    """Single-turn rows (HF DatasetDict, split by seed) + stats JSON, from validated trajectories."""
    from taskplan.data.dataset import BuildDatasetConfig, run_build_dataset

    cfg = load_config(BuildDatasetConfig, "build_dataset", params, overrides or [])
    result = run_tracked("build_dataset", cfg, params, track, run_build_dataset)
    typer.echo(result.summary())





@app.command()
def suite(out: Path = typer.Option(Path("data/suite.json"), help="Where to write the frozen suite.")) -> None:
    """Write the default frozen task suite (what `dvc pull data.dvc` restores)."""
    from taskplan.data.suite import suite_text

    atomic_write_text(out, suite_text())
    typer.echo(f"wrote {out}")
