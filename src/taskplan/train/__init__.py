"""Training: rewards, SFT warm start and GRPO (TRL + accelerate), checkpoints and resume.

Importing this package is light; torch, transformers and TRL load inside `run_sft`/`run_grpo`.
"""

from taskplan.train.grpo import GrpoConfig, GrpoResult, run_grpo
from taskplan.train.rewards import exact_match_reward, format_reward, is_expert_action
from taskplan.train.settings import TrainerSettings, TrainResult
from taskplan.train.sft import SftConfig, SftResult, run_sft

__all__ = ["GrpoConfig", "GrpoResult", "run_grpo", "SftConfig", "SftResult", "run_sft", "TrainerSettings",
           "TrainResult", "exact_match_reward", "format_reward", "is_expert_action"]
