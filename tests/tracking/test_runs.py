"""tracking/runs.py: run names, parent/nested runs opened at the stage's start, params, live step metrics,
outputs from dvc.yaml's description (StageIO), datasets as inputs, failures, resumed runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from taskplan.errors import DatasetError
from taskplan.orchestrate.stages import StageIO
from taskplan.tracking import flat_config, log_stage, pipeline_run, run_name, stage_metrics, stage_run, tracking_uri
from taskplan.tracking.values import history_metrics


@dataclass(frozen=True)
class FakeTrainConfig:
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


def _train_outputs(root: Path) -> tuple[FakeTrainConfig, StageIO]:
    """A training stage's outputs on disk and the StageIO dvc.yaml would give for them."""
    cfg = FakeTrainConfig(out_dir=root / "models" / "sft", metrics_path=root / "metrics" / "sft.json",
                          plots_dir=root / "plots" / "sft")
    cfg.out_dir.mkdir(parents=True)
    (cfg.out_dir / "config.json").write_text("{}")
    (cfg.out_dir / "model.safetensors").write_bytes(b"weights")
    cfg.metrics_path.parent.mkdir(parents=True)
    cfg.metrics_path.write_text(json.dumps({"final_loss": 0.5}))
    cfg.plots_dir.mkdir(parents=True)
    (cfg.plots_dir / "loss.csv").write_text("step,loss\n1,1.0\n2,0.5\n")
    rows = root / "outputs" / "single_turn"
    rows.mkdir(parents=True)
    (rows / "dataset_dict.json").write_text('{"splits": ["train"]}')
    io = StageIO(root, inputs=(("outputs/single_turn", rows),),
                 outputs=(("models/sft", cfg.out_dir), ("metrics/sft.json", cfg.metrics_path),
                          ("plots/sft", cfg.plots_dir)))
    return cfg, io


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
    assert stage_metrics("build_dataset", {"stats": {"rows": {"total": 8}}}) == {}, "one protocol: .metrics"
    assert history_metrics("grpo", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0, "kl": 0.1}]) == \
        [("grpo/loss", 2.0, 1), ("grpo/loss", 1.0, 2), ("grpo/kl", 0.1, 2)]


def test_pipeline_run_holds_nested_stage_runs_with_params_metrics_outputs_and_datasets(mlflow_uri, tmp_path):
    import mlflow

    from taskplan.tracking.runs import dvc_md5

    cfg, io = _train_outputs(tmp_path)
    result = FakeResult(metrics={"final_loss": 0.5, "steps": 2},
                        history=[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    params_file = tmp_path / "params.yaml"
    params_file.write_text("common: {seed: 7}\n")
    with pipeline_run("pipeline__burger__seed7", params={"stages": "sft"}, artifacts=[params_file]) as parent:
        child = log_stage("sft", cfg, result, io, parent_run_id=parent.run_id)

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(child)
    assert run.info.run_name == "sft__burger__seed7"
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id, "the stage run must nest under the pipeline run"
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.metrics["sft/final_loss"] == 0.5
    assert [(m.step, m.value) for m in client.get_metric_history(child, "sft/loss")] == [(1, 1.0), (2, 0.5)]
    artifacts = {a.path for a in client.list_artifacts(child)}
    assert artifacts == {"model", "plots", "metrics"}, artifacts
    assert {a.path for a in client.list_artifacts(child, "plots/sft")} == {"plots/sft/loss.csv"}
    assert {a.path for a in client.list_artifacts(child, "model")} == {"model/config.json", "model/model.safetensors"}
    assert run.data.tags["taskplan.digest.sft.json"] and run.data.tags["taskplan.model_digest"]
    (dataset,) = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("single_turn", dvc_md5(io.inputs[0][1]))
    assert json.loads(dataset.dataset.source) == {"uri": "outputs/single_turn"}
    assert client.get_run(parent.run_id).info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.run_id)} == {"params.yaml"}
    store = Path(mlflow_uri.removeprefix("sqlite:///")).parent
    assert (store / "mlartifacts").is_dir(), "artifacts go to mlartifacts/ beside the SQLite file"


