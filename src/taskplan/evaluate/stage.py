"""Stage `evaluate`: policies x tasks x seeds -> metrics JSON, and the evaluation settings it shares.

    cfg = load_config(EvaluateConfig, "evaluate", "params.yaml")
    result = run_evaluate(cfg)       # metrics/eval.json + outputs/eval/<policy>.jsonl

`run_evaluate` plays every (task, seed) episode of every policy in
`cfg.policies` (batched, see rollout.py), computes SR/ASAT/ASST per task
(metrics.py), adds each instance's true optimum from the planner and, for
model policies, the mean product bound (bound.py). It writes the docs/pipeline.md 4
contract `{policy: {task: {"sr", "asat", "asst", "episodes",
"invalid_actions", "bound", ...}}}` and one transcript JSONL per policy.

`EvalSettings` holds how episodes are played and decoded (tasks, seeds, suite,
prompt, retries, batch, sampling, device); `EvaluateConfig` and cross_task.py's
`CrossTaskConfig` inherit it, so both stages play episodes the same way, and
`evaluate_policy`, `resolve_specs` and `with_caps` serve both.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from taskplan.catalog import StageSpec
from taskplan.data.suite import read_suite
from taskplan.errors import ConfigError, ModelNotFoundError
from taskplan.evaluate.bound import (
    optimal_plans,
)
from taskplan.evaluate.metrics import add_sampled_sr_opt, policy_runs
from taskplan.evaluate.outcome import (
    PolicyEvaluation,
    PolicyOutcome,
    play_mode,
    policy_evaluation,
    policy_modes,
    release_policy,
    set_cpu_threads,
)
from taskplan.evaluate.policies import (
    Policy,
    PolicyOptions,
    check_policy_specs,
    make_policy,
    parse_policy_spec,
    policy_kind,
)
from taskplan.evaluate.rollout import EpisodeSpec, Progress, RolloutSettings, write_transcripts
from taskplan.evaluate.sharded import evaluate_on_cluster
from taskplan.evaluate.single_turn import single_turn_outcomes, validation_rows
from taskplan.io import atomic_write_json, atomic_write_jsonl, read_json_input
from taskplan.kitchen.tasks import EVAL_SEEDS, PAPER_TASKS, get_task
from taskplan.orchestrate.fanout import check_cluster

log = logging.getLogger(__name__)


# kw_only: outputs_dir has no default here (each stage has its own folder) yet follows fields with defaults.
@dataclass(frozen=True, slots=True, kw_only=True)
class EvalSettings:
    """How episodes are played and decoded; subclass it (frozen, slotted, kw_only) and set `section`."""

    section: ClassVar[str] = "eval"       # params.yaml section, names the field in error messages
    tasks: tuple[str, ...] = ()          # empty: the suite's eval_tasks (no suite: the four paper tasks)
    seeds: tuple[int, ...] = ()          # empty: the suite's eval_seeds (no suite: 42, 84, ..., 420)
    suite: Path | None = Path("data/suite.json")  # frozen evaluation suite (tasks and seeds)
    history: bool = True                 # previous action (+ reasoning) in the prompt, as in training rows
    prompt_style: str = "full"           # full | short | compact (match build_dataset.prompt_style)
    reasoning: int = 0                   # subgoals in expert replies (= build_dataset.reasoning)
    max_retries: int = 5                 # invalid replies in a row that exhaust a turn (docs/kitchen.md 9)
    max_exhausted: int = 3               # exhausted turns that fail the episode (docs/kitchen.md 9)
    batch_size: int = 40                 # episodes advanced together = generation batch (1: one at a time)
    max_new_tokens: int = 48             # reply budget (reasoning line + "Action: ..." is ~30 domain tokens)
    temperature: float = 0.0             # 0 = greedy decoding
    top_p: float = 1.0                   # nucleus sampling when temperature > 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    dtype: str = "auto"                  # auto | float32 | bfloat16 | float16
    cpu_threads: int = 0                 # torch intra-op threads (0 = torch's default; 1 wins on a busy CPU)
    pad_tolerance: float | None = None   # batch prompts up to (1 + this) x the shortest's length; None: auto
    planner_seconds: float = 300.0       # expert planner limit per call
    keep_prompts: bool = False           # store every turn's user message in the transcripts (large)
    outputs_dir: Path                    # transcripts <name>.jsonl
    seed: int = 42                       # common.seed: random policy streams, sampling

    def __post_init__(self) -> None:
        """The stage's own checks (`check`), then the shared ones."""
        self.check()
        section = self.section
        for name in self.tasks:
            get_task(name)
        if len(set(self.tasks)) != len(self.tasks) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{section}.tasks and {section}.seeds must not repeat entries")
        RolloutSettings(self.history, self.prompt_style, max_batch=self.batch_size)   # validates those three
        if self.max_new_tokens < 1:
            raise ConfigError(f"{section}.max_new_tokens={self.max_new_tokens}: must be >= 1")
        if self.temperature < 0:
            raise ConfigError(f"{section}.temperature={self.temperature}: must be >= 0 (0 = greedy)")
        if self.cpu_threads < 0:
            raise ConfigError(f"{section}.cpu_threads={self.cpu_threads}: use 0 (torch's default) or a positive count")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"{section}.dtype={self.dtype!r}; use auto, float32, bfloat16 or float16")

    def check(self) -> None:
        """A stage's own checks (ConfigError); run before the shared ones."""

    def endpoint_options(self) -> dict[str, Any]:
        """PolicyOptions fields a stage sets beyond the shared ones (evaluate: the chat-endpoint knobs)."""
        return {}

    @property
    def settings(self) -> RolloutSettings:
        return RolloutSettings(self.history, self.prompt_style, self.max_retries, self.max_exhausted,
                               self.batch_size, self.keep_prompts, self.reasoning)

    @property
    def options(self) -> PolicyOptions:
        return PolicyOptions(self.seed, self.max_new_tokens, self.temperature, self.top_p, self.batch_size,
                             self.device, self.dtype, planner_seconds=self.planner_seconds,
                             pad_tolerance=self.pad_tolerance, **self.endpoint_options())


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateConfig(EvalSettings):
    """params.yaml `evaluate:`; how episodes are played is EvalSettings'."""

    section: ClassVar[str] = "evaluate"
    policies: tuple[str, ...] = ("random", "expert")  # name | name=MODEL_DIR | name=HUB_ID | name=http(s)://URL
    bound: bool = True                   # product bound for model policies (teacher-forced expert replies)
    opt_samples: int = 5                 # sampled rollouts (temperature 1) per instance for SR@opt vs bound
    constrained: tuple[str, ...] = ()    # model policies also evaluated with constrained decoding
    endpoint_model: str = ""             # "model" sent to chat endpoints ("" = the policy name)
    endpoint_concurrency: int = 8        # requests in flight to a chat endpoint
    endpoint_timeout: float = 30.0       # seconds a chat endpoint may take per turn, all tries together
    merge: bool = False                  # keep other policies already present in out_path
    single_turn_datasets: tuple[Path, ...] = ()   # datasets whose validation rows are judged by kind and outcome
    single_turn_rows: int = 400          # how many rows of each, spread evenly (0: all)
    cluster: str = ""                    # Dask scheduler tcp://HOST:PORT or local:N: play shards there
    shard_seeds: int = 10                # seeds per shard (policy, task, seed chunk) on the cluster
    single_turn_path: Path | None = None   # {policy: {all|move|other|task/<t>: outcomes}}; set: always written
    holdout_policies: tuple[str, ...] = ()   # also played on the extra held-out seeds (e.g. the candidate)
    holdout_seed_start: int = 500        # extra held-out seeds start, start + 1, ... (below the training range)
    holdout_num_seeds: int = 0           # how many (0: none)
    holdout_path: Path | None = None     # eval.json's layout for those seeds; set: always written ({} if none)
    out_path: Path = Path("metrics/eval.json")
    outputs_dir: Path = Path("outputs/eval")  # <policy>.jsonl transcripts, <policy>.bound.jsonl bounds

    def check(self) -> None:
        if not self.policies:
            raise ConfigError("evaluate.policies is empty; e.g. [random, expert, sft=models/sft]")
        names = [parse_policy_spec(p)[0] for p in self.policies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"evaluate.policies names {', '.join(dup)} twice; give each policy its own name")
        unknown = [c for c in self.constrained if c not in names]
        if unknown:
            raise ConfigError(f"evaluate.constrained names {', '.join(unknown)}, which evaluate.policies does not "
                              f"list; use some of: {', '.join(names)}")
        if self.opt_samples < 0:
            raise ConfigError(f"evaluate.opt_samples={self.opt_samples}: use 0 (off) or a number of samples")
        unknown = [h for h in self.holdout_policies if h not in names]
        if unknown:
            raise ConfigError(f"evaluate.holdout_policies names {', '.join(unknown)}, which evaluate.policies does "
                              f"not list; use some of: {', '.join(names)}")
        clash = sorted(set(self.holdout_seeds) & (set(self.seeds) | set(EVAL_SEEDS)))
        if self.holdout_num_seeds < 0 or self.holdout_seed_start < 0 or clash:
            raise ConfigError(f"evaluate.holdout_seed_start={self.holdout_seed_start}, holdout_num_seeds="
                              f"{self.holdout_num_seeds}: need non-negative values and seeds apart from the "
                              f"evaluation seeds (overlap: {clash[:5]})")
        if self.single_turn_datasets and self.single_turn_path is None:
            raise ConfigError("evaluate.single_turn_datasets is set but single_turn_path is not; name the file")
        if self.holdout_policies and self.holdout_num_seeds and self.holdout_path is None:
            raise ConfigError("evaluate.holdout_policies is set but holdout_path is not; name the file")
        if self.single_turn_rows < 0:
            raise ConfigError(f"evaluate.single_turn_rows={self.single_turn_rows}: use 0 (all rows) or a count")
        if self.cluster:
            check_cluster(self.cluster, "evaluate.cluster")
        if self.shard_seeds < 1:
            raise ConfigError(f"evaluate.shard_seeds={self.shard_seeds}: must be >= 1")

    @property
    def holdout_seeds(self) -> tuple[int, ...]:
        return tuple(range(self.holdout_seed_start, self.holdout_seed_start + self.holdout_num_seeds))

    def endpoint_options(self) -> dict[str, Any]:
        """The chat-endpoint knobs (cross-task evaluates model folders only)."""
        return {"endpoint_model": self.endpoint_model, "endpoint_concurrency": self.endpoint_concurrency,
                "endpoint_timeout": self.endpoint_timeout}


