"""Values as MLflow takes them: configs as flat params, results as namespaced metrics, batched writes.

    flat_config(cfg)                      # {"learning_rate": "0.004", "tasks": '["burger"]', ...}
    stage_metrics("sft", result)          # {"sft/val_accuracy": 0.62, "sft/train_seconds": 397.0, ...}
    history_metrics("grpo", rows)         # [("grpo/reward_mean", 0.4, 10), ...]
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_PARAM_CHARS = 6000            # MLflow's limit on one param value


def flat_config(cfg: Any) -> dict[str, str]:
    """A config (dataclass or mapping) as flat MLflow params: nested keys joined with '.', lists as JSON."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    elif isinstance(cfg, Mapping):
        values = dict(cfg)
    else:
        return {}
    return {k: param_value(v) for k, v in flatten(values, sep=".").items()}


def stage_metrics(stage: str, result: Any) -> dict[str, float]:
    """A result's final numeric `metrics`, flattened with '/', namespaced `<stage>/...` unless already."""
    raw = (result.get("metrics") if isinstance(result, Mapping) else getattr(result, "metrics", None)) or {}
    out = {}
    for top, value in raw.items():
        name = str(top) if "/" in str(top) else f"{stage}/{top}"
        flat = flatten(value, "/", name) if isinstance(value, Mapping) else {name: value}
        for key, item in flat.items():
            number = as_number(item)
            if number is not None:
                out[key] = number
    return out


def history_metrics(stage: str, history: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, int]]:
    """Per-step history rows -> (`<stage>/<key>`, value, step)."""
    out = []
    for n, row in enumerate(history):
        step = int(row.get("step", n))
        for key, value in row.items():
            number = as_number(value)
            if key != "step" and number is not None:
                out.append((f"{stage}/{key}", number, step))
    return out


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k[:250], param_value(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def log_metrics(client: Any, run_id: str, rows: Sequence[tuple[str, float, int]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, value, now, step) for key, value, step in rows]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i:i + 1000])


def flatten(values: Mapping[str, Any], sep: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, sep, name))
        else:
            out[name] = value
    return out


def param_value(value: Any) -> str:
    if isinstance(value, Path):
        text = str(value)
    elif isinstance(value, (tuple, list)):
        text = json.dumps([str(v) if isinstance(v, Path) else v for v in value])
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value:   # NaN is dropped
        return float(value)
    return None


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:5000]
