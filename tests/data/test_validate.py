"""The validate stage: a valid file passes; each seeded corruption fails with its own first check."""

from __future__ import annotations

import copy
import json
import random

import pytest

from taskplan.data.dataset import BuildDatasetConfig
from taskplan.data.validate import ValidateConfig, ValidationFailed, dataset_checks, dataset_frame, run_validate
from taskplan.errors import DatasetError


def _cfg(traj_dir, tmp_path, **kw) -> ValidateConfig:
    return ValidateConfig(trajectories_dir=traj_dir, out_dir=tmp_path / "validate", metrics_path=tmp_path / "v.json",
                          suite=None, data_docs=kw.pop("data_docs", False), **kw)


def _first_failure(traj_dir, tmp_path) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        run_validate(_cfg(traj_dir, tmp_path))
    return info.value


def _step(episodes, rng, ep_index=None):
    ep = episodes[rng.randrange(len(episodes)) if ep_index is None else ep_index]
    return ep, ep["steps"][rng.randrange(1, len(ep["steps"]) - 1)]


def _wrong_expert_action(eps, rng):
    _, st = _step(eps, rng)
    st["expert_action"] = next(a for a in st["valid_actions"] if a != st["expert_action"])
    return eps


def _action_not_valid(eps, rng):
    _, st = _step(eps, rng)
    st["expert_action"] = st["action"] = "Fly robot1 to the moon"
    return eps


def _set(field, value):
    def edit(eps, rng):
        _, st = _step(eps, rng)
        st[field] = value(st) if callable(value) else value
        return eps
    return edit


def _set_episode(field, value):
    def edit(eps, rng):
        ep = eps[rng.randrange(len(eps))]
        ep[field] = value(ep) if callable(value) else value
        return eps
    return edit


def _truncate(eps, rng):
    eps[rng.randrange(len(eps))]["steps"].pop()
    return eps


def _duplicate_step_index(eps, rng):
    ep, st = _step(eps, rng)
    ep["steps"][st["step"] + 1]["step"] = st["step"]
    return eps


def _skip_step_index(eps, rng):
    ep = eps[rng.randrange(len(eps))]
    for st in ep["steps"][2:]:
        st["step"] += 1
    return eps


def _drop_column(eps, rng):
    for ep in eps:
        for st in ep["steps"]:
            del st["goal"]
    return eps


def _drop_valid_action(eps, rng):
    _, st = _step(eps, rng)
    st["valid_actions"] = [a for a in st["valid_actions"] if a != st["expert_action"]][:-1] + [st["expert_action"]]
    return eps


CORRUPTIONS = {
    # name: (edit, first failed check)
    "empty file": (lambda eps, rng: [], "rows_present"),
    "missing column": (_drop_column, "columns"),
    "bad type (seed as text)": (_set_episode("seed", lambda ep: str(ep["seed"])), "type_seed"),
    "null observation": (_set("observation", None), "not_null_observation"),
    "unknown task": (_set_episode("task", "burgr"), "task_known"),
    "held-out evaluation seed": (_set_episode("seed", 42), "seed_held_out"),
    "eps does not match the file": (_set_episode("eps", 0.1), "eps_matches_file"),
    "duplicated step index": (_duplicate_step_index, "step_unique"),
    "skipped step index": (_skip_step_index, "step_in_sequence"),
    "goal text of another task": (_set("goal", "Make a salad"), "goal_matches_task"),
    "action not in the valid list": (_action_not_valid, "expert_action_valid"),
    "noise step in an eps=0 file": (_set("is_noise", True), "noise_only_if_eps"),
    "wrong expert action": (_wrong_expert_action, "noise_flag_consistent"),
    "edited observation": (_set("observation", lambda st: st["observation"].replace("robot1", "robot2", 1)),
                           "observation_matches_replay"),
    "valid action missing": (_drop_valid_action, "valid_actions_match_replay"),
    "truncated episode": (_truncate, "episode_reaches_goal"),
    "wrong optimal_steps": (_set_episode("optimal_steps", lambda ep: ep["optimal_steps"] + 1), "episode_length_ok"),
}


def test_clean_trajectories_and_rows_pass(clean_trajectories, tmp_path):
    dcfg = BuildDatasetConfig(trajectories_dir=clean_trajectories, validation_fraction=0.5)
    result = run_validate(_cfg(clean_trajectories, tmp_path), dcfg)
    assert result.passed and [r.suite for r in result.reports] == ["trajectories", "dataset"]
    report = json.loads((tmp_path / "validate" / "report.json").read_text())
    assert report["passed"] and report["dataset"]["params"] == dcfg.fingerprint
    assert report["trajectories"]["trajectories_eps0.0.jsonl"]["episodes"] == 4


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_rejected_by_its_own_check(name, traj_copy, tmp_path):
    edit, expected = CORRUPTIONS[name]
    out, rewrite = traj_copy
    rng = random.Random(name)   # seeded: the same rows are corrupted on every run
    rewrite(lambda eps: edit(eps, rng))
    err = _first_failure(out, tmp_path)
    first = err.reports[0].failed[0]
    assert first.name == expected, f"{name}: first failure {first.line()}"
    assert str(err).startswith(f"validation failed: trajectories/{expected}:")
    assert "\n" not in str(err)
    report = json.loads((tmp_path / "validate" / "report.json").read_text())
    assert report["passed"] is False and report["first_failure"] == first.line()


