"""Planner models: the tiny offline Qwen2 + domain tokenizer, and loading any causal LM.

Importing this package is light; torch and transformers load inside the functions.
"""

from taskplan.model.builder import ModelInitConfig, ModelInitResult, run_model_init
from taskplan.model.factory import (
                                    QWEN25_1P5B,
                                    QWEN25_1P5B_ID,
                                    architecture_config,
                                    build_policy,
                                    is_model_dir,
                                    load_policy,
                                    load_tokenizer,
                                    model_folder_problem,
                                    num_parameters,
                                    qwen2_config,
                                    save_policy,
)
from taskplan.model.tokenizer import CHAT_TEMPLATE, train_domain_tokenizer

__all__ = ["ModelInitConfig", "ModelInitResult", "run_model_init", "QWEN25_1P5B", "QWEN25_1P5B_ID",
           "architecture_config", "build_policy", "is_model_dir", "load_policy", "load_tokenizer",
           "model_folder_problem", "num_parameters",
           "qwen2_config", "save_policy", "CHAT_TEMPLATE", "train_domain_tokenizer"]
