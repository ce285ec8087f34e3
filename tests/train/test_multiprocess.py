"""Training under `accelerate launch` with two processes on CPU (gloo), through the multi-GPU DDP config:
the launch path a user with 8 GPUs takes, with `--num_processes 2 --mixed_precision no`.

- gradients are synchronised: 2 processes x batch 2 end with the weights of 1 process x batch 4;
- one process writes: one summary line, one MLflow run, one model folder;
- a run killed mid-way resumes under 2 processes from its fingerprinted checkpoint;
- GRPO finishes under 2 processes;
- the DDP and ZeRO-2 configs parse with accelerate's own reader.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DDP_CONFIG = ROOT / "infra" / "accelerate" / "multi_gpu_ddp.yaml"
ZERO2_CONFIG = ROOT / "infra" / "accelerate" / "deepspeed_zero2.yaml"
TASKPLAN = Path(sys.executable).with_name("taskplan")

pytestmark = pytest.mark.smoke


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_cmd(*args: str, processes: int = 2) -> list[str]:
    """`accelerate launch` with the repository's DDP config, as infra/README.md and `make train-ddp` run it."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(DDP_CONFIG),
            "--num_processes", str(processes), "--mixed_precision", "no", "--main_process_port", str(_free_port()),
            str(TASKPLAN), *args]


def _params(root: Path, model_dir: Path, rows_dir: Path, name: str, **sft) -> Path:
    section = {"model_dir": str(model_dir), "dataset_dir": str(rows_dir), "out_dir": str(root / name),
               "checkpoint_dir": str(root / f"{name}_checkpoints"), "metrics_path": str(root / f"{name}.json"),
               "plots_dir": str(root / f"{name}_plots"), "max_steps": 4, "batch_size": 4, "learning_rate": 1e-2,
               "warmup_ratio": 0.0, "lr_scheduler": "constant", "save_steps": 2, "val_rows": 2,
               "val_max_new_tokens": 4, **sft}
    grpo = {"model_dir": str(model_dir), "dataset_dir": str(rows_dir), "out_dir": str(root / "grpo"),
            "checkpoint_dir": str(root / "grpo_checkpoints"), "metrics_path": str(root / "grpo.json"),
            "plots_dir": str(root / "grpo_plots"), "max_steps": 2, "prompts_per_step": 2, "num_generations": 2,
            "max_completion_length": 4, "save_steps": 1, "eval_every": 0, "val_rows": 2, "val_max_new_tokens": 4}
    path = root / f"{name}.yaml"
    path.write_text(json.dumps({"common": {"seed": 7}, "sft": section, "grpo": grpo}))   # JSON is YAML
    return path


def _env(root: Path, track: bool = False) -> dict[str, str]:
    env = {**os.environ, "TASKPLAN_TRACK": "1" if track else "0", "OMP_NUM_THREADS": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    return env


def _kill_tree(pid: int) -> None:
    """SIGKILL a launcher and every process under it (torchrun starts each rank in a session of its own,
    so killing the launcher's process group would leave the ranks training)."""
    import psutil

    root = psutil.Process(pid)
    procs = [*root.children(recursive=True), root]
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=30)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_two_processes_train_the_weights_of_one_process_with_twice_the_batch(tiny_model_dir, tiny_rows_dir,
                                                                             tmp_path):
    from taskplan.config import load_config
    from taskplan.train.sft import SftConfig, run_sft

    one = _params(tmp_path, tiny_model_dir, tiny_rows_dir, "one")
    run_sft(load_config(SftConfig, "sft", one, []))                 # 1 process, 4 rows a step
    two = _params(tmp_path, tiny_model_dir, tiny_rows_dir, "two")
    proc = subprocess.run(launch_cmd("sft", "--params", str(two)), capture_output=True, text=True,
                          env=_env(tmp_path, track=True), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 2 processes, 2 rows each: the same 4 rows a step, gradients averaged over the processes
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("sft:")] == [proc.stdout.strip()]
    init, a, b = _weights(tiny_model_dir), _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-3        # training moved them
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert json.loads((tmp_path / "two.json").read_text())["steps"] == 4.0

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.status for r in runs] == ["FINISHED"]                 # one run, not one per process


def test_a_killed_two_process_run_resumes_from_its_checkpoint(tiny_model_dir, tiny_rows_dir, tmp_path):
    params = _params(tmp_path, tiny_model_dir, tiny_rows_dir, "run", max_steps=60, save_steps=2)
    first = subprocess.Popen(launch_cmd("sft", "--params", str(params)), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=_env(tmp_path), start_new_session=True)
    marker = tmp_path / "run_checkpoints" / "checkpoint-4" / "taskplan_complete.json"
    deadline = time.monotonic() + 240
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_tree(first.pid)                     # launcher and both ranks, mid-run
    first.wait()
    assert marker.exists() and not (tmp_path / "run").exists()
    params = _params(tmp_path, tiny_model_dir, tiny_rows_dir, "run", max_steps=60, save_steps=2)
    # the same run, continued: a shorter max_steps would change the fingerprint, so keep it and stop early
    done = subprocess.run(launch_cmd("sft", "--params", str(params), "--resume"), capture_output=True, text=True,
                          env=_env(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr and "checkpoint-" in done.stderr
    assert json.loads((tmp_path / "run.json").read_text())["steps"] == 60.0
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_grpo_finishes_under_two_processes(tiny_model_dir, tiny_rows_dir, tmp_path):
    params = _params(tmp_path, tiny_model_dir, tiny_rows_dir, "unused")
    proc = subprocess.run(launch_cmd("grpo", "--params", str(params)), capture_output=True, text=True,
                          env=_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("grpo:")] == [proc.stdout.strip()]
    assert json.loads((tmp_path / "grpo.json").read_text())["steps"] == 2.0
    assert (tmp_path / "grpo" / "model.safetensors").exists()


@pytest.mark.parametrize("path, kind", [(DDP_CONFIG, "MULTI_GPU"), (ZERO2_CONFIG, "DEEPSPEED")])
def test_the_multi_gpu_configs_parse_with_accelerates_reader(path, kind):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type.value == kind and cfg.mixed_precision == "bf16" and cfg.num_machines == 1
    if kind == "DEEPSPEED":
        # the plugin turns the YAML into DeepSpeed's own JSON config (no CUDA or deepspeed needed for that)
        ds = DeepSpeedPlugin(**cfg.deepspeed_config).deepspeed_config
        assert ds["zero_optimization"]["stage"] == 2
        assert ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
        assert ds["gradient_accumulation_steps"] == "auto"   # filled from the stage config at launch
