"""Small trajectory files (2 tasks x 2 seeds) generated once per session, and helpers to corrupt copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TASKS = ("cheese_sandwich", "burger")


def generate_into(out: Path, noise_levels=(0.0,), workers: int = 0, seeds: int = 2, tasks=TASKS, seed: int = 42):
    from taskplan.data.trajectories import GenerateConfig, run_generate

    cfg = GenerateConfig(tasks=tasks, num_train_seeds=seeds, noise_levels=noise_levels, out_dir=out,
                         metrics_path=out.parent / f"{out.name}_generate.json", suite=None, workers=workers,
                         seed=seed)
    return run_generate(cfg)


@pytest.fixture(scope="session")
def generate():
    """generate_into(out, noise_levels=(0.0,), workers=0, seeds=2, tasks=TASKS, seed=42) -> GenerateResult."""
    return generate_into


@pytest.fixture(scope="session")
def clean_trajectories(tmp_path_factory) -> Path:
    """outputs/trajectories-like dir with trajectories_eps0.0.jsonl: 2 tasks x seeds 1000, 1001 (valid)."""
    out = tmp_path_factory.mktemp("gen") / "trajectories"
    generate_into(out)
    return out


@pytest.fixture
def traj_copy(clean_trajectories, tmp_path):
    """A fresh copy of the clean trajectories plus a function to rewrite its eps0.0 file episode by episode."""
    out = tmp_path / "trajectories"
    shutil.copytree(clean_trajectories, out)
    path = out / "trajectories_eps0.0.jsonl"

    def rewrite(edit) -> Path:
        episodes = [json.loads(line) for line in path.read_text().splitlines()]
        episodes = edit(episodes)
        path.write_text("".join(json.dumps(ep) + "\n" for ep in episodes))
        return out

    return out, rewrite
