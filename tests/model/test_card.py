"""model/card.py: the kitchen base's README is written from the stage's records, nothing typed by hand."""

from __future__ import annotations

import json

import pytest

from taskplan.errors import ConfigError
from taskplan.model.card import ModelCardConfig, parameter_count, run_model_card


@pytest.fixture
def records(tmp_path):
    import torch
    from safetensors.torch import save_file

    model = tmp_path / "base"
    model.mkdir()
    save_file({"embed": torch.zeros(10, 4), "layer": torch.zeros(4, 4)}, str(model / "model.safetensors"))
    (model / "config.json").write_text(json.dumps({"hidden_size": 4, "num_hidden_layers": 1, "vocab_size": 10}))

    def write(name, doc):
        (tmp_path / name).write_text(json.dumps(doc))
        return tmp_path / name

    def row(sr):
        return {"sr": sr, "asat": 12.0, "episodes": 10}

    cfg = ModelCardConfig(
        model_dir=model,
        generate_metrics=write("generate.json", {"episodes": 40, "steps": 900, "skipped": {"lettuce_sandwich": 2}}),
        manifest=write("manifest.json", {"tasks": ["lettuce_sandwich"], "train_seeds": [5000, 20],
                                         "noise_levels": [0.0, 0.1]}),
        dataset_stats=write("build.json", {"rows": {"train": 800, "validation": 50}}),
        train_metrics=write("pretrain.json", {"steps": 100, "wall_seconds": 360.0, "train_seconds": 300.0,
                                              "val_accuracy": 0.61, "base_val_accuracy": 0.0}),
        eval_path=write("eval.json", {"base": {"lettuce_sandwich": row(0.3), "burger": row(0.1)}}),
        single_turn_path=write("st.json", {"base": {"all": {"accuracy": 0.5, "optimal": 0.6, "invalid": 0.1},
                                                    "task/burger": {"accuracy": 0.4, "rows": 30},
                                                    "task/burger/move": {"accuracy": 0.25}}}))
    return cfg


def test_card_states_data_training_size_and_per_task_numbers(records):
    result = run_model_card(records)
    text = result.path.read_text()
    assert result.path == records.model_dir / "README.md"
    assert parameter_count(records.model_dir) == 56 and "Parameters: 56 (0.00M)" in text
    assert "`lettuce_sandwich`" in text and "Seeds 5000..5019" in text and "2 skipped (lettuce_sandwich: 2)" in text
    assert "train 800, validation 50" in text and "100 steps in 360 s" in text and "0.00 -> 0.61" in text
    burger = next(line for line in text.splitlines() if line.startswith("| burger |"))
    assert "yes (zero-shot)" in burger and "0.1 [" in burger and "| 0.40 | 0.25 |" in burger
    assert text.index("| burger |") < text.index("| lettuce_sandwich |"), "paper tasks first"


def test_card_refuses_missing_records(records, tmp_path):
    from dataclasses import replace

    with pytest.raises(ConfigError, match=r"no such file\); run the `pretrain` stage"):
        run_model_card(replace(records, train_metrics=tmp_path / "nope.json"))
    with pytest.raises(ConfigError, match="policy 'sft' is missing"):
        run_model_card(replace(records, policy="sft"))
