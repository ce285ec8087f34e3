"""Stage `compare`: report, plots and CSVs from hand-built metrics."""

from __future__ import annotations

import csv
import json

import pytest

from taskplan.errors import ConfigError, DatasetError
from taskplan.evaluate.report import CompareConfig, bound_consistent, judge, merge_cross_task, run_compare

TASKS = ("cheese_sandwich", "burger", "cheeseburger", "double_cheeseburger")


def row(sr, asat, asst, bound=None, sr_opt=None):
    return {"sr": sr, "asat": asat, "asst": asst, "episodes": 10, "invalid_actions": 3, "bound": bound,
            "invalid_rate": 0.01, "sr_opt": sr if sr_opt is None else sr_opt, "opt_mean": 9.0, "listed_opt": 10,
            "cap": 15}


@pytest.fixture
def metrics_dir(tmp_path):
    doc = {
        "random": {t: row(0.0, 15.0, None) for t in TASKS},
        "expert": {t: row(1.0, 9.0, 9.0) for t in TASKS},
        "sft": {t: row(0.4, 12.0, 10.0, bound=0.2, sr_opt=0.3) for t in TASKS},
        "grpo": {t: row(0.7, 11.0, 9.5, bound=0.5, sr_opt=0.4) for t in TASKS},
    }
    (tmp_path / "metrics" / "cross_task").mkdir(parents=True)
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps(doc))
    for n, train in enumerate(TASKS[:3]):   # one row missing: the report copes
        cross = {train: {t: row(round(0.1 * (n + k), 1), 15.0, None) for k, t in enumerate(TASKS)}}
        (tmp_path / "metrics" / "cross_task" / f"{train}.json").write_text(json.dumps(cross))
    return tmp_path


def config(root) -> CompareConfig:
    return CompareConfig(eval_path=root / "metrics" / "eval.json", cross_task_dir=root / "metrics" / "cross_task",
                         cross_task_path=root / "metrics" / "cross_task.json", report_path=root / "reports" / "report.md",
                         plots_dir=root / "plots" / "compare", verdict_path=root / "metrics" / "compare.json",
                         control_path=root / "metrics" / "eval_control.json",
                         curves=(f"sft={root}/plots/sft/val_accuracy.csv", f"grpo={root}/plots/grpo/val_accuracy.csv"),
                         training=(f"sft={root}/metrics/sft.json", f"grpo={root}/metrics/grpo.json"))


def test_compare_writes_report_plots_and_csvs(metrics_dir):
    result = run_compare(config(metrics_dir))
    names = {f.name for f in result.files}
    assert {"report.md", "sr.png", "steps.png", "bound_vs_sr.png", "cross_task.png", "eval.csv",
            "cross_task.csv", "cross_task.json", "compare.json"} <= names
    assert result.files[0].name == "report.md"
    for f in result.files:
        assert f.exists() and f.stat().st_size > 0, f"{f} is missing or empty"
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = result.files[0].read_text()
    assert "| grpo | 0.70 [0.40, 0.89] | 0.70 [0.40, 0.89] | 0.70 [0.40, 0.89] | 0.70 [0.40, 0.89] | 0.70 |" \
        in report, "SR table row with 95 % Wilson intervals"
    assert "](../plots/compare/sr.png)" in report, "plots are linked relative to the report"
    assert "SR@opt >= bound on 8 of 8" in report, "10 episodes cannot contradict 0.4 vs a 0.5 bound"
    assert "greedy rollouts only" in report, "no sampled SR@opt in these metrics: the report says so"
    assert "**passed**" in report


