"""`taskplan model-init/sft/grpo` on the command line: light import, one-line errors, exit code 2."""

import subprocess
import sys

import pytest


def _error_line(err: str) -> str:
    """The one error line main() prints (log lines may precede it); never a traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("taskplan: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_importing_the_commands_is_light():
    code = ("import sys, taskplan.cli, taskplan.commands.stages, taskplan.model, taskplan.train; "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets', 'mlflow') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_grpo_with_zero_beta_exits_2_with_one_line(cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("common: {seed: 1}\ngrpo: {beta: 0.04}\n")
    code, _, err = cli("grpo", "--params", str(params), "--set", "grpo.beta=0.0")
    assert code == 2 and "beta" in _error_line(err)


def test_sft_with_a_missing_model_exits_2(cli, tiny_rows_dir, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"sft:\n  dataset_dir: {tiny_rows_dir}\n  model_dir: {tmp_path / 'missing'}\n")
    code, _, err = cli("sft", "--params", str(params))
    assert code == 2 and "does not exist" in _error_line(err)


def test_unknown_key_is_refused(cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("sft: {max_stepz: 3}\n")
    code, _, err = cli("sft", "--params", str(params))
    assert code == 2 and "max_stepz" in _error_line(err)


@pytest.mark.smoke
def test_model_init_command_writes_a_model(cli, tiny_rows_dir, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(f"model_init:\n  dataset_dir: {tiny_rows_dir}\n  out_dir: {tmp_path / 'init'}\n"
                      "  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  num_kv_heads: 1\n"
                      "  intermediate_size: 64\n  vocab_size: 400\n")
    code, out, _ = cli("model-init", "--params", params)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 1 and lines[0].startswith("model_init:")
    assert (tmp_path / "init" / "model.safetensors").exists()
