"""Build, load and save planner policies (any causal LM; Qwen2 architecture for ours).

    model = load_policy("models/sft")                          # local HF folder
    model = load_policy("Qwen/Qwen2.5-1.5B-Instruct", dtype="bfloat16")
    model = load_policy("Qwen/Qwen2.5-1.5B-Instruct", random_init=True)   # architecture only
    save_policy(model, tokenizer, "models/init")              # atomic HF folder

Loading never runs remote code (`trust_remote_code=False`) and reads
safetensors only. Any failure to find or read a model is a one-line
`ModelNotFoundError`. Whether a local folder is a model folder at all has one
answer for every caller (loading, evaluate's checks, tracking, the registry):
`model_folder_problem` / `is_model_dir`. `random_init=True` builds the architecture from a
config (hard-coded for Qwen2.5-1.5B-Instruct, so it works without network or
weights) with freshly initialised weights: the path benchmarks take.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from taskplan.errors import ConfigError, ModelNotFoundError
from taskplan.io import atomic_dir, read_json_input

log = logging.getLogger(__name__)

QWEN25_1P5B_ID = "Qwen/Qwen2.5-1.5B-Instruct"
# config.json of Qwen/Qwen2.5-1.5B-Instruct (the values that shape compute and memory).
QWEN25_1P5B: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
KNOWN_ARCHITECTURES = {QWEN25_1P5B_ID: QWEN25_1P5B, "qwen2.5-1.5b": QWEN25_1P5B}
DTYPES = ("auto", "float32", "bfloat16", "float16")


def qwen2_config(**values: Any) -> Any:
    """A `Qwen2Config` from plain values (ours or the 1.5B's); rope_theta goes where transformers 5 wants it."""
    from transformers import Qwen2Config

    values = dict(values)
    theta = values.pop("rope_theta", None)
    if theta is not None:
        values["rope_parameters"] = {"rope_type": "default", "rope_theta": float(theta)}
    return Qwen2Config(**values)


def build_policy(config: Any, dtype: str = "float32", seed: int | None = None) -> Any:
    """A causal LM with freshly initialised weights for `config` (the one builder path for every size)."""
    import torch
    from transformers import AutoModelForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=_torch_dtype(dtype, default="float32"))
    log.info("built %s with %.1fM parameters (random init)", type(model).__name__, num_parameters(model) / 1e6)
    return model


def architecture_config(name_or_path: str | Path) -> Any:
    """The config of a known architecture (no network), else the config.json at a local path or hub id."""
    key = str(name_or_path)
    if key in KNOWN_ARCHITECTURES:
        return qwen2_config(**KNOWN_ARCHITECTURES[key])
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(key, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"no model config at {key!r} ({_first_line(err)}); "
                                 "pass a local model folder or a known hub id") from None


def load_policy(name_or_path: str | Path, dtype: str = "auto", random_init: bool = False,
                seed: int | None = None) -> Any:
    """Load a causal LM by local path or hub id (safetensors only, no remote code)."""
    if random_init:
        return build_policy(architecture_config(name_or_path), dtype=dtype if dtype != "auto" else "float32",
                            seed=seed)
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    source = _resolve(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype), trust_remote_code=False,
                                                     use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as err:
        raise ModelNotFoundError(f"cannot load model {source!r} ({_first_line(err)}); "
                                 "check the path or rerun `taskplan model-init`") from None
    return model


def load_tokenizer(name_or_path: str | Path) -> Any:
    """The tokenizer saved with a model (local folder or hub id); left padding for generation.

    Always load a model's tokenizer through here: for a folder whose tokenizer_config.json declares the
    generic `TokenizersBackend` (our domain tokenizer), transformers 5's AutoTokenizer would pick the
    model type's class (Qwen2Tokenizer) and replace the pre-tokenizer saved in tokenizer.json with
    Qwen's, silently splitting `table3` into `table` + `3`.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    source = _resolve(name_or_path)
    cls = PreTrainedTokenizerFast if _declares_generic_tokenizer(source) else AutoTokenizer
    try:
        tok = cls.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise ModelNotFoundError(f"cannot load tokenizer {source!r} ({_first_line(err)}); "
                                 "check the path or rerun `taskplan model-init`") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def save_policy(model: Any, tokenizer: Any, out_dir: Path | str) -> Path:
    """Write model (safetensors) + tokenizer + chat template + generation config as one atomic HF folder."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def num_parameters(model: Any, exclude_embeddings: bool = False) -> int:
    """Parameter count (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    emb = {id(p) for p in model.get_input_embeddings().parameters()} if exclude_embeddings else set()
    for p in model.parameters():
        if id(p) in seen or id(p) in emb:
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def model_folder_problem(path: Path | str) -> str | None:
    """None when `path` is a model folder as the loaders read it (a folder with config.json and
    *.safetensors weights: `save_policy`'s output), else why not, to follow the path in an error line.
    The one answer to "is this a model folder?" (tracking, registry, evaluate's checks); it reads no file."""
    path = Path(path)
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is not a folder"
    if not (path / "config.json").is_file():
        return "is not a model folder (no config.json)"
    if not any(path.glob("*.safetensors")):
        return "is not a model folder (no *.safetensors weights)"
    return None


def is_model_dir(path: Path | str) -> bool:
    return model_folder_problem(path) is None


def _resolve(name_or_path: str | Path) -> str:
    """A local folder that looks like a model, or a hub id; a missing local path is a one-line error."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        problem = model_folder_problem(path)
        if problem:
            raise ModelNotFoundError(f"{path} {problem}; point to the output of `taskplan model-init`, `sft` "
                                     "or `grpo`")
        return str(path)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~")) \
        and not text.startswith(("models/", "data/"))
    if not looks_like_hub_id:
        raise ModelNotFoundError(f"model path {text} does not exist; run the stage that writes it "
                                 "(e.g. `taskplan model-init`) or pass a hub id such as Qwen/Qwen2.5-1.5B-Instruct")
    return text


def _declares_generic_tokenizer(source: str) -> bool:
    config = Path(source) / "tokenizer_config.json"
    if not config.exists():
        return False
    try:
        declared = read_json_input(config, "tokenizer config", ModelNotFoundError)
    except ModelNotFoundError:
        return False    # a broken file is left to the tokenizer loader, which names it
    return isinstance(declared, dict) and declared.get("tokenizer_class") in ("TokenizersBackend",
                                                                              "PreTrainedTokenizerFast")


def _torch_dtype(dtype: str, default: str = "auto") -> Any:
    import torch

    dtype = dtype or default
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
