"""dvc.yaml as the one description of the pipeline: the flow's stage order, inputs, outputs and wiring are
read from it and resolved through each stage's config; every path a stage's config names is declared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from taskplan.errors import ConfigError
from taskplan.orchestrate.stages import (
    _field_paths,
    check_wiring,
    find_dvc_yaml,
    inputs_digest,
    load_stages,
    outputs_exist,
    resolve,
    stage_configs,
)

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ["generate", "validate", "build_dataset", "model_init", "sft", "grpo", "evaluate", "compare", "register"]

# Paths a stage's config names that dvc.yaml does not declare, each for a reason dvc cannot express.
UNDECLARED = {
    ("model_init", "base_model"): "a hub id or local model outside the project (read only with source: hf)",
    ("sft", "checkpoint_dir"): "resume state: a dvc out would be deleted before the run that resumes it",
    ("grpo", "checkpoint_dir"): "resume state: a dvc out would be deleted before the run that resumes it",
    ("compare", "cross_task_dir"): "rows of the cross_task@* stages, outside make repro (read when present)",
    ("compare", "control_path"): "the frozen sft_control stage's evaluation (read when present)",
    ("compare", "training"): "sft_control's metrics, read when present (frozen stage)",
}


@pytest.fixture(scope="module")
def stages():
    return load_stages(ROOT / "dvc.yaml")


@pytest.fixture(scope="module")
def defaults(stages):
    return stage_configs(stages, ROOT / "params.yaml", [])


def test_flow_stages_are_dvc_yaml_stages_in_order_without_frozen_or_foreach(stages):
    assert list(stages) == PIPELINE
    for name, stage in stages.items():
        assert stage.cmd.split()[:2] == ["taskplan", name.replace("_", "-")], stage.cmd
        assert stage.spec.name == name and stage.spec.pipeline and callable(stage.spec.run)


def test_every_path_a_stage_config_names_is_a_declared_dep_or_out(stages, defaults):
    missing = []
    for name, stage in stages.items():
        declared = [Path(p) for p in stage.deps + stage.outs]
        for field, default, _ in _field_paths(defaults[name], defaults[name]):
            covered = any(default == d or d in default.parents or default in d.parents for d in declared)
            if not covered and (name, field) not in UNDECLARED:
                missing.append(f"{name}.{field}={default}")
    assert not missing, f"undeclared in dvc.yaml: {missing}"


def test_every_declared_data_path_maps_to_a_config_field(stages, defaults):
    """A dvc.yaml path no config field names would be followed literally, whatever --set says."""
    literal = []
    for name, stage in stages.items():
        for path in stage.data + stage.outs:
            if resolve(stage, path, defaults[name], defaults[name])[1] is None and not (ROOT / path).is_file() \
                    and not path.startswith("data/"):
                literal.append(f"{name}: {path}")
    assert literal in ([], ["compare: plots/sft", "compare: plots/grpo"]), literal


def test_paths_follow_overrides_and_code_resolves_to_the_package(stages, defaults):
    import taskplan

    cfgs = stage_configs(stages, ROOT / "params.yaml", ["sft.dataset_dir=/data/rows",
                                                         "evaluate.policies=[sft=/m/sft, grpo=/m/grpo]"])
    assert resolve(stages["sft"], "outputs/single_turn", cfgs["sft"], defaults["sft"]) == \
        (Path("/data/rows"), "dataset_dir")
    assert resolve(stages["evaluate"], "models/grpo", cfgs["evaluate"], defaults["evaluate"])[0] == Path("/m/grpo")
    code, field = resolve(stages["sft"], "src/taskplan/train", cfgs["sft"], defaults["sft"])
    assert field is None and code == Path(taskplan.__file__).parent / "train" and code.is_dir()
    report, field = resolve(stages["build_dataset"], "outputs/validate/report.json", cfgs["validate"],
                            defaults["validate"])
    assert field == "report_path" and report == Path("outputs/validate/report.json")


def test_wiring_mismatch_names_the_field_and_the_producer(stages, defaults):
    cfgs = stage_configs(stages, ROOT / "params.yaml", ["grpo.model_dir=models/other"])
    with pytest.raises(ConfigError, match=r"grpo.model_dir=models/other but sft writes models/sft"):
        check_wiring(stages, cfgs, defaults, PIPELINE)
    check_wiring(stages, cfgs, defaults, ["grpo", "evaluate"])   # sft not run: its output is used as it is
    check_wiring(stages, defaults, defaults, PIPELINE)


def test_inputs_digest_follows_data_and_ignores_what_dvcignore_ignores(tmp_path):
    for name in ("dvc.yaml", ".dvcignore", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    stages = load_stages(find_dvc_yaml(tmp_path / "params.yaml"))
    defaults = stage_configs(stages, tmp_path / "params.yaml", [])
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "train.arrow").write_bytes(b"rows")
    cfg = stage_configs(stages, tmp_path / "params.yaml", [f"sft.dataset_dir={rows}"])["sft"]
    before = inputs_digest(stages["sft"], cfg, defaults["sft"])
    (rows / "cache-123.arrow").write_bytes(b"map cache")        # .dvcignore: not a content change
    assert inputs_digest(stages["sft"], cfg, defaults["sft"]) == before
    (rows / "train.arrow").write_bytes(b"other rows")
    assert inputs_digest(stages["sft"], cfg, defaults["sft"]) != before


def test_outputs_exist_checks_every_declared_out(tmp_path, stages, defaults):
    cfg = stage_configs(stages, ROOT / "params.yaml", [f"evaluate.out_path={tmp_path / 'eval.json'}",
                                                       f"evaluate.outputs_dir={tmp_path / 'eval'}"])["evaluate"]
    assert not outputs_exist(stages["evaluate"], cfg, defaults["evaluate"])
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval.json").write_text("{}")
    assert outputs_exist(stages["evaluate"], cfg, defaults["evaluate"])


def test_missing_dvc_yaml_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no dvc.yaml beside"):
        find_dvc_yaml(tmp_path / "params.yaml")


def test_dvc_yaml_names_params_paths_by_template_and_they_are_filled_as_dvc_does(tmp_path):
    raw = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name in PIPELINE:
        entries = [e if isinstance(e, str) else next(iter(e)) for key in ("deps", "outs", "metrics", "plots")
                   for e in raw[name].get(key) or ()]
        own = {str(v) for v in (params.get(name) or {}).values() if isinstance(v, str)}
        literal = [e for e in entries if e in own and not e.startswith("src/")]
        assert not literal, f"{name}: write {literal} as ${{{name}.<key>}}: the path lives in params.yaml"
    (tmp_path / "params.yaml").write_text("sft: {out_dir: elsewhere/sft}\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  sft:\n    cmd: taskplan sft\n    outs:\n      - ${sft.out_dir}\n"
                                       "      - ${sft.metrics_path}\n")
    # params.yaml's value, else (a smaller params file) the stage config's default
    assert load_stages(tmp_path / "dvc.yaml")["sft"].outs == ("elsewhere/sft", "metrics/sft.json")
    (tmp_path / "dvc.yaml").write_text("stages:\n  sft:\n    cmd: taskplan sft\n    outs:\n      - ${sft.nope}\n")
    with pytest.raises(ConfigError, match=r"\$\{sft.nope\} is not a key of params.yaml") as err:
        load_stages(tmp_path / "dvc.yaml")
    assert "\n" not in str(err.value)
