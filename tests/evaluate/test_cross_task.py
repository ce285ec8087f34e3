"""Stage `cross_task`: one row file per training task, played with the evaluation settings of `evaluate`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from taskplan.config import load_config
from taskplan.errors import ConfigError
from taskplan.evaluate.cross_task import CrossTaskConfig, run_cross_task, sr_matrix
from taskplan.evaluate.stage import EvalSettings, EvaluateConfig


def test_config_rejects_bad_models_and_settings():
    with pytest.raises(ConfigError, match="task name"):
        CrossTaskConfig(models=("S2=models/x",))
    with pytest.raises(ConfigError, match="model folder"):
        CrossTaskConfig(models=("burger=random",))
    with pytest.raises(ConfigError, match="empty"):
        CrossTaskConfig(models=())
    with pytest.raises(ConfigError, match=r"^cross_task\.temperature=-1.0"):   # shared check, own section name
        CrossTaskConfig(temperature=-1.0)
    with pytest.raises(ConfigError, match=r"^cross_task\.tasks and cross_task\.seeds must not repeat"):
        CrossTaskConfig(seeds=(42, 42))


def test_cross_task_and_evaluate_share_the_evaluation_settings():
    shared = {f.name for f in dataclasses.fields(EvalSettings)}
    for cls in (EvaluateConfig, CrossTaskConfig):
        assert issubclass(cls, EvalSettings) and shared <= {f.name for f in dataclasses.fields(cls)}
    # the same settings give the same rollout and decoding options in both stages
    knobs = {"prompt_style": "compact", "batch_size": 8, "max_new_tokens": 16, "dtype": "float32", "cpu_threads": 2,
             "max_retries": 4, "top_p": 0.9, "pad_tolerance": 0.5, "seed": 7}
    ev, ct = EvaluateConfig(**knobs), CrossTaskConfig(**knobs)
    assert ev.settings == ct.settings
    endpoint = {k: getattr(ct.options, k) for k in ("endpoint_model", "endpoint_concurrency", "endpoint_timeout")}
    assert dataclasses.replace(ev.options, **endpoint) == ct.options, "only evaluate's endpoint knobs differ"


def test_params_section_loads_flat(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("common: {seed: 5, profile: small}\n"
                      "cross_task: {models: [burger=models/cross/burger], batch_size: 40, out_dir: m/ct}\n"
                      "profiles: {small: {cross_task: {max_new_tokens: 32, dtype: float32, prompt_style: compact}}}\n")
    cfg = load_config(CrossTaskConfig, "cross_task", params, ["cross_task.cpu_threads=2"])
    assert (cfg.models, cfg.batch_size, cfg.max_new_tokens, cfg.prompt_style, cfg.cpu_threads, cfg.seed) == (
        ("burger=models/cross/burger",), 40, 32, "compact", 2, 5)
    assert str(cfg.out_dir) == "m/ct" and str(cfg.outputs_dir) == "outputs/cross_task"
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(CrossTaskConfig, "cross_task", params, ["cross_task.policies=[random]"])   # evaluate's own


@pytest.mark.smoke
def test_cross_task_writes_one_row_per_training_task(tiny_model_dir, tmp_path):
    cfg = CrossTaskConfig(models=(f"burger={tiny_model_dir}",), tasks=("cheese_sandwich", "burger"), seeds=(42,),
                          suite=None, max_new_tokens=2, device="cpu", out_dir=tmp_path / "cross",
                          outputs_dir=tmp_path / "o")
    result = run_cross_task(cfg)
    row = json.loads((tmp_path / "cross" / "burger.json").read_text())
    assert list(row) == ["burger"] and list(row["burger"]) == ["cheese_sandwich", "burger"]
    assert sr_matrix(row) == {"burger": {"cheese_sandwich": 0.0, "burger": 0.0}}
    assert result.files[0] == tmp_path / "cross" / "burger.json"
    assert (tmp_path / "o" / "burger.jsonl").exists() and result.summary().startswith("cross_task: burger SR")
