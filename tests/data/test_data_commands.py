"""The CLI commands generate / validate / build-dataset, and their dvc.yaml stages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]


def _params(tmp_path: Path) -> Path:
    out = tmp_path / "outputs"
    doc = {
        "common": {"profile": "cpu-tiny", "seed": 42},
        "generate": {"tasks": ["burger"], "num_train_seeds": 2, "noise_levels": [0.0], "suite": None,
                     "out_dir": str(out / "trajectories"), "metrics_path": str(tmp_path / "metrics/generate.json"),
                     "workers": 0},
        "validate": {"trajectories_dir": str(out / "trajectories"), "out_dir": str(out / "validate"),
                     "metrics_path": str(tmp_path / "metrics/validate.json"), "suite": None, "data_docs": False},
        "build_dataset": {"trajectories_dir": str(out / "trajectories"), "out_dir": str(out / "single_turn"),
                          "stats_path": str(tmp_path / "metrics/build_dataset.json"), "validation_fraction": 0.5,
                          "validation_report": str(out / "validate" / "report.json")},
        "profiles": {"cpu-tiny": {}},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _main(monkeypatch, *args: str) -> int:
    from taskplan.cli import main

    monkeypatch.setattr(sys, "argv", ["taskplan", *args])
    with pytest.raises(SystemExit) as info:
        main()
        raise SystemExit(0)
    return info.value.code


@pytest.mark.smoke
def test_generate_validate_build_dataset(tmp_path):
    from typer.testing import CliRunner

    from taskplan.cli import app

    params = _params(tmp_path)
    runner = CliRunner()
    for cmd in ("generate", "validate", "build-dataset"):
        res = runner.invoke(app, [cmd, "--params", str(params)])
        assert res.exit_code == 0, (cmd, res.output, res.exception)
    assert "validation passed" in res.output or (tmp_path / "outputs/single_turn/dataset_dict.json").exists()
    stats = json.loads((tmp_path / "metrics/build_dataset.json").read_text())
    assert stats["rows"]["train"] > 0 and stats["rows"]["validation"] > 0


def test_validate_failure_exits_2_with_one_line_per_failed_check(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path)
    assert _main(monkeypatch, "generate", "--params", str(params)) == 0
    path = tmp_path / "outputs/trajectories/trajectories_eps0.0.jsonl"
    episodes = [json.loads(x) for x in path.read_text().splitlines()]
    episodes[0]["steps"].pop()                          # truncated episode
    episodes[1]["steps"][1]["observation"] = None       # null observation
    path.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    capsys.readouterr()
    assert _main(monkeypatch, "validate", "--params", str(params)) == 2
    err = capsys.readouterr().err.splitlines()
    failed = [x for x in err if x.startswith("FAILED ")]
    assert any("not_null_observation" in x for x in failed) and any("episode_reaches_goal" in x for x in failed)
    errors = [x for x in err if x.startswith("taskplan: error:")]
    assert len(errors) == 1 and "trajectories/not_null_observation" in errors[0]
    assert _main(monkeypatch, "build-dataset", "--params", str(params)) == 2, "nothing downstream runs"
    assert not (tmp_path / "outputs/single_turn").exists()


def test_eval_seed_overlap_is_a_config_error(tmp_path, monkeypatch, capsys):
    params = _params(tmp_path)
    assert _main(monkeypatch, "generate", "--params", str(params), "--set", "generate.train_seeds_start=419") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("taskplan: error: generate: training seeds 419..420 include evaluation seed(s) [420]")


def test_dvc_stages_match_commands_and_params():
    from taskplan.cli import app

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    commands = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    for name in ("generate", "validate", "build_dataset"):
        stage = stages[name]
        assert stage["cmd"] == f"taskplan {name.replace('_', '-')}"
        assert name.replace("_", "-") in commands and name in params
        assert {"common", name, "profiles"} <= set(stage["params"])
        for out in stage["outs"]:
            assert not out.startswith("data/"), "data/ is data.dvc's; stage outputs must not overlap it"
    dvc_file = ROOT / "data.dvc"
    if dvc_file.exists():
        assert [o["path"] for o in yaml.safe_load(dvc_file.read_text())["outs"]] == ["data"]