def test_corruption_messages_are_distinct():
    assert len({check for _, check in CORRUPTIONS.values()}) == len(CORRUPTIONS) >= 16
    assert len({check for _, check in ROW_CORRUPTIONS.values()}) == len(ROW_CORRUPTIONS)


def test_invalid_json_line_is_a_one_line_error(traj_copy, tmp_path):
    out, _ = traj_copy
    path = out / "trajectories_eps0.0.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DatasetError, match=r"trajectories_eps0.0.jsonl:5: not valid JSON"):
        run_validate(_cfg(out, tmp_path))


def test_failure_keeps_data_docs(traj_copy, tmp_path):
    out, rewrite = traj_copy
    rewrite(lambda eps: _truncate(eps, random.Random(0)))
    with pytest.raises(ValidationFailed, match="data docs"):
        run_validate(_cfg(out, tmp_path, data_docs=True))
    docs = tmp_path / "validate" / "data_docs"
    assert (docs / "index.html").exists() and list((docs / "validations").rglob("*.html"))


# ---------------------------------------------------------------- single-turn rows


def _rows(clean_trajectories):
    from taskplan.data.dataset import build_rows, read_episodes

    cfg = BuildDatasetConfig(trajectories_dir=clean_trajectories, validation_fraction=0.5)
    return build_rows(read_episodes(cfg.trajectories_path), cfg)


def _conflicting_prompt(rows):
    row = copy.deepcopy(rows[3])
    row["answer"] = next(a for a in row["valid_actions"] if a != row["answer"])
    row["completion"] = [{"role": "assistant", "content": f"Action: {row['answer']}"}]
    row["seed"] = 1999                       # a seed of its own: only the prompt collides
    return rows + [row]


def _seed_in_both_splits(rows):
    seed = rows[0]["seed"]
    other = next(r["split"] for r in rows if r["split"] != rows[0]["split"])
    for r in rows:
        if r["seed"] == seed and r["task"] == "burger":
            r["split"] = other
    return rows


def _edit_row(field, value):
    def edit(rows):
        rows[5][field] = value(rows[5]) if callable(value) else value
        return rows
    return edit


ROW_CORRUPTIONS = {
    "duplicate prompt with another answer": (_conflicting_prompt, "prompt_consistent"),
    "seed in both splits": (_seed_in_both_splits, "seed_in_one_split"),
    "completion differs from the answer": (_edit_row("completion", [{"role": "assistant", "content": "Action: x"}]),
                                           "completion_matches_answer"),
    "prompt without system message": (_edit_row("prompt", lambda r: r["prompt"][1:]), "prompt_well_formed"),
    "duplicated row": (lambda rows: rows + [copy.deepcopy(rows[2])], "row_unique"),
    "bad type (step as text)": (_edit_row("step", "3"), "type_step"),
    "missing column": (lambda rows: [{k: v for k, v in r.items() if k != "valid_actions"} for r in rows], "columns"),
    "unknown split": (_edit_row("split", "test"), "split_known"),
}


def test_clean_rows_pass(clean_trajectories):
    from taskplan.data.expectations import run_suite

    assert run_suite("dataset", dataset_frame(_rows(clean_trajectories)), dataset_checks([42])).passed


@pytest.mark.parametrize("name", list(ROW_CORRUPTIONS))
def test_row_corruption_is_rejected_by_its_own_check(name, clean_trajectories):
    from taskplan.data.expectations import run_suite

    edit, expected = ROW_CORRUPTIONS[name]
    report = run_suite("dataset", dataset_frame(edit(_rows(clean_trajectories))), dataset_checks([42]))
    assert not report.passed and report.failed[0].name == expected, report.lines()


def test_answer_outside_valid_actions_is_named(clean_trajectories):
    from taskplan.data.expectations import run_suite

    rows = _rows(clean_trajectories)
    rows[4]["valid_actions"] = [a for a in rows[4]["valid_actions"] if a != rows[4]["answer"]]
    report = run_suite("dataset", dataset_frame(rows), dataset_checks([42]))
    assert [r.name for r in report.failed] == ["answer_valid"]
    assert "answer='" in report.failed[0].example
