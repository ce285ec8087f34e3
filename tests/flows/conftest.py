"""Flow tests: Prefect's test harness (a temporary server and database), the flow loaded from
flows/pipeline.py, a micro project (1 task, 2 training seeds, 2 training steps, 1 evaluation seed, a
2-layer hidden-32 model) in a temporary directory, and MLflow in a SQLite file there."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from taskplan.env import quiet_env

quiet_env()

ROOT = Path(__file__).resolve().parents[2]
FLOW_FILE = ROOT / "flows" / "pipeline.py"

# The smallest pipeline that still exercises every stage (~30 s of work on 2 CPU cores).
MICRO_PARAMS = """\
common: {profile: micro, seed: 42}
generate: {tasks: [cheese_sandwich], num_train_seeds: 2, noise_levels: [0.0], workers: 0}
validate: {}
build_dataset: {validation_fraction: 0.5}
model_init: {dataset_dir: outputs/single_turn, vocab_size: 512, hidden_size: 32, num_layers: 2, num_heads: 2,
             num_kv_heads: 1, intermediate_size: 64, max_position_embeddings: 1024}
sft: {dataset_dir: outputs/single_turn, max_steps: 2, batch_size: 2, save_steps: 1, val_rows: 2,
      val_max_new_tokens: 4}
grpo: {dataset_dir: outputs/single_turn, max_steps: 2, prompts_per_step: 1, num_generations: 2,
       max_completion_length: 4, save_steps: 1, eval_every: 0, val_rows: 2, val_max_new_tokens: 4}
evaluate: {policies: [random, sft=models/sft, grpo=models/grpo], tasks: [cheese_sandwich], seeds: [42],
           bound: false, max_new_tokens: 8, batch_size: 4, dtype: float32, cpu_threads: 1,
           single_turn_path: metrics/single_turn.json, holdout_path: metrics/eval_holdout.json}
compare: {}
register: {verdict_path: null}    # compare passes only an SR above 0, which 2 training steps do not reach
pipeline: {transcripts_sample: 3}
profiles: {micro: {}}
"""


@pytest.fixture(scope="session")
def pipeline_module():
    """flows/pipeline.py as a module (flows/ is not a package; Prefect loads it by path the same way)."""
    from prefect.utilities.importtools import load_script_as_module

    return load_script_as_module(str(FLOW_FILE))


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite database (creating the tables takes seconds; copying it does not)."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def make_micro_project(root: Path, mlflow_template: Path) -> Path:
    """params.yaml (micro), the project's dvc.yaml and .dvcignore (the flow reads its stages there),
    data/suite.json and an MLflow store in `root` (the flow runs with cwd = root)."""
    from taskplan.data.suite import suite_text

    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(MICRO_PARAMS)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, root / name)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "suite.json").write_text(suite_text())
    shutil.copy(mlflow_template, root / "mlflow.db")
    return root


@pytest.fixture(scope="session")
def new_micro_project(mlflow_template):
    """new_micro_project(root) -> root: write a micro project there (params.yaml, suite, MLflow store)."""
    return lambda root: make_micro_project(root, mlflow_template)


@pytest.fixture
def micro_project(tmp_path, mlflow_template, monkeypatch) -> Path:
    """A fresh micro project as the working directory; MLflow on its default store (./mlflow.db)."""
    root = make_micro_project(tmp_path / "project", mlflow_template)
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(argv: list[str], health_url: str, log_path: Path, env: dict[str, str],
                   name: str) -> Iterator[None]:
    """Start a server in its own process group, wait (<= 120 s) until `health_url` answers 200, and stop
    the whole group afterwards (SIGTERM, then SIGKILL after 20 s)."""
    import httpx

    log = log_path.open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
