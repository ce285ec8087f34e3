"""Stage `sft`: supervised warm start on the single-turn rows (TRL SFTTrainer, loss on the answer only).

    cfg = load_config(SftConfig, "sft", "params.yaml", ["sft.max_steps=2"])
    result = run_sft(cfg)                 # models/sft, metrics/sft.json, plots/sft/*.csv
    result = run_sft(cfg, resume=True)    # continue from the last complete checkpoint

Rows are conversational prompt/completion pairs, so TRL masks the prompt and
trains on `Action: <expert action><|im_end|>` only. Single-turn validation
accuracy (greedy decoding, exact expert action) is measured before training
(the base model) and at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from taskplan.errors import ConfigError
from taskplan.train.backend import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SftConfig:
    model_dir: str = "models/init"             # local HF folder or hub id of the starting policy
    dataset_dir: Path = Path("outputs/single_turn")
    out_dir: Path = Path("models/sft")          # final HF folder, written atomically
    checkpoint_dir: Path = Path("models/checkpoints/sft")  # checkpoint-N/ for --resume (not a DVC out)
    metrics_path: Path = Path("metrics/sft.json")
    plots_dir: Path = Path("plots/sft")
    max_steps: int = 1500                       # optimizer steps
    batch_size: int = 8                         # rows per optimizer step (all processes, all micro-steps)
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-2                 # high: the tiny model starts from random weights
    lr_scheduler: Scheduler = "constant_with_warmup"
    warmup_ratio: float = 0.02                  # fraction of max_steps
    weight_decay: float = 0.0
    adam_beta2: float = 0.95                    # AdamW second-moment decay (0.95: steadier at high learning rates)
    max_grad_norm: float = 1.0
    max_length: int = 1536                      # tokens of prompt + answer (~430 domain tokens, ~1k for Qwen)
    completion_only_loss: bool = True           # loss on the answer only (False: on the whole conversation)
    model_dtype: Literal["auto", "float32", "bfloat16"] = "float32"  # dtype the policy is loaded in
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on a CUDA GPU, fp32 on CPU
    gradient_checkpointing: bool = False        # GPU only; always off on CPU
    cpu_threads: int = 1                        # torch threads on CPU (0: torch default; see train/backend.py)
    lora_r: int = 0                             # 0: full fine-tuning; >0: LoRA rank (peft)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    save_steps: int = 250                       # checkpoint every N steps
    save_total_limit: int = 2                   # keep the newest N checkpoints
    val_rows: int = 0                           # validation rows decoded for accuracy (0: all)
    val_batch_size: int = 32
    val_max_new_tokens: int = 24
    eval_every: int = 250                       # also measure every N steps (0: only before and after)
    max_seconds: float = 0.0                    # stop after this many seconds of training steps (0: no limit)
    seconds_from: Path | None = None            # ... or as many as `train_seconds` in this metrics JSON
    seed: int = 42                              # filled from common.seed

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "save_steps", "save_total_limit",
                     "val_batch_size", "val_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sft.{name}={getattr(self, name)} must be at least 1")
        if self.learning_rate <= 0:
            raise ConfigError(f"sft.learning_rate={self.learning_rate} must be positive")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(f"sft.batch_size={self.batch_size} must be divisible by "
                              f"gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"sft.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.max_length < 256:
            raise ConfigError(f"sft.max_length={self.max_length}: prompts reach ~550 domain tokens; use 1024 or more")
        if self.lora_r < 0:
            raise ConfigError(f"sft.lora_r={self.lora_r} must be 0 (off) or a positive rank")
        if self.max_seconds < 0 or (self.max_seconds and self.seconds_from is not None):
            raise ConfigError(f"sft.max_seconds={self.max_seconds}: give a positive budget or seconds_from, not both")

    def time_budget(self) -> float:
        """Seconds of training steps allowed (0: no limit); seconds_from is read when the run starts."""
        if self.seconds_from is None:
            return self.max_seconds
        import json

        try:
            seconds = json.loads(Path(self.seconds_from).read_text()).get("train_seconds")
        except (OSError, ValueError, AttributeError):
            seconds = None
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            raise ConfigError(f"sft.seconds_from={self.seconds_from} has no positive train_seconds; "
                              "run the stage that writes it (e.g. `taskplan grpo`) first")
        return float(seconds)


@dataclass(frozen=True, slots=True)
class SftResult:
    out_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        m = self.metrics
        return (f"sft: {int(m.get('steps', 0))} steps in {m.get('wall_seconds', 0.0):.0f} s, "
                f"loss {m.get('final_loss', float('nan')):.3f}, val accuracy {m.get('base_val_accuracy', 0.0):.3f}"
                f" -> {m.get('val_accuracy', 0.0):.3f} -> {self.out_dir}")


def run_sft(cfg: SftConfig, resume: bool = False, callbacks: Sequence[Any] = ()) -> SftResult:
    """Train, save the policy, write metrics and plots. `callbacks` are extra TrainerCallbacks."""
    from taskplan.train.callbacks import TimeBudgetCallback
    from taskplan.train.checkpoints import train_with_checkpoints

    start = time.perf_counter()
    budget = cfg.time_budget()
    extra = [*callbacks, *([TimeBudgetCallback(budget)] if budget > 0 else [])]
    trainer = train_with_checkpoints(cfg, build_trainer, resume, extra)
    return _finish(cfg, trainer.state, time.perf_counter() - start)


def build_trainer(cfg: SftConfig, callbacks: Sequence[Any] = ()) -> tuple[Any, Any]:
    """The configured TRL trainer and the tokenizer (also used by benchmarks/bench_grpo.py)."""
    from trl import SFTConfig, SFTTrainer

    from taskplan.model.factory import load_policy, load_tokenizer
    from taskplan.train.backend import (compact_logprobs_on_cpu, configure_cpu, lora_config, per_device_batch,
                                        quiet_stdout, trainer_kwargs)
    from taskplan.train.callbacks import ThroughputCallback, ValAccuracyCallback
    from taskplan.train.rows import load_rows, training_columns, validation_subset

    configure_cpu(cfg.cpu_threads)
    compact_logprobs_on_cpu()
    ds = load_rows(cfg.dataset_dir)
    tokenizer = load_tokenizer(cfg.model_dir)
    model = load_policy(cfg.model_dir, dtype=cfg.model_dtype)
    args = SFTConfig(
        **trainer_kwargs(cfg),
        per_device_train_batch_size=per_device_batch(cfg.batch_size, cfg.gradient_accumulation_steps,
                                                     "sft.batch_size"),
        max_length=cfg.max_length,
        completion_only_loss=cfg.completion_only_loss,
        packing=False,
        shuffle_dataset=True,
        dataset_num_proc=None,
    )
    val = ValAccuracyCallback(validation_subset(ds, cfg.val_rows, cfg.seed), tokenizer, cfg.eval_every,
                              cfg.val_batch_size, cfg.val_max_new_tokens, at_start=True)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=training_columns(ds["train"], ("prompt", "completion")),
        processing_class=tokenizer,
        callbacks=[ThroughputCallback(), val, *callbacks],
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules),
    )
    return quiet_stdout(trainer), tokenizer


def _finish(cfg: SftConfig, state: Any, seconds: float) -> SftResult:
    from taskplan.io import atomic_write_json
    from taskplan.train.history import SFT_PLOTS, first_value, last_value, mean_value, step_history, write_plots

    history = step_history(state.log_history)
    metrics = {
        "steps": float(state.global_step),
        "wall_seconds": round(seconds, 2),  # the whole stage: load, train, validate, save
        "final_loss": last_value(history, "loss"),
        "loss_last10": mean_value(history, "loss", last=10),
        "base_val_accuracy": first_value(history, "val_accuracy"),
        "val_accuracy": last_value(history, "val_accuracy"),
        "tokens_per_second": mean_value(history, "tokens_per_second"),
        "train_seconds": last_value(history, "train_seconds"),   # time in training steps (learning-curve x)
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    atomic_write_json(cfg.metrics_path, metrics)
    write_plots(history, cfg.plots_dir, SFT_PLOTS)
    return SftResult(cfg.out_dir, metrics, history)
