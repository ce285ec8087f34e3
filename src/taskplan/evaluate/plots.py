"""Plots of the compare stage (matplotlib, Agg backend), each a function from metrics to a figure.

    fig = plot_sr(doc); save_png(fig, Path("plots/compare/sr.png"))

SR by policy and task (with 95 % Wilson intervals), ASAT/ASST, the product
bound against SR in minimal steps of sampled rollouts, the cross-task SR
heatmap, and the learning curves (validation accuracy against training
seconds) of the training stages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskplan.evaluate.stats import rate_interval
from taskplan.io import atomic_open

Doc = dict[str, dict[str, dict[str, Any]]]
_SHORT = {"cheese_sandwich": "CS", "burger": "B", "cheeseburger": "CB", "double_cheeseburger": "DCB"}


def short(task: str) -> str:
    return _SHORT.get(task, task)


def sr_opt(m: Mapping[str, Any]) -> tuple[float | None, int]:
    """SR in minimal steps and its number of episodes: sampled rollouts when measured, else the greedy ones."""
    if m.get("sr_opt_sampled") is not None:
        return m["sr_opt_sampled"], int(m.get("sr_opt_samples") or 0)
    return m.get("sr_opt"), int(m.get("episodes") or 0)


def plot_sr(doc: Doc) -> Any:
    return _grouped_bars(doc, [("sr", "success rate (SR)")], ylim=(0, 1.05))


def plot_steps(doc: Doc) -> Any:
    return _grouped_bars(doc, [("asat", "ASAT (failures count as the cap)"), ("asst", "ASST (successes only)")])


def plot_bound(doc: Doc) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = [(p, t, m) for p, table in doc.items() for t, m in table.items() if m.get("bound") is not None]
    for policy in dict.fromkeys(p for p, _, _ in points):
        mine = [(t, m) for p, t, m in points if p == policy]
        ax.scatter([m["bound"] for _, m in mine], [sr_opt(m)[0] for _, m in mine], label=policy, s=40)
        for t, m in mine:
            ax.annotate(short(t), (m["bound"], sr_opt(m)[0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="SR = bound")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.05), xlabel="mean product bound  prod pi(a*|s*)",
           ylabel="SR in minimal steps", title="Bound vs measured SR (theorem: SR >= bound)")
    if not points:
        ax.text(0.5, 0.5, "no model policy with a bound", ha="center", va="center", transform=ax.transAxes)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_cross_task(cross: Doc) -> Any:
    plt = _pyplot()
    rows = list(cross)
    cols = list(dict.fromkeys(t for table in cross.values() for t in table))
    values = [[(cross[r].get(c) or {}).get("sr") for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cols), 1.2 + 0.8 * len(rows)))
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, "-" if v is None else f"{v:.1f}", ha="center", va="center",
                    color="white" if v is not None and v < 0.6 else "black")
    ax.set_xticks(range(len(cols)), [short(c) for c in cols])
    ax.set_yticks(range(len(rows)), [short(r) for r in rows])
    ax.set(xlabel="evaluated on", ylabel="trained on", title="Cross-task SR")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def _grouped_bars(doc: Doc, keys: Sequence[tuple[str, str]], ylim: tuple[float, float] | None = None) -> Any:
    plt = _pyplot()
    tasks = list(dict.fromkeys(t for table in doc.values() for t in table))
    policies = list(doc)
    fig, axes = plt.subplots(len(keys), 1, figsize=(1.2 + 1.6 * len(tasks), 3.2 * len(keys)), squeeze=False)
    width = 0.8 / max(1, len(policies))
    for ax, (key, label) in zip(axes[:, 0], keys):
        for n, policy in enumerate(policies):
            vals = [(doc[policy].get(t) or {}).get(key) for t in tasks]
            xs = [i - 0.4 + width * (n + 0.5) for i in range(len(tasks))]
            heights = [0 if v is None else v for v in vals]
            errors = None
            if key == "sr":   # 95 % Wilson intervals: 10 episodes a task leave wide ones
                spans = [rate_interval(v, int((doc[policy].get(t) or {}).get("episodes") or 0)) for v, t in
                         zip(vals, tasks)]
                errors = [[h - s[0] if s else 0 for h, s in zip(heights, spans)],
                          [s[1] - h if s else 0 for h, s in zip(heights, spans)]]
            ax.bar(xs, heights, width, label=policy, yerr=errors, capsize=2 if errors else 0,
                   error_kw={"elinewidth": 0.8})
        ax.set_xticks(range(len(tasks)), [short(t) for t in tasks])
        ax.set_ylabel(label)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=8, ncols=min(6, len(policies)), loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  frameon=False)
    fig.tight_layout()
    return fig


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(curves: Mapping[str, Path]) -> Any:
    """Validation accuracy against training seconds, one line per stage; later stages start where the
    earlier ones ended (GRPO continues from the SFT model)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    offset = 0.0
    for stage, path in curves.items():
        points = _curve(path)
        if not points:
            continue
        xs = [offset + x for x, _ in points]
        ax.plot(xs, [y for _, y in points], marker="o", ms=3, label=stage)
        offset = xs[-1]
    ax.set(xlabel="training seconds (steps only, validation excluded)", ylabel="single-turn validation accuracy",
           ylim=(-0.02, 1.02), title="Learning curves")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no validation curves yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def save_png(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())


def _curve(path: Path) -> list[tuple[float, float]]:
    try:
        rows = list(csv.DictReader(Path(path).read_text().splitlines()))
    except OSError:
        return []
    return [(float(r["train_seconds"] or 0.0), float(r["val_accuracy"])) for r in rows
            if r.get("val_accuracy") and r.get("train_seconds") is not None]
