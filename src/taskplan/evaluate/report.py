"""Stage `compare`: metrics/eval.json (+ cross-task rows) -> report.md, PNG plots, CSVs.

    result = run_compare(CompareConfig())
    result.files          # report, plots, CSVs, merged JSON: what tracking logs to MLflow

Plots (matplotlib, Agg backend): SR by policy and task, ASAT/ASST by policy
and task, the cross-task SR heatmap, and the product bound against the
measured SR in minimal steps. The CSVs are long tables that `dvc plots` can
draw (`eval.csv`: one row per policy and task; `cross_task.csv`: one row per
train/eval pair). The candidate-vs-baseline verdict (mean SR over tasks,
strictly higher than the baseline's) goes to `metrics/compare.json`; promotion
reads it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskplan.catalog import StageSpec
from taskplan.errors import ConfigError, DatasetError
from taskplan.evaluate.metrics import check_contract
from taskplan.evaluate.plots import (
    plot_bound,
    plot_cross_task,
    plot_learning_curves,
    plot_sr,
    plot_steps,
    save_png,
    short,
    sr_opt,
)
from taskplan.evaluate.stats import format_rate
from taskplan.io import atomic_write_json, atomic_write_text, read_json_input
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
    cross_task_path: Path = Path("metrics/cross_task.json")  # the merged SR matrix ({} while no row exists)
    report_path: Path = Path("reports/report.md")
    plots_dir: Path = Path("plots/compare")
    candidate: str = "grpo"                              # policy whose mean SR is judged ...
    baseline: str = "sft"                                # ... against this one ("" = no verdict)
    verdict_path: Path = Path("metrics/compare.json")
    control_path: Path | None = Path("metrics/eval_control.json")  # SFT-only at equal wall-clock (if present)
    single_turn_path: Path | None = Path("metrics/single_turn.json")  # single-turn outcomes by row kind (if present)
    holdout_path: Path | None = Path("metrics/eval_holdout.json")     # the candidate on more held-out seeds
    curves: tuple[str, ...] = ("sft=plots/sft/val_accuracy.csv", "grpo=plots/grpo/val_accuracy.csv")  # STAGE=CSV
    training: tuple[str, ...] = ("sft=metrics/sft.json", "grpo=metrics/grpo.json")   # STAGE=METRICS_JSON

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

    def to_json(self) -> dict[str, Any]:
        return {"files": [str(f) for f in self.files], "verdict": self.verdict}

    def summary(self) -> str:
        v = self.verdict
        judged = "" if v.get("passed") is None else (
            f"; {v['candidate']} SR {v['candidate_sr']:.2f} vs {v['baseline']} {v['baseline_sr']:.2f}: "
            + ("passed" if v["passed"] else "not better"))
        return f"compare: {len(self.files)} files -> {self.files[0]}{judged}"


def run_compare(cfg: CompareConfig) -> CompareResult:
    doc = read_eval(cfg.eval_path)
    verdict = judge(doc, cfg.candidate, cfg.baseline)   # on the main evaluation, before the control joins
    if cfg.control_path is not None and Path(cfg.control_path).exists():
        doc = {**doc, **read_eval(cfg.control_path)}
    cross = merge_cross_task([cfg.cross_task_dir / f"{row}.json" for row in cfg.cross_task_rows])
    files: list[Path] = [cfg.report_path]
    plots = cfg.plots_dir
    files += [plots / "eval.csv", plots / "sr.png", plots / "steps.png", plots / "bound_vs_sr.png",
              plots / "learning_curves.png"]
    atomic_write_text(plots / "eval.csv", eval_csv(doc))
    save_png(plot_sr(doc), plots / "sr.png")
    save_png(plot_steps(doc), plots / "steps.png")
    save_png(plot_bound(doc), plots / "bound_vs_sr.png")
    curves = {stage: Path(path) for stage, path in (_pair(c, "compare.curves") for c in cfg.curves)}
    save_png(plot_learning_curves(curves), plots / "learning_curves.png")
    atomic_write_json(cfg.cross_task_path, cross)     # always written: a declared output of the stage
    files.append(cfg.cross_task_path)
    if cross:
        atomic_write_text(plots / "cross_task.csv", cross_task_csv(cross))
        save_png(plot_cross_task(cross), plots / "cross_task.png")
        files += [plots / "cross_task.csv", plots / "cross_task.png"]
    atomic_write_json(cfg.verdict_path, verdict)
    files.append(cfg.verdict_path)
    training = {stage: _read_json(Path(path)) for stage, path in (_pair(t, "compare.training") for t in cfg.training)}
    extra = (_single_turn_section(_read_json(Path(cfg.single_turn_path)) if cfg.single_turn_path else {})
             + _holdout_section(read_eval(cfg.holdout_path) if cfg.holdout_path and Path(cfg.holdout_path).exists()
                                else {}))
    atomic_write_text(cfg.report_path, render_report(doc, cross, verdict, cfg.report_path, plots, training, extra))
    return CompareResult(tuple(files), verdict)


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"{what} entry {text!r} must be NAME=PATH, e.g. sft=metrics/sft.json")
    return name.strip(), path.strip()


def _read_json(path: Path) -> dict:
    """An optional record (single-turn accuracies): what it holds, or {} when it is absent or unreadable."""
    try:
        doc = read_json_input(path, "record", DatasetError)
    except DatasetError:
        return {}
    return doc if isinstance(doc, dict) else {}


def read_eval(path: Path) -> Doc:
    doc = read_json_input(path, "evaluation results", DatasetError, "run `taskplan evaluate` first")
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
    """Candidate passes when its mean SR over the baseline's tasks is strictly above the baseline's."""
    verdict: dict[str, Any] = {"candidate": candidate, "baseline": baseline, "passed": None}
    if not candidate or not baseline or candidate not in doc or baseline not in doc:
        return verdict
    tasks = [t for t in doc[baseline] if t in doc[candidate]]
    if not tasks:
        return verdict
    c = sum(doc[candidate][t]["sr"] or 0.0 for t in tasks) / len(tasks)
    b = sum(doc[baseline][t]["sr"] or 0.0 for t in tasks) / len(tasks)
    verdict.update(candidate_sr=round(c, 4), baseline_sr=round(b, 4), passed=c > b, tasks=tasks)
    return verdict


def bound_consistent(metrics: Mapping[str, Any], alpha: float = 0.05) -> bool:
    """False when SR@opt (of sampled rollouts when measured) is significantly below the bound:
    P(X <= k | n, p = bound) < alpha."""
    rate, n = sr_opt(metrics)
    bound = metrics.get("bound")
    if bound is None or rate is None or n == 0:
        return True
    k = round(rate * n)
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


def render_report(doc: Doc, cross: Doc, verdict: Mapping[str, Any], report_path: Path, plots_dir: Path,
                  training: Mapping[str, Mapping[str, Any]] | None = None, extra: Sequence[str] = ()) -> str:
    tasks = list(dict.fromkeys(t for table in doc.values() for t in table))
    episodes = sorted({m["episodes"] for table in doc.values() for m in table.values()})
    styles = sorted({str(m.get("prompt_style")) for table in doc.values() for m in table.values()
                     if m.get("prompt_style")})
    rel = lambda name: os.path.relpath(plots_dir / name, report_path.parent)  # noqa: E731
    sr = lambda p, t: format_rate(doc[p].get(t, {}).get("sr"), int(doc[p].get(t, {}).get("episodes") or 0))  # noqa: E731
    out = ["# taskplan evaluation report", "",
           f"Policies: {', '.join(doc)}. Tasks: {', '.join(tasks)}. Episodes per task: "
           f"{', '.join(map(str, episodes))}. Prompt style: {', '.join(styles) or 'full'} "
           "(full = the paper's system prompt and observation; short = one-line system prompt; compact = "
           "one-line system prompt and the observation rewritten one line per object, same facts).", "",
           "SR = success rate with its 95 % Wilson interval; ASAT = mean steps over all episodes (a failure "
           "counts as the step cap); ASST = mean steps over successful episodes (- when none succeeded); "
           "SR@opt = success in exactly the instance's true optimum; bound = mean over instances of the "
           "product of the policy's teacher-forced probabilities of the expert replies along the expert "
           "trajectory (the theorem: SR@opt >= bound for the policy sampled at temperature 1). "
           "`<policy>_constrained` rows choose among the valid actions by the model's likelihood; the "
           "others generate free text parsed by the environment (the paper's protocol, used for promotion).",
           "", "## Success rate", "",
           _table(["policy", *map(short, tasks), "mean"],
                  [[p, *[sr(p, t) for t in tasks], _f(_mean_sr(doc[p]))] for p in doc]), "",
           f"![SR by policy and task]({rel('sr.png')})", ""]
    out += [*extra] + _modes_section(doc, tasks) + _training_section(training or {}, rel) + [
           "## Steps (ASAT / ASST)", "",
           _table(["policy", *map(short, tasks)],
                  [[p, *[f"{_f(doc[p].get(t, {}).get('asat'))} / {_f(doc[p].get(t, {}).get('asst'))}" for t in tasks]]
                   for p in doc]), "",
           f"![ASAT and ASST]({rel('steps.png')})", "", "## Per task", ""]
    for t in tasks:
        first = next(doc[p][t] for p in doc if t in doc[p])
        out += [f"### {t} (listed optimum {first.get('listed_opt', '-')}, cap {first.get('cap', '-')}, "
                f"mean true optimum {_f(first.get('opt_mean'))})", "",
                _table(["policy", "SR", "SR@opt", "ASAT", "ASST", "invalid rate", "bound"],
                       [[p, sr(p, t), *[_f(doc[p][t].get(k)) for k in ("sr_opt", "asat", "asst", "invalid_rate")],
                         _g(doc[p][t].get("bound"))] for p in doc if t in doc[p]]), ""]
    out += _bound_section(doc) + [f"![bound vs SR]({rel('bound_vs_sr.png')})", "", "## Cross-task SR", ""]
    if cross:
        cols = list(dict.fromkeys(t for table in cross.values() for t in table))
        out += ["Rows: trained on; columns: evaluated on.", "",
                _table(["trained on", *map(short, cols)],
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
                f"{verdict['baseline_sr']:.3f}: **{'passed' if verdict['passed'] else 'not better'}** "
                "(strictly higher mean SR over the tasks; free-text protocol).", ""]
    out += [PAPER_NOTE, ""]
    return "\n".join(out)


def _modes_section(doc: Doc, tasks: Sequence[str]) -> list[str]:
    pairs = [p for p in doc if f"{p}_constrained" in doc]
    if not pairs:
        return []
    rows = [[p, *[f"{_f(doc[p].get(t, {}).get('sr'))} / {_f(doc[f'{p}_constrained'].get(t, {}).get('sr'))}"
                  for t in tasks]] for p in pairs]
    return ["## Free text vs constrained decoding", "",
            "SR free / SR constrained (same weights; constrained picks the most likely valid action).", "",
            _table(["policy", *map(short, tasks)], rows), ""]


def _single_turn_section(doc: Mapping[str, Any]) -> list[str]:
    """Single-turn replies by row kind and outcome (evaluate/single_turn.py), one row per (policy, kind)."""
    if not doc:
        return []
    rows = []
    for policy, groups in doc.items():
        for kind in ("all", "move", "other"):
            g = groups.get(kind)
            if g:
                rows.append([policy, kind, g["rows"], _f(g["accuracy"]), _f(g["optimal"]),
                             *[_f(g[k]) for k in ("expert", "other_optimal", "suboptimal", "invalid")]])
    return ["## Single-turn replies by kind and outcome", "",
            "Validation rows (held-out training seeds, clean expert path), greedy replies judged by the planner: "
            "expert = the expert's action (the exact-match reward); other optimal = another action that keeps "
            "the optimum; suboptimal = valid but at least one step longer; invalid = no valid action. "
            "Move rows are the \"where to go\" decision.", "",
            _table(["policy", "rows", "n", "accuracy", "optimal", "expert", "other optimal", "suboptimal",
                    "invalid"], rows), ""]


def _holdout_section(doc: Doc) -> list[str]:
    """The candidate's SR on seeds that nobody tuned on (evaluate.holdout_*)."""
    if not doc:
        return []
    tasks = list(dict.fromkeys(t for table in doc.values() for t in table))
    rows = [[p, *[format_rate(doc[p].get(t, {}).get("sr"), int(doc[p].get(t, {}).get("episodes") or 0))
                  for t in tasks], _f(_mean_sr(doc[p]))] for p in doc]
    return ["## More held-out seeds", "",
            "The candidate on extra held-out seeds (disjoint from the training seeds and from 42..420; "
            "nothing was tuned on them), SR with 95 % Wilson intervals.", "",
            _table(["policy", *map(short, tasks), "mean"], rows), ""]


