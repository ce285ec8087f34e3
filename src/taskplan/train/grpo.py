"""Stage `grpo`: single-turn RL on the expert-action reward with a KL term (TRL GRPOTrainer).

    cfg = load_config(GrpoConfig, "grpo", "params.yaml", ["grpo.max_steps=2"])
    result = run_grpo(cfg)                # models/grpo, metrics/grpo.json, plots/grpo/*.csv
    result = run_grpo(cfg, resume=True)   # continue from the last complete checkpoint

Each optimizer step samples `num_generations` completions for each of
`prompts_per_step` prompts (TRL's batch counts completions: trl#2858, #3061),
scores them with `exact_match_reward` (1 iff the parsed action is the expert
action) and `format_reward` (reported on its own; weight 0 by default, as the
paper's reward is the binary one), and takes a group-relative policy-gradient
step with KL to the frozen starting policy (beta > 0). Single-turn validation
accuracy is measured before the first step (the starting policy), every
`eval_every` steps and at the end.
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
class GrpoConfig:
    model_dir: str = "models/sft"               # starting (and reference) policy: local folder or hub id
    dataset_dir: Path = Path("outputs/single_turn")
    out_dir: Path = Path("models/grpo")          # final HF folder, written atomically
    checkpoint_dir: Path = Path("models/checkpoints/grpo")  # checkpoint-N/ for --resume (not a DVC out)
    metrics_path: Path = Path("metrics/grpo.json")
    plots_dir: Path = Path("plots/grpo")
    max_steps: int = 80                         # optimizer steps
    prompts_per_step: int = 8                   # distinct prompts per optimizer step
    num_generations: int = 8                    # group size G for the relative advantage (>= 2)
    gradient_accumulation_steps: int = 1        # micro-steps per optimizer step (TRL's steps_per_generation)
    beta: float = 0.04                          # KL coefficient to the reference policy (> 0)
    temperature: float = 1.0                    # sampling temperature of the rollouts
    top_p: float = 1.0
    max_completion_length: int = 16             # tokens per completion ("Action: ..." is ~9 domain tokens)
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    epsilon: float = 0.2                        # PPO-style clip range
    num_iterations: int = 1                     # policy updates per generation batch (mu)
    exact_match_weight: float = 1.0             # weight of the exact-match reward
    format_weight: float = 0.0                  # weight of the format reward (always logged)
    learning_rate: float = 1e-3                 # 3e-3 cost 9 points of validation accuracy
    lr_scheduler: Scheduler = "constant_with_warmup"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    adam_beta2: float = 0.95                    # AdamW second-moment decay (0.95: steadier at high learning rates)
    max_grad_norm: float = 1.0
    model_dtype: Literal["auto", "float32", "bfloat16"] = "float32"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on a CUDA GPU, fp32 on CPU
    gradient_checkpointing: bool = False        # GPU only; always off on CPU
    cpu_threads: int = 1                        # torch threads on CPU (0: torch default; see train/backend.py)
    use_vllm: bool = False                      # vLLM generation when installed and on GPU (colocated)
    vllm_gpu_memory_utilization: float = 0.3
    lora_r: int = 0                             # 0: full fine-tuning; >0: LoRA rank (peft)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    save_steps: int = 20                        # checkpoint every N steps
    save_total_limit: int = 2
    eval_every: int = 20                        # validation accuracy every N steps (and at the end)
    val_rows: int = 0                           # validation rows decoded (0: all)
    val_batch_size: int = 32
    val_max_new_tokens: int = 24
    seed: int = 42                              # filled from common.seed

    def __post_init__(self) -> None:
        if self.num_generations < 2:
            raise ConfigError(f"grpo.num_generations={self.num_generations}: GRPO needs at least 2 completions "
                              "per prompt for a group-relative advantage")
        if self.beta <= 0:
            raise ConfigError(f"grpo.beta={self.beta}: the method keeps a KL term to the reference policy; "
                              "set beta > 0 (e.g. 0.04)")
        for name in ("max_steps", "prompts_per_step", "gradient_accumulation_steps", "max_completion_length",
                     "num_iterations", "save_steps", "save_total_limit", "val_batch_size", "val_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"grpo.{name}={getattr(self, name)} must be at least 1")
        if self.completions_per_step % self.gradient_accumulation_steps:
            raise ConfigError(f"grpo: prompts_per_step x num_generations = {self.completions_per_step} must be "
                              f"divisible by gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if self.temperature <= 0:
            raise ConfigError(f"grpo.temperature={self.temperature} must be positive (GRPO samples)")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"grpo.top_p={self.top_p} must be in (0, 1]")
        if self.learning_rate <= 0:
            raise ConfigError(f"grpo.learning_rate={self.learning_rate} must be positive")
        if self.exact_match_weight <= 0:
            raise ConfigError(f"grpo.exact_match_weight={self.exact_match_weight}: the exact-match reward is the "
                              "training signal; give it a positive weight")
        if self.format_weight < 0:
            raise ConfigError(f"grpo.format_weight={self.format_weight} must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"grpo.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.lora_r < 0:
            raise ConfigError(f"grpo.lora_r={self.lora_r} must be 0 (off) or a positive rank")

    @property
    def completions_per_step(self) -> int:
        """What TRL calls the (global, accumulated) train batch: prompts x group size."""
        return self.prompts_per_step * self.num_generations


@dataclass(frozen=True, slots=True)
class GrpoResult:
    out_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        m = self.metrics
        return (f"grpo: {int(m.get('steps', 0))} steps in {m.get('wall_seconds', 0.0):.0f} s, "
                f"reward {m.get('reward_mean', 0.0):.3f}, kl {m.get('kl', 0.0):.4f}, val accuracy "
                f"{m.get('start_val_accuracy', 0.0):.3f} -> {m.get('val_accuracy', 0.0):.3f} -> {self.out_dir}")


def run_grpo(cfg: GrpoConfig, resume: bool = False, callbacks: Sequence[Any] = ()) -> GrpoResult:
    """Train, save the policy, write metrics and plots. `callbacks` are extra TrainerCallbacks."""
    from taskplan.train.checkpoints import train_with_checkpoints

    start = time.perf_counter()
    trainer = train_with_checkpoints(cfg, build_trainer, resume, callbacks)   # resumes only these inputs
    return _finish(cfg, trainer.state, time.perf_counter() - start)


def build_trainer(cfg: GrpoConfig, callbacks: Sequence[Any] = ()) -> tuple[Any, Any]:
    """The configured TRL trainer and the tokenizer (also used by benchmarks/bench_grpo.py)."""
    from trl import GRPOConfig, GRPOTrainer

    from taskplan.model.factory import load_policy, load_tokenizer
    from taskplan.train.backend import (compact_logprobs_on_cpu, configure_cpu, lora_config, per_device_batch,
                                        quiet_stdout, trainer_kwargs, vllm_available)
    from taskplan.train.callbacks import ThroughputCallback, ValAccuracyCallback
    from taskplan.train.rewards import exact_match_reward, format_reward
    from taskplan.train.rows import load_rows, training_columns, validation_subset

    configure_cpu(cfg.cpu_threads)
    compact_logprobs_on_cpu()
    ds = load_rows(cfg.dataset_dir)
    tokenizer = load_tokenizer(cfg.model_dir)
    model = load_policy(cfg.model_dir, dtype=cfg.model_dtype)
    use_vllm = cfg.use_vllm and vllm_available()
    if cfg.use_vllm and not use_vllm:
        log.warning("grpo.use_vllm=true but vLLM or a CUDA GPU is missing; generating with transformers")
    args = GRPOConfig(
        **trainer_kwargs(cfg),
        per_device_train_batch_size=per_device_batch(cfg.completions_per_step, cfg.gradient_accumulation_steps,
                                                     "grpo: prompts_per_step x num_generations"),
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        beta=cfg.beta,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        epsilon=cfg.epsilon,
        num_iterations=cfg.num_iterations,
        reward_weights=[cfg.exact_match_weight, cfg.format_weight],
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        shuffle_dataset=True,
        log_completions=False,
    )
    val = ValAccuracyCallback(validation_subset(ds, cfg.val_rows, cfg.seed), tokenizer, cfg.eval_every,
                              cfg.val_batch_size, cfg.val_max_new_tokens, at_start=True)
    trainer = GRPOTrainer(
        model=model, reward_funcs=[exact_match_reward, format_reward], args=args,
        train_dataset=training_columns(ds["train"], ("prompt", "answer", "valid_actions")),
        processing_class=tokenizer,
        callbacks=[ThroughputCallback(), val, *callbacks],
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules),
    )
    return quiet_stdout(trainer), tokenizer


def _finish(cfg: GrpoConfig, state: Any, seconds: float) -> GrpoResult:
    from taskplan.io import atomic_write_json
    from taskplan.train.history import GRPO_PLOTS, first_value, last_value, mean_value, step_history, write_plots

    history = step_history(state.log_history)
    last = max(1, min(10, cfg.max_steps // 4))  # smooth the noisy per-step rewards over the last steps
    metrics = {
        "steps": float(state.global_step),
        "wall_seconds": round(seconds, 2),  # the whole stage: load, train, validate, save
        "reward_mean": mean_value(history, "reward_mean", last=last),
        "reward_std": mean_value(history, "reward_std", last=last),
        "exact_match": mean_value(history, "exact_match", last=last),
        "format": mean_value(history, "format", last=last),
        "kl": mean_value(history, "kl", last=last),
        "first_reward_mean": first_value(history, "reward_mean"),
        "start_val_accuracy": first_value(history, "val_accuracy"),  # the starting (SFT) policy
        "val_accuracy": last_value(history, "val_accuracy"),
        "tokens_per_second": mean_value(history, "tokens_per_second"),
        "step_seconds": mean_value(history, "step_seconds"),
        "train_seconds": last_value(history, "train_seconds"),   # the SFT control row's time budget
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    atomic_write_json(cfg.metrics_path, metrics)
    write_plots(history, cfg.plots_dir, GRPO_PLOTS)
    return GrpoResult(cfg.out_dir, metrics, history)
