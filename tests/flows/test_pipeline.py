"""flows/pipeline.py under Prefect's test harness: a micro pipeline end to end, cached re-runs, the
`taskplan pipeline` command, a failing validation that stops before training, and resume after an
interrupted GRPO."""

from __future__ import annotations

import json
import sys

import pytest

from taskplan.errors import ConfigError
from tests.conftest import swap_stage_run

STAGES = ["generate", "validate", "build_dataset", "model_init", "sft", "grpo", "evaluate", "compare", "register"]


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory, new_micro_project, prefect_harness, pipeline_module):
    """The micro pipeline run once (cold) in its own project directory: (root, outcomes, seconds)."""
    import time

    root = new_micro_project(tmp_path_factory.mktemp("micro") / "project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        start = time.perf_counter()
        outcomes = pipeline_module.taskplan_pipeline(params="params.yaml")
        seconds = time.perf_counter() - start
    return root, outcomes, seconds


@pytest.fixture
def in_micro(micro_run, monkeypatch):
    root = micro_run[0]
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def _mlflow(root):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


@pytest.mark.smoke
def test_pipeline_runs_every_stage_end_to_end(micro_run):
    root, outcomes, seconds = micro_run
    print(f"micro pipeline, cold: {seconds:.1f} s")
    assert list(outcomes) == STAGES
    assert not any(o.get("cached") for o in outcomes.values()), "a cold run computes every stage"
    doc = json.loads((root / "metrics" / "eval.json").read_text())
    assert set(doc) == {"random", "sft", "grpo"} and set(doc["grpo"]) == {"cheese_sandwich"}
    assert (root / "reports" / "report.md").exists()
    assert outcomes["register"]["version"] == "1" and outcomes["register"]["promoted"], outcomes["register"]

    client = _mlflow(root)
    assert str(client.get_model_version_by_alias("taskplan-planner", "champion").version) == "1"
    exp = client.get_experiment_by_name("taskplan")
    parent = client.search_runs([exp.experiment_id], "tags.`taskplan.kind` = 'pipeline'")[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "pipeline__cheese_sandwich__seed42"
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == sorted(f"{s}__cheese_sandwich__seed42" for s in STAGES)
    by_stage = {r.data.tags["taskplan.stage"]: r for r in children}
    assert by_stage["validate"].data.metrics["validate/passed"] == 1.0
    assert [m.step for m in client.get_metric_history(by_stage["sft"].info.run_id, "sft/loss")] == [1, 2]
    for stage in ("sft", "grpo"):      # opened when the stage started: the run lasts as long as the stage
        info = by_stage[stage].info
        assert (info.end_time - info.start_time) / 1000 >= outcomes[stage]["metrics"]["wall_seconds"] - 0.05
    artifacts = lambda stage: {a.path for a in client.list_artifacts(by_stage[stage].info.run_id)}  # noqa: E731
    assert {"model", "plots", "metrics"} <= artifacts("grpo")
    assert "outputs" in artifacts("validate") and "transcripts_sample" in artifacts("evaluate")
    assert {"reports", "plots", "metrics"} <= artifacts("compare")
    datasets = lambda stage: {d.dataset.name for d in by_stage[stage].inputs.dataset_inputs}  # noqa: E731
    assert datasets("generate") == {"trajectories", "suite.json"} and datasets("sft") == {"single_turn"}
    assert datasets("build_dataset") == {"trajectories", "single_turn"}

    evaluate = by_stage["evaluate"]
    policies = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{evaluate.info.run_id}'")
    by_policy = {r.data.tags["taskplan.policy"]: r for r in policies}
    assert set(by_policy) == {"random", "sft", "grpo"}
    assert {p: r.data.tags["taskplan.kind"] for p, r in by_policy.items()} == \
        {"random": "random", "sft": "model", "grpo": "model"}
    assert all({"sr/cheese_sandwich", "asat/cheese_sandwich", "sr_mean"} <= set(r.data.metrics) for r in policies)
    grpo = by_policy["grpo"].data.tags
    assert grpo["taskplan.training_run_id"] == by_stage["grpo"].info.run_id, "links the run that trained it"
    grpo = client.get_run(by_policy["grpo"].info.run_id).data.tags       # register links it back
    assert grpo["taskplan.model_version"] == "taskplan-planner/1"
    version = client.get_model_version("taskplan-planner", "1")
    assert version.tags["eval_run_id"] == evaluate.info.run_id and "sr/cheese_sandwich" in version.tags


@pytest.mark.smoke
def test_second_run_is_served_from_the_cache(micro_run, in_micro, pipeline_module):
    outcomes = pipeline_module.taskplan_pipeline(params="params.yaml")
    cached = [s for s in STAGES[:-1] if outcomes[s]["cached"]]
    assert cached == STAGES[:-1], f"stages recomputed: {sorted(set(STAGES[:-1]) - set(cached))}"
    assert outcomes["register"]["version"] == "1", "the same model folder must not become a new version"


@pytest.mark.smoke
def test_pipeline_command_runs_the_flow(micro_run, in_micro, pipeline_module):
    from typer.testing import CliRunner

    from taskplan.cli import app

    flow_file = f"{pipeline_module.__file__}:taskplan_pipeline"
    out = CliRunner().invoke(app, ["pipeline", "--flow", flow_file, "--stages", "evaluate,compare", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(doc) == ["evaluate", "compare"] and "SR" in doc["evaluate"]["summary"]


def test_wiring_mismatch_is_a_config_error_before_any_work(micro_project, pipeline_module, prefect_harness):
    with pytest.raises(ConfigError, match=r"sft.dataset_dir=elsewhere but build_dataset writes outputs/single_turn"):
        pipeline_module.taskplan_pipeline(params="params.yaml", overrides=["sft.dataset_dir=elsewhere"])
    assert not (micro_project / "outputs").exists()


@pytest.mark.smoke
def test_failing_validation_stops_the_pipeline_before_training(micro_project, prefect_harness, pipeline_module,
                                                               monkeypatch, capsys):
    """A corrupted trajectory file: the flow stops at validate with GX's first failed check, exit code 2."""
    from taskplan.cli import main
    from taskplan.config import load_config
    from taskplan.data.trajectories import GenerateConfig, run_generate

    run_generate(load_config(GenerateConfig, "generate", "params.yaml"))
    path = micro_project / "outputs" / "trajectories" / "trajectories_eps0.0.jsonl"
    episodes = [json.loads(line) for line in path.read_text().splitlines()]
    for step in episodes[0]["steps"]:
        step["goal"] = "Make a salad"                         # the goal text of another task
    path.write_text("".join(json.dumps(ep) + "\n" for ep in episodes))

    monkeypatch.setattr(sys, "argv", ["taskplan", "pipeline", "--flow", f"{pipeline_module.__file__}:taskplan_pipeline",
                                      "--stages", "validate,build_dataset,model_init,sft,grpo"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    last = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()][-1]
    assert last.startswith("taskplan: error: validation failed: trajectories/goal_matches_task:"), last
    assert not (micro_project / "models").exists(), "no training after a failed validation"
    assert not (micro_project / "outputs" / "single_turn").exists()
    assert (micro_project / "outputs" / "validate" / "data_docs" / "index.html").exists()

    client = _mlflow(micro_project)
    exp = client.get_experiment_by_name("taskplan")
    parent = client.search_runs([exp.experiment_id], "tags.`taskplan.kind` = 'pipeline'")[0]
    assert parent.info.status == "FAILED" and parent.data.tags["taskplan.failed_stage"] == "validate"
    assert parent.data.tags["taskplan.error"].startswith("validation failed: trajectories/goal_matches_task")


@pytest.mark.smoke
def test_interrupted_grpo_resumes_from_its_last_checkpoint(micro_run, in_micro, pipeline_module, monkeypatch):
    """Kill GRPO after its first checkpoint; the next run resumes there instead of starting over."""
    from transformers import TrainerCallback

    import taskplan.train.grpo as grpo_module

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:                         # checkpoint-1 is complete, step 2 is not saved
                raise RuntimeError("simulated kill mid-GRPO")

    class Steps(TrainerCallback):                              # the optimizer steps a run actually takes
        def __init__(self):
            self.taken = []

        def on_step_end(self, args, state, control, **kwargs):
            self.taken.append(state.global_step)

    real, resumed, steps = grpo_module.run_grpo, [], []

    def run_grpo(cfg, resume=False, callbacks=()):
        resumed.append(resume)
        probe = Steps()
        steps.append(probe.taken)
        extra = [probe, Crash()] if len(resumed) == 1 else [probe]
        return real(cfg, resume=resume, callbacks=[*callbacks, *extra])

    swap_stage_run(monkeypatch, "grpo", run_grpo)
    with pytest.raises(RuntimeError, match="simulated kill"):
        pipeline_module.taskplan_pipeline(params="params.yaml", stages=["grpo"], refresh=True)
    from taskplan.config import load_config

    checkpoints = in_micro / load_config(grpo_module.GrpoConfig, "grpo", "params.yaml").checkpoint_dir
    assert (checkpoints / "checkpoint-1" / "taskplan_complete.json").exists()

    outcome = pipeline_module.taskplan_pipeline(params="params.yaml", stages=["grpo"], refresh=True)["grpo"]
    assert resumed[:2] == [True, True], "the flow always asks to resume; the fingerprint decides"
    assert steps[:2] == [[1, 2], [2]], f"killed at step 2, resumed from checkpoint-1: took {steps[:2]}"
    assert outcome["metrics"]["steps"] == 2.0

    pipeline_module.taskplan_pipeline(params="params.yaml", stages=["grpo"], refresh=True)
    assert steps[2] == [1, 2], "a finished run is never resumed: the next starts fresh"


def test_only_connection_errors_count_as_transient(pipeline_module):
    import httpx

    from taskplan.orchestrate import is_transient as transient

    assert transient(ConnectionRefusedError(111, "Connection refused"))
    assert transient(httpx.ConnectError("boom"))
    assert transient(RuntimeError("API request to http://mlflow:5000 failed: Max retries exceeded with url"))
    assert not transient(FileNotFoundError("models/sft"))
    assert not transient(ConfigError("sft.max_steps=0 must be at least 1"))


def test_unknown_stage_is_refused(pipeline_module, micro_project, prefect_harness):
    with pytest.raises(ConfigError, match="unknown stage"):
        pipeline_module.taskplan_pipeline(params="params.yaml", stages=["sft", "dpo"])
