"""From the trainer's `log_history` to what a stage returns and writes: per-step history, final
metrics, and the plot CSVs dvc.yaml declares (x: step).

    history = step_history(trainer.state.log_history)
    # [{"step": 1, "loss": ..., "reward_mean": ..., "val_accuracy": ...}, ...]
    write_plots(history, Path("plots/grpo"), GRPO_PLOTS)

Entries of one step (TRL's train log, our validation entry) are merged into
one dict. Key names are stable: tracking/ logs them as `<stage>/<key>`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from taskplan.io import atomic_write_text

# trainer log key -> history key (keys absent here are dropped)
RENAMES = {
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "entropy": "entropy",
    "mean_token_accuracy": "token_accuracy",
    "num_tokens": "num_tokens",
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "frac_reward_zero_std",
    "kl": "kl",
    "rewards/exact_match_reward/mean": "exact_match",
    "rewards/format_reward/mean": "format",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "clipped_ratio",
    "tokens_per_second": "tokens_per_second",
    "step_seconds": "step_seconds",
    "train_seconds": "train_seconds",
    "val_accuracy": "val_accuracy",
    "val_seconds": "val_seconds",
}
SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second")

SFT_PLOTS = {"loss.csv": ("loss", "token_accuracy"), "val_accuracy.csv": ("val_accuracy", "train_seconds"),
             "throughput.csv": ("tokens_per_second",)}
GRPO_PLOTS = {"reward.csv": ("reward_mean", "reward_std", "exact_match", "format"), "loss.csv": ("loss",),
              "kl.csv": ("kl",), "val_accuracy.csv": ("val_accuracy", "train_seconds"), "throughput.csv": ("tokens_per_second",)}


def step_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One dict per logged step (sorted by step), with our key names."""
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if any(k in entry for k in SUMMARY_KEYS):
            continue
        step = int(entry.get("step", 0))
        row = by_step.setdefault(step, {"step": step})
        for key, name in RENAMES.items():
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[name] = float(value)
    return [by_step[s] for s in sorted(by_step)]


def summary(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """The trainer's end-of-run entry (runtime, mean train loss), if there is one."""
    for entry in reversed(log_history):
        if "train_runtime" in entry:
            return {k: float(entry[k]) for k in SUMMARY_KEYS if isinstance(entry.get(k), (int, float))}
    return {}


def last_value(history: list[dict[str, Any]], key: str) -> float | None:
    for row in reversed(history):
        if key in row:
            return row[key]
    return None


def first_value(history: list[dict[str, Any]], key: str) -> float | None:
    for row in history:
        if key in row:
            return row[key]
    return None


def mean_value(history: list[dict[str, Any]], key: str, last: int = 0) -> float | None:
    """Mean of `key` over the history (over its last `last` values when last > 0)."""
    values = [row[key] for row in history if key in row]
    if last > 0:
        values = values[-last:]
    return sum(values) / len(values) if values else None


def write_plots(history: list[dict[str, Any]], plots_dir: Path | str, plots: dict[str, tuple[str, ...]]) -> list[Path]:
    """One CSV per plot (`step` + its columns), rows where its first column (the plotted value) has one."""
    written = []
    for name, columns in plots.items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("step", *columns))
        for row in history:
            if columns[0] in row:
                writer.writerow((row["step"], *(_fmt(row.get(c)) for c in columns)))
        path = Path(plots_dir) / name
        atomic_write_text(path, buf.getvalue())
        written.append(path)
    return written


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
