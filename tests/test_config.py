"""params.yaml against the code's defaults: every key is a field of its stage's config, and a value that
differs from the dataclass default is a listed pipeline choice (anything else is drift and fails here)."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import yaml

from taskplan.catalog import stage_specs

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {name: (spec.config.__module__, spec.config.__name__) for name, spec in stage_specs().items()} | {
    "pipeline": ("taskplan.orchestrate.flow", "PipelineConfig"),
}
# Where the pipeline deliberately runs something else than a bare library call would; each says why.
PIPELINE_CHOICES = {
    ("generate", "num_train_seeds"): "the pipeline trains on 200 seeds; a library call generates a quick 50",
    ("generate", "noise_levels"): "the noisy-expert files (0.1, 0.2) feed training rows and the ablation",
    ("build_dataset", "noise_levels"): "rows at noisy-expert states (the library default uses clean data only)",
    ("build_dataset", "error_feedback"): "15 % rows after a rejected reply (off by default)",
    ("evaluate", "policies"): "the pipeline's trained models; the library default needs no model",
    ("evaluate", "constrained"): "constrained decoding of the pipeline's models",
    ("build_dataset", "reasoning"): "the expert's reasoning line (subgoal and its station) before every action",
    ("evaluate", "reasoning"): "the same reasoning line as the training rows (the bound scores it)",
    ("cross_task", "reasoning"): "the same reasoning line as the training rows",
    ("evaluate", "single_turn_datasets"): "the pipeline's validation rows, judged by kind and outcome",
    ("evaluate", "holdout_policies"): "the candidate also plays 50 more held-out seeds",
    ("evaluate", "holdout_num_seeds"): "50 more held-out seeds for the candidate",
    ("evaluate", "single_turn_path"): "the pipeline names the file (a library call writes none)",
    ("evaluate", "holdout_path"): "the pipeline names the file (a library call writes none)",
    ("compare", "training"): "the frozen sft_control stage's metrics join the training table",
    ("pipeline", "stages"): "listed for readers; the default (empty) means all of dvc.yaml's, the same list",
}


def _default_of(section: str, key: str):
    module, cls = SECTIONS[section]
    config = getattr(importlib.import_module(module), cls)
    fields = {f.name: f for f in dataclasses.fields(config)}
    assert key in fields, f"params.yaml {section}.{key} is not a field of {cls}"
    f = fields[key]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _same(a, b) -> bool:
    norm = lambda x: [str(i) for i in x] if isinstance(x, (list, tuple)) else (None if x is None else str(x))  # noqa: E731
    return norm(a) == norm(b)


def test_params_yaml_repeats_the_code_defaults_except_listed_pipeline_choices():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    drift = []
    for section, values in params.items():
        if section in ("common", "profiles"):
            continue
        assert section in SECTIONS, f"params.yaml section {section!r} has no config class"
        for key, value in (values or {}).items():
            if not _same(value, _default_of(section, key)) and (section, key) not in PIPELINE_CHOICES:
                drift.append(f"{section}.{key}: params.yaml {value!r} vs code {_default_of(section, key)!r}")
    assert not drift, "params.yaml and the dataclass defaults disagree: " + "; ".join(drift)


def test_listed_pipeline_choices_really_differ_and_profiles_name_real_fields():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, key in PIPELINE_CHOICES:
        if (section, key) != ("pipeline", "stages"):
            assert not _same(params[section][key], _default_of(section, key)), f"{section}.{key} no longer differs"
    for _profile, sections in params["profiles"].items():
        for section, values in (sections or {}).items():
            for key in values or {}:
                _default_of(section, key)


def test_params_command_names_each_value_source_and_help(cli, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("common: {profile: p, seed: 7}\nsft: {max_steps: 50, batch_size: 4}\n"
                      "profiles: {p: {sft: {batch_size: 8}}}\n")
    code, out, _ = cli("params", "sft", "--params", params, "--set", "sft.learning_rate=0.5", "--json")
    rows = {r["name"]: r for r in json.loads(out)["sft"]}
    assert code == 0
    assert (rows["max_steps"]["value"], rows["max_steps"]["source"]) == (50, "params.yaml:sft")
    assert (rows["batch_size"]["value"], rows["batch_size"]["source"]) == (8, "profile p")
    assert (rows["learning_rate"]["value"], rows["learning_rate"]["source"]) == (0.5, "--set")
    assert (rows["seed"]["value"], rows["seed"]["source"]) == (7, "common.seed")
    assert rows["completion_only_loss"]["source"] == "code default"
    assert rows["max_steps"]["help"] == "optimizer steps", "help comes from the field's declaration"
    code, _, err = cli("params", "sfft", "--params", params)
    assert code == 2 and "unknown stage 'sfft'" in err
