"""Property-based input fuzzing (Hypothesis): instance files, action files, `--set` values, suite files and
eval files go through the CLI in this process; the answer is success or one line with exit 2 (replay: exit 1
for a plan that fails), never a traceback. The number of examples is bounded for CI (HYPOTHESIS_PROFILE=long
runs more)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskplan.kitchen.layout import seeded_instance
from tests.conftest import swap_stage_run

settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_subnormal=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _one_line_or_success(code: int, err: str, ok_codes=(0,)) -> None:
    assert code in (*ok_codes, 2), (code, err[-500:])
    if code == 2:
        assert err.startswith("taskplan: error:") and err.count("\n") == 1, err[-500:]
    assert "Traceback" not in err


def _mutate(doc: dict, path: list, value) -> dict:
    """`doc` with the value at `path` (keys / list indexes, as far as they exist) replaced."""
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return doc
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        node[last] = value
    return doc


INSTANCE = seeded_instance("burger", 42)
paths = st.sampled_from([["task"], ["width"], ["height"], ["robot"], ["robot", "x"], ["robot", "facing"],
                         ["stations"], ["stations", 0], ["stations", 0, "kind"], ["stations", 0, "x"],
                         ["items"], ["items", 0], ["items", 0, "level"], ["items", 0, "flags"],
                         ["items", 0, "kind"], ["containers"], ["extra"]])


@given(path=paths, value=json_values)
def test_instance_files(cli, tmp_path_factory, path, value):
    f = tmp_path_factory.mktemp("inst") / "k.json"
    f.write_text(json.dumps(_mutate(INSTANCE, path, value)))
    code, _, err = cli("plan", "--instance", f, "--json", "--max-seconds", "5")
    _one_line_or_success(code, err)


@given(text=st.text(max_size=300) | st.lists(st.text(max_size=60), max_size=5).map(json.dumps))
def test_action_files(cli, tmp_path_factory, text):
    f = tmp_path_factory.mktemp("act") / "plan.txt"
    f.write_text(text)
    code, _, err = cli("replay", "--task", "burger", "--seed", "42", "--actions", f)
    _one_line_or_success(code, err, ok_codes=(0, 1))


set_keys = st.sampled_from(["sft.max_steps", "sft.learning_rate", "sft.lr_scheduler", "sft.batch_size",
                            "sft.cpu_threads", "sft.lora_r", "sft.seconds_from", "sft.out_dir",
                            "common.profile", "common.seed", "sft.warmup_ratio"])
yaml_text = st.sampled_from([".nan", ".inf", "-1", "0", "1e-3", "[1, 2]", "{a: 1}", "null", "true", "'x'",
                             "[", "&a [*a]", "2.5", "cpu-tiny", "[a]"]) | st.text(max_size=30)


@pytest.fixture
def no_training(monkeypatch):
    swap_stage_run(monkeypatch, "sft", lambda *a, **k: (_ for _ in ()).throw(SystemExit(0)))


@given(key=set_keys, value=yaml_text)
def test_set_values(cli, no_training, key, value):
    code, _, err = cli("sft", "--no-track", "--set", f"{key}={value}")
    _one_line_or_success(code, err)


@given(doc=json_values | st.fixed_dictionaries({"eval_tasks": json_values, "eval_seeds": json_values,
                                                 "train_seed_range": json_values}))
def test_suite_files(cli, tmp_path_factory, doc):
    f = tmp_path_factory.mktemp("suite") / "suite.json"
    f.write_text(json.dumps(doc))
    code, _, err = cli("evaluate", "--no-track", "--set", "evaluate.policies=[random]", "--set",
                       "evaluate.single_turn_datasets=[]", "--set", "evaluate.holdout_policies=[]",
                       "--set", "evaluate.seeds=[42]", "--set", "evaluate.tasks=[]", "--set", f"evaluate.suite={f}",
                       "--set", f"evaluate.out_path={f.parent / 'eval.json'}",
                       "--set", f"evaluate.outputs_dir={f.parent / 'out'}")
    _one_line_or_success(code, err)


row = st.fixed_dictionaries({"sr": json_values, "asat": json_values, "episodes": json_values})


@given(doc=st.dictionaries(st.sampled_from(["grpo", "sft"]), st.dictionaries(st.sampled_from(["burger"]), row)))
def test_eval_files(cli, tmp_path_factory, doc):
    d = tmp_path_factory.mktemp("reg")
    (d / "eval.json").write_text(json.dumps(doc))
    code, _, err = cli("register", "--set", f"register.eval_path={d / 'eval.json'}", "--set",
                       f"register.model_dir={d / 'none'}", "--set", "register.verdict_path=null",
                       "--set", f"register.decision_path={d / 'register.json'}")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-500:]


@pytest.mark.parametrize("kind", ["endless", "fifo", "folder", "huge"])
def test_nasty_suite_paths_are_one_line(tmp_path, kind):
    from taskplan.data.suite import read_suite
    from taskplan.errors import ConfigError

    path = {"endless": "/dev/zero", "folder": str(tmp_path)}.get(kind, str(tmp_path / "suite.json"))
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "w") as fh:
            fh.write('{"eval_seeds": [' + "1," * (1 << 20) + "1]}")
    with pytest.raises(ConfigError) as err:
        read_suite(path)
    assert "\n" not in str(err.value) and "suite file" in str(err.value)
