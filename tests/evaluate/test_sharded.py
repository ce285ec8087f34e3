"""Evaluation on a Dask cluster of 2 workers (evaluate/sharded.py) writes the serial run's bytes: eval.json,
the transcripts, the bound records, the held-out and single-turn files, for random, expert and a model
policy (greedy, batch 1) in both decoding modes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from taskplan.evaluate.sharded import plan_shards
from taskplan.evaluate.stage import EvaluateConfig, resolve_specs, run_evaluate


@pytest.fixture(scope="module")
def expert_rows_dir(tmp_path_factory):
    """A single-turn dataset built from expert trajectories (the single-turn judge checks the labels)."""
    from taskplan.data.dataset import BuildDatasetConfig, run_build_dataset
    from tests.data.conftest import generate_into

    root = tmp_path_factory.mktemp("rows")
    generate_into(root / "trajectories")
    run_build_dataset(BuildDatasetConfig(trajectories_dir=root / "trajectories", out_dir=root / "single_turn",
                                         stats_path=root / "stats.json", validation_report=None,
                                         validation_fraction=0.5))
    return root / "single_turn"


def _config(root, model_dir, rows_dir, **kw) -> EvaluateConfig:
    return EvaluateConfig(policies=("random", "expert", f"tiny={model_dir}"), tasks=("cheese_sandwich", "burger"),
                          seeds=(42, 84, 126), suite=None, batch_size=1, max_new_tokens=8, dtype="float32",
                          cpu_threads=1, bound=True, opt_samples=0, constrained=("tiny",),
                          holdout_policies=("tiny",), holdout_seed_start=500, holdout_num_seeds=2,
                          holdout_path=root / "holdout.json", single_turn_datasets=(rows_dir,), single_turn_rows=4,
                          single_turn_path=root / "single_turn.json", out_path=root / "eval.json",
                          outputs_dir=root / "eval", **kw)


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_workers_write_the_serial_runs_bytes(dask_cluster, tiny_sft_dir, expert_rows_dir, tmp_path):
    serial = run_evaluate(_config(tmp_path / "serial", tiny_sft_dir, expert_rows_dir))
    sharded = run_evaluate(_config(tmp_path / "cluster", tiny_sft_dir, expert_rows_dir, cluster=dask_cluster,
                                   shard_seeds=2))
    assert sharded.doc == serial.doc
    expected = _files(tmp_path / "serial")
    assert set(expected) == {"eval.json", "holdout.json", "single_turn.json", "eval/random.jsonl",
                             "eval/expert.jsonl", "eval/tiny.jsonl", "eval/tiny.bound.jsonl",
                             "eval/tiny_constrained.jsonl"}
    assert _files(tmp_path / "cluster") == expected
    assert serial.doc["expert"]["burger"]["sr"] == 1.0 and serial.doc["tiny"]["burger"]["bound"] is not None


def test_shards_are_policy_task_and_seed_chunks(tiny_sft_dir, tiny_rows_dir, tmp_path):
    cfg = replace(_config(tmp_path, tiny_sft_dir, tiny_rows_dir), shard_seeds=2)
    specs = resolve_specs(cfg.tasks, cfg.seeds, None)
    holdout = resolve_specs(cfg.tasks, cfg.holdout_seeds, None)
    plans = {s.key: ["x"] for s in [*specs, *holdout]}
    shards = plan_shards(cfg, specs, holdout, plans, [{"row": 1}])
    # 3 seeds in chunks of 2, per task: 2 shards a task, 4 per mode; plus 1 single-turn shard for the model
    got = [(s.policy.split("=")[0], s.mode, s.specs[0].task if s.specs else None, len(s.specs)) for s in shards]
    per_mode = [("cheese_sandwich", 2), ("cheese_sandwich", 1), ("burger", 2), ("burger", 1)]
    assert got == ([("random", "plain", t, n) for t, n in per_mode] + [("expert", "plain", t, n) for t, n in per_mode]
                   + [("tiny", "plain", t, n) for t, n in per_mode]
                   + [("tiny", "constrained", t, n) for t, n in per_mode]
                   + [("tiny", "holdout", "cheese_sandwich", 2), ("tiny", "holdout", "burger", 2),
                      ("tiny", "single_turn", None, 0)])
    assert all(set(s.plans) == {x.key for x in s.specs} for s in shards), "a shard carries only its own optima"