@dataclass(frozen=True, slots=True)
class EvaluateResult:
    doc: dict[str, dict[str, dict[str, Any]]]   # the eval.json document
    out_path: Path
    files: tuple[Path, ...]                     # everything written (eval.json first)
    seconds: float
    policies: tuple[str, ...] = ()              # the evaluated specs (NAME=TARGET)

    @property
    def metrics(self) -> dict[str, float]:
        """The evaluate run's own numbers; per-task metrics live in one child run per policy."""
        runs = self.child_runs
        return {**{f"eval/{name}/sr_mean": r["metrics"]["sr_mean"] for name, r in runs.items()
                   if "sr_mean" in r["metrics"]}, "eval/seconds": round(self.seconds, 3)}

    @property
    def child_runs(self) -> dict[str, dict]:
        return policy_runs(self.doc, self.policies)

    def summary(self) -> str:
        return f"evaluate: {sr_line(self.doc)} -> {self.out_path} ({self.seconds:.1f} s)"

    def to_json(self) -> dict[str, Any]:
        return self.doc


def run_evaluate(cfg: EvaluateConfig, progress: Progress | None = None) -> EvaluateResult:
    start = time.perf_counter()
    specs = resolve_specs(cfg.tasks, cfg.seeds, cfg.suite)
    check_policy_specs(cfg.policies)   # every spec loadable before anything is written
    set_cpu_threads(cfg.cpu_threads)
    plans = optimal_plans(specs, cfg.planner_seconds)
    specs = with_caps(specs, plans)
    doc = _existing(cfg.out_path) if cfg.merge else {}
    holdout_specs: list[EpisodeSpec] = []
    if cfg.holdout_policies and cfg.holdout_seeds:
        if cfg.suite is not None:
            lo, hi = read_suite(cfg.suite).get("train_seed_range") or (0, 0)
            inside = [s for s in cfg.holdout_seeds if lo <= s < hi]
            if inside:
                raise ConfigError(f"evaluate holdout seeds {inside[:3]}... lie in the training seed range [{lo}, {hi}) "
                                  f"of {cfg.suite}; move evaluate.holdout_seed_start below {lo}")
        holdout_specs = resolve_specs(cfg.tasks, cfg.holdout_seeds, cfg.suite)
        plans.update(optimal_plans(holdout_specs, cfg.planner_seconds))
        holdout_specs = with_caps(holdout_specs, plans)
    holdout: dict[str, Any] = {}
    rows = [r for d in cfg.single_turn_datasets for r in validation_rows(d, cfg.single_turn_rows)]
    single_turn: dict[str, Any] = {}
    files: list[Path] = []
    if cfg.cluster:   # every policy's shards at once; the outcomes merged in the serial order
        outcomes = iter(evaluate_on_cluster(cfg, specs, holdout_specs, plans, rows, progress))
    for n, spec in enumerate(cfg.policies):
        if cfg.cluster:
            outcome = next(outcomes)
        else:
            outcome = _evaluate_here(cfg, spec, specs, holdout_specs, plans, rows,
                                     offset_progress(progress, n * len(specs), len(cfg.policies) * len(specs)))
        name = parse_policy_spec(spec)[0]
        for mode_name, ev, sampled in outcome.modes:
            if sampled is not None:
                add_sampled_sr_opt(ev.table, sampled)
            for row in ev.table.values():   # which prompt produced the number (the report says it)
                row["prompt_style"] = cfg.prompt_style
            doc[mode_name] = ev.table
            files.append(cfg.outputs_dir / f"{mode_name}.jsonl")
            write_transcripts(files[-1], ev.episodes)
            if ev.bounds:
                files.append(cfg.outputs_dir / f"{mode_name}.bound.jsonl")
                atomic_write_jsonl(files[-1], (b.to_json() for b in ev.bounds))
            log.info("evaluated %s: %s", mode_name, sr_line({mode_name: ev.table}))
        if outcome.holdout is not None:
            holdout[name] = outcome.holdout.table
            log.info("held-out seeds %s: %s", name, sr_line({name: outcome.holdout.table}))
        if outcome.single_turn is not None:
            single_turn[name] = outcome.single_turn
    # a named file is always written (a declared output of the stage), {} when nothing was asked for
    for path, doc_part in ((cfg.holdout_path, holdout), (cfg.single_turn_path, single_turn)):
        if path is not None:
            atomic_write_json(path, doc_part)
            files.append(path)
    atomic_write_json(cfg.out_path, doc)
    return EvaluateResult(doc, cfg.out_path, (cfg.out_path, *files), time.perf_counter() - start, cfg.policies)


