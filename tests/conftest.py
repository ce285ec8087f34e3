"""Shared, session-scoped fixtures: a handful of single-turn rows and a tiny planner built offline."""

from __future__ import annotations

import random

import pytest

from taskplan.env import quiet_env

quiet_env()


def _single_turn_rows(task: str, steps: int, seed: int) -> list[dict]:
    """Rows of the single-turn dataset's shape from a short seeded walk on the task's default layout."""
    from taskplan.data.prompts import answer_text, build_messages
    from taskplan.kitchen import KitchenEnv

    env = KitchenEnv.from_spec(task, layout="default")
    obs, prev, rng, rows = env.reset(), None, random.Random(seed), []
    for step in range(steps):
        valid = env.action_texts()
        action = rng.choice(valid)  # stands in for the expert action
        rows.append({"prompt": build_messages(obs, prev_action=prev),
                     "completion": [{"role": "assistant", "content": answer_text(action)}],
                     "answer": action, "valid_actions": valid, "task": task, "seed": seed, "step": step})
        env.step(action)
        obs, prev = env.observation(), action
    return rows


@pytest.fixture(scope="session")
def tiny_rows() -> dict[str, list[dict]]:
    train = _single_turn_rows("burger", 6, 1) + _single_turn_rows("cheese_sandwich", 6, 2)
    return {"train": train, "validation": _single_turn_rows("burger", 4, 3)}


@pytest.fixture(scope="session")
def tiny_rows_dir(tiny_rows, tmp_path_factory):
    """A DatasetDict saved like outputs/single_turn (splits train/validation)."""
    from datasets import Dataset, DatasetDict

    path = tmp_path_factory.mktemp("single_turn") / "single_turn"
    DatasetDict({k: Dataset.from_list(v) for k, v in tiny_rows.items()}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_rows_dir, tmp_path_factory):
    """A 2-layer, hidden-32 Qwen2 with the domain tokenizer (the model_init stage, tiny sizes)."""
    from taskplan.model import ModelInitConfig, run_model_init

    out = tmp_path_factory.mktemp("models") / "init"
    run_model_init(ModelInitConfig(dataset_dir=tiny_rows_dir, out_dir=out, vocab_size=512, hidden_size=32,
                                   num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64))
    return out


def _stage_paths(root) -> dict:
    return {"out_dir": root / "model", "checkpoint_dir": root / "checkpoints", "metrics_path": root / "metrics.json",
            "plots_dir": root / "plots"}


@pytest.fixture
def stage_paths(tmp_path) -> dict:
    """Output paths of a training stage under tmp_path (keeps tests out of models/, metrics/, plots/)."""
    return _stage_paths(tmp_path)


@pytest.fixture(scope="session")
def tiny_sft_dir(tiny_model_dir, tiny_rows_dir, tmp_path_factory):
    """The tiny model after a short, high-learning-rate SFT on the tiny rows (~7 s): sampled replies are
    the expert action about a quarter of the time, so GRPO rewards vary within a group."""
    from taskplan.train.sft import SftConfig, run_sft

    root = tmp_path_factory.mktemp("sft")
    cfg = SftConfig(model_dir=str(tiny_model_dir), dataset_dir=tiny_rows_dir, **_stage_paths(root),
                    max_steps=150, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0, lr_scheduler="constant",
                    save_steps=100, val_rows=2, val_max_new_tokens=4)
    return run_sft(cfg).out_dir


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's test harness: a temporary server and database for the session (flows, cluster fan-out)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def dask_cluster(prefect_harness):
    """The address of a dask.distributed cluster of 2 worker processes on this machine (one thread each),
    started for the session: what `generate.cluster` / `evaluate.cluster` point at."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(autouse=True)
def _no_stage_tracking(monkeypatch):
    """Stage commands log to MLflow by default; unit tests keep ./mlflow.db untouched (tests/tracking
    and tests/flows exercise tracking against a store in tmp_path)."""
    monkeypatch.setenv("TASKPLAN_TRACK", "0")


@pytest.fixture
def unreadable_files(tmp_path):
    """Files no reader should trace back on: {"loop": a symlink to itself, "binary": not UTF-8,
    "deep": JSON/YAML nested 200k deep} (the folder tmp_path/unreadable itself is the directory case)."""
    root = tmp_path / "unreadable"
    root.mkdir()
    loop = root / "loop.json"
    loop.symlink_to(loop)
    (root / "bin.json").write_bytes(b"\xff\xfe\x00{}")
    (root / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    return {"directory": root, "loop": loop, "binary": root / "bin.json", "deep": root / "deep.json"}


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `taskplan ARGS...` in this process: (exit code, stdout, stderr)."""
    import sys

    from taskplan.cli import main

    monkeypatch.setattr(sys, "argv", ["taskplan", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as ex:
        code = ex.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def swap_stage_run(monkeypatch, name: str, run) -> None:
    """Make stage `name` run `run` instead (the CLI and the flow take a stage's run from the catalog)."""
    import dataclasses

    from taskplan.catalog import stage_specs

    monkeypatch.setitem(stage_specs(), name, dataclasses.replace(stage_specs()[name], run=run))


@pytest.fixture
def cli(monkeypatch, capsys):
    """`cli(*args)`: run_main with this test's monkeypatch and capsys."""
    return lambda *args: run_main(monkeypatch, capsys, *args)
