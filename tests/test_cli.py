"""The kitchen commands of the `taskplan` console script (contracts of docs/pipeline.md 3)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from taskplan.kitchen.tasks import get_task
from tests.conftest import run_main, swap_stage_run


def test_tasks_json_contract(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "tasks", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 20
    burger = next(r for r in rows if r["name"] == "burger")
    assert burger["kind"] == "sync" and burger["listed_opt"] == 10 and burger["step_cap"] == 15


def test_plan_json_contract_and_replay(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(monkeypatch, capsys, "plan", "--task", "cheeseburger", "--seed", "42", "--json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc) == {"task", "seed", "optimal_steps", "actions", "expanded", "seconds"}
    assert doc["optimal_steps"] == len(doc["actions"]) and doc["seed"] == 42
    plan = tmp_path / "plan.txt"
    plan.write_text("\n".join(doc["actions"]))
    code, out, _ = run_main(monkeypatch, capsys, "replay", "--task", "cheeseburger", "--seed", "42",
                            "--actions", str(plan), "--json")
    rep = json.loads(out)
    assert code == 0 and rep["success"] and rep["steps"] == doc["optimal_steps"]
    assert rep["trace"][0]["valid_actions"] == sorted(rep["trace"][0]["valid_actions"])


def test_replay_reports_the_first_invalid_step(monkeypatch, capsys, tmp_path):
    plan = tmp_path / "plan.txt"
    plan.write_text("Unstack topbun1 from bottombun1 using robot1\nFly away\n")
    code, out, _ = run_main(monkeypatch, capsys, "replay", "--task", "cheeseburger", "--layout", "default",
                            "--actions", str(plan), "--json")
    rep = json.loads(out)
    assert code == 1 and rep["first_invalid"] == 1 and not rep["success"]


def test_instance_command_round_trips(monkeypatch, capsys, tmp_path):
    out_file = tmp_path / "i.json"
    code, _, _ = run_main(monkeypatch, capsys, "instance", "--task", "burger", "--seed", "84", "--out", str(out_file))
    assert code == 0
    a = json.loads(run_main(monkeypatch, capsys, "plan", "--instance", str(out_file), "--json")[1])
    b = json.loads(run_main(monkeypatch, capsys, "plan", "--task", "burger", "--seed", "84", "--json")[1])
    assert a["actions"] == b["actions"]


@pytest.mark.parametrize("args, fragment", [
    (["plan", "--task", "cheeseburgr", "--seed", "1"], "unknown task 'cheeseburgr'"),
    (["plan", "--task", "burger", "--seed", "-3"], "seed -3"),
    (["plan", "--task", "burger"], "give exactly one of"),
    (["plan", "--task", "burger", "--layout", "fancy"], "unknown layout"),
    (["replay", "--task", "burger", "--seed", "1", "--actions", "/nonexistent/plan.txt"], "cannot read plan file"),
])
def test_bad_input_gives_one_line_and_exit_2(monkeypatch, capsys, args, fragment):
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("taskplan: error:") and fragment in err
    assert out == ""


def test_malformed_instance_file_exit_2(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"task": "burger", "width": 5, "height": 5, "robot": {"x": 0, "y": 0, "facing": [0, 1]},
                               "stations": [{"kind": "table", "x": 0, "y": 1}, {"kind": "table", "x": 0, "y": 1}],
                               "items": []}))
    code, _, err = run_main(monkeypatch, capsys, "plan", "--instance", str(bad))
    assert code == 2 and "two stations on cell (0, 1)" in err


def test_console_script_is_installed_and_fast_to_import():
    proc = subprocess.run([sys.executable, "-c", "import sys, taskplan.cli; "
                           "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'prefect', 'great_expectations', 'trl') "
                           "if m in sys.modules]; print(heavy)"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", f"heavy modules imported at CLI start: {proc.stdout}"
    script = Path(sys.executable).parent / "taskplan"
    exe = subprocess.run([str(script), "plan", "--task", "burger", "--layout", "default", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(exe.stdout)["optimal_steps"] == get_task("burger").listed_opt - 2


def test_play_by_number_and_by_text(monkeypatch, capsys):
    from taskplan.expert.planner import plan_instance
    from taskplan.kitchen.layout import default_instance

    plan = plan_instance(default_instance("burger")).texts
    answers = iter(["nonsense"] + [plan[0]] + [p.upper() + "." for p in plan[1:]])
    monkeypatch.setattr("typer.prompt", lambda *a, **k: next(answers))
    code, out, _ = run_main(monkeypatch, capsys, "play", "--task", "burger", "--layout", "default")
    assert code == 0
    assert "Error Feedback: missing action" in out
    assert f"Goal reached in {len(plan)} steps." in out


@pytest.mark.parametrize("args, fragment", [
    (["plan", "--task", "burger", "--seed", "abc"], "Invalid value for '--seed'"),
    (["sftt"], "No such command 'sftt'"),
    (["plan", "--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_one_line_and_exit_2(monkeypatch, capsys, args, fragment):
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("taskplan: error:") and fragment in err, err


def test_no_arguments_prints_the_help(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys)
    assert code in (0, 2) and "Usage" in out + err and "Traceback" not in err


def _params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("common: {profile: cpu-tiny, seed: 1}\ngrpo: {max_steps: 50}\nsft: {max_steps: 50}\n"
                      "profiles: {cpu-tiny: {}}\n")
    return str(params)


@pytest.mark.parametrize("command, override, fragment", [
    ("grpo", "grpoo.max_steps=2", "unknown section 'grpoo'; valid sections: common, grpo, sft"),
    ("sft", "sft.max_steps=[1", "value '[1' is not valid YAML"),
    ("sft", "common.sed=3", "unknown key common.sed"),
    ("sft", "max_steps", "is not key=value"),
    ("sft", "sft.learning_rate=.nan", "sft.learning_rate=nan: expected a finite number"),
    ("sft", "sft.learning_rate=1e-3", "YAML reads this as a string, not a number"),
    ("sft", "sft.cpu_threads=-1", "sft.cpu_threads=-1: use 0"),
    ("grpo", "common.profile=[a]", "give one profile name"),
])
def test_bad_overrides_fail_before_the_stage_starts(monkeypatch, capsys, tmp_path, command, override, fragment):
    def started(*_a, **_k):
        raise AssertionError("the stage started despite a bad override")

    swap_stage_run(monkeypatch, "grpo", started)
    swap_stage_run(monkeypatch, "sft", started)
    code, out, err = run_main(monkeypatch, capsys, command, "--params", _params(tmp_path), "--set", override,
                              "--no-track")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err, err


def test_overrides_of_other_known_sections_and_of_common_apply(tmp_path):
    from taskplan.config import load_config
    from taskplan.train.sft import SftConfig

    cfg = load_config(SftConfig, "sft", _params(tmp_path), ["grpo.max_steps=2", "common.seed=7", "sft.max_steps=3"])
    assert cfg.max_steps == 3 and cfg.seed == 7


def test_unreadable_params_plan_and_instance_files_are_one_line(monkeypatch, capsys, tmp_path, unreadable_files):
    weird = tmp_path / "weird.yaml"
    weird.write_text("common: 5\n")
    for bad in (*unreadable_files.values(), weird):
        cases = [["sft", "--params", str(bad), "--no-track"],
                 ["plan", "--instance", str(bad)],
                 ["replay", "--layout", "default", "--task", "burger", "--actions", str(bad)]]
        for args in cases:
            code, out, err = run_main(monkeypatch, capsys, *args)
            if args[0] == "replay" and bad == weird:
                assert code == 1   # a one-line plan that is no valid action
                continue
            assert code == 2 and out == "", (args, err)
            assert err.count("\n") == 1 and err.startswith("taskplan: error:"), (args, err)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_instance_out_refuses_what_is_not_a_regular_file(monkeypatch, capsys, tmp_path, kind):
    target = tmp_path / "target"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    code, out, err = run_main(monkeypatch, capsys, "instance", "--task", "burger", "--seed", "1", "--out", str(target))
    assert code == 2 and err.count("\n") == 1
    assert ("is a directory" if kind == "dir" else "is a FIFO") in err, err
    assert target.is_dir() if kind == "dir" else stat.S_ISFIFO(target.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_the_environment_is_defined_once_and_the_makefile_exports_the_same():
    """taskplan.env.QUIET is the one list; the Makefile exports it for DVC/CI (drift fails here)."""
    import re

    from taskplan.env import QUIET

    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    block = re.search(r"^export (.*?)(?<!\\)\n", text, re.S | re.M).group(1)
    exported = dict(kv.split("=", 1) for kv in block.replace("\\\n", " ").split())
    assert exported == QUIET
    out = subprocess.run([sys.executable, "-m", "taskplan.env"], capture_output=True, text=True, check=True)
    assert dict(line.split("=", 1) for line in out.stdout.split()) == QUIET


def test_plan_refuses_a_time_limit_that_is_not_a_positive_number(monkeypatch, capsys):
    for value in ("nan", "-1", "inf"):
        code, out, err = run_main(monkeypatch, capsys, "plan", "--task", "burger", "--seed", "42", "--max-seconds",
                                  value)
        assert code == 2 and err.count("\n") == 1 and "planner time limit" in err, (value, err)


def test_play_with_closed_or_ending_input_is_one_line_or_a_clean_end(tmp_path):
    exe = str(Path(sys.executable).with_name("taskplan"))
    closed = subprocess.run([exe, "play", "--task", "burger", "--seed", "42"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert closed.returncode == 0 and closed.stdout.rstrip().endswith("Goal not reached in 0 steps."), closed.stderr
    gone = subprocess.run(f"{exe} play --task burger --seed 42 <&-", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1 and "open standard input" in gone.stderr


def test_replay_stops_at_the_step_cap(monkeypatch, capsys, tmp_path):
    code, out, _ = run_main(monkeypatch, capsys, "plan", "--task", "burger", "--seed", "42", "--json")
    plan = json.loads(out)["actions"]
    path = tmp_path / "late.txt"
    path.write_text("\n".join(["Do nothing"] * get_task("burger").step_cap + plan))
    code, out, _ = run_main(monkeypatch, capsys, "replay", "--task", "burger", "--seed", "42", "--actions",
                            str(path), "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["success"] and doc["capped"] and doc["steps"] == get_task("burger").step_cap
