"""Stage `model_init`: write the base policy every later stage starts from (models/init).

    cfg = load_config(ModelInitConfig, "model_init", "params.yaml")
    result = run_model_init(cfg)

Three sources, one output format (an HF folder: safetensors, tokenizer, chat
template, generation config):
- `tiny` (profile cpu-tiny): a domain BPE tokenizer trained on the single-turn
  dataset's text and a small Qwen2 of the sizes below, randomly initialised.
- `pretrained` (profile gpu-1.5b): `base_model` (local folder or hub id, e.g.
  Qwen/Qwen2.5-1.5B-Instruct) copied in as is.
- `random_init`: `base_model`'s architecture with fresh weights and its own
  tokenizer (when its tokenizer is available; else the domain tokenizer).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError, DatasetError, ModelNotFoundError
from taskplan.model.factory import build_policy, load_policy, load_tokenizer, num_parameters, qwen2_config, save_policy
from taskplan.model.tokenizer import dataset_texts, train_domain_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelInitConfig:
    source: Literal["tiny", "pretrained", "random_init"] = "tiny"  # where the base policy comes from
    base_model: str = "Qwen/Qwen2.5-1.5B-Instruct"  # local folder or hub id (pretrained / random_init)
    dataset_dir: Path = Path("outputs/single_turn")  # text the domain tokenizer is trained on (tiny)
    out_dir: Path = Path("models/init")               # HF folder written atomically
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # dtype the weights are saved in
    vocab_size: int = 2048               # BPE target size (the domain's text stops at ~950 entries)
    hidden_size: int = 64                # tiny Qwen2 sizes (source=tiny): 0.16M parameters
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 192
    max_position_embeddings: int = 2048  # prompt ~420 domain tokens (max ~550) + answer; ~1.5-2x with Qwen's
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    seed: int = 42                       # filled from common.seed

    def __post_init__(self) -> None:
        if self.source == "tiny":
            if self.hidden_size % self.num_heads:
                raise ConfigError(f"model_init.hidden_size={self.hidden_size} must be divisible by "
                                  f"num_heads={self.num_heads}")
            if self.num_heads % self.num_kv_heads:
                raise ConfigError(f"model_init.num_heads={self.num_heads} must be divisible by "
                                  f"num_kv_heads={self.num_kv_heads}")
            if self.max_position_embeddings < 1024:
                raise ConfigError(f"model_init.max_position_embeddings={self.max_position_embeddings}: "
                                  "prompts reach ~550 domain tokens (~1k with Qwen's); use 1024 or more")
            if self.vocab_size < 300:
                raise ConfigError(f"model_init.vocab_size={self.vocab_size}: byte-level BPE needs more than "
                                  "259 entries; use 512 or more")
        elif not self.base_model:
            raise ConfigError(f"model_init.source={self.source} needs base_model (a local folder or hub id)")


@dataclass(frozen=True, slots=True)
class ModelInitResult:
    out_dir: Path
    parameters: int
    vocab_size: int
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"model_init: {self.parameters / 1e6:.2f}M parameters, vocab {self.vocab_size} -> {self.out_dir}"
                f" ({self.metrics.get('seconds', 0.0):.1f} s)")


def run_model_init(cfg: ModelInitConfig) -> ModelInitResult:
    start = time.perf_counter()
    if cfg.source == "pretrained":
        tokenizer = load_tokenizer(cfg.base_model)
        model = load_policy(cfg.base_model, dtype=cfg.dtype)
    elif cfg.source == "random_init":
        tokenizer = _tokenizer_or_domain(cfg)
        model = load_policy(cfg.base_model, dtype=cfg.dtype, random_init=True, seed=cfg.seed)
    else:
        tokenizer = build_domain_tokenizer(cfg.dataset_dir, cfg.vocab_size)
        model = build_tiny_policy(cfg, tokenizer)
    set_generation_defaults(model, tokenizer)
    save_policy(model, tokenizer, cfg.out_dir)
    params = num_parameters(model)
    metrics = {"parameters": float(params), "vocab_size": float(len(tokenizer)),
               "seconds": round(time.perf_counter() - start, 3)}
    return ModelInitResult(cfg.out_dir, params, len(tokenizer), metrics)


def build_domain_tokenizer(dataset_dir: Path, vocab_size: int) -> Any:
    """Train the domain tokenizer on the text of the single-turn dataset's train split."""
    return train_domain_tokenizer(dataset_texts(_train_rows(dataset_dir)), vocab_size=vocab_size)


def build_tiny_policy(cfg: ModelInitConfig, tokenizer: Any) -> Any:
    """The small Qwen2 of `cfg`, with the embedding sized to the tokenizer (rounded up to 64)."""
    vocab = -(-len(tokenizer) // 64) * 64
    config = qwen2_config(
        vocab_size=vocab, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings, rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    return build_policy(config, dtype=cfg.dtype, seed=cfg.seed)


def set_generation_defaults(model: Any, tokenizer: Any) -> None:
    """The tokenizer's end-of-turn token stops generation (kept beside any the model declares)."""
    gen = model.generation_config
    eos = gen.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id not in eos:
        eos.insert(0, tokenizer.eos_token_id)
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    gen.pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def _train_rows(dataset_dir: Path) -> Any:
    """The train split, read directly (model/ stays a leaf: no import of train/ or data/)."""
    from datasets import load_from_disk

    try:
        rows = load_from_disk(str(dataset_dir))["train"]
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise DatasetError(f"cannot read the train split of {dataset_dir} ({str(err).splitlines()[0][:120]}); "
                           "run `taskplan build-dataset` first") from None
    if "prompt" not in rows.column_names:
        raise DatasetError(f"{dataset_dir} has no 'prompt' column; rebuild it with `taskplan build-dataset`")
    return rows


def _tokenizer_or_domain(cfg: ModelInitConfig) -> Any:
    try:
        return load_tokenizer(cfg.base_model)
    except ModelNotFoundError as err:
        log.warning("%s; using the domain tokenizer instead", err)
        return build_domain_tokenizer(cfg.dataset_dir, cfg.vocab_size)


STAGE = StageSpec("model_init", ModelInitConfig, run_model_init,
                  "Write the base policy (models/init): tiny domain model, or a pretrained/random-init HF model.",
                  flaky_io=True)   # hub downloads
