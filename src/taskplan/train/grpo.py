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
`eval_every` steps and at the end. What GRPO shares with SFT (paths, optimizer,
checkpoints, validation, the run itself) lives in train/settings.py and
train/backend.py; this module holds the rewards, groups and sampling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError
from taskplan.train.backend import per_device_batch, trainer_kwargs, vllm_available
from taskplan.train.history import GRPO_PLOTS, first_value, last_value, mean_value
from taskplan.train.rewards import exact_match_reward, format_reward
from taskplan.train.run import TrainingMethod, run_training
from taskplan.train.settings import TrainerSettings, TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrpoConfig(TrainerSettings):
    """params.yaml `grpo:`; the fields it shares with SFT are documented in TrainerSettings."""

    section: ClassVar[str] = "grpo"
    # shared fields, with this stage's defaults
    model_dir: str = "models/sft"               # starting (and KL reference) policy
    out_dir: Path = Path("models/grpo")
    checkpoint_dir: Path = Path("models/checkpoints/grpo")
    metrics_path: Path = Path("metrics/grpo.json")
    plots_dir: Path = Path("plots/grpo")
    max_steps: int = 80
    learning_rate: float = 1e-3                 # peak learning rate (the profiles set their own)
    warmup_ratio: float = 0.1
    save_steps: int = 20
    eval_every: int = 20
    # GRPO's own fields (gradient_accumulation_steps is TRL's steps_per_generation here)
    prompts_per_step: int = 8                   # distinct prompts per optimizer step
    num_generations: int = 8                    # group size G for the relative advantage (>= 2)
    beta: float = 0.04                          # KL coefficient to the reference policy (> 0)
    temperature: float = 1.0                    # sampling temperature of the rollouts
    top_p: float = 1.0
    max_completion_length: int = 48             # tokens per completion (reasoning line + action: ~30)
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    epsilon: float = 0.2                        # PPO-style clip range
    num_iterations: int = 1                     # policy updates per generation batch (mu)
    exact_match_weight: float = 1.0             # weight of the exact-match reward
    format_weight: float = 0.0                  # weight of the format reward (always logged)
    use_vllm: bool = False                      # vLLM generation when installed and on GPU (colocated)
    vllm_gpu_memory_utilization: float = 0.3

    def check(self) -> None:
        if self.num_generations < 2:
            raise ConfigError(f"grpo.num_generations={self.num_generations}: GRPO needs at least 2 completions "
                              "per prompt for a group-relative advantage")
        if self.beta <= 0:
            raise ConfigError(f"grpo.beta={self.beta}: the method keeps a KL term to the reference policy; "
                              "set beta > 0 (e.g. 0.04)")
        self.require_positive("prompts_per_step", "max_completion_length", "num_iterations")
        if self.completions_per_step % self.gradient_accumulation_steps:
            raise ConfigError(f"grpo: prompts_per_step x num_generations = {self.completions_per_step} must be "
                              f"divisible by gradient_accumulation_steps={self.gradient_accumulation_steps}")
        if self.temperature <= 0:
            raise ConfigError(f"grpo.temperature={self.temperature} must be positive (GRPO samples)")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"grpo.top_p={self.top_p} must be in (0, 1]")
        if self.exact_match_weight <= 0:
            raise ConfigError(f"grpo.exact_match_weight={self.exact_match_weight}: the exact-match reward is the "
                              "training signal; give it a positive weight")
        if self.format_weight < 0:
            raise ConfigError(f"grpo.format_weight={self.format_weight} must be >= 0")

    @property
    def completions_per_step(self) -> int:
        """What TRL calls the (global, accumulated) train batch: prompts x group size."""
        return self.prompts_per_step * self.num_generations


@dataclass(frozen=True, slots=True)
class GrpoResult(TrainResult):
    stage: ClassVar[str] = "grpo"

    def details(self) -> str:
        m = self.metrics
        return (f"reward {m.get('reward_mean', 0.0):.3f}, kl {m.get('kl', 0.0):.4f}, val accuracy "
                f"{m.get('start_val_accuracy', 0.0):.3f} -> {m.get('val_accuracy', 0.0):.3f}")


def run_grpo(cfg: GrpoConfig, resume: bool = False, callbacks: Sequence[Any] = ()) -> GrpoResult:
    """Train, save the policy, write metrics and plots. `callbacks` are extra TrainerCallbacks."""
    return run_training(cfg, GRPO, resume, callbacks)


def training_args(cfg: GrpoConfig) -> Any:
    """TRL's GRPOConfig for `cfg`: the shared TrainingArguments plus groups, sampling, loss and rewards."""
    from trl import GRPOConfig

    use_vllm = cfg.use_vllm and vllm_available()
    if cfg.use_vllm and not use_vllm:
        log.warning("grpo.use_vllm=true but vLLM or a CUDA GPU is missing; generating with transformers")
    return GRPOConfig(
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
        reward_weights=[cfg.exact_match_weight, cfg.format_weight],   # in reward_funcs' order (_rewards)
        use_vllm=use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        shuffle_dataset=True,
        log_completions=False,
    )


def _summarise(cfg: GrpoConfig, history: list[dict[str, Any]]) -> dict[str, float | None]:
    last = max(1, min(10, cfg.max_steps // 4))  # smooth the noisy per-step rewards over the last steps
    return {
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


def _trainer_class() -> Any:
    from trl import GRPOTrainer

    return GRPOTrainer


def _rewards() -> dict[str, Any]:
    return {"reward_funcs": [exact_match_reward, format_reward]}


# what GRPO supplies to the shared run (train/run.py): its trainer, config, columns, rewards, metrics and plots
GRPO = TrainingMethod(trainer_class=_trainer_class, training_args=training_args,
                      columns=("prompt", "answer", "valid_actions"), summarise=_summarise, plots=GRPO_PLOTS,
                      result=GrpoResult, trainer_arguments=_rewards)


STAGE = StageSpec("grpo", GrpoConfig, run_grpo, "GRPO on the exact expert-action reward with a KL term to the SFT policy.",
                  live=True, resumable=True)
