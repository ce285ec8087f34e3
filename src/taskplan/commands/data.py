"""`taskplan suite`: the frozen evaluation suite (data/suite.json), which no stage writes.

The data stages (generate, validate, build-dataset) are commands of the stage catalog
(taskplan/commands/stages.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from taskplan.io import atomic_write_text

app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command()
def suite(out: Path = typer.Option(Path("data/suite.json"), help="Where to write the frozen suite.")) -> None:
    """Write the default frozen task suite (what `dvc pull data.dvc` restores)."""
    from taskplan.data.suite import suite_text

    atomic_write_text(out, suite_text())
    typer.echo(f"wrote {out}")