def _evaluate_here(cfg: EvaluateConfig, spec: str, specs: Sequence[EpisodeSpec], holdout_specs: Sequence[EpisodeSpec],
                   plans: Mapping[str, Sequence[str]], rows: Sequence[dict],
                   progress: Progress | None) -> PolicyOutcome:
    """One policy spec in this process: its modes (plain, constrained), held-out seeds and single-turn rows."""
    modes = policy_modes(spec, cfg.constrained, cfg.holdout_policies, bool(holdout_specs), bool(rows))
    policy = make_policy(spec, cfg.options)
    outcome = PolicyOutcome()
    try:
        for mode in modes:
            if mode == "holdout":
                outcome.holdout = evaluate_policy(policy, holdout_specs, cfg.settings, plans)
            elif mode == "single_turn":
                outcome.single_turn = single_turn_outcomes(policy, rows, cfg.planner_seconds)
            else:   # plain, or constrained decoding with the same weights (no second load)
                play = play_mode(policy, mode, specs, plans, cfg.settings, cfg.bound and mode == "plain",
                                 cfg.opt_samples, cfg.seed, progress)
                outcome.modes.append((play.name, policy_evaluation(play.episodes, plans, play.bounds),
                                      play.sampled))
    finally:
        release_policy(policy)
    return outcome


