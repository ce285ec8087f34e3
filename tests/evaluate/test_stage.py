"""Stage `evaluate`: baselines, the eval.json contract, the tiny model end to end (cross-task: test_cross_task.py)."""

from __future__ import annotations

import json
import math

import pytest

from taskplan.errors import ConfigError, ModelNotFoundError, UnknownTaskError
from taskplan.evaluate.metrics import CONTRACT_KEYS, check_contract
from taskplan.evaluate.rollout import read_transcripts
from taskplan.evaluate.stage import EvaluateConfig, resolve_specs, run_evaluate
from taskplan.kitchen.tasks import PAPER_TASKS

SEEDS = (42, 84, 126)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    cfg = EvaluateConfig(policies=("random", "expert"), tasks=PAPER_TASKS, seeds=SEEDS, suite=None,
                         out_path=out / "metrics" / "eval.json", outputs_dir=out / "outputs")
    return cfg, run_evaluate(cfg)


def test_expert_succeeds_everywhere_in_the_optimal_number_of_steps(baselines):
    cfg, result = baselines
    for task in PAPER_TASKS:
        m = result.doc["expert"][task]
        assert m["sr"] == 1.0, f"expert failed on {task}"
        assert m["asat"] == m["asst"] == m["opt_mean"], f"expert ASAT on {task} is not the true optimum"
        assert m["sr_opt"] == 1.0 and m["invalid_actions"] == 0
    for ep in read_transcripts(cfg.outputs_dir / "expert.jsonl"):
        assert ep.success and ep.steps == ep.optimum, f"{ep.key}: {ep.steps} steps, optimum {ep.optimum}"


def test_random_policy_is_far_below_the_expert(baselines):
    _, result = baselines
    rand, expert = result.doc["random"], result.doc["expert"]
    assert sum(rand[t]["sr"] for t in PAPER_TASKS) / 4 <= 0.25
    assert all(rand[t]["asat"] > expert[t]["asat"] for t in PAPER_TASKS)


def test_eval_json_follows_the_design_contract(baselines):
    cfg, result = baselines
    doc = json.loads(cfg.out_path.read_text())
    assert doc == result.doc and check_contract(doc) == []
    assert list(doc) == ["random", "expert"] and list(doc["expert"]) == list(PAPER_TASKS)
    assert all(k in doc["random"]["burger"] for k in CONTRACT_KEYS)
    assert doc["expert"]["burger"]["episodes"] == len(SEEDS) and doc["expert"]["burger"]["bound"] is None
    assert result.files[0] == cfg.out_path and all(f.exists() for f in result.files)
    assert result.metrics["eval/expert/sr_mean"] == 1.0
    assert result.child_runs["expert"]["metrics"]["sr/burger"] == 1.0           # one MLflow run per policy
    assert result.child_runs["expert"]["tags"]["taskplan.kind"] == "expert"
    assert "expert SR 1.00" in result.summary()


def test_merge_keeps_other_policies(baselines, tmp_path):
    cfg, _ = baselines
    path = tmp_path / "eval.json"
    path.write_text(cfg.out_path.read_text())
    run_evaluate(EvaluateConfig(policies=("oracle=expert",), tasks=("burger",), seeds=(42,), suite=None,
                                merge=True, out_path=path, outputs_dir=tmp_path / "o"))
    assert list(json.loads(path.read_text())) == ["random", "expert", "oracle"]


def test_specs_come_from_the_suite_unless_given(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"eval_tasks": ["burger"], "eval_seeds": [42, 84]}))
    assert [s.key for s in resolve_specs((), (), suite)] == ["burger/42", "burger/84"]
    assert len(resolve_specs((), (), None)) == 40, "paper tasks x 10 evaluation seeds"
    assert [s.key for s in resolve_specs(("cheeseburger",), (), suite)] == ["cheeseburger/42", "cheeseburger/84"]
    with pytest.raises(ConfigError, match="no such file"):
        resolve_specs((), (), tmp_path / "missing.json")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="twice"):
        EvaluateConfig(policies=("random", "random"))
    with pytest.raises(ConfigError, match="needs a target"):
        EvaluateConfig(policies=("sft",))
    with pytest.raises(UnknownTaskError):
        EvaluateConfig(tasks=("cheeseburgr",))
    with pytest.raises(ConfigError, match="temperature"):
        EvaluateConfig(temperature=-1.0)


def test_missing_model_fails_before_any_episode(tmp_path):
    cfg = EvaluateConfig(policies=("random", f"sft={tmp_path / 'models' / 'sft'}"), tasks=("burger",), seeds=(42,),
                         suite=None, out_path=tmp_path / "eval.json", outputs_dir=tmp_path / "o")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        run_evaluate(cfg)
    assert not (tmp_path / "o").exists(), "nothing ran"


@pytest.mark.smoke
def test_tiny_model_evaluates_end_to_end_with_a_bound(tiny_model_dir, tmp_path):
    cfg = EvaluateConfig(policies=(f"tiny={tiny_model_dir}",), tasks=("burger",), seeds=(42, 84), suite=None,
                         max_new_tokens=4, device="cpu", out_path=tmp_path / "eval.json", outputs_dir=tmp_path / "o")
    result = run_evaluate(cfg)
    m = result.doc["tiny"]["burger"]
    assert check_contract(result.doc) == [] and m["episodes"] == 2
    assert m["bound"] is not None and 0.0 <= m["bound"] <= 1.0 and m["bound_log10"] < 0
    bounds = [json.loads(line) for line in (tmp_path / "o" / "tiny.bound.jsonl").read_text().splitlines()]
    episodes = read_transcripts(tmp_path / "o" / "tiny.jsonl")
    assert [len(b["step_probs"]) for b in bounds] == [ep.optimum for ep in episodes], "one factor per expert step"
    for b in bounds:   # the bound is the product of its per-step factors, each a probability
        assert all(0.0 < p <= 1.0 for p in b["step_probs"])
        assert math.isclose(math.prod(b["step_probs"]), b["bound"], rel_tol=1e-6, abs_tol=1e-300)
    assert math.isclose(sum(b["bound"] for b in bounds) / len(bounds), m["bound"], rel_tol=1e-4, abs_tol=1e-300)
    assert m["sr_opt_samples"] == 5 * 2 and 0.0 <= m["sr_opt_sampled"] <= 1.0, "5 sampled rollouts per seed"

