"""Expert trajectories: the `generate` stage.

    cfg = GenerateConfig(tasks=("burger",), num_train_seeds=2)
    result = run_generate(cfg)          # writes outputs/trajectories/trajectories_eps0.0.jsonl

One JSONL file per noise level eps, one episode a line, in a fixed order
(task order of the config, then seed):

    {"task", "seed", "eps", "optimal_steps", "steps": [{"step", "observation",
     "valid_actions", "goal", "expert_action", "action", "is_noise"}, ...]}

`expert_action` is the label a*(s): the first action of the expert's unique
minimal plan from the state the step starts in. `action` is what was executed.
With eps = 0 they are equal and the episode is the expert plan itself
(`len(steps) == optimal_steps`). With eps > 0 the noisy expert executes, with
probability eps, a uniformly drawn valid action other than a*(s) (`is_noise`),
then re-plans from the state it lands in; noise is drawn only while the
episode is shorter than NOISE_CAP x optimal_steps, so every episode ends. The
noise stream of an episode is seeded by (common.seed, task, seed, eps) through
`random.Random(str)`, which is stable across processes and machines, so the
same params give byte-identical files whatever the worker count.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskplan.catalog import StageSpec
from taskplan.data.suite import read_suite
from taskplan.errors import ConfigError, PlanningTimeout
from taskplan.expert.noisy import noisy_rollout
from taskplan.io import atomic_dir, atomic_write_json, atomic_write_jsonl, path_digest
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import seeded_instance
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, get_task
from taskplan.orchestrate.fanout import check_cluster, chunks, run_shards

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]   # (episodes done, episodes total)


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    tasks: tuple[str, ...] = PAPER_TASKS           # training tasks (catalogue names)
    train_seeds_start: int = 1000                  # training seeds: start, start + 1, ...
    num_train_seeds: int = 50                      # seeds per task
    noise_levels: tuple[float, ...] = (0.0,)       # one trajectory file per eps of the noisy expert
    out_dir: Path = Path("outputs/trajectories")   # JSONL files + manifest.json
    metrics_path: Path = Path("metrics/generate.json")
    suite: Path | None = Path("data/suite.json")   # frozen inputs: held-out evaluation seeds
    workers: int = 2                               # planner processes (0 or 1: in-process)
    cluster: str = ""                              # Dask scheduler tcp://HOST:PORT or local:N: plan shards there
    shard_seeds: int = 10                          # seeds per shard (task, seed chunk, eps) on the cluster
    max_plan_seconds: float = 120.0                # per planner call; PlanningError beyond it
    skip_slow: bool = False                        # a (task, seed, eps) whose planning runs out of time is
                                                   # skipped and counted (metrics `skipped`) instead of failing
    seed: int = 42                                 # common.seed: seeds the noise streams

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("generate.tasks is empty; list at least one task, e.g. [burger]")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"generate.tasks={list(self.tasks)} repeats a task; list each once")
        for name in self.tasks:
            if get_task(name).name != name:
                raise ConfigError(f"generate.tasks: use the task name {get_task(name).name!r}, not {name!r}")
        if self.num_train_seeds < 1 or self.train_seeds_start < 0:
            raise ConfigError(f"generate: need train_seeds_start >= 0 and num_train_seeds >= 1, got "
                              f"{self.train_seeds_start} and {self.num_train_seeds}")
        overlap = sorted(set(self.train_seeds) & set(EVAL_SEEDS))
        if overlap:
            raise ConfigError(f"generate: training seeds {self.train_seeds_start}..{self.train_seeds[-1]} include "
                              f"evaluation seed(s) {overlap}; move generate.train_seeds_start above {max(EVAL_SEEDS)}")
        if not self.noise_levels or len(set(self.noise_levels)) != len(self.noise_levels):
            raise ConfigError(f"generate.noise_levels={list(self.noise_levels)}: give distinct values, e.g. [0.0, 0.1]")
        bad = [e for e in self.noise_levels if not 0.0 <= e < 1.0]
        if bad:
            raise ConfigError(f"generate.noise_levels: {bad} outside [0, 1)")
        if self.workers < 0:
            raise ConfigError(f"generate.workers={self.workers}: must be >= 0")
        if not self.max_plan_seconds > 0:   # NaN too
            raise ConfigError(f"generate.max_plan_seconds={self.max_plan_seconds}: must be > 0")
        if self.cluster:
            check_cluster(self.cluster, "generate.cluster")
        if self.shard_seeds < 1:
            raise ConfigError(f"generate.shard_seeds={self.shard_seeds}: must be >= 1")

    @property
    def train_seeds(self) -> tuple[int, ...]:
        return tuple(range(self.train_seeds_start, self.train_seeds_start + self.num_train_seeds))

    @property
    def jobs(self) -> list[tuple[str, int, float, int, float]]:
        """(task, seed, eps, noise seed, planner limit) in output order."""
        return [(t, s, e, self.seed, self.max_plan_seconds, self.skip_slow)
                for e in self.noise_levels for t in self.tasks for s in self.train_seeds]


@dataclass(frozen=True, slots=True)
class GenerateResult:
    files: dict[str, dict] = field(default_factory=dict)   # file name -> {eps, episodes, steps, noise_steps, sha256}
    seconds: float = 0.0
    optimal_steps: dict[str, float] = field(default_factory=dict)   # task -> mean optimal steps
    skipped: dict[str, int] = field(default_factory=dict)   # task -> episodes skipped (planner out of time)

    @property
    def episodes(self) -> int:
        return sum(f["episodes"] for f in self.files.values())

    @property
    def steps(self) -> int:
        return sum(f["steps"] for f in self.files.values())

    @property
    def metrics(self) -> dict:
        return {"episodes": self.episodes, "steps": self.steps, "seconds": round(self.seconds, 2),
                "episodes_per_second": round(self.episodes / self.seconds, 2) if self.seconds else None,
                "optimal_steps_mean": self.optimal_steps,
                **({"skipped": self.skipped} if self.skipped else {}),
                "files": {k: {x: v[x] for x in ("episodes", "steps", "noise_steps")} for k, v in self.files.items()}}

    def summary(self) -> str:
        return (f"generated {self.episodes} episodes, {self.steps} steps in {len(self.files)} file(s) "
                f"in {self.seconds:.1f} s" + (f", {sum(self.skipped.values())} skipped (planner out of time)"
                                               if self.skipped else ""))


def trajectory_file_name(eps: float) -> str:
    """`trajectories_eps0.0.jsonl` (repr of the float, so 0.05 and 0.1 never collide)."""
    return f"trajectories_eps{float(eps)!r}.jsonl"


def run_generate(cfg: GenerateConfig, progress: Progress | None = None) -> GenerateResult:
    """Plan every (task, seed) for every noise level and write the trajectory files atomically."""
    t0 = time.perf_counter()
    if cfg.suite is not None:
        check_against_suite(cfg.train_seeds, cfg.suite)
    jobs = cfg.jobs
    if cfg.cluster:
        done = _run_on_cluster(jobs, cfg, progress)
    else:
        log.info("generating %d episodes (%d tasks x %d seeds x %d noise levels) with %d worker(s)", len(jobs),
                 len(cfg.tasks), cfg.num_train_seeds, len(cfg.noise_levels), max(cfg.workers, 1))
        done = _run_jobs(jobs, cfg.workers, progress)
    episodes = [ep for ep in done if "skipped" not in ep]
    skipped: dict[str, int] = {}
    for ep in done:
        if "skipped" in ep:
            skipped[ep["task"]] = skipped.get(ep["task"], 0) + 1
            log.warning("skipped %s seed %d eps %g: %s", ep["task"], ep["seed"], ep["eps"], ep["skipped"])
    files: dict[str, dict] = {}
    with atomic_dir(cfg.out_dir) as tmp:
        for eps in cfg.noise_levels:
            name = trajectory_file_name(eps)
            eps_episodes = [ep for ep in episodes if ep["eps"] == eps]
            atomic_write_jsonl(tmp / name, eps_episodes)
            files[name] = {"eps": eps, "episodes": len(eps_episodes),
                           "steps": sum(len(ep["steps"]) for ep in eps_episodes),
                           "noise_steps": sum(s["is_noise"] for ep in eps_episodes for s in ep["steps"]),
                           "sha256": path_digest(tmp / name)}
        atomic_write_json(tmp / "manifest.json", {
            "tasks": list(cfg.tasks), "train_seeds": [cfg.train_seeds_start, cfg.num_train_seeds],
            "noise_levels": list(cfg.noise_levels), "noise_seed": cfg.seed, "files": files,
            **({"skipped": sorted([ep["task"], ep["seed"], ep["eps"]] for ep in done if "skipped" in ep)}
               if skipped else {})})
    optimal: dict[str, list[int]] = {}
    for ep in episodes:
        if ep["eps"] == cfg.noise_levels[0]:
            optimal.setdefault(ep["task"], []).append(ep["optimal_steps"])
    result = GenerateResult(files=files, seconds=time.perf_counter() - t0,
                            optimal_steps={t: round(sum(v) / len(v), 2) for t, v in optimal.items()},
                            skipped=skipped)
    atomic_write_json(cfg.metrics_path, result.metrics)
    log.debug(result.summary())
    return result


def expert_episode(task: str, seed: int, eps: float = 0.0, noise_seed: int = 42,
                   max_seconds: float | None = None) -> dict:
    """One episode of the (noisy) expert on the seeded layout of `task` (see module docstring)."""
    env = KitchenEnv(seeded_instance(task, seed))
    rng = random.Random(f"{noise_seed}:{task}:{seed}:{float(eps)!r}")
    optimal, steps = noisy_rollout(env, eps, rng, max_seconds=max_seconds)
    goal = env.world.goal_text
    steps = [{**{k: st[k] for k in ("step", "observation", "valid_actions")}, "goal": goal,
              **{k: st[k] for k in ("expert_action", "action", "is_noise")}} for st in steps]
    return {"task": task, "seed": seed, "eps": float(eps), "optimal_steps": optimal, "steps": steps}


def check_against_suite(train_seeds: tuple[int, ...], suite_path: Path) -> dict:
    """Refuse training seeds that the frozen suite holds out for evaluation (ConfigError)."""
    suite = read_suite(suite_path)
    held_out = set(suite.get("eval_seeds") or []) | set(EVAL_SEEDS)
    overlap = sorted(set(train_seeds) & held_out)
    if overlap:
        raise ConfigError(f"training seeds include held-out evaluation seed(s) {overlap[:5]} of {suite_path}; "
                          f"move generate.train_seeds_start")
    lo, hi = suite.get("train_seed_range") or (0, 2**31)
    if train_seeds[0] < lo or train_seeds[-1] >= hi:
        raise ConfigError(f"training seeds {train_seeds[0]}..{train_seeds[-1]} leave the suite's train_seed_range "
                          f"[{lo}, {hi}) of {suite_path}")
    return suite


def _episode_job(job: tuple[str, int, float, int, float, bool]) -> dict:
    task, seed, eps, noise_seed, max_seconds, skip_slow = job
    try:
        return expert_episode(task, seed, eps, noise_seed, max_seconds)
    except PlanningTimeout as err:
        if not skip_slow:
            raise
        return {"task": task, "seed": seed, "eps": float(eps), "skipped": str(err)}


def episodes_shard(jobs: list[tuple[str, int, float, int, float, bool]]) -> list[dict]:
    """One shard on a cluster worker: the episodes of consecutive jobs (one task, a chunk of seeds, one eps)."""
    return [_episode_job(job) for job in jobs]


def _run_on_cluster(jobs: list, cfg: GenerateConfig, progress: Progress | None) -> list[dict]:
    """Jobs cut into (eps, task, seed chunk) shards, planned on the cluster, flattened back in job order:
    the files are byte for byte those of a serial run (each episode depends only on its own job)."""
    per_block = cfg.num_train_seeds   # jobs run eps-major, then task, then seed: a block is one (eps, task)
    shards = [c for b in range(0, len(jobs), per_block) for c in chunks(jobs[b:b + per_block], cfg.shard_seeds)]
    log.info("generating %d episodes in %d shards on cluster %s", len(jobs), len(shards), cfg.cluster)
    sizes = [len(s) for s in shards]
    shard_progress = None
    if progress is not None:
        shard_progress = lambda done, _n: progress(sum(sizes[:done]), len(jobs))
    return [ep for shard in run_shards(episodes_shard, shards, cfg.cluster, "generate", shard_progress)
            for ep in shard]


def _worker_signals() -> None:
    """Forked workers inherit the parent's handlers (under a Prefect worker, one that raises
    TerminationSignal): the pool ends its workers with SIGTERM, which must just end them; Ctrl-C is the
    parent's to handle. SIGTERM arrives blocked (see `_run_jobs`) and is let through once it kills."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _run_jobs(jobs: list, workers: int, progress: Progress | None) -> list[dict]:
    """Episodes in job order; a pool's `imap` keeps the order whatever finishes first."""
    out: list[dict] = []
    if progress:
        progress(0, len(jobs))
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            out.append(_episode_job(job))
            if progress:
                progress(len(out), len(jobs))
        return out
    import multiprocessing as mp

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    # Workers start with SIGTERM blocked, until `_worker_signals` has put the default action back. When
    # the first worker ends every job before the last one is up, the pool terminates that one while it
    # is still starting: with the parent's handler (Prefect's) it raised inside an at-fork hook, where
    # Python drops the exception, and the worker lived on with the pool waiting for it for ever.
    # (The pool's own threads start inside the block too, so workers it forks later inherit it.)
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pool = ctx.Pool(min(workers, len(jobs)), initializer=_worker_signals)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    with pool:
        for episode in pool.imap(_episode_job, jobs, chunksize=1):
            out.append(episode)
            if progress:
                progress(len(out), len(jobs))
    return out


STAGE = StageSpec("generate", GenerateConfig, run_generate,
                  "Expert trajectories (one JSONL per noise level) for the training tasks x training seeds.",
                  progress="expert episodes")
