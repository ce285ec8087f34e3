"""Stage `compare`: metrics/eval.json (+ cross-task rows) -> report.md, PNG plots, CSVs.

    result = run_compare(CompareConfig())
    result.files          # report, plots, CSVs, merged JSON: what tracking logs to MLflow

Plots (matplotlib, Agg backend): SR by policy and task, ASAT/ASST by policy
and task, the cross-task SR heatmap, and the product bound against the
measured SR in minimal steps. The CSVs are long tables that `dvc plots` can
draw (`eval.csv`: one row per policy and task; `cross_task.csv`: one row per
train/eval pair). The candidate-vs-baseline verdict (mean SR over tasks, at
least the baseline's and above zero) goes to `metrics/compare.json`; promotion
reads it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskplan.errors import ConfigError, DatasetError
from taskplan.evaluate.metrics import check_contract
from taskplan.io import atomic_open, atomic_write_json, atomic_write_text
from taskplan.kitchen.tasks import PAPER_TASKS

log = logging.getLogger(__name__)

Doc = dict[str, dict[str, dict[str, Any]]]
EVAL_COLUMNS = ("policy", "task", "policy_task", "sr", "sr_opt", "asat", "asst", "bound", "invalid_rate",
                "invalid_actions", "opt_mean", "cap", "episodes")
# arXiv 2509.20616, Qwen2.5-1.5B (SR/ASAT/ASST), quoted for context in the report.
PAPER_NOTE = ("Paper (Qwen2.5-1.5B): cheeseburger SFT+GRPO 0.7/15.8/12.7 vs 14B base 0.2/22.4/20.0; "
              "double cheeseburger SFT+GRPO 0.3/30.5/20.0 vs 14B 0.0/35.0/-.")


@dataclass(frozen=True, slots=True)
class CompareConfig:
    eval_path: Path = Path("metrics/eval.json")          # written by `taskplan evaluate`
    cross_task_dir: Path = Path("metrics/cross_task")    # rows written by `taskplan cross-task`
    cross_task_rows: tuple[str, ...] = PAPER_TASKS       # <cross_task_dir>/<row>.json merged when present
    cross_task_path: Path = Path("metrics/cross_task.json")  # the merged SR matrix (when any row exists)
    report_path: Path = Path("reports/report.md")
    plots_dir: Path = Path("plots/compare")
    candidate: str = "grpo"                              # policy whose mean SR is judged ...
    baseline: str = "sft"                                # ... against this one ("" = no verdict)
    verdict_path: Path = Path("metrics/compare.json")

    def __post_init__(self) -> None:
        if self.candidate and self.candidate == self.baseline:
            raise ConfigError(f"compare.candidate and compare.baseline are both {self.candidate!r}; "
                              "compare two different policies")


@dataclass(frozen=True, slots=True)
class CompareResult:
    files: tuple[Path, ...]           # report first, then plots, CSVs and JSON
    verdict: dict[str, Any]           # candidate, baseline, their mean SRs, passed (None: no verdict)

    @property
    def metrics(self) -> dict[str, float]:
        return {f"compare/{k}": float(v) for k, v in self.verdict.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def summary(self) -> str:
        v = self.verdict
        judged = "" if v.get("passed") is None else (
            f"; {v['candidate']} SR {v['candidate_sr']:.2f} vs {v['baseline']} {v['baseline_sr']:.2f}: "
            + ("passed" if v["passed"] else "not better"))
        return f"compare: {len(self.files)} files -> {self.files[0]}{judged}"


def run_compare(cfg: CompareConfig) -> CompareResult:
    doc = read_eval(cfg.eval_path)
    cross = merge_cross_task([cfg.cross_task_dir / f"{row}.json" for row in cfg.cross_task_rows])
    files: list[Path] = [cfg.report_path]
    plots = cfg.plots_dir
    files += [plots / "eval.csv", plots / "sr.png", plots / "steps.png", plots / "bound_vs_sr.png"]
    atomic_write_text(plots / "eval.csv", eval_csv(doc))
    _save(plot_sr(doc), plots / "sr.png")
    _save(plot_steps(doc), plots / "steps.png")
    _save(plot_bound(doc), plots / "bound_vs_sr.png")
    if cross:
        atomic_write_json(cfg.cross_task_path, cross)
        atomic_write_text(plots / "cross_task.csv", cross_task_csv(cross))
        _save(plot_cross_task(cross), plots / "cross_task.png")
        files += [plots / "cross_task.csv", plots / "cross_task.png", cfg.cross_task_path]
    verdict = judge(doc, cfg.candidate, cfg.baseline)
    atomic_write_json(cfg.verdict_path, verdict)
    files.append(cfg.verdict_path)
    atomic_write_text(cfg.report_path, render_report(doc, cross, verdict, cfg.report_path, plots))
    return CompareResult(tuple(files), verdict)


def read_eval(path: Path) -> Doc:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path} not found; run `taskplan evaluate` first") from None
    except ValueError as err:
        raise DatasetError(f"{path} is not valid JSON ({err}); rerun `taskplan evaluate`") from None
    problems = check_contract(doc)
    if problems:
        raise DatasetError(f"{path} does not follow the eval.json contract: {problems[0]}; rerun `taskplan evaluate`")
    return doc


def merge_cross_task(paths: Sequence[Path]) -> Doc:
    """Union of the row files that exist: {train_task: {eval_task: metrics}}."""
    out: Doc = {}
    for path in paths:
        if Path(path).exists():
            out.update(read_eval(path))
    return out


def judge(doc: Doc, candidate: str, baseline: str) -> dict[str, Any]:
    """Candidate passes when its mean SR over the baseline's tasks is above zero and at least the baseline's."""
    verdict: dict[str, Any] = {"candidate": candidate, "baseline": baseline, "passed": None}
    if not candidate or not baseline or candidate not in doc or baseline not in doc:
        return verdict
    tasks = [t for t in doc[baseline] if t in doc[candidate]]
    if not tasks:
        return verdict
    c = sum(doc[candidate][t]["sr"] or 0.0 for t in tasks) / len(tasks)
    b = sum(doc[baseline][t]["sr"] or 0.0 for t in tasks) / len(tasks)
    verdict.update(candidate_sr=round(c, 4), baseline_sr=round(b, 4), passed=c > 0 and c >= b, tasks=tasks)
    return verdict


def bound_consistent(metrics: Mapping[str, Any], alpha: float = 0.05) -> bool:
    """False when SR@opt is significantly below the bound: P(X <= k | n, p = bound) < alpha."""
    n, bound = int(metrics.get("episodes") or 0), metrics.get("bound")
    if bound is None or n == 0:
        return True
    k = round(_sr_opt(metrics) * n)
    p = min(1.0, max(0.0, float(bound)))
    cdf = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    return cdf >= alpha


def eval_csv(doc: Doc) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EVAL_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for policy, table in doc.items():
        for task, row in table.items():
            writer.writerow({**row, "policy": policy, "task": task, "policy_task": f"{policy}/{task}"})
    return buf.getvalue()


def cross_task_csv(cross: Doc) -> str:
    lines = ["train_task,eval_task,train_eval,sr"]
    for train, table in cross.items():
        lines += [f"{train},{task},{train}->{task},{'' if m.get('sr') is None else m['sr']}"
                  for task, m in table.items()]
    return "\n".join(lines) + "\n"


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
        ax.scatter([m["bound"] for _, m in mine], [_sr_opt(m) for _, m in mine], label=policy, s=40)
        for t, m in mine:
            ax.annotate(_short(t), (m["bound"], _sr_opt(m)), fontsize=7, xytext=(3, 3), textcoords="offset points")
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
    ax.set_xticks(range(len(cols)), [_short(c) for c in cols])
    ax.set_yticks(range(len(rows)), [_short(r) for r in rows])
    ax.set(xlabel="evaluated on", ylabel="trained on", title="Cross-task SR")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def render_report(doc: Doc, cross: Doc, verdict: Mapping[str, Any], report_path: Path, plots_dir: Path) -> str:
    tasks = list(dict.fromkeys(t for table in doc.values() for t in table))
    episodes = sorted({m["episodes"] for table in doc.values() for m in table.values()})
    rel = lambda name: os.path.relpath(plots_dir / name, report_path.parent)  # noqa: E731
    out = ["# taskplan evaluation report", "",
           f"Policies: {', '.join(doc)}. Tasks: {', '.join(tasks)}. Episodes per task: "
           f"{', '.join(map(str, episodes))}.", "",
           "SR = success rate; ASAT = mean steps over all episodes (a failure counts as the step cap); "
           "ASST = mean steps over successful episodes (- when none succeeded); SR@opt = success in exactly "
           "the instance's true optimum; bound = mean over instances of the product of the policy's "
           "teacher-forced probabilities of the expert replies along the expert trajectory "
           "(the theorem: SR@opt >= bound for the sampled policy).", "",
           "## Success rate", "", _table(["policy", *map(_short, tasks), "mean"],
                                          [[p, *[_f(doc[p].get(t, {}).get("sr")) for t in tasks], _f(_mean_sr(doc[p]))]
                                           for p in doc]), "",
           f"![SR by policy and task]({rel('sr.png')})", "",
           "## Steps (ASAT / ASST)", "",
           _table(["policy", *map(_short, tasks)],
                  [[p, *[f"{_f(doc[p].get(t, {}).get('asat'))} / {_f(doc[p].get(t, {}).get('asst'))}" for t in tasks]]
                   for p in doc]), "",
           f"![ASAT and ASST]({rel('steps.png')})", "", "## Per task", ""]
    for t in tasks:
        first = next(doc[p][t] for p in doc if t in doc[p])
        out += [f"### {t} (listed optimum {first.get('listed_opt', '-')}, cap {first.get('cap', '-')}, "
                f"mean true optimum {_f(first.get('opt_mean'))})", "",
                _table(["policy", "SR", "SR@opt", "ASAT", "ASST", "invalid rate", "bound"],
                       [[p, *[_f(doc[p][t].get(k)) for k in ("sr", "sr_opt", "asat", "asst", "invalid_rate")],
                         _g(doc[p][t].get("bound"))] for p in doc if t in doc[p]]), ""]
    checks = [(p, t, m) for p, table in doc.items() for t, m in table.items() if m.get("bound") is not None]
    out += ["## Bound check", ""]
    if checks:
        ok = sum(bound_consistent(m) for _, _, m in checks)
        out += [f"The measured SR@opt is consistent with SR@opt >= bound on {ok} of {len(checks)} (policy, task) "
                "pairs (one-sided binomial test at 5 %: the bound is contradicted only when so few episodes "
                "finish optimally that a policy meeting the bound would rarely do that badly). Greedy "
                "decoding makes this indicative: the theorem is about the sampled policy.", "",
                _table(["policy", "task", "bound", "mean log10 bound", "SR@opt", "SR", "consistent"],
                       [[p, t, _g(m["bound"]), _f(m.get("bound_log10")), _f(m.get("sr_opt")), _f(m["sr"]),
                         "yes" if bound_consistent(m) else "NO"] for p, t, m in checks]), ""]
    else:
        out += ["No policy with probabilities (random/expert/endpoint policies have no bound).", ""]
    out += [f"![bound vs SR]({rel('bound_vs_sr.png')})", "", "## Cross-task SR", ""]
    if cross:
        cols = list(dict.fromkeys(t for table in cross.values() for t in table))
        out += ["Rows: trained on; columns: evaluated on.", "",
                _table(["trained on", *map(_short, cols)],
                       [[r, *[_f((cross[r].get(c) or {}).get("sr")) for c in cols]] for r in cross]), "",
                f"![cross-task SR]({rel('cross_task.png')})", ""]
    else:
        out += ["No cross-task rows yet (run `taskplan cross-task`).", ""]
    out += ["## Verdict", ""]
    if verdict.get("passed") is None:
        out += [f"No verdict: candidate {verdict.get('candidate')!r} or baseline {verdict.get('baseline')!r} "
                "was not evaluated.", ""]
    else:
        out += [f"{verdict['candidate']} mean SR {verdict['candidate_sr']:.3f} vs {verdict['baseline']} "
                f"{verdict['baseline_sr']:.3f}: **{'passed' if verdict['passed'] else 'not better'}**.", ""]
    out += [PAPER_NOTE, ""]
    return "\n".join(out)


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
            ax.bar(xs, [0 if v is None else v for v in vals], width, label=policy)
        ax.set_xticks(range(len(tasks)), [_short(t) for t in tasks])
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


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _pyplot().close(fig)
    with atomic_open(path, "wb") as fh:
        fh.write(buf.getvalue())


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _g(value: Any) -> str:
    """A probability that may be tiny: 0.731, 2.4e-07."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value == 0 or value >= 1e-3 else f"{value:.1e}"


def _mean_sr(table: Mapping[str, Mapping[str, Any]]) -> float | None:
    srs = [m["sr"] for m in table.values() if m.get("sr") is not None]
    return sum(srs) / len(srs) if srs else None


def _sr_opt(m: Mapping[str, Any]) -> float:
    return m["sr_opt"] if m.get("sr_opt") is not None else m["sr"]


_SHORT = {"cheese_sandwich": "CS", "burger": "B", "cheeseburger": "CB", "double_cheeseburger": "DCB"}


def _short(task: str) -> str:
    return _SHORT.get(task, task)
