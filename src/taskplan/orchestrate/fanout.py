"""Fan shards of work out over a Dask cluster through Prefect's DaskTaskRunner; results come back in order.

    results = run_shards(plan_shard, shards, cluster="tcp://10.0.0.5:8786")   # an existing cluster
    results = run_shards(plan_shard, shards, cluster="local:2")               # a LocalCluster, 2 workers

Expert generation and evaluation call this when `generate.cluster` / `evaluate.cluster` is set; without it
they run as before, in this process (plus generate's fork pool), and nothing here is imported. Each shard
is one Prefect task run of one fan-out flow run (a subflow of the pipeline's flow run when the pipeline
runs it), so the Prefect UI shows every shard, its retries and its time.

Why Dask (prefect-dask) and not Ray: the shards are plain Python functions over picklable arguments, which
is what dask.distributed schedules; its scheduler and workers are two pip-installed commands with no
object store or dashboard service to run, and `LocalCluster` gives tests the same code path on one machine.

Failures cost a shard, not the run:
- a worker that dies mid-shard (killed, out of memory) loses only that shard: the scheduler notices the
  worker is gone and runs the shard again on another worker (dask's `allowed-failures`, 3 by default);
- a shard that raises is retried by Prefect `retries` times (flaky I/O on a worker), then fails the run.

A shard function must be deterministic in its arguments (expert planning, greedy decoding, per-episode
seeded streams), so whichever worker runs it, and however often, the merged result is the serial one.
Workers need taskplan installed (same version) and the inputs the shards read (model folders) at the same
paths; the merged outputs are written by the caller, on the machine that asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from taskplan.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")

SHARD_RETRIES = 2
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://\S+$")
_LOCAL = re.compile(r"^local:(\d+)$")


def check_cluster(value: str, field: str) -> None:
    """ConfigError unless `value` is "" (no cluster), `local:N` or a scheduler address."""
    if value == "" or _ADDRESS.match(value):
        return
    local = _LOCAL.match(value)
    if local and int(local.group(1)) >= 1:
        return
    raise ConfigError(f"{field}={value!r}: use a Dask scheduler address such as tcp://HOST:8786, local:N for a "
                      "cluster of N workers on this machine, or leave it empty to run here")


def task_runner(cluster: str) -> Any:
    """Prefect's DaskTaskRunner on the scheduler at `cluster`, or on a LocalCluster for `local:N`
    (N worker processes of one thread each: shards are CPU-bound Python, the GIL allows one at a time)."""
    from prefect_dask import DaskTaskRunner

    local = _LOCAL.match(cluster)
    if local:
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": int(local.group(1)), "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return DaskTaskRunner(address=cluster)


def run_shards(fn: Callable[[T], R], shards: Sequence[T], cluster: str, name: str,
               progress: Callable[[int, int], None] | None = None, retries: int = SHARD_RETRIES) -> list[R]:
    """`[fn(s) for s in shards]`, each call a task run on the cluster; results in the order of `shards`.
    `progress(done, total)` is called as shards finish (in any order)."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import as_completed

    check_cluster(cluster, "cluster")
    # NO_CACHE: a shard's result is never reused from an earlier run (and its arguments are not hashed)
    shard_task = task(fn, name=f"{name}-shard", retries=retries, retry_delay_seconds=1, cache_policy=NO_CACHE,
                      persist_result=False)

    @flow(name=name, task_runner=task_runner(cluster), persist_result=False, validate_parameters=False)
    def fan_out() -> list[R]:
        futures = [shard_task.submit(shard) for shard in shards]
        if progress is not None:
            progress(0, len(futures))
            for done, _ in enumerate(as_completed(futures), start=1):
                progress(done, len(futures))
        return [f.result() for f in futures]

    return fan_out()


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """`items` cut into consecutive runs of `size` (the last may be shorter); size < 1 means one chunk."""
    if size < 1:
        return [list(items)] if items else []
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
