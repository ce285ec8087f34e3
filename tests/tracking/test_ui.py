"""`taskplan ui`: the address of the experiment's runs page (not MLflow 3's GenAI overview) and the command
that serves the local store."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from taskplan.commands.tracking import runs_page


def test_the_runs_page_is_a_route_of_the_installed_mlflow_ui():
    """MLflow's UI routes by URL fragment (a hash router); its bundle must hold the runs route we print."""
    import mlflow

    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    text = "".join(p.read_text(errors="replace") for p in bundle.glob("main.*.js"))
    assert "createHashRouter" in text and '"/experiments/:experimentId/runs"' in text
    assert runs_page("http://127.0.0.1:5000", "7") == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert runs_page("http://127.0.0.1:5000", None) == "http://127.0.0.1:5000/#/experiments"


def test_ui_prints_the_runs_page_and_the_command_for_the_local_store(mlflow_uri, cli):
    from taskplan.tracking import configure

    experiment_id = configure()
    code, out, err = cli("ui", "--port", "5001", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["experiment_id"] == experiment_id and doc["experiment"] == "taskplan"
    assert doc["url"] == f"http://127.0.0.1:5001/#/experiments/{experiment_id}/runs"
    assert doc["command"] == (f"mlflow ui --backend-store-uri {mlflow_uri} --default-artifact-root ./mlartifacts "
                              "--host 127.0.0.1 --port 5001")
    code, out, _ = cli("ui", "--port", "5001")
    assert out.splitlines() == [f"runs page: {doc['url']}", f"serve it:  {doc['command']}"]


def test_ui_on_a_fresh_checkout_creates_no_store(tmp_path, monkeypatch, cli):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("ui")
    assert code == 0 and "no experiment 'taskplan' in sqlite:///mlflow.db yet" in out
    assert "http://127.0.0.1:5000/#/experiments\n" in out and "--backend-store-uri sqlite:///mlflow.db" in out
    assert list(tmp_path.iterdir()) == [], "printing an address must not create mlflow.db"


def test_ui_run_starts_mlflow_ui_on_the_local_store(mlflow_uri, monkeypatch, cli):
    started = []
    monkeypatch.setattr(os, "execv", lambda exe, argv: started.append(argv))
    code, out, _ = cli("ui", "--run", "--port", "5002")
    assert code == 0 and len(started) == 1
    assert started[0][1:] == ["ui", "--backend-store-uri", mlflow_uri, "--default-artifact-root", "./mlartifacts",
                              "--host", "127.0.0.1", "--port", "5002"]
    assert Path(started[0][0]).name == "mlflow"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_on_a_server_that_does_not_answer_is_one_line_at_once(monkeypatch, cli):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    start = time.monotonic()
    code, out, err = cli("ui")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert re.match(rf"taskplan: error: cannot read the tracking store {re.escape(uri)} \(.*\); start it", err)
    assert time.monotonic() - start < 30, "MLflow's retries (minutes against a dead server) were not turned off"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ, "the command leaves the environment as it was"
    code, _, err = cli("ui", "--run")
    assert code == 2 and "--run serves the local store" in err


@pytest.mark.parametrize("uri", ["http://mlflow.internal:5000/", "https://mlflow.example.com"])
def test_a_server_serves_its_ui_at_its_own_address(uri, monkeypatch, cli):
    import taskplan.tracking.backend as backend

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(backend, "find_experiment", lambda name, store: "3")
    code, out, _ = cli("ui", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["url"] == f"{uri.rstrip('/')}/#/experiments/3/runs" and doc["command"] is None
