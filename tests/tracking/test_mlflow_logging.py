"""tracking/mlflow_logging.py: backend choice, run names, parent/nested runs, params, metrics, artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from taskplan.errors import DatasetError
from taskplan.tracking import flat_config, log_stage, pipeline_run, run_name, stage_metrics, tracking_uri
from taskplan.tracking.mlflow_logging import history_metrics


@dataclass(frozen=True)
class FakeTrainConfig:
    """Shaped like a training stage's config: what log_stage finds artifacts through."""
    out_dir: Path
    metrics_path: Path
    plots_dir: Path
    tasks: tuple[str, ...] = ("burger",)
    learning_rate: float = 1e-3
    nested: dict = field(default_factory=lambda: {"a": 1, "b": [1, 2]})
    seed: int = 7


@dataclass(frozen=True)
class FakeResult:
    metrics: dict
    history: list

    def summary(self) -> str:
        return "fake: 2 steps"


def _train_outputs(root: Path) -> FakeTrainConfig:
    cfg = FakeTrainConfig(out_dir=root / "models" / "sft", metrics_path=root / "metrics" / "sft.json",
                          plots_dir=root / "plots" / "sft")
    cfg.out_dir.mkdir(parents=True)
    (cfg.out_dir / "config.json").write_text("{}")
    cfg.metrics_path.parent.mkdir(parents=True)
    cfg.metrics_path.write_text(json.dumps({"final_loss": 0.5}))
    cfg.plots_dir.mkdir(parents=True)
    (cfg.plots_dir / "loss.csv").write_text("step,loss\n1,1.0\n2,0.5\n")
    return cfg


def test_default_backend_is_a_sqlite_file_in_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking_uri() == "http://mlflow:5000", "MLFLOW_TRACKING_URI must override the default"


def test_run_names_follow_stage_task_seed():
    cfg = FakeTrainConfig(Path("a"), Path("b"), Path("c"))
    assert run_name("sft", cfg) == "sft__burger__seed7"
    assert run_name("sft", FakeTrainConfig(Path("a"), Path("b"), Path("c"), tasks=("a", "b"))) == "sft__all__seed7"
    assert run_name("grpo", object(), task="burger", seed=3) == "grpo__burger__seed3"


def test_config_and_metrics_are_flattened_and_namespaced():
    params = flat_config(FakeTrainConfig(Path("m"), Path("x.json"), Path("p")))
    assert params["nested.a"] == "1" and params["nested.b"] == "[1, 2]" and params["out_dir"] == "m"
    metrics = stage_metrics("validate", {"metrics": {"passed": True, "trajectories": {"rows": 16},
                                                     "eval/sft/burger/sr": 0.5, "note": "text"}})
    assert metrics == {"validate/passed": 1.0, "validate/trajectories/rows": 16.0, "eval/sft/burger/sr": 0.5}
    assert stage_metrics("build_dataset", {"stats": {"rows": {"total": 8}}}) == {"build_dataset/rows/total": 8.0}
    assert history_metrics("grpo", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "kl": 0.1}]) == \
        [("grpo/loss", 2.0, 1), ("grpo/loss", 1.0, 2), ("grpo/kl", 0.1, 2)]


def test_pipeline_run_holds_nested_stage_runs_with_params_metrics_and_artifacts(mlflow_uri, tmp_path):
    import mlflow

    cfg = _train_outputs(tmp_path)
    result = FakeResult(metrics={"final_loss": 0.5, "steps": 2},
                        history=[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    params_file = tmp_path / "params.yaml"
    params_file.write_text("common: {seed: 7}\n")
    with pipeline_run("pipeline__burger__seed7", params={"stages": "sft"}, artifacts=[params_file]) as parent:
        child = log_stage("sft", cfg, result, parent_run_id=parent.run_id)

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(child)
    assert run.info.run_name == "sft__burger__seed7"
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id, "the stage run must nest under the pipeline run"
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.metrics["sft/final_loss"] == 0.5
    assert [(m.step, m.value) for m in client.get_metric_history(child, "sft/loss")] == [(1, 1.0), (2, 0.5)]
    artifacts = {a.path for a in client.list_artifacts(child)}
    assert {"model", "plots", "outputs"} <= artifacts, artifacts
    assert {a.path for a in client.list_artifacts(child, "model")} == {"model/config.json"}
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.run_id)} == {"params.yaml"}
    store = Path(mlflow_uri.removeprefix("sqlite:///")).parent
    assert (store / "mlartifacts").is_dir(), "artifacts go to mlartifacts/ beside the SQLite file"


