"""Stage `sft`: supervised warm start on the single-turn rows (TRL SFTTrainer, loss on the answer only).

    cfg = load_config(SftConfig, "sft", "params.yaml", ["sft.max_steps=2"])
    result = run_sft(cfg)                 # models/sft, metrics/sft.json, plots/sft/*.csv
    result = run_sft(cfg, resume=True)    # continue from the last complete checkpoint

Rows are conversational prompt/completion pairs, so TRL masks the prompt and
trains on `Action: <expert action><|im_end|>` only. Single-turn validation
accuracy (greedy decoding, exact expert action) is measured before training
(the base model) and at the end. What SFT shares with GRPO (paths, optimizer,
checkpoints, validation, the run itself) lives in train/settings.py and
train/backend.py; this module holds the collation and its own knobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError
from taskplan.io import read_json_input
from taskplan.train.backend import per_device_batch, trainer_kwargs
from taskplan.train.history import SFT_PLOTS, first_value, last_value, mean_value
from taskplan.train.run import TrainingMethod, run_training
from taskplan.train.settings import TrainerSettings, TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SftConfig(TrainerSettings):
    """params.yaml `sft:`; the fields it shares with GRPO are documented in TrainerSettings."""

    section: ClassVar[str] = "sft"
    # shared fields, with this stage's defaults
    model_dir: str = "models/init"
    out_dir: Path = Path("models/sft")
    checkpoint_dir: Path = Path("models/checkpoints/sft")
    metrics_path: Path = Path("metrics/sft.json")
    plots_dir: Path = Path("plots/sft")
    max_steps: int = 1500
    learning_rate: float = 1e-2                 # peak learning rate (the profiles set their own)
    warmup_ratio: float = 0.02
    save_steps: int = 250
    eval_every: int = 250
    # SFT's own fields
    batch_size: int = 8                         # rows per optimizer step (all processes, all micro-steps)
    max_length: int = 1536                      # tokens of prompt + answer (~430 domain tokens, ~1k for Qwen)
    completion_only_loss: bool = True           # loss on the answer only (False: on the whole conversation)
    max_seconds: float = 0.0                    # stop after this many seconds of training steps (0: no limit)
    seconds_from: Path | None = None            # ... or as many as `train_seconds` in this metrics JSON

    def check(self) -> None:
        self.require_positive("batch_size")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(f"sft.batch_size={self.batch_size} must be divisible by "
                              f"gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if self.max_length < 256:
            raise ConfigError(f"sft.max_length={self.max_length}: prompts reach ~550 domain tokens; use 1024 or more")
        if self.max_seconds < 0 or (self.max_seconds and self.seconds_from is not None):
            raise ConfigError(f"sft.max_seconds={self.max_seconds}: give a positive budget or seconds_from, not both")

    def time_budget(self) -> float:
        """Seconds of training steps allowed (0: no limit); seconds_from is read when the run starts."""
        if self.seconds_from is None:
            return self.max_seconds
        doc = read_json_input(self.seconds_from, "sft.seconds_from", ConfigError,
                              "run the stage that writes it (e.g. `taskplan grpo`) first")
        seconds = doc.get("train_seconds") if isinstance(doc, dict) else None
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ConfigError(f"sft.seconds_from={self.seconds_from} has no positive train_seconds; "
                              "run the stage that writes it (e.g. `taskplan grpo`) first")
        return float(seconds)


@dataclass(frozen=True, slots=True)
class SftResult(TrainResult):
    stage: ClassVar[str] = "sft"

    def details(self) -> str:
        m = self.metrics
        return (f"loss {m.get('final_loss', float('nan')):.3f}, val accuracy {m.get('base_val_accuracy', 0.0):.3f}"
                f" -> {m.get('val_accuracy', 0.0):.3f}")


def run_sft(cfg: SftConfig, resume: bool = False, callbacks: Sequence[Any] = ()) -> SftResult:
    """Train, save the policy, write metrics and plots. `callbacks` are extra TrainerCallbacks."""
    from taskplan.train.callbacks import TimeBudgetCallback

    budget = cfg.time_budget()   # before any loading: a missing budget file fails at once
    extra = [*callbacks, *([TimeBudgetCallback(budget)] if budget > 0 else [])]
    return run_training(cfg, SFT, resume, extra)


def training_args(cfg: SftConfig) -> Any:
    """TRL's SFTConfig for `cfg`: the shared TrainingArguments plus SFT's collation."""
    from trl import SFTConfig

    return SFTConfig(
        **trainer_kwargs(cfg),
        per_device_train_batch_size=per_device_batch(cfg.batch_size, cfg.gradient_accumulation_steps,
                                                     "sft.batch_size"),
        max_length=cfg.max_length,
        completion_only_loss=cfg.completion_only_loss,
        packing=False,
        shuffle_dataset=True,
        dataset_num_proc=None,
    )


def _summarise(cfg: SftConfig, history: list[dict[str, Any]]) -> dict[str, float | None]:
    return {
        "final_loss": last_value(history, "loss"),
        "loss_last10": mean_value(history, "loss", last=10),
        "base_val_accuracy": first_value(history, "val_accuracy"),
        "val_accuracy": last_value(history, "val_accuracy"),
        "tokens_per_second": mean_value(history, "tokens_per_second"),
        "train_seconds": last_value(history, "train_seconds"),   # time in training steps (learning-curve x)
    }


def _trainer_class() -> Any:
    from trl import SFTTrainer

    return SFTTrainer


# what SFT supplies to the shared run (train/run.py): its trainer, config, columns, metrics and plots
SFT = TrainingMethod(trainer_class=_trainer_class, training_args=training_args, columns=("prompt", "completion"),
                     summarise=_summarise, plots=SFT_PLOTS, result=SftResult)


STAGE = StageSpec("sft", SftConfig, run_sft, "Supervised warm start on the single-turn rows (loss on the answer only).",
                  live=True, resumable=True)
