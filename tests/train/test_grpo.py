"""GRPO stage: config checks, two steps change the weights, validation accuracy is logged."""

import json

import pytest
import torch

from taskplan.errors import ConfigError
from taskplan.model import load_policy
from taskplan.train.grpo import GrpoConfig, run_grpo


def test_config_rejects_single_generation():
    with pytest.raises(ConfigError, match="at least 2"):
        GrpoConfig(num_generations=1)


def test_config_rejects_zero_beta():
    with pytest.raises(ConfigError, match="beta"):
        GrpoConfig(beta=0.0)


def test_config_derives_the_completion_batch():
    cfg = GrpoConfig(prompts_per_step=3, num_generations=4)
    assert cfg.completions_per_step == 12  # what TRL calls the train batch
    with pytest.raises(ConfigError, match="divisible"):
        GrpoConfig(prompts_per_step=3, num_generations=3, gradient_accumulation_steps=2)


def tiny_grpo_config(model_dir, rows_dir, paths, **overrides) -> GrpoConfig:
    values = dict(model_dir=str(model_dir), dataset_dir=rows_dir, **paths, max_steps=2,
                  prompts_per_step=4, num_generations=4, max_completion_length=12, temperature=1.2,
                  learning_rate=5e-2, format_weight=1.0, eval_every=1, val_rows=2, val_max_new_tokens=12,
                  save_steps=2)
    values.update(overrides)
    return GrpoConfig(**values)


@pytest.mark.smoke
def test_two_grpo_steps_change_weights_and_report(tiny_sft_dir, tiny_rows_dir, stage_paths):
    # given an SFT'd tiny model (rewards vary within a group) and a high learning rate
    cfg = tiny_grpo_config(tiny_sft_dir, tiny_rows_dir, stage_paths)
    before = {k: v.clone() for k, v in load_policy(tiny_sft_dir).state_dict().items()}
    # when two GRPO steps run
    result = run_grpo(cfg)
    # then the weights moved (TRL's test_train check) and rewards, KL and accuracy were recorded
    after = load_policy(cfg.out_dir).state_dict()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"every trainable parameter moves in full fine-tuning (TRL's check); did not: {unchanged}"
    steps = [r for r in result.history if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for row in steps:
        assert {"reward_mean", "reward_std", "kl", "exact_match", "format", "val_accuracy"} <= set(row)
    assert 0.0 <= result.metrics["reward_mean"] <= 2.0 and 0.0 <= result.metrics["val_accuracy"] <= 1.0
    assert json.loads(cfg.metrics_path.read_text()) == result.metrics
    header = (cfg.plots_dir / "reward.csv").read_text().splitlines()[0]
    assert header == "step,reward_mean,reward_std,exact_match,format"
