"""Fan-out over a Dask cluster (orchestrate/fanout.py): results in shard order, a worker killed mid-shard
costs that shard's rerun and not the run, and expert generation on 2 workers writes the serial run's
bytes. The cluster is a LocalCluster of 2 worker processes started by the session (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import cloudpickle
import pytest

from taskplan.data.trajectories import GenerateConfig, run_generate
from taskplan.errors import ConfigError
from taskplan.orchestrate.fanout import check_cluster, chunks, run_shards

# the shard functions below live in this test module, which the workers cannot import: ship them by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _square_dying_once(arg: tuple[int, str]) -> tuple[int, int]:
    """Shard 1 kills the worker process running it the first time (a machine lost mid-shard)."""
    n, marker = arg
    if n == 1 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return n * n, os.getpid()


def test_a_worker_killed_mid_shard_costs_the_shard_not_the_run(dask_cluster, tmp_path):
    marker = str(tmp_path / "killed")
    seen: list[tuple[int, int]] = []
    results = run_shards(_square_dying_once, [(n, marker) for n in range(6)], dask_cluster, "kill-test",
                         progress=lambda done, total: seen.append((done, total)))
    assert [r for r, _ in results] == [0, 1, 4, 9, 16, 25]          # every shard, in shard order
    killed = int(Path(marker).read_text())
    assert results[1][1] != killed, "shard 1 was run again, by another worker process"
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)


def test_generation_on_two_workers_writes_the_serial_bytes(dask_cluster, tmp_path):
    common = dict(tasks=("cheese_sandwich", "burger"), num_train_seeds=5, noise_levels=(0.0, 0.2), suite=None)
    serial = run_generate(GenerateConfig(**common, workers=0, out_dir=tmp_path / "serial",
                                         metrics_path=tmp_path / "serial.json"))
    sharded = run_generate(GenerateConfig(**common, cluster=dask_cluster, shard_seeds=2,
                                          out_dir=tmp_path / "cluster", metrics_path=tmp_path / "cluster.json"))
    names = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "cluster").iterdir())
    assert len(names) == 3 and sharded.episodes == serial.episodes == 20
    for name in names:   # both trajectory files and the manifest (which holds their sha256)
        assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name


@pytest.mark.parametrize("value", ["", "local:2", "tcp://10.0.0.5:8786", "tls://scheduler:8786"])
def test_cluster_values_that_are_accepted(value):
    check_cluster(value, "evaluate.cluster")


@pytest.mark.parametrize("value", ["local:0", "local", "10.0.0.5:8786", "yes", "tcp://"])
def test_a_bad_cluster_is_one_line_that_says_what_to_write(value):
    with pytest.raises(ConfigError, match=r"tcp://HOST:8786, local:N .* or leave it empty") as err:
        GenerateConfig(cluster=value, suite=None)
    assert "\n" not in str(err.value) and "generate.cluster" in str(err.value)


def test_chunks_keep_order_and_cover_everything():
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunks([1, 2], 0) == [[1, 2]] and chunks([], 4) == []