def test_report_adds_control_modes_training_and_sampled_bound_check(metrics_dir):
    root = metrics_dir
    doc = json.loads((root / "metrics" / "eval.json").read_text())
    for m in doc["grpo"].values():
        m.update(sr_opt_sampled=0.1, sr_opt_samples=50, bound=0.5)   # 5 of 50 under a 0.5 bound: contradicted
    doc["grpo_constrained"] = {t: row(0.9, 10.0, 9.0) for t in TASKS}
    (root / "metrics" / "eval.json").write_text(json.dumps(doc))
    (root / "metrics" / "eval_control.json").write_text(json.dumps({"sft_control": {t: row(0.5, 12.0, 10.0)
                                                                                    for t in TASKS}}))
    for stage, accs in (("sft", [0.0, 0.5, 0.8]), ("grpo", [0.8, 0.85])):
        (root / "plots" / stage).mkdir(parents=True)
        lines = ["step,val_accuracy,train_seconds"] + [f"{i * 10},{a},{i * 30.0}" for i, a in enumerate(accs)]
        (root / "plots" / stage / "val_accuracy.csv").write_text("\n".join(lines) + "\n")
        (root / "metrics" / f"{stage}.json").write_text(json.dumps({"steps": 20, "wall_seconds": 60.0,
                                                                   "val_accuracy": accs[-1]}))
    result = run_compare(config(root))
    report = result.files[0].read_text()
    assert "| sft_control | 0.50 [0.24, 0.76] |" in report, "the control row joins the tables"
    assert result.verdict["passed"] is True and result.verdict["baseline"] == "sft", "the verdict ignores the control"
    assert "| grpo | 0.70 / 0.90 |" in report, "free vs constrained side by side"
    assert "rollouts sampled at temperature 1" in report and "| grpo | burger | 0.500 |" in report
    assert "| NO |" in report, "5 of 50 sampled episodes contradict a 0.5 bound"
    assert "| grpo | 20 | 60 | - | 0.850 |" in report and "learning_curves.png" in report
    assert (root / "plots" / "compare" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_bound_check_is_a_binomial_test():
    assert bound_consistent(row(0.0, 15.0, None, bound=1e-20)), "a tiny bound is never contradicted"
    assert bound_consistent(row(0.4, 15.0, None, bound=0.5)), "4/10 is likely under p = 0.5"
    assert not bound_consistent(row(0.1, 15.0, None, bound=0.8)), "1/10 is implausible under p = 0.8"
    assert bound_consistent(row(0.1, 15.0, None)), "no bound, nothing to check"


def test_csvs_are_long_tables_for_dvc_plots(metrics_dir):
    cfg = config(metrics_dir)
    run_compare(cfg)
    rows = list(csv.DictReader((cfg.plots_dir / "eval.csv").open()))
    assert len(rows) == 16 and rows[0]["policy_task"] == "random/cheese_sandwich"
    assert rows[0]["asst"] == "" and rows[-1]["bound"] == "0.5"
    cross = list(csv.DictReader((cfg.plots_dir / "cross_task.csv").open()))
    assert len(cross) == 12 and cross[0] == {"train_task": "cheese_sandwich", "eval_task": "cheese_sandwich",
                                     "train_eval": "cheese_sandwich->cheese_sandwich", "sr": "0.0"}
    merged = json.loads(cfg.cross_task_path.read_text())
    assert list(merged) == list(TASKS[:3])


def test_verdict_compares_mean_sr(metrics_dir):
    doc = json.loads((metrics_dir / "metrics" / "eval.json").read_text())
    assert judge(doc, "grpo", "sft")["passed"] is True
    assert judge(doc, "sft", "grpo")["passed"] is False
    assert judge(doc, "grpo", "base")["passed"] is None, "baseline not evaluated: no verdict"
    assert judge(doc, "random", "expert")["passed"] is False
    zero = {"a": {"burger": row(0.0, 15.0, None)}, "b": {"burger": row(0.0, 15.0, None)}}
    assert judge(zero, "a", "b")["passed"] is False, "a candidate that never succeeds never passes"
    assert judge({"a": doc["sft"], "b": doc["sft"]}, "a", "b")["passed"] is False, "a tie is not better"
    with pytest.raises(ConfigError, match="both"):
        CompareConfig(candidate="sft", baseline="sft")


def test_compare_without_cross_task_rows_or_bounds(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps({"random": {"burger": row(0.0, 15.0, None)}}))
    result = run_compare(config(tmp_path))
    assert [f.name for f in result.files if f.name.startswith("cross_task")] == ["cross_task.json"]
    assert json.loads((tmp_path / "metrics" / "cross_task.json").read_text()) == {}   # a declared out: always there
    assert "No cross-task rows yet" in result.files[0].read_text()
    assert result.verdict["passed"] is None


def test_missing_or_malformed_eval_json_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="run `taskplan evaluate` first"):
        run_compare(config(tmp_path))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps({"sft": {"burger": {"sr": 1.0}}}))
    with pytest.raises(DatasetError, match="missing asat"):
        run_compare(config(tmp_path))
    assert merge_cross_task([tmp_path / "nope.json"]) == {}