def test_a_stage_run_is_open_while_the_stage_runs_and_logs_steps_as_they_come(mlflow_uri, tmp_path):
    """Live: step metrics exist (steps in order) while the run is RUNNING; its duration is the stage's."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    cfg, io = _train_outputs(tmp_path)
    state = SimpleNamespace(log_history=[], global_step=0)
    args = SimpleNamespace(output_dir=str(tmp_path / "checkpoints"))
    start = time.time()
    with stage_run("grpo", cfg, io) as run:
        (callback,) = run.callbacks()
        callback.on_train_begin(args, state, None)
        for step in (1, 2, 3):
            state.global_step = step
            state.log_history.append({"step": step, "loss": 1.0 / step, "reward": 0.1 * step})
            callback.on_log(args, state, None)
            time.sleep(0.05)
        state.log_history.append({"step": 3, "val_accuracy": 0.5})        # appended by our callback, no on_log
        callback.on_step_end(args, state, None)
        live = client.get_run(run.run_id)
        assert live.info.status == "RUNNING"
        assert [m.step for m in client.get_metric_history(run.run_id, "grpo/reward")] == [1, 2, 3]
        assert client.get_metric_history(run.run_id, "grpo/val_accuracy")[0].value == 0.5
        run.finish(FakeResult(metrics={"final_loss": 0.3}, history=state.log_history))
    done = client.get_run(run.run_id)
    assert done.info.status == "FINISHED"
    assert (done.info.end_time - done.info.start_time) / 1000 >= 0.15 - 0.01
    assert done.info.start_time / 1000 <= start + 1
    assert len(client.get_metric_history(run.run_id, "grpo/loss")) == 3, "a live history is not replayed"


def test_a_resumed_training_continues_its_mlflow_run(mlflow_uri, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    cfg, io = _train_outputs(tmp_path)
    args = SimpleNamespace(output_dir=str(tmp_path / "checkpoints"))
    state = SimpleNamespace(log_history=[{"step": 1, "loss": 1.0}], global_step=1)
    with pytest.raises(KeyboardInterrupt):
        with stage_run("sft", cfg, io) as first:
            (callback,) = first.callbacks()
            callback.on_log(args, state, None)
            callback.on_save(args, state, None)                         # checkpoint-1, run id beside it
            raise KeyboardInterrupt
    assert client.get_run(first.run_id).info.status == "KILLED"
    first_id = first.run_id

    state.log_history.append({"step": 2, "loss": 0.5})
    state.global_step = 1                                              # resumed from checkpoint-1
    with stage_run("sft", cfg, io) as second:
        opened = second.run_id
        (callback,) = second.callbacks()
        callback.on_train_begin(args, SimpleNamespace(log_history=state.log_history[:1], global_step=1), None)
        state.global_step = 2
        callback.on_log(args, state, None)
        second.finish(FakeResult(metrics={"final_loss": 0.5}, history=state.log_history))
    assert second.run_id == first_id != opened
    assert client.get_run(first_id).info.status == "FINISHED"
    assert client.get_run(opened).info.lifecycle_stage == "deleted"
    assert [m.step for m in client.get_metric_history(first_id, "sft/loss")] == [1, 2]


def test_failed_stage_run_ends_failed_with_the_error_and_what_it_wrote(mlflow_uri, tmp_path):
    import mlflow

    @dataclass(frozen=True)
    class FakeValidateConfig:
        out_dir: Path
        metrics_path: Path
        seed: int = 42

    cfg = FakeValidateConfig(tmp_path / "validate", tmp_path / "validate.json")
    cfg.metrics_path.write_text("{}")                          # an earlier run's file: not this failure's
    os.utime(cfg.metrics_path, (0, 0))
    io = StageIO(tmp_path, inputs=(), outputs=(("outputs/validate", cfg.out_dir),
                                                ("metrics/validate.json", cfg.metrics_path)))
    with pytest.raises(DatasetError):
        with pipeline_run("pipeline__all__seed42") as parent:
            parent.stage, parent.cfg = "validate", cfg
            with stage_run("validate", cfg, io, parent_run_id=parent.run_id):
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
    assert failed[0].data.tags["taskplan.error"].startswith("validation failed")
    assert {a.path for a in client.list_artifacts(failed[0].info.run_id)} == {"outputs"}, "GX docs, no stale file"
    assert {a.path for a in client.list_artifacts(failed[0].info.run_id, "outputs/validate")} == \
        {"outputs/validate/data_docs"}


def test_default_store_works_on_a_fresh_directory(mlflow_template, tmp_path, monkeypatch):
    """No server, no env: ./mlflow.db and ./mlartifacts/ appear in the working directory."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")   # skip the ~8 s table creation
    cfg, io = _train_outputs(tmp_path)
    run_id = log_stage("sft", cfg, {"metrics": {"final_loss": 0.5}}, io, log_models=False)
    client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
    assert client.get_run(run_id).data.metrics == {"sft/final_loss": 0.5}
    assert list((tmp_path / "mlartifacts").rglob("loss.csv")), "artifacts must land in ./mlartifacts"
    assert "model" not in {a.path for a in client.list_artifacts(run_id)}, "log_models=False skips the model"


