"""Training stages on the command line: `taskplan model-init`, `taskplan sft`, `taskplan grpo`,
and `taskplan model-card` (the kitchen base's README).

    taskplan model-init
    taskplan sft --set sft.max_steps=2
    taskplan grpo --resume

Each command loads its params section (profile applied, `--set` overrides),
calls the stage's `run_*` function and prints one summary line. torch,
transformers and TRL load inside the commands, so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskplan.commands import ParamsOpt, SetOpt, TrackOpt, run_tracked
from taskplan.config import load_config

ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume",
                                         help="Continue from the last complete checkpoint (optimizer, scheduler "
                                              "and RNG state included) instead of starting over.")]


app = typer.Typer()   # its commands join taskplan.cli's app (see taskplan.cli)

@app.command(name="model-init")
def model_init(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, track: TrackOpt = True) -> None:
    """Write the base policy (models/init): tiny domain model, or a pretrained/random-init HF model."""
    from taskplan.model.builder import ModelInitConfig, run_model_init

    cfg = load_config(ModelInitConfig, "model_init", params, overrides or [])
    result = run_tracked("model_init", cfg, params, track, run_model_init)
    typer.echo(result.summary())


@app.command(name="model-card")
def model_card(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None) -> None:
    """Write the kitchen base's model card (models/base/README.md) from the pretrain stage's records."""
    from taskplan.model.card import ModelCardConfig, run_model_card

    cfg = load_config(ModelCardConfig, "model_card", params, overrides or [])
    typer.echo(run_model_card(cfg).summary())


@app.command()
def sft(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, resume: ResumeOpt = False,
        track: TrackOpt = True) -> None:
    """Supervised warm start on the single-turn rows (loss on the answer only)."""
    from taskplan.train.sft import SftConfig, run_sft

    cfg = load_config(SftConfig, "sft", params, overrides or [])
    result = run_tracked("sft", cfg, params, track, run_sft, live=True, resume=resume)
    typer.echo(result.summary())


@app.command()
def grpo(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, resume: ResumeOpt = False,
         track: TrackOpt = True) -> None:
    """GRPO on the exact expert-action reward with a KL term to the SFT policy."""
    from taskplan.train.grpo import GrpoConfig, run_grpo

    cfg = load_config(GrpoConfig, "grpo", params, overrides or [])
    result = run_tracked("grpo", cfg, params, track, run_grpo, live=True, resume=resume)
    typer.echo(result.summary())
