"""train/settings.py: the fields SFT and GRPO share are declared once, load flat from params.yaml, and give
the same TRL configs as before they were shared (same params -> same training)."""

import dataclasses
import json
from pathlib import Path

import pytest

from taskplan.config import load_config
from taskplan.errors import ConfigError
from taskplan.train.checkpoints import RUN_ONLY_KEYS
from taskplan.train.grpo import GrpoConfig
from taskplan.train.settings import TrainerSettings
from taskplan.train.sft import SftConfig

ROOT = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).with_name("trl_args_recorded.json")).read_text())
STAGES = {"sft": SftConfig, "grpo": GrpoConfig}


def _shared() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainerSettings)}


def _config(key: str):
    stage, source = key.split("/")
    cls = STAGES[stage]
    return cls() if source == "defaults" else load_config(cls, stage, ROOT / "params.yaml", [], profile=source)


@pytest.mark.parametrize("key", [k for k in RECORDED if not k.startswith("_")])
def test_trl_config_from_params_is_the_recorded_one(key, monkeypatch):
    # given the recorded TRL configs, built on a CPU machine before the shared settings existed
    import torch

    from taskplan.train import grpo, sft

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # the record is CPU's (use_cpu, bf16, vLLM)
    # when the stage builds its TRL config from the same params
    args = (sft if key.startswith("sft") else grpo).training_args(_config(key)).to_dict()
    # then every field taskplan sets is unchanged
    recorded = RECORDED[key]
    got = json.loads(json.dumps({k: args[k] for k in recorded}, default=str))
    assert got == recorded, {k: (got[k], recorded[k]) for k in recorded if got[k] != recorded[k]}


def test_both_stages_inherit_the_shared_fields_and_keep_their_own():
    shared = _shared()
    for cls in STAGES.values():
        assert issubclass(cls, TrainerSettings)
        assert shared <= {f.name for f in dataclasses.fields(cls)}
    assert {"batch_size", "max_length", "completion_only_loss", "max_seconds"} <= {
        f.name for f in dataclasses.fields(SftConfig)} - shared
    assert {"num_generations", "beta", "temperature", "use_vllm"} <= {f.name for f in dataclasses.fields(GrpoConfig)} - shared
    assert RUN_ONLY_KEYS <= shared, "the fingerprint's output-only keys are shared settings"


def test_trainer_kwargs_needs_only_the_shared_settings(tmp_path):
    from taskplan.train.backend import trainer_kwargs

    settings = TrainerSettings(model_dir="m", out_dir=tmp_path / "out", checkpoint_dir=tmp_path / "ckpt",
                               metrics_path=tmp_path / "m.json", plots_dir=tmp_path / "plots", max_steps=10,
                               learning_rate=0.1, warmup_ratio=0.0, save_steps=5, eval_every=0,
                               lr_scheduler="warmup_stable_decay")
    kwargs = trainer_kwargs(settings)
    assert kwargs["output_dir"] == str(tmp_path / "ckpt") and kwargs["report_to"] == "none"
    assert kwargs["lr_scheduler_kwargs"] == {"num_decay_steps": 2}


def test_shared_fields_load_flat_and_errors_name_the_stage(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("common: {seed: 7}\nsft: {learning_rate: 0.5}\ngrpo: {max_steps: 3}\n")
    cfg = load_config(SftConfig, "sft", params, ["sft.lr_scheduler=cosine", "grpo.max_steps=4"])
    assert (cfg.learning_rate, cfg.lr_scheduler, cfg.seed, cfg.max_steps) == (0.5, "cosine", 7, 1500)
    assert load_config(GrpoConfig, "grpo", params, ["grpo.save_steps=2"]).save_steps == 2
    with pytest.raises(ConfigError, match="lr_scheduler"):
        load_config(GrpoConfig, "grpo", params, ["grpo.lr_scheduler=sometimes"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(SftConfig, "sft", params, ["sft.section=grpo"])   # a class constant, not a params key
    with pytest.raises(ConfigError, match=r"^sft\.save_steps=0 must be at least 1"):
        SftConfig(save_steps=0)
    with pytest.raises(ConfigError, match=r"^grpo\.learning_rate=0.0 must be positive"):
        GrpoConfig(learning_rate=0.0)