def test_evaluate_logs_one_child_run_per_policy_with_common_metric_names(mlflow_uri, tmp_path):
    import mlflow

    from taskplan.evaluate.stage import EvaluateResult

    row = {"sr": 0.5, "asat": 12.0, "asst": 10.0, "invalid_rate": 0.1, "bound_log10": -3.0, "episodes": 10}
    doc = {"random": {"burger": {**row, "sr": 0.0}}, "sft": {"burger": row}, "sft_constrained": {"burger": row}}
    result = EvaluateResult(doc, tmp_path / "eval.json", (), 1.0, ("random", f"sft={tmp_path / 'nomodel'}"))
    run_id = log_stage("evaluate", None, result)
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    children = client.search_runs([client.get_run(run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{run_id}'")
    by_policy = {r.data.tags["taskplan.policy"]: r for r in children}
    assert set(by_policy) == {"random", "sft", "sft_constrained"}
    assert {r.data.tags["taskplan.kind"] for r in children} == {"random", "model"}
    assert by_policy["sft_constrained"].data.tags["taskplan.mode"] == "constrained"
    names = {frozenset(r.data.metrics) for r in children}
    assert names == {frozenset({"sr/burger", "asat/burger", "asst/burger", "invalid_rate/burger",
                                "bound_log10/burger", "sr_mean"})}, "the same metric names for every policy"
    assert by_policy["sft"].data.metrics["sr_mean"] == 0.5
    assert client.get_run(run_id).data.metrics["eval/sft/sr_mean"] == 0.5


def test_importing_tracking_does_not_import_mlflow():
    code = "import taskplan.tracking, sys; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stage_command_logs_a_run_unless_tracking_is_off(mlflow_uri, tmp_path, monkeypatch):
    """`taskplan <stage>` hands its result to MLflow; --no-track or TASKPLAN_TRACK=0 keeps it out."""
    import mlflow
    from typer.testing import CliRunner

    from taskplan.cli import app

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


def _git_checkout(folder: Path) -> str:
    """A git checkout with one commit in `folder`; returns its HEAD."""
    folder.mkdir()
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "first"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def test_runs_carry_their_command_commit_and_user_for_the_source_column(mlflow_uri, tmp_path, monkeypatch):
    import mlflow

    head = _git_checkout(tmp_path / "checkout")
    monkeypatch.chdir(tmp_path / "checkout")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/taskplan", "sft", "--set", "sft.model_dir=models/init"])
    cfg, io = _train_outputs(tmp_path)
    with pipeline_run("pipeline__burger__seed7") as parent:
        child = log_stage("sft", cfg, FakeResult(metrics={}, history=[]), io, parent_run_id=parent.run_id)
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    for run_id in (parent.run_id, child):
        tags = client.get_run(run_id).data.tags
        # the UI shows a source name after its last '/': the subcommand, not a path of the command line
        assert tags["mlflow.source.name"] == "taskplan sft" and tags["mlflow.source.type"] == "LOCAL"
        assert tags["taskplan.command"] == "taskplan sft --set sft.model_dir=models/init"
        assert tags["mlflow.source.git.commit"] == head
        assert tags["mlflow.user"] and tags["mlflow.user"] != "unknown"

    (tmp_path / "plain").mkdir()
    monkeypatch.chdir(tmp_path / "plain")        # not a git checkout: no commit rather than a wrong one
    child = log_stage("sft", cfg, FakeResult(metrics={}, history=[]), io)
    assert "mlflow.source.git.commit" not in client.get_run(child).data.tags
