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

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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

    _train("sft", SftConfig, run_sft, params, overrides, resume, track)


@app.command()
def grpo(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None, resume: ResumeOpt = False,
         track: TrackOpt = True) -> None:
    """GRPO on the exact expert-action reward with a KL term to the SFT policy."""
    from taskplan.train.grpo import GrpoConfig, run_grpo

    _train("grpo", GrpoConfig, run_grpo, params, overrides, resume, track)


def _train(section: str, config_cls: Any, run: Callable[..., Any], params: Path, overrides: list[str] | None,
           resume: bool, track: bool) -> None:
    """A training stage: its section of params, its run with step metrics as they come, its summary line."""
    from taskplan.train.backend import is_main_process

    cfg = load_config(config_cls, section, params, overrides or [])
    result = run_tracked(section, cfg, params, track, run, live=True, resume=resume)
    if is_main_process():   # one summary line under accelerate launch too
        typer.echo(result.summary())