def test_failed_stage_marks_the_pipeline_run_failed_with_the_error(mlflow_uri, tmp_path):
    import mlflow

    @dataclass(frozen=True)
    class FakeValidateConfig:
        out_dir: Path
        metrics_path: Path
        seed: int = 42

    cfg = FakeValidateConfig(tmp_path / "validate", tmp_path / "validate.json")
    cfg.metrics_path.write_text("{}")                          # an earlier run's file: not this failure's
    os.utime(cfg.metrics_path, (0, 0))
    with pytest.raises(DatasetError):
        with pipeline_run("pipeline__all__seed42") as parent:
            parent.stage, parent.cfg = "validate", cfg
            (cfg.out_dir / "data_docs").mkdir(parents=True)   # validate writes its report even when it fails
            (cfg.out_dir / "data_docs" / "index.html").write_text("<html/>")
            raise DatasetError("validation failed: trajectories: expert_action_valid (1 unexpected)")

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(parent.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["taskplan.failed_stage"] == "validate"
    assert run.data.tags["taskplan.error"].startswith("validation failed: trajectories: expert_action_valid")
    failed = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'")
    assert [r.info.run_name for r in failed] == ["validate__all__seed42"]
    assert failed[0].info.status == "FAILED"
    assert {a.path for a in client.list_artifacts(failed[0].info.run_id)} == {"validate"}, "GX docs, no stale file"


def test_default_store_works_on_a_fresh_directory(mlflow_template, tmp_path, monkeypatch):
    """No server, no env: ./mlflow.db and ./mlartifacts/ appear in the working directory."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")   # skip the ~8 s table creation
    cfg = _train_outputs(tmp_path)
    run_id = log_stage("sft", cfg, {"metrics": {"final_loss": 0.5}}, log_models=False)
    client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
    assert client.get_run(run_id).data.metrics == {"sft/final_loss": 0.5}
    assert list((tmp_path / "mlartifacts").rglob("loss.csv")), "artifacts must land in ./mlartifacts"
    assert "model" not in {a.path for a in client.list_artifacts(run_id)}, "log_models=False skips the model"


def test_importing_tracking_does_not_import_mlflow():
    code = "import taskplan.tracking, sys; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stage_command_logs_a_run_unless_tracking_is_off(mlflow_uri, tmp_path, monkeypatch):
    """`taskplan <stage>` hands its result to MLflow; --no-track or TASKPLAN_TRACK=0 keeps it out."""
    import mlflow

    from taskplan.cli import app
    from typer.testing import CliRunner

    mlflow.set_tracking_uri(mlflow_uri)     # earlier tests leave mlflow's global URI elsewhere
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKPLAN_TRACK", "1")
    args = ["suite", "--out", str(tmp_path / "suite.json")]   # warm-up: a command that never tracks
    assert CliRunner().invoke(app, args).exit_code == 0
    runner = CliRunner()
    (tmp_path / "params.yaml").write_text(
        "common: {seed: 42}\ngenerate: {tasks: [burger], num_train_seeds: 1, noise_levels: [0.0], workers: 0,\n"
        f"  out_dir: {tmp_path}/traj, metrics_path: {tmp_path}/gen.json, suite: {tmp_path}/suite.json}}\n")
    before = len(mlflow.search_runs(search_all_experiments=True))
    res = runner.invoke(app, ["generate", "--no-track"])
    assert res.exit_code == 0, res.output
    assert len(mlflow.search_runs(search_all_experiments=True)) == before
    res = runner.invoke(app, ["generate"])
    assert res.exit_code == 0, res.output
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"])
    assert len(runs) == before + 1 and runs.iloc[0]["tags.mlflow.runName"].startswith("generate__")
