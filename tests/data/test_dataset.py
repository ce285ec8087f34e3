"""build_dataset: rows and columns, split by seed, stats, the validation gate, the saved DatasetDict."""

from __future__ import annotations

import json

import pytest

from taskplan.data.dataset import (
    COLUMNS,
    BuildDatasetConfig,
    action_schema,
    build_rows,
    load_rows,
    read_episodes,
    run_build_dataset,
    validation_seeds,
)
from taskplan.data.prompts import answer_text, build_messages
from taskplan.data.validate import ValidateConfig, ValidationFailed, run_validate
from taskplan.errors import ConfigError, DatasetError


def _cfg(traj, tmp_path, **kw) -> BuildDatasetConfig:
    kw.setdefault("validation_report", None)
    return BuildDatasetConfig(trajectories_dir=traj, out_dir=tmp_path / "single_turn",
                              stats_path=tmp_path / "stats.json", **kw)


def test_rows_follow_the_trajectory(clean_trajectories, tmp_path):
    cfg = _cfg(clean_trajectories, tmp_path)
    episodes = read_episodes(cfg.trajectories_path)
    rows = build_rows(episodes, cfg)
    assert len(rows) == sum(len(ep["steps"]) for ep in episodes)
    first, second = rows[0], rows[1]
    ep = episodes[0]
    assert first["prompt"] == build_messages(ep["steps"][0]["observation"], prev_action=None)
    assert second["prompt"] == build_messages(ep["steps"][1]["observation"], prev_action=ep["steps"][0]["action"])
    assert first["completion"] == [{"role": "assistant", "content": answer_text(ep["steps"][0]["expert_action"])}]
    assert (first["answer"], first["task"], first["seed"], first["step"]) == (
        ep["steps"][0]["expert_action"], ep["task"], ep["seed"], 0)


def test_split_is_by_seed_and_seeded():
    seeds = list(range(1000, 1050))
    val = validation_seeds(seeds, 0.2, 42)
    assert len(val) == 10 and val == validation_seeds(seeds, 0.2, 42) and val != validation_seeds(seeds, 0.2, 7)
    assert validation_seeds(seeds[:2], 0.9, 1) and len(validation_seeds(seeds[:2], 0.9, 1)) == 1, "never all seeds"
    assert validation_seeds(seeds, 0.0, 42) == set()


def test_build_dataset_writes_splits_by_seed_and_stats(clean_trajectories, tmp_path):
    result = run_build_dataset(_cfg(clean_trajectories, tmp_path, validation_fraction=0.5))
    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "single_turn"))
    assert set(dd) == {"train", "validation"}
    for split in dd.values():
        assert tuple(split.column_names) == COLUMNS
    train_seeds, val_seeds = set(dd["train"]["seed"]), set(dd["validation"]["seed"])
    assert train_seeds and val_seeds and not train_seeds & val_seeds, "no seed in both splits"
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats == result.stats
    assert stats["rows"]["total"] == len(dd["train"]) + len(dd["validation"])
    assert set(stats["rows_per_task"]) == {"cheese_sandwich", "burger"}
    assert sum(stats["answer_schema"].values()) == stats["rows"]["total"]
    assert stats["prompt_words"]["max"] >= stats["prompt_words"]["p90"] >= stats["prompt_words"]["p50"] > 100
    rows = load_rows(tmp_path / "single_turn")
    assert {r["split"] for r in rows} == {"train", "validation"} and len(rows) == stats["rows"]["total"]


def test_saved_dataset_validates_and_a_broken_one_fails(clean_trajectories, tmp_path):
    import datasets

    run_build_dataset(_cfg(clean_trajectories, tmp_path))
    vcfg = ValidateConfig(trajectories_dir=clean_trajectories, out_dir=tmp_path / "v", metrics_path=tmp_path / "m",
                          suite=None, data_docs=False, dataset_dir=tmp_path / "single_turn")
    assert [r.suite for r in run_validate(vcfg).reports] == ["trajectories", "dataset_dir"]
    dd = datasets.load_from_disk(str(tmp_path / "single_turn"))
    broken = datasets.DatasetDict({k: v.remove_columns(["valid_actions"]) for k, v in dd.items()})
    broken.save_to_disk(str(tmp_path / "broken"))
    with pytest.raises(ValidationFailed, match=r"dataset_dir/columns: .*missing \['valid_actions'\]"):
        run_validate(ValidateConfig(trajectories_dir=clean_trajectories, out_dir=tmp_path / "v2",
                                    metrics_path=tmp_path / "m2", suite=None, data_docs=False,
                                    dataset_dir=tmp_path / "broken"))


