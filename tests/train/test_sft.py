"""SFT stage: config checks, one step changes the weights, metrics/plots/model written."""

import json

import pytest
import torch

from taskplan.errors import ConfigError, DatasetError, ModelNotFoundError
from taskplan.model import load_policy
from taskplan.train.sft import SftConfig, run_sft


def test_config_rejects_impossible_values():
    with pytest.raises(ConfigError, match="max_steps"):
        SftConfig(max_steps=0)
    with pytest.raises(ConfigError, match="divisible"):
        SftConfig(batch_size=6, gradient_accumulation_steps=4)
    with pytest.raises(ConfigError, match="lora_r"):
        SftConfig(lora_r=-1)


def test_missing_dataset_is_a_dataset_error(tiny_model_dir, tmp_path, stage_paths):
    cfg = SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tmp_path / "none", **stage_paths)
    with pytest.raises(DatasetError, match="build-dataset"):
        run_sft(cfg)


def test_missing_model_is_a_model_error(tiny_rows_dir, tmp_path, stage_paths):
    cfg = SftConfig(model_dir=str(tmp_path / "no-model"), dataset_dir=tiny_rows_dir, **stage_paths)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        run_sft(cfg)


@pytest.mark.smoke
def test_one_sft_step_changes_weights(tiny_model_dir, tiny_rows_dir, stage_paths):
    # given the tiny model and a one-step budget with a high learning rate (tiny gradients stall)
    cfg = SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tiny_rows_dir, **stage_paths,
                    max_steps=1, batch_size=2, learning_rate=1e-2, warmup_ratio=0.0, val_rows=2,
                    val_max_new_tokens=4)
    before = {k: v.clone() for k, v in load_policy(tiny_model_dir).state_dict().items()}
    # when one SFT step runs
    result = run_sft(cfg)
    # then the weights moved, and the stage wrote its model, metrics and plots
    after = load_policy(cfg.out_dir).state_dict()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"every trainable parameter moves in full fine-tuning (TRL's check); did not: {unchanged}"
    metrics = json.loads(cfg.metrics_path.read_text())
    assert metrics == result.metrics and metrics["steps"] == 1
    assert 0.0 <= metrics["base_val_accuracy"] <= 1.0 and 0.0 <= metrics["val_accuracy"] <= 1.0
    assert [r["step"] for r in result.history if "loss" in r] == [1]
    assert (cfg.plots_dir / "loss.csv").read_text().startswith("step,loss")
    assert result.summary().startswith("sft: 1 steps")


@pytest.mark.smoke
def test_lora_sft_ships_merged_weights(tiny_model_dir, tiny_rows_dir, stage_paths):
    # given LoRA on (peft), one step with a high learning rate
    cfg = SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tiny_rows_dir, **stage_paths, max_steps=1,
                    batch_size=2, learning_rate=5e-2, warmup_ratio=0.0, lora_r=4, lora_alpha=8, val_rows=1,
                    val_max_new_tokens=2)
    before = load_policy(tiny_model_dir).state_dict()
    run_sft(cfg)
    # then the output is a plain model folder (adapters merged) with the base model's keys
    assert not (cfg.out_dir / "adapter_config.json").exists()
    after = load_policy(cfg.out_dir).state_dict()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed), "only LoRA-targeted linear layers may change"


@pytest.mark.smoke
def test_time_budget_from_a_metrics_file_stops_training_early(tiny_model_dir, tiny_rows_dir, stage_paths, tmp_path):
    # given a budget of a tiny fraction of a second of training steps, read from another stage's metrics
    (tmp_path / "grpo.json").write_text(json.dumps({"train_seconds": 1e-6}))
    cfg = SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tiny_rows_dir, **stage_paths, max_steps=50,
                    batch_size=2, learning_rate=1e-2, val_rows=1, val_max_new_tokens=2, eval_every=0,
                    seconds_from=tmp_path / "grpo.json")
    result = run_sft(cfg)
    # then it stops after the first logged step, still measures its final weights, and records the time
    assert result.metrics["steps"] == 1
    assert [r["step"] for r in result.history if "val_accuracy" in r] == [0, 1]
    assert result.metrics["train_seconds"] > 0
    (tmp_path / "grpo.json").write_text(json.dumps({"steps": 3}))
    with pytest.raises(ConfigError, match="train_seconds"):
        run_sft(cfg)
    with pytest.raises(ConfigError, match="not both"):
        SftConfig(max_seconds=5.0, seconds_from=tmp_path / "grpo.json")
