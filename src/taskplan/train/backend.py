"""Where and how a trainer runs: device, precision, LoRA, vLLM, the shared TrainingArguments and trainer.

SFT and GRPO differ in their method, not in their plumbing. Both build their
TRL config from `trainer_kwargs(cfg)` (output/checkpoint dir, logging every
step, checkpoints every `save_steps`, precision, `report_to="none"`), and
train/run.py builds their trainer with `lora_config` and `quiet_stdout`, so a
change of backend (CPU, one GPU, DDP, DeepSpeed via `accelerate launch
--config_file infra/accelerate/...`) touches one place. The fields both read
are declared once, in train/settings.py `TrainerSettings`.

    def training_args(cfg):                    # the stage's TRL config (train/sft.py)
        return SFTConfig(**trainer_kwargs(cfg), max_length=cfg.max_length, ...)
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import TYPE_CHECKING, Any

from taskplan.errors import ConfigError

if TYPE_CHECKING:
    from taskplan.train.settings import TrainerSettings

log = logging.getLogger(__name__)


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def world_size() -> int:
    """Processes in this run (accelerate/torchrun set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a multi-process launch (torchrun/accelerate set RANK), or a plain run. Only it writes the
    model folder, metrics, plots, checkpoint markers and the MLflow run; read from the environment so the
    CLI can ask before torch is imported."""
    return int(os.environ.get("RANK", "0")) == 0


def use_bf16(precision: str) -> bool:
    """bf16 mixed precision: on CUDA with bf16 support when precision is auto or bf16; never on CPU."""
    if precision == "fp32":
        return False
    import torch

    ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not ok:
        log.warning("precision=bf16 needs a CUDA GPU with bf16; training in fp32")
    return ok


def configure_cpu(threads: int) -> None:
    """CPU settings for training (no-ops on a CUDA machine).

    threads: torch intra-op threads (0: torch's default). Tiny models run thousands of small ops per
    step; with more threads than free cores each op waits at a barrier for a descheduled thread, which
    made steps 4x slower on a shared 2-core machine, so the cpu-tiny profile uses 1.
    Denormal floats are flushed to zero: once attention weights and gradients of the tiny model drift
    into the denormal range, x86 float math on them is 10-100x slower, and an SFT run that had done
    75 steps in 15 s spent minutes on the next few.
    """
    if has_cuda():
        return
    import torch

    torch.set_flush_denormal(True)
    if threads > 0:
        torch.set_num_threads(threads)


def compact_logprobs_on_cpu() -> None:
    """Make TRL's fused LM head score only labelled positions on CPU.

    TRL 1.16 (`trl.trainer.utils._fused_forward`) scores every position of a sequence unless Triton is
    present (compact scoring would recompile for every shape on Neuron). Our rows carry ~10 labelled
    completion tokens after a ~450-token prompt, so on CPU that head did ~45x the needed work and took
    half of every SFT and GRPO step. Only the compact/full choice changes; the kernels do not.
    """
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if getattr(original, "taskplan_compact", False):
        return

    def compact(device: Any) -> bool:
        return device.type == "cpu" or original(device)

    compact.taskplan_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and has_cuda()


WSD_DECAY_FRACTION = 0.2  # warmup_stable_decay: cosine decay over the last 20% of the steps


def trainer_kwargs(cfg: TrainerSettings) -> dict[str, Any]:
    """TrainingArguments fields shared by TRL's SFTConfig and GRPOConfig, from a stage config."""
    cuda = has_cuda()
    scheduler_kwargs = None
    if cfg.lr_scheduler == "warmup_stable_decay":
        scheduler_kwargs = {"num_decay_steps": max(1, round(WSD_DECAY_FRACTION * cfg.max_steps))}
    return {
        "output_dir": str(cfg.checkpoint_dir),
        "report_to": "none",                     # tracking/ owns MLflow runs (STYLE: thin edges)
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "save_only_model": False,                # optimizer, scheduler and RNG state: exact resume
        "max_steps": cfg.max_steps,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler,
        "lr_scheduler_kwargs": scheduler_kwargs,
        "warmup_steps": cfg.warmup_ratio,       # a float < 1 is a ratio of max_steps in transformers 5
        "weight_decay": cfg.weight_decay,
        "adam_beta2": cfg.adam_beta2,
        "max_grad_norm": cfg.max_grad_norm,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "activation_checkpointing": cfg.gradient_checkpointing and cuda,  # never on CPU (transformers 5 name)
        "use_cpu": not cuda,
        "bf16": use_bf16(cfg.precision),
        "fp16": False,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,                    # its log lines go to stdout; LogLineCallback logs to stderr
        # every parameter takes part in each forward pass; DDP's search for unused ones is a wasted pass
        "ddp_find_unused_parameters": False,
    }


def quiet_stdout(trainer: Any) -> Any:
    """Drop transformers' PrinterCallback (it prints log dicts to stdout, which belongs to results; so
    does the tqdm bar's log writer, hence disable_tqdm) and log a short progress line on stderr instead."""
    from transformers.trainer_callback import PrinterCallback

    from taskplan.train.callbacks import LogLineCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(LogLineCallback())
    return trainer


def lora_config(r: int, alpha: int, dropout: float, target_modules: str) -> Any:
    """A peft LoraConfig, or None when r == 0 (full fine-tuning)."""
    if r <= 0:
        return None
    from peft import LoraConfig

    targets: Any = target_modules if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")


def per_device_batch(total: int, gradient_accumulation_steps: int, what: str) -> int:
    """Split a per-optimizer-step batch over processes and accumulation steps; it must divide evenly."""
    parts = gradient_accumulation_steps * world_size()
    if total % parts:
        raise ConfigError(f"{what}={total} is not divisible by gradient_accumulation_steps x processes = {parts}; "
                          "change one of them")
    return total // parts
