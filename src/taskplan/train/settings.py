"""What every training stage shares: its settings (`TrainerSettings`) and its result (`TrainResult`).

SFT and GRPO differ in their method (data collation vs rewards and groups),
not in where their inputs and outputs live, how the optimizer is scheduled,
how often they checkpoint and measure, or how a run is resumed and finished.
Those fields are declared once here; a stage config inherits them and adds its
own, so params.yaml stays flat (`sft.learning_rate`, `--set grpo.max_steps=2`):

    @dataclass(frozen=True, slots=True, kw_only=True)
    class SftConfig(TrainerSettings):
        section: ClassVar[str] = "sft"            # prefix of its error messages
        model_dir: str = "models/init"            # the per-stage fields below have no default here
        ...
        batch_size: int = 8                        # its own fields

        def check(self) -> None:                   # its own checks, after the shared ones
            self.require_positive("batch_size")

`trainer_kwargs(settings)` in backend.py turns these fields into the
TrainingArguments both TRL configs take; train/run.py's `run_training` is the
run itself (load, build, resume, train, save, summarise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from taskplan.errors import ConfigError

Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "warmup_stable_decay"]


# kw_only: the per-stage fields (paths, step counts, learning rate) have no default here, and each stage
# config redeclares them with its own; without kw_only a field without default could not follow one with.
@dataclass(frozen=True, slots=True, kw_only=True)
class TrainerSettings:
    """Fields SFT and GRPO share; subclass it (frozen, slotted, kw_only) and set `section`."""

    section: ClassVar[str] = "train"          # params.yaml section, names the field in error messages
    model_dir: str                            # starting policy: local HF folder or hub id
    dataset_dir: Path = Path("outputs/single_turn")
    out_dir: Path                             # final HF folder, written atomically
    checkpoint_dir: Path                      # checkpoint-N/ for --resume (not a DVC out)
    metrics_path: Path
    plots_dir: Path
    max_steps: int                            # optimizer steps
    gradient_accumulation_steps: int = 1      # micro-steps per optimizer step
    learning_rate: float                      # peak learning rate of the scheduler
    lr_scheduler: Scheduler = "constant_with_warmup"
    warmup_ratio: float                       # fraction of max_steps
    weight_decay: float = 0.0
    adam_beta2: float = 0.95                  # AdamW second-moment decay (0.95: steadier at high learning rates)
    max_grad_norm: float = 1.0
    model_dtype: Literal["auto", "float32", "bfloat16"] = "float32"  # dtype the policy is loaded in
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on a CUDA GPU, fp32 on CPU
    gradient_checkpointing: bool = False      # GPU only; always off on CPU
    cpu_threads: int = 1                      # torch threads on CPU (0: torch default; see train/backend.py)
    lora_r: int = 0                           # 0: full fine-tuning; >0: LoRA rank (peft)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    save_steps: int                           # checkpoint every N steps
    save_total_limit: int = 2                 # keep the newest N checkpoints
    val_rows: int = 0                         # validation rows decoded greedily for accuracy (0: all)
    val_batch_size: int = 32
    val_max_new_tokens: int = 48
    eval_every: int                           # also measure every N steps (0: only before and after)
    seed: int = 42                            # filled from common.seed

    def __post_init__(self) -> None:
        """The shared checks, then the stage's own (`check`)."""
        self.require_positive("max_steps", "gradient_accumulation_steps", "save_steps", "save_total_limit",
                              "val_batch_size", "val_max_new_tokens")
        if self.learning_rate <= 0:
            raise ConfigError(f"{self.section}.learning_rate={self.learning_rate} must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"{self.section}.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.lora_r < 0:
            raise ConfigError(f"{self.section}.lora_r={self.lora_r} must be 0 (off) or a positive rank")
        if self.cpu_threads < 0:
            raise ConfigError(f"{self.section}.cpu_threads={self.cpu_threads}: use 0 (torch's default) or a "
                              "positive count")
        self.check()

    def check(self) -> None:
        """A stage's own checks (ConfigError); runs after the shared ones."""

    def require_positive(self, *names: str) -> None:
        """ConfigError naming the first of `names` that is below 1."""
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"{self.section}.{name}={getattr(self, name)} must be at least 1")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a training stage returns; a stage's result class names the stage and its `details()`."""

    stage: ClassVar[str] = "train"
    out_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """One human line: `sft: 1200 steps in 610 s, <details> -> models/sft`."""
        m = self.metrics
        return (f"{self.stage}: {int(m.get('steps', 0))} steps in {m.get('wall_seconds', 0.0):.0f} s, "
                f"{self.details()} -> {self.out_dir}")

    def details(self) -> str:
        return ""
