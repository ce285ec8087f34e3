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


@pytest.mark.smoke
def test_two_commands_on_a_fresh_checkout_create_the_store_once(tmp_path):
    """Both processes open ./mlflow.db that does not exist yet; table creation runs under the registry lock."""
    import os
    import subprocess
    import sys

    code = "from taskplan.tracking.backend import configure; print(configure('taskplan'))"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-400:] for _, err in outs]
    assert outs[0][0].strip() == outs[1][0].strip(), "one experiment, seen by both"
