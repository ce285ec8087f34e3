"""Evaluation fanned out over a Dask cluster of 2 workers, against the serial run in the same process.

    python -m benchmarks.bench_fanout                       # random + expert + the kitchen base, paper tasks
    python -m benchmarks.bench_fanout --seeds 4 --no-model  # quicker: built-in policies only
    python -m benchmarks.bench_fanout --cluster tcp://HOST:8786   # an existing cluster instead of local:2

It plays the same evaluation twice: serially (`evaluate.cluster` empty), then on the cluster (a
LocalCluster of 2 single-thread worker processes, started before the clock starts), and prints each
wall-clock, the ratio, and whether the two eval.json files are byte-identical. The model policy is the
committed kitchen base (models/base) at batch size 1, so both runs play the same computation.
On a 2-core machine 2 workers can at best halve the time; the shard overhead (a Prefect task run and
a model load per shard) is what the ratio shows against that.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from taskplan.env import quiet_env
from taskplan.evaluate.stage import EvaluateConfig, run_evaluate
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS


def _config(root: Path, args: argparse.Namespace, cluster: str) -> EvaluateConfig:
    policies = ["random", "expert"] + ([] if args.no_model else [f"base={args.model}"])
    return EvaluateConfig(policies=tuple(policies), tasks=PAPER_TASKS, seeds=EVAL_SEEDS[:args.seeds], suite=None,
                          batch_size=1, bound=False, opt_samples=0, dtype="float32", cpu_threads=1,
                          max_new_tokens=48, prompt_style="compact", reasoning=1,
                          out_path=root / "eval.json", outputs_dir=root / "eval", cluster=cluster,
                          shard_seeds=args.shard_seeds)


def _timed(cfg: EvaluateConfig) -> float:
    start = time.perf_counter()
    run_evaluate(cfg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="evaluation seeds per task (of the paper's ten)")
    parser.add_argument("--shard-seeds", type=int, default=5, help="seeds per shard")
    parser.add_argument("--model", default="models/base", help="model folder of the model policy")
    parser.add_argument("--no-model", action="store_true", help="built-in policies only")
    parser.add_argument("--cluster", default="", help="scheduler address (default: a LocalCluster of 2 workers)")
    args = parser.parse_args()
    quiet_env()
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        root = Path(tmp)
        serial = _timed(_config(root / "serial", args, ""))
        if args.cluster:
            address, cluster = args.cluster, None
        else:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            address = cluster.scheduler_address
        try:
            fanned = _timed(_config(root / "cluster", args, address))
        finally:
            if cluster is not None:
                cluster.close()
        same = (root / "serial" / "eval.json").read_bytes() == (root / "cluster" / "eval.json").read_bytes()
    episodes = len(PAPER_TASKS) * args.seeds * (2 if args.no_model else 3)
    print(f"evaluate serial      {serial:8.1f} s  ({episodes} episodes)")
    print(f"evaluate 2 workers   {fanned:8.1f} s  {serial / fanned:5.2f} x serial  (eval.json identical: {same})")


if __name__ == "__main__":
    main()
