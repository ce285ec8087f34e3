"""`taskplan evaluate/cross-task/compare` on the command line (commands/stages.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _params(tmp_path, policies="[random, expert]") -> str:
    path = tmp_path / "params.yaml"
    path.write_text(
        "common: {profile: cpu-tiny, seed: 42}\n"
        f"evaluate:\n  policies: {policies}\n  tasks: [burger]\n  seeds: [42, 84]\n  suite: null\n"
        f"  out_path: {tmp_path / 'metrics' / 'eval.json'}\n  outputs_dir: {tmp_path / 'outputs' / 'eval'}\n"
        f"compare:\n  eval_path: {tmp_path / 'metrics' / 'eval.json'}\n"
        f"  cross_task_dir: {tmp_path / 'metrics' / 'cross_task'}\n"
        f"  cross_task_path: {tmp_path / 'metrics' / 'cross_task.json'}\n"
        f"  report_path: {tmp_path / 'reports' / 'report.md'}\n  plots_dir: {tmp_path / 'plots'}\n"
        f"  verdict_path: {tmp_path / 'metrics' / 'compare.json'}\n  candidate: expert\n  baseline: random\n"
        "profiles:\n  cpu-tiny: {}\n")
    return str(path)


def test_evaluation_core_imports_no_cli_or_tracking_library():
    code = ("import sys, taskplan.evaluate.stage, taskplan.evaluate.report, taskplan.evaluate.bound; "
            "print([m for m in ('typer', 'mlflow', 'prefect', 'dvc') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_importing_the_evaluation_commands_is_light():
    code = ("import sys, taskplan.cli, taskplan.evaluate.stage, taskplan.evaluate.report; "
            "print([m for m in ('torch', 'transformers', 'matplotlib', 'httpx', 'mlflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.smoke
def test_evaluate_then_compare(cli, tmp_path):
    params = _params(tmp_path)
    code, out, _ = cli("evaluate", "--params", params)
    assert code == 0 and out.startswith("evaluate: random SR") and out.count("\n") == 1
    doc = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert doc["expert"]["burger"]["sr"] == 1.0

    code, out, _ = cli("evaluate", "--params", params, "--set", "evaluate.seeds=[42]",
                       "--set", "evaluate.policies=[expert]", "--set", "evaluate.merge=true", "--json")
    assert code == 0 and json.loads(out)["expert"]["burger"]["episodes"] == 1, "--json prints one document"

    code, out, _ = cli("compare", "--params", params, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["verdict"]["passed"] is True and result["files"][0].endswith("report.md")


def test_missing_model_exits_2_with_one_line(cli, tmp_path):
    params = _params(tmp_path, policies=f"[random, sft={tmp_path / 'models' / 'sft'}]")
    code, _, err = cli("evaluate", "--params", params)
    assert code == 2 and err.startswith("taskplan: error:") and err.count("\n") == 1
    assert "does not exist" in err


@pytest.mark.parametrize("bad", ["corrupt", "api=http://"])
def test_a_bad_policy_spec_fails_before_anything_is_written(cli, tmp_path, tiny_model_dir, bad):
    import shutil

    corrupt = tmp_path / "models" / "sft"
    shutil.copytree(tiny_model_dir, corrupt)
    weights = (corrupt / "model.safetensors").read_bytes()
    (corrupt / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    spec = f"sft={corrupt}" if bad == "corrupt" else bad
    outputs = tmp_path / "outputs" / "eval"
    outputs.mkdir(parents=True)
    (outputs / "random.jsonl").write_text("earlier run\n")
    params = _params(tmp_path, policies=f"[random, '{spec}']")
    code, _, err = cli("evaluate", "--params", params)
    assert code == 2 and err.startswith("taskplan: error:") and err.count("\n") == 1, err
    assert ("unreadable weights" if bad == "corrupt" else "names no host") in err
    assert (outputs / "random.jsonl").read_text() == "earlier run\n", "random.jsonl was rewritten"
    assert not (tmp_path / "metrics").exists()


def test_unknown_task_and_key_exit_2(cli, tmp_path):
    params = _params(tmp_path)
    code, _, err = cli("evaluate", "--params", params, "--set", "evaluate.tasks=[burgr]")
    assert code == 2 and "unknown task 'burgr'" in err
    code, _, err = cli("evaluate", "--params", params, "--set", "evaluate.polices=[random]")
    assert code == 2 and "polices" in err


def test_compare_without_eval_json_exits_2(cli, tmp_path):
    code, _, err = cli("compare", "--params", _params(tmp_path))
    assert code == 2 and "run `taskplan evaluate` first" in err
