"""MLflow as users open it: a real `mlflow server` (SQLite backend, proxied artifacts) in a temp dir, the
micro pipeline run against it through MLFLOW_TRACKING_URI, and what the UI's compare views need checked
through MlflowClient: live step metrics, real durations, one run per policy, datasets, the champion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from taskplan.env import child_env
from tests.flows.conftest import free_port, running_server

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on a free loopback port; yields its URL."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server([MLFLOW, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                         "--port", str(port), "--workers", "1"],
                        f"{url}/health", root / "server.log", child_env(), "mlflow server"):
        yield url


@pytest.mark.smoke
def test_a_micro_pipeline_against_a_tracking_server_is_comparable_in_the_ui(
        mlflow_server, new_micro_project, prefect_harness, pipeline_module, tmp_path, monkeypatch):
    import mlflow

    root = new_micro_project(tmp_path / "project")
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    outcomes = pipeline_module.taskplan_pipeline(params="params.yaml")
    assert not (root / "mlartifacts").exists(), "artifacts go through the server, not into the project"

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("taskplan")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.search_runs([exp.experiment_id], "tags.`taskplan.kind` = 'pipeline'")[0]
    stages = {r.data.tags["taskplan.stage"]: r
              for r in client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    for stage in ("sft", "grpo"):
        run = stages[stage]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, f"{stage}/loss")]
        assert steps and steps == sorted(steps), f"{stage}: live step metrics in step order"
        assert (run.info.end_time - run.info.start_time) / 1000 >= outcomes[stage]["metrics"]["wall_seconds"] - 0.05
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"single_turn"}
    assert {a.path for a in client.list_artifacts(stages["grpo"].info.run_id)} >= {"model", "metrics", "plots"}

    policies = client.search_runs([exp.experiment_id],
                                  f"tags.mlflow.parentRunId = '{stages['evaluate'].info.run_id}'")
    metric_names = {r.data.tags["taskplan.policy"]: set(r.data.metrics) for r in policies}
    assert set(metric_names) == {"random", "sft", "grpo"}
    assert len({frozenset(m) for m in metric_names.values()}) == 1, "every policy: the same metric names"
    assert {"sr/cheese_sandwich", "asat/cheese_sandwich", "invalid_rate/cheese_sandwich", "sr_mean"} <= \
        metric_names["grpo"]

    champion = client.get_model_version_by_alias("taskplan-planner", "champion")
    assert champion.tags["eval_run_id"] == stages["evaluate"].info.run_id and "sr_mean" in champion.tags
