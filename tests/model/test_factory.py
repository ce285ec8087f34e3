"""Loading, building and saving policies: one-line errors, one builder path for every size."""

import json

import pytest
import torch

from taskplan.errors import ConfigError, ModelNotFoundError
from taskplan.model import (
    QWEN25_1P5B,
    QWEN25_1P5B_ID,
    ModelInitConfig,
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


def test_missing_model_path_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as err:
        load_policy(tmp_path / "nope")
    assert "\n" not in str(err.value)


def test_folder_without_config_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_policy(tmp_path / "empty")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_tokenizer(tmp_path / "empty")


def test_one_answer_to_is_this_a_model_folder(tmp_path, tiny_model_dir):
    folder = tmp_path / "m"
    assert model_folder_problem(folder) == "does not exist"
    folder.write_text("")
    assert model_folder_problem(folder) == "is not a folder"
    folder.unlink()
    folder.mkdir()
    assert "no config.json" in model_folder_problem(folder)
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"")
    assert "no *.safetensors weights" in model_folder_problem(folder), "the loaders read safetensors only"
    (folder / "model.safetensors").write_bytes(b"")
    assert model_folder_problem(folder) is None and is_model_dir(folder), "it looks, it does not load"
    assert is_model_dir(tiny_model_dir) and not is_model_dir(tiny_model_dir / "config.json")


def test_corrupt_weights_are_a_one_line_error(tiny_model_dir, tmp_path):
    # given a copy of a good model folder whose safetensors file is garbage
    bad = tmp_path / "corrupt"
    bad.mkdir()
    for f in tiny_model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    # then loading fails with our error, on one line
    with pytest.raises(ModelNotFoundError, match="cannot load model") as err:
        load_policy(bad)
    assert "\n" not in str(err.value)


def test_folder_without_weights_is_a_one_line_error(tiny_model_dir, tmp_path):
    bad = tmp_path / "noweights"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    with pytest.raises(ModelNotFoundError, match=r"no \*\.safetensors weights") as err:
        load_policy(bad)
    assert "\n" not in str(err.value)


def test_unknown_hub_id_offline_is_a_one_line_error():
    with pytest.raises(ModelNotFoundError):
        load_policy("no-such-org/no-such-model")


def test_tiny_model_round_trips(tiny_model_dir):
    model, tok = load_policy(tiny_model_dir), load_tokenizer(tiny_model_dir)
    assert model.config.model_type == "qwen2" and model.config.num_hidden_layers == 2
    assert model.config.vocab_size >= len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.chat_template and tok.padding_side == "left"
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= files
    assert not any(name.endswith((".bin", ".pt")) for name in files), "safetensors only"


def test_save_policy_is_atomic_and_loadable(tiny_model_dir, tmp_path):
    model, tok = load_policy(tiny_model_dir), load_tokenizer(tiny_model_dir)
    out = save_policy(model, tok, tmp_path / "copy")
    assert not (tmp_path / "copy.tmp").exists()
    again = load_policy(out)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_small_config_goes_through_the_same_builder_as_the_1p5b():
    # given the 1.5B's config values with small sizes, built by the same functions as random_init uses
    small = qwen2_config(**{**QWEN25_1P5B, "vocab_size": 256, "hidden_size": 48, "intermediate_size": 96,
                            "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2})
    model = build_policy(small, seed=0)
    # then it is a Qwen2 with the 1.5B's structural choices
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.tie_word_embeddings and model.lm_head.weight is model.model.embed_tokens.weight
    assert model.config.rope_parameters["rope_theta"] == 1e6
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 256)


def test_1p5b_architecture_without_weights():
    # the hard-coded config needs no network; count parameters on the meta device (no memory)
    from transformers import AutoModelForCausalLM

    cfg = architecture_config(QWEN25_1P5B_ID)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.intermediate_size, cfg.vocab_size, cfg.max_position_embeddings) == (1536, 28, 12, 2, 8960, 151936,
                                                                                   32768)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert 1.50e9 < num_parameters(model) < 1.56e9  # Qwen2.5-1.5B: 1.54B with tied embeddings


def test_random_init_from_a_local_config(tiny_model_dir):
    fresh = load_policy(tiny_model_dir, random_init=True, seed=1)
    trained = load_policy(tiny_model_dir)
    assert fresh.config.hidden_size == trained.config.hidden_size
    assert not torch.equal(fresh.model.layers[0].mlp.up_proj.weight, trained.model.layers[0].mlp.up_proj.weight)


@pytest.mark.slow
def test_random_init_1p5b_in_bf16():
    model = load_policy(QWEN25_1P5B_ID, random_init=True, dtype="bfloat16", seed=0)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert 1.50e9 < num_parameters(model) < 1.56e9


def test_model_init_config_rejects_impossible_sizes():
    with pytest.raises(ConfigError, match="divisible"):
        ModelInitConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ConfigError, match="1024"):
        ModelInitConfig(max_position_embeddings=512)


def test_model_init_writes_chat_template(tiny_model_dir):
    cfg = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    has_template = "chat_template" in cfg or (tiny_model_dir / "chat_template.jinja").exists()
    assert has_template, "the chat template must travel with the model folder"


def test_saved_domain_tokenizer_keeps_its_pre_tokenizer(tiny_model_dir):
    # transformers' AutoTokenizer would swap in Qwen2's pre-tokenizer for a qwen2 model folder
    tok = load_tokenizer(tiny_model_dir)
    assert len(tok(" table1")["input_ids"]) == 1 and len(tok(" robot1")["input_ids"]) == 1
