"""tracking/backend.py: the default store is copy-safe, the experiment opens in the model-training view."""

from __future__ import annotations

import shutil

import pytest

from taskplan.errors import ConfigError
from taskplan.tracking.backend import EXPERIMENT_TAGS, configure, registry_lock


def test_a_copied_checkout_refuses_the_store_that_writes_into_the_original(mlflow_template, tmp_path, monkeypatch):
    import mlflow

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    shutil.copy(mlflow_template, original / "mlflow.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(original)
    exp_id = configure("taskplan")
    exp = mlflow.MlflowClient().get_experiment(exp_id)
    assert exp.artifact_location == (original / "mlartifacts").resolve().as_uri()
    assert {k: exp.tags[k] for k in EXPERIMENT_TAGS} == EXPERIMENT_TAGS        # model-training view + description

    shutil.copytree(original, copy)
    monkeypatch.chdir(copy)
    with pytest.raises(ConfigError, match=r"another checkout's folder .*mv mlflow.db mlflow.db.bak"):
        configure("taskplan")
    assert not (copy / "mlartifacts").exists() and not (original / "mlartifacts").exists(), "nothing written"


def test_registry_lock_is_exclusive(tmp_path):
    import fcntl

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with registry_lock(uri):
        with open(tmp_path / "mlflow.register.lock") as fh, pytest.raises(BlockingIOError):
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / "mlflow.register.lock") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)                         # released after the block
