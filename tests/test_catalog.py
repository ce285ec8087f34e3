"""The stage catalog (taskplan/catalog.py) against dvc.yaml and the command line: one description of each stage.

dvc.yaml is the wiring (deps, outs, order); the catalog says what runs. They must name the same stages, each
dvc.yaml command must be its stage's CLI command, and each stage's command must offer exactly the options
its spec says it takes."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import yaml

from taskplan.catalog import MARKER, StageSpec, stage_specs
from taskplan.commands.stages import app as stage_app

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_the_pipeline_stages_of_dvc_yaml_are_the_catalogs():
    flow_stages = {name for name, body in DVC.items() if "foreach" not in body and not body.get("frozen")}
    assert flow_stages == {name for name, spec in stage_specs().items() if spec.pipeline}


def test_every_dvc_yaml_command_is_its_stages_cli_command():
    commands = {spec.command_name: spec for spec in stage_specs().values()}
    for name, body in DVC.items():
        body = body.get("do", body)          # a foreach template's command is under `do`
        cmds = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        for cmd in cmds:
            words = cmd.split()
            if words[0] == "taskplan" and words[1] in commands:
                assert words[1] == commands[words[1]].command_name
        if name in stage_specs():
            assert any(c.split()[:2] == ["taskplan", stage_specs()[name].command_name] for c in cmds), name


def test_each_params_section_is_a_stage_or_the_flows_settings():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    known = set(stage_specs()) | {"common", "profiles", "pipeline"}
    assert set(params) <= known, set(params) - known


def test_a_stage_command_offers_exactly_the_options_its_spec_takes():
    by_name = {c.name: c.callback for c in stage_app.registered_commands}
    for spec in stage_specs().values():
        if not spec.command:
            assert spec.command_name not in by_name
            continue
        options = set(inspect.signature(by_name[spec.command_name]).parameters)
        assert ("resume" in options) == spec.resumable, spec.name
        assert ("as_json" in options) == spec.json, spec.name
        assert ("track" in options) == spec.tracked, spec.name
        assert {"params", "overrides"} <= options


def test_specs_are_found_in_their_own_modules_by_the_marker():
    for spec in stage_specs().values():
        assert isinstance(spec, StageSpec) and dataclasses.is_dataclass(spec.config)
        source = Path(inspect.getsourcefile(spec.run)).read_text()
        assert MARKER in source, f"{spec.name}: declared beside its run function"
