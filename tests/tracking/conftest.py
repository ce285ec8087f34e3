"""MLflow in tests: a SQLite store under tmp_path (copied from one migrated per session: creating the tables
takes ~8 s), with artifacts in mlartifacts/ beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROW_KEYS = {"asst": None, "invalid_actions": 0, "bound": None}


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite database with every migration applied."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_uri(mlflow_template, tmp_path, monkeypatch) -> str:
    """MLFLOW_TRACKING_URI=sqlite:///<tmp>/mlflow.db for this test."""
    db = tmp_path / "mlruns_store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri


@pytest.fixture
def write_eval():
    """write_eval(path, {policy: {task: (sr, asat)}}, episodes=10) -> path."""
    return _write_eval


@pytest.fixture
def write_verdict():
    """write_verdict(path, passed, candidate="grpo", baseline="sft") -> path (compare's verdict JSON)."""
    return _write_verdict


def _write_eval(path: Path, scores: dict[str, dict[str, tuple[float, float]]], episodes: int = 10) -> Path:
    """metrics/eval.json with {policy: {task: (sr, asat)}}."""
    doc = {policy: {task: {"sr": sr, "asat": asat, "episodes": episodes, **ROW_KEYS}
                    for task, (sr, asat) in tasks.items()} for policy, tasks in scores.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _write_verdict(path: Path, passed: bool | None, candidate: str = "grpo", baseline: str = "sft") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"candidate": candidate, "baseline": baseline, "passed": passed}))
    return path