def evaluate_policy(policy: Policy, specs: Sequence[EpisodeSpec], settings: RolloutSettings = RolloutSettings(),
                    plans: Mapping[str, Sequence[str]] | None = None, bound: bool = False,
                    progress: Progress | None = None) -> PolicyEvaluation:
    """Roll out one policy on `specs`; metrics per task, plus the bound when the policy can score."""
    play = play_mode(policy, "plain", specs, plans, settings, bound, progress=progress)
    return policy_evaluation(play.episodes, plans, play.bounds)


def resolve_specs(tasks: Sequence[str], seeds: Sequence[int], suite: Path | None) -> list[EpisodeSpec]:
    """Episodes of tasks x seeds; empty tasks/seeds come from the suite file (or the paper's defaults)."""
    doc = read_suite(suite) if suite is not None and (not tasks or not seeds) else {}
    tasks = tuple(tasks) or tuple(doc.get("eval_tasks") or PAPER_TASKS)
    seeds = tuple(seeds) or tuple(doc.get("eval_seeds") or EVAL_SEEDS)
    return [EpisodeSpec(get_task(t).name, int(s)) for t in tasks for s in seeds]


def with_caps(specs: Sequence[EpisodeSpec], plans: Mapping[str, Sequence[str]]) -> list[EpisodeSpec]:
    """Tasks without a listed optimum get ceil(1.5 x the instance's true optimum) as their cap."""
    out = []
    for s in specs:
        cap = s.cap
        if cap is None and get_task(s.task).step_cap is None:
            cap = max(1, math.ceil(1.5 * len(plans[s.key])))
        out.append(EpisodeSpec(s.task, s.seed, cap))
    return out