def _training_section(training: Mapping[str, Mapping[str, Any]], rel: Any) -> list[str]:
    if not any(training.values()):
        return []
    rows = [[stage, _f(m.get("steps"), 0), _f(m.get("wall_seconds"), 0),
             _f(m.get("base_val_accuracy", m.get("start_val_accuracy")), 3), _f(m.get("val_accuracy"), 3)]
            for stage, m in training.items() if m]
    return ["## Training", "",
            _table(["stage", "steps", "wall seconds", "val accuracy before", "val accuracy after"], rows), "",
            f"![learning curves]({rel('learning_curves.png')})", ""]


def _bound_section(doc: Doc) -> list[str]:
    checks = [(p, t, m) for p, table in doc.items() for t, m in table.items() if m.get("bound") is not None]
    out = ["## Bound check", ""]
    if not checks:
        return out + ["No policy with probabilities (random/expert/endpoint policies have no bound).", ""]
    ok = sum(bound_consistent(m) for _, _, m in checks)
    sampled = [m.get("sr_opt_sampled") is not None for _, _, m in checks]
    source = ("rollouts sampled at temperature 1, the policy the theorem is about" if all(sampled) else
              "rollouts sampled at temperature 1 where measured, greedy rollouts (marked) elsewhere, where the "
              "check is only indicative" if any(sampled) else
              "greedy rollouts only (no sampled rollouts were run), so the check is indicative")
    out += [f"SR@opt comes from {source}. It is consistent with SR@opt >= bound on {ok} of {len(checks)} "
            "(policy, task) pairs (one-sided binomial test at 5 %). A bound near 0 makes the check vacuous; "
            "the table shows how far from vacuous each pair is.", "",
            _table(["policy", "task", "bound", "mean log10 bound", "SR@opt sampled [95 %]", "SR", "consistent"],
                   [[p, t, _g(m["bound"]), _f(m.get("bound_log10")), format_rate(*sr_opt(m)) + ("" if m.get("sr_opt_sampled") is not None else " (greedy)"), _f(m["sr"]),
                     "yes" if bound_consistent(m) else "NO"] for p, t, m in checks]), ""]
    return out


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


STAGE = StageSpec("compare", CompareConfig, run_compare,
                  "Report (markdown), plots (PNG) and CSVs from metrics/eval.json and the cross-task rows.", json=True)
