"""tracking/registry.py: champion promotion (SR, ties by ASAT), decision tags, loading the champion back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from taskplan.errors import ConfigError, DatasetError, ModelNotFoundError
from taskplan.tracking import RegisterConfig, decide, load_champion, register

NAME = "taskplan-planner"


def _row(sr: float, asat: float, episodes: int = 10) -> dict:
    return {"sr": sr, "asat": asat, "episodes": episodes}


@pytest.mark.parametrize("candidate, champion, promote, reason", [
    ({"burger": _row(0.5, 20)}, None, True, "no champion yet"),
    ({"burger": _row(0.6, 25)}, {"burger": _row(0.5, 20)}, True, "higher mean SR"),
    ({"burger": _row(0.4, 10)}, {"burger": _row(0.5, 20)}, False, "lower mean SR"),
    ({"burger": _row(0.5, 18)}, {"burger": _row(0.5, 20)}, True, "lower mean ASAT"),
    ({"burger": _row(0.5, 20)}, {"burger": _row(0.5, 20)}, False, "not lower"),
    ({"burger": _row(0.9, 10, episodes=1)}, {"burger": _row(0.5, 20)}, False, "not comparable"),
])
def test_decide_promotes_only_a_better_candidate(candidate, champion, promote, reason):
    decision = decide(candidate, champion, "1" if champion else None)
    assert decision.promote is promote, decision
    assert reason in decision.reason


def test_decide_compares_on_common_tasks_only():
    candidate = {"burger": _row(0.6, 20), "cheeseburger": _row(0.0, 30)}
    champion = {"burger": _row(0.5, 20)}                       # evaluated on burger only
    decision = decide(candidate, champion, "3")
    assert decision.promote and decision.tasks == ("burger",)
    assert (decision.candidate_sr, decision.champion_sr) == (0.6, 0.5)


def test_config_rejects_reserved_alias():
    with pytest.raises(ConfigError, match="reserved"):
        RegisterConfig(alias="latest")


@pytest.fixture
def project(tmp_path, tiny_sft_dir, write_eval, write_verdict):
    """A model folder, eval.json and compare.json under tmp_path; `variant(n)` gives a distinct model folder."""

    def variant(n: int) -> Path:
        out = tmp_path / f"model_v{n}"
        if not out.exists():
            shutil.copytree(tiny_sft_dir, out)
            cfg = json.loads((out / "config.json").read_text())
            cfg["taskplan_variant"] = n                          # another folder digest, same weights
            (out / "config.json").write_text(json.dumps(cfg))
        return out

    def cfg(model_dir: Path, **kw) -> RegisterConfig:
        return RegisterConfig(model_dir=model_dir, eval_path=tmp_path / "eval.json",
                              verdict_path=tmp_path / "compare.json", decision_path=tmp_path / "register.json", **kw)

    def scores(sr: float, asat: float) -> None:
        write_eval(tmp_path / "eval.json", {"grpo": {"burger": (sr, asat)}, "sft": {"burger": (0.0, 30.0)}})

    write_verdict(tmp_path / "compare.json", passed=True)
    return variant, cfg, scores


@pytest.mark.smoke
def test_alias_moves_only_when_sr_improves_with_asat_breaking_ties(mlflow_uri, project):
    import mlflow

    variant, cfg, scores = project
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    champion = lambda: str(client.get_model_version_by_alias(NAME, "champion").version)  # noqa: E731

    scores(0.5, 20.0)
    first = register(cfg(variant(1)))
    assert first.promoted and first.version == "1" and champion() == "1"

    scores(0.4, 10.0)                                          # lower SR: a better ASAT does not help
    worse = register(cfg(variant(2)))
    assert not worse.promoted and champion() == "1"
    tags = client.get_model_version(NAME, worse.version).tags
    assert tags["decision"] == "not_promoted" and "lower mean SR" in tags["reason"]
    assert (float(tags["mean_sr"]), float(tags["champion_mean_sr"])) == (0.4, 0.5), "both scores recorded"
    assert tags["champion_version"] == "1"

    scores(0.5, 18.0)                                          # same SR, fewer steps: the tie goes to ASAT
    tie = register(cfg(variant(3)))
    assert tie.promoted and champion() == tie.version == "3"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["decision"] == "promoted" and float(tags["champion_mean_asat"]) == 20.0
    assert json.loads(tags["scores"]) == {"burger": {"sr": 0.5, "asat": 18.0, "episodes": 10}}

    scores(0.5, 18.0)                                          # an exact tie keeps the champion
    same = register(cfg(variant(4)))
    assert not same.promoted and champion() == "3"

    decision = json.loads((Path(cfg(variant(4)).decision_path)).read_text())
    assert decision["version"] == "4" and decision["decision"]["champion_version"] == "3"


@pytest.mark.smoke
def test_register_is_idempotent_and_respects_compare_verdict(mlflow_uri, project, write_verdict, tmp_path):
    import mlflow

    variant, cfg, scores = project
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    scores(0.7, 12.0)
    write_verdict(tmp_path / "compare.json", passed=False)
    blocked = register(cfg(variant(1)))
    assert not blocked.promoted and "compare verdict failed" in blocked.decision.reason
    assert client.get_registered_model(NAME).aliases == {}, "no champion without a passed compare"

    write_verdict(tmp_path / "compare.json", passed=True)
    again = register(cfg(variant(1)))                         # same folder: same version, now promoted
    assert again.reused and again.version == blocked.version and again.promoted
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1


def test_register_names_the_missing_input(mlflow_uri, project, tmp_path):
    variant, cfg, scores = project
    scores(0.5, 20.0)
    with pytest.raises(DatasetError, match="policy 'dpo' is not in the evaluation results"):
        register(cfg(variant(1), policy="dpo"))
    with pytest.raises(ModelNotFoundError, match="no trained model at"):
        register(cfg(tmp_path / "nowhere"))


@pytest.mark.smoke
def test_champion_loads_back_as_a_working_policy(mlflow_uri, project, tiny_sft_dir, tiny_rows):
    from taskplan.evaluate.policies import HFPolicy, Turn

    variant, cfg, scores = project
    with pytest.raises(ModelNotFoundError, match="run `taskplan register` first"):
        load_champion()
    scores(0.5, 20.0)
    register(cfg(variant(1)))

    policy = load_champion()                                   # models:/taskplan-planner@champion
    rows = tiny_rows["validation"][:2]
    turns = [Turn(f"burger/{i}", r["prompt"], tuple(r["valid_actions"])) for i, r in enumerate(rows)]
    replies = policy.act(turns)
    assert all(isinstance(r, str) and r.startswith("Action:") for r in replies), replies
    source = HFPolicy.from_pretrained(str(tiny_sft_dir))
    assert replies == source.act(turns), "the registered model must answer like the folder it came from"
    answers = [f"Action: {r['answer']}" for r in rows]
    got = policy.completion_logprobs([r["prompt"] for r in rows], answers)
    want = source.completion_logprobs([r["prompt"] for r in rows], answers)
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.smoke
def test_register_command_prints_the_decision(mlflow_uri, project, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from taskplan.cli import app

    variant, cfg, scores = project
    scores(0.5, 20.0)
    params = tmp_path / "params.yaml"
    params.write_text(f"register: {{model_dir: {variant(1)}, eval_path: {tmp_path / 'eval.json'}, "
                      f"verdict_path: {tmp_path / 'compare.json'}, decision_path: {tmp_path / 'register.json'}}}\n")
    out = CliRunner().invoke(app, ["register", "--params", str(params), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["version"] == "1" and doc["promoted"] is True


def test_register_if_missing_fills_an_empty_store_and_leaves_the_decision_file(mlflow_uri, project, tmp_path):
    """A fresh clone: DVC skips the up-to-date register stage, the new store is empty, so `make repro` runs
    `register --if-missing`: it registers once, keeps the committed decision file, and is then a no-op."""
    from typer.testing import CliRunner

    from taskplan.cli import app
    from taskplan.tracking.registry import registered_version

    variant, cfg, scores = project
    scores(0.5, 20.0)
    decision = tmp_path / "register.json"
    decision.write_text('{"committed": true}')
    params = tmp_path / "params.yaml"
    params.write_text(f"register: {{model_dir: {variant(1)}, eval_path: {tmp_path / 'eval.json'}, "
                      f"verdict_path: {tmp_path / 'compare.json'}, decision_path: {decision}}}\n")
    assert registered_version(cfg(variant(1))) is None
    first = CliRunner().invoke(app, ["register", "--params", str(params), "--if-missing"])
    assert first.exit_code == 0 and "now @champion" in first.output, first.output
    assert registered_version(cfg(variant(1))) == "1"
    again = CliRunner().invoke(app, ["register", "--params", str(params), "--if-missing"])
    assert again.exit_code == 0 and "already taskplan-planner v1" in again.output, again.output
    assert decision.read_text() == '{"committed": true}'


def _register_cli(cfg: RegisterConfig, cwd: Path):
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("taskplan"))
    (cwd / "params.yaml").write_text("register: {}\n")
    args = [exe, "register", "--set", f"register.model_dir={cfg.model_dir}", "--set",
            f"register.eval_path={cfg.eval_path}", "--set", f"register.verdict_path={cfg.verdict_path}",
            "--set", f"register.decision_path={cfg.decision_path}"]
    return subprocess.Popen(args, cwd=cwd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.smoke
def test_concurrent_registrations_add_one_version_per_folder_and_the_better_model_wins(
        mlflow_uri, project, write_eval, tmp_path):
    """Two `taskplan register` processes at once: the same folder -> one version; two folders -> the one
    with the higher SR holds @champion whichever finished last (the lock serialises the read and the move)."""
    import mlflow

    variant, cfg, _ = project
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    worse, better = tmp_path / "a", tmp_path / "b"
    for folder, sr in ((worse, 0.8), (better, 0.9)):
        folder.mkdir()
        write_eval(folder / "eval.json", {"grpo": {"burger": (sr, 20.0)}})
    same = [replace_paths(cfg(variant(1)), tmp_path / "a") for _ in range(2)]
    procs = [_register_cli(c, tmp_path) for c in same]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stdout.read() for p in procs]
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1, "one version per folder digest"

    procs = [_register_cli(replace_paths(cfg(variant(n)), folder), tmp_path)
             for n, folder in ((2, worse), (3, better))]
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [p.stdout.read() for p in procs]
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert float(champion.tags["sr_mean"]) == 0.9 and champion.tags["sr/burger"] == "0.9"


def replace_paths(cfg: RegisterConfig, folder: Path) -> RegisterConfig:
    from dataclasses import replace

    return replace(cfg, eval_path=folder / "eval.json", decision_path=folder / f"register_{cfg.model_dir.name}.json")


def test_alias_taken_meanwhile_by_a_worse_version_is_taken_back(mlflow_uri, project):
    """Compare-and-set after the write (writers on other hosts): a worse holder loses the alias, a better
    one keeps it and the decision says so."""
    import mlflow

    from taskplan.tracking.registry import _settle_alias

    variant, cfg, scores = project
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    scores(0.5, 20.0)
    mine = register(cfg(variant(1)))
    scores(0.2, 20.0)
    other = register(cfg(variant(2)))
    client.set_registered_model_alias(NAME, "champion", other.version)          # a stale writer moved it
    settled = _settle_alias(client, cfg(variant(1)), mine.version, mine.scores, mine.decision)
    assert settled.promote and str(client.get_model_version_by_alias(NAME, "champion").version) == mine.version
    scores(0.9, 20.0)
    best = register(cfg(variant(3)))
    assert best.promoted
    lost = _settle_alias(client, cfg(variant(1)), mine.version, mine.scores, mine.decision)
    assert not lost.promote and "meanwhile" in lost.reason
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == best.version


@pytest.mark.parametrize("row, what", [
    ({"sr": float("nan"), "asat": 10.0, "episodes": 10}, "sr=nan"),
    ({"sr": float("inf"), "asat": 10.0, "episodes": 10}, "sr=inf"),
    ({"sr": "0.5", "asat": 10.0, "episodes": 10}, "sr='0.5'"),
    ({"sr": 5.0, "asat": 10.0, "episodes": 10}, "sr=5.0"),
    ({"sr": True, "asat": 10.0, "episodes": 10}, "sr=True"),
    ({"sr": 0.5, "asat": None, "episodes": 10}, "asat=None"),
    ({"sr": 0.5, "asat": float("-inf"), "episodes": 10}, "asat=-inf"),
    ({"sr": 0.5, "asat": 10.0, "episodes": -3}, "episodes=-3"),
    ({"sr": 0.5, "asat": 10.0, "episodes": 2.5}, "episodes=2.5"),
    ("0.5", "not an object"),
])
def test_impossible_scores_are_refused_in_one_line(row, what):
    from taskplan.tracking.registry import candidate_scores

    with pytest.raises(DatasetError) as err:
        candidate_scores({"grpo": {"burger": row}}, "grpo")
    assert what in str(err.value) and "\n" not in str(err.value)


def test_a_champion_with_impossible_scores_never_blocks_a_real_model():
    from types import SimpleNamespace

    from taskplan.tracking.registry import _decision

    poisoned = SimpleNamespace(version="3", tags={"scores": json.dumps({"burger": _row(float("nan"), 10.0)})})
    d = _decision({"burger": _row(0.2, 14.0)}, poisoned, "4", None)
    assert d.promote and "invalid scores" in d.reason
    gated = _decision({"burger": _row(0.2, 14.0)}, poisoned, "4", "compare verdict failed")
    assert not gated.promote and gated.reason == "compare verdict failed"


def test_register_refuses_a_poisoned_eval_file_before_touching_the_store(mlflow_uri, project, tmp_path):
    variant, cfg, scores = project
    scores(0.5, 20.0)
    path = tmp_path / "eval.json"
    doc = json.loads(path.read_text())
    for table in doc.values():
        for row in table.values():
            row["sr"] = float("nan")
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="sr=nan is not a finite number"):
        register(cfg(variant(1)))