def precheck_targets(specs: Sequence[str]) -> None:
    """Fail before any episode runs when a local model folder is missing."""
    for spec in specs:
        name, target = parse_policy_spec(spec)
        if policy_kind(target) != "model" or Path(target).expanduser().exists():
            continue
        hub_like = target.count("/") == 1 and not target.startswith((".", "/", "~", "models/", "outputs/"))
        if not hub_like:
            raise ModelNotFoundError(f"model folder {target} of policy {name!r} does not exist; run the stage "
                                     "that writes it (model-init, sft, grpo) or fix the policy list")


def offset_progress(progress: Progress | None, done_before: int, total: int) -> Progress | None:
    if progress is None:
        return None
    return lambda done, _n: progress(done_before + done, total)


def sr_line(doc: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    parts = []
    for name, table in doc.items():
        srs = [m.get("sr") for m in table.values() if m.get("sr") is not None]
        mean = sum(srs) / len(srs) if srs else float("nan")
        parts.append(f"{name} SR {mean:.2f} [" + " ".join(f"{(m.get('sr') or 0):.1f}" for m in table.values()) + "]")
    return "; ".join(parts)


def _existing(path: Path) -> dict:
    """The policies already in out_path (evaluate.merge); none when there is no file yet."""
    if not Path(path).exists():
        return {}
    doc = read_json_input(path, "evaluate.out_path", ConfigError, "delete it or run without evaluate.merge")
    return doc if isinstance(doc, dict) else {}


STAGE = StageSpec("evaluate", EvaluateConfig, run_evaluate,
                  "Multi-turn episodes of each policy on tasks x seeds: SR/ASAT/ASST, bound -> metrics/eval.json.",
                  progress="episodes", json=True, flaky_io=True)   # chat endpoints