def test_gate_refuses_missing_failed_or_stale_reports(clean_trajectories, tmp_path):
    report = tmp_path / "report.json"
    cfg = _cfg(clean_trajectories, tmp_path, validation_report=report)
    with pytest.raises(DatasetError, match=r"no such file\); run `taskplan validate`"):
        run_build_dataset(cfg)
    report.write_text(json.dumps({"passed": False, "first_failure": "trajectories/step_unique: ..."}))
    with pytest.raises(DatasetError, match="says the data failed"):
        run_build_dataset(cfg)
    report.write_text(json.dumps({"passed": True, "trajectories": {"trajectories_eps0.0.jsonl": {"sha256": "0"}}}))
    with pytest.raises(DatasetError, match="does not cover the current"):
        run_build_dataset(cfg)
    assert not cfg.out_dir.exists()


def test_action_schema_names():
    assert [action_schema(a) for a in ("Move robot1 from table1 to stove1", "Pick up pot1 from sink1 using robot1",
                                       "Fill pot1 with water from sink1 using robot1",
                                       "Fill bowl1 with pot1's contents using robot1", "Do nothing",
                                       "Stack cheese1 on top of patty1 using robot1")] == [
        "move", "pick_up", "fill_pot", "fill_bowl", "wait", "stack"]


def test_config_rejects_bad_fraction():
    with pytest.raises(ConfigError, match="validation_fraction"):
        BuildDatasetConfig(validation_fraction=1.0)


def test_task_filter_keeps_one_task_and_rejects_an_absent_one(clean_trajectories, tmp_path):
    result = run_build_dataset(_cfg(clean_trajectories, tmp_path, tasks=("burger",)))
    assert set(result.stats["rows_per_task"]) == {"burger"}
    with pytest.raises(DatasetError, match="no episodes of potato_soup"):
        run_build_dataset(_cfg(clean_trajectories, tmp_path, tasks=("potato_soup",)))


def test_noisy_levels_add_train_rows_labelled_by_the_expert(generate, tmp_path):
    traj = tmp_path / "trajectories"
    generate(traj, noise_levels=(0.0, 0.2), seeds=6)
    clean = _cfg(traj, tmp_path, validation_fraction=0.34)
    mixed = _cfg(traj, tmp_path, validation_fraction=0.34, noise_levels=(0.2,))
    base, rows = build_rows(read_episodes(clean.trajectories_path), clean), None
    from taskplan.data.dataset import collect_rows

    rows = collect_rows(mixed)
    assert [r for r in rows if r["split"] == "validation"] == [r for r in base if r["split"] == "validation"], \
        "the validation split stays the clean expert path"
    extra = rows[len(base):]
    noisy = read_episodes(traj / "trajectories_eps0.2.jsonl")
    val_seeds = {r["seed"] for r in base if r["split"] == "validation"}
    assert len(extra) == sum(len(ep["steps"]) for ep in noisy if ep["seed"] not in val_seeds) > 0
    assert all(r["split"] == "train" and r["answer"] in r["valid_actions"] for r in extra)
    noisy_steps = [st for ep in noisy for st in ep["steps"] if ep["seed"] not in val_seeds]
    assert any(st["action"] != st["expert_action"] for st in noisy_steps), "eps 0.2 leaves the expert path"
    assert [r["answer"] for r in extra] == [st["expert_action"] for st in noisy_steps]


def test_error_feedback_rows_repeat_a_state_after_a_rejected_reply(clean_trajectories, tmp_path):
    from taskplan.kitchen import parse_action

    cfg = _cfg(clean_trajectories, tmp_path, error_feedback=0.5)
    rows = build_rows(read_episodes(cfg.trajectories_path), cfg)
    plain = build_rows(read_episodes(cfg.trajectories_path), _cfg(clean_trajectories, tmp_path))
    extra = rows[len(plain):]
    n_train = sum(r["split"] == "train" for r in plain)
    assert 0.3 * n_train < len(extra) < 0.7 * n_train
    for r in extra:
        user = r["prompt"][1]["content"]
        assert "Error Feedback: " in user
        error = user.split("Error Feedback: ")[1].split("\n")[0]
        assert error.startswith(("action '", "missing action", "empty action")), error
        twin = next(p for p in plain if p["seed"] == r["seed"] and p["task"] == r["task"] and p["step"] == r["step"])
        assert r["answer"] == twin["answer"] and r["split"] == "train"
        assert user.replace(f"Error Feedback: {error}\n\n", "") == twin["prompt"][1]["content"]
    assert parse_action("Action: " + extra[0]["answer"], extra[0]["valid_actions"]).ok
    assert rows == build_rows(read_episodes(cfg.trajectories_path), cfg), "seeded"


def test_noise_level_config_is_checked():
    with pytest.raises(ConfigError, match="repeats eps"):
        BuildDatasetConfig(eps=0.0, noise_levels=(0.0,))
    with pytest.raises(ConfigError, match="error_feedback"):
        BuildDatasetConfig(error_feedback=1.5)
