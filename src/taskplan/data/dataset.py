"""Single-turn dataset: the `build_dataset` stage.

    rows = build_rows(read_episodes(path), cfg)      # plain dicts, split assigned
    result = run_build_dataset(cfg)                  # DatasetDict on disk + stats JSON

One row per step of an expert trajectory, columns exactly COLUMNS:
`prompt` (system + user messages, the prompt the agent sees at that state, with
the previous *executed* action), `completion` (the expert answer as an assistant
message), `answer` (the expert action a*(s), what the reward compares against),
`valid_actions`, `task`, `seed`, `step`, `source` (which trajectory file the
state comes from, `eps0.0`, `eps0.1`, ..., with `+feedback` on rows that follow
a rejected reply; (task, seed, step, source) is unique). Splits `train`/`validation` are drawn
BY SEED (a seed number goes to one split for every task), never by row.

The stage refuses to write rows that `taskplan validate` has not passed: the
validation report must exist, say passed, and name the same trajectory file
hash and the same row-building parameters (`validation_report: null` turns the
gate off).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from taskplan.catalog import StageSpec
from taskplan.data.prompts import answer_text, build_messages
from taskplan.data.reasoning import episode_reasonings
from taskplan.data.trajectories import trajectory_file_name
from taskplan.errors import ConfigError, DatasetError
from taskplan.io import atomic_dir, atomic_write_json, path_digest, read_json_input
from taskplan.kitchen.parse import parse_action

log = logging.getLogger(__name__)

COLUMNS = ("prompt", "completion", "answer", "valid_actions", "task", "seed", "step", "source")
SPLITS = ("train", "validation")
# Action schema of an action text: the words before its first object name ("Pick up", "Do nothing" ...).
_SCHEMAS = (("Move ", "move"), ("Pick up ", "pick_up"), ("Place ", "place"), ("Cook ", "cook"), ("Cut ", "cut"),
            ("Fry ", "fry"), ("Boil ", "boil"), ("Add ", "add"), ("Stack ", "stack"), ("Unstack ", "unstack"),
            ("Do nothing", "wait"))
_FILL_POT = re.compile(r"^Fill \S+ with water from ")


@dataclass(frozen=True, slots=True)
class BuildDatasetConfig:
    trajectories_dir: Path = Path("outputs/trajectories")   # output of `generate`
    eps: float = 0.0                                          # which trajectory file (noise level) to use
    validation_fraction: float = 0.2                          # share of the seeds held out as "validation"
    prompt_style: Literal["full", "short", "compact"] = "full"          # system prompt of taskplan.data.prompts
    out_dir: Path = Path("outputs/single_turn")               # DatasetDict (save_to_disk)
    stats_path: Path = Path("metrics/build_dataset.json")     # rows, prompt lengths, action schemas
    validation_report: Path | None = Path("outputs/validate/report.json")   # gate; null: no gate
    tasks: tuple[str, ...] = ()                               # keep only these tasks' episodes (); all
    noise_levels: tuple[float, ...] = ()                      # also train rows from these noisy files
    error_feedback: float = 0.0                               # share of train rows repeated after a rejected reply
    reasoning: int = 0                                        # subgoals in the reply's "Reasoning: next: ..." (0: none)
    seed: int = 42                                            # common.seed: draws the validation seeds

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError(f"build_dataset.validation_fraction={self.validation_fraction}: must be in [0, 1)")
        for eps in (self.eps, *self.noise_levels):
            if not 0.0 <= eps < 1.0:
                raise ConfigError(f"build_dataset eps={eps}: must be one of generate.noise_levels, in [0, 1)")
        if self.eps in self.noise_levels:
            raise ConfigError(f"build_dataset.noise_levels repeats eps={self.eps}; list only the extra levels")
        if self.reasoning < 0:
            raise ConfigError(f"build_dataset.reasoning={self.reasoning}: the number of subgoals, 0 (off) or more")
        if not 0.0 <= self.error_feedback <= 1.0:
            raise ConfigError(f"build_dataset.error_feedback={self.error_feedback}: a share of rows, in [0, 1]")

    @property
    def trajectories_path(self) -> Path:
        return self.trajectories_dir / trajectory_file_name(self.eps)

    @property
    def noise_paths(self) -> list[Path]:
        return [self.trajectories_dir / trajectory_file_name(eps) for eps in self.noise_levels]

    @property
    def fingerprint(self) -> dict:
        """The parameters that decide the rows (the validation report records them)."""
        return {"eps": self.eps, "validation_fraction": self.validation_fraction,
                "prompt_style": self.prompt_style, "seed": self.seed, "noise_levels": list(self.noise_levels),
                "error_feedback": self.error_feedback, "reasoning": self.reasoning}


@dataclass(frozen=True, slots=True)
class BuildDatasetResult:
    out_dir: Path
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def metrics(self) -> dict:
        return self.stats

    def summary(self) -> str:
        r = self.stats["rows"]
        return (f"built {r['total']} rows (train {r['train']}, validation {r['validation']}) "
                f"into {self.out_dir} in {self.seconds:.1f} s")


def run_build_dataset(cfg: BuildDatasetConfig) -> BuildDatasetResult:
    """Build the rows of one trajectory file, save the DatasetDict atomically, write the stats."""
    t0 = time.perf_counter()
    path = cfg.trajectories_path
    if cfg.validation_report is not None:
        check_report(cfg.validation_report, path, cfg)
    rows = collect_rows(cfg)
    stats = dataset_stats(rows)
    with atomic_dir(cfg.out_dir) as tmp:
        save_rows(rows, tmp)
    atomic_write_json(cfg.stats_path, stats)
    result = BuildDatasetResult(out_dir=cfg.out_dir, stats=stats, seconds=time.perf_counter() - t0)
    log.debug(result.summary())
    return result


def collect_rows(cfg: BuildDatasetConfig) -> list[dict]:
    """The rows of `cfg`: the eps file's episodes, then the train-seed episodes of the extra noise levels."""
    def episodes_of(path: Path) -> list[dict]:
        episodes = read_episodes(path)
        if cfg.tasks:   # a subset of validated episodes (cross-task training): still validated
            episodes = [ep for ep in episodes if ep.get("task") in cfg.tasks]
            if not episodes:
                raise DatasetError(f"no episodes of {', '.join(cfg.tasks)} in {path}; check build_dataset.tasks")
        return episodes

    return build_rows(episodes_of(cfg.trajectories_path), cfg, [episodes_of(p) for p in cfg.noise_paths])


def read_episodes(path: Path | str) -> list[dict]:
    """Episodes of one JSONL file; a line that is not a JSON episode is a one-line DatasetError."""
    return [ep for _, ep in iter_episodes(path)]


def iter_episodes(path: Path | str) -> Iterator[tuple[int, dict]]:
    """(line number, episode) for every line of a trajectory file (structure only; GX checks the rest)."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"trajectory file {path} not found; run `taskplan generate` first") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ep = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{n}: not valid JSON ({err.msg}); regenerate the file") from None
            if not isinstance(ep, dict) or not isinstance(ep.get("steps"), list):
                raise DatasetError(f"{path}:{n}: an episode must be a JSON object with a 'steps' list")
            if not ep["steps"] or not all(isinstance(s, dict) for s in ep["steps"]):
                raise DatasetError(f"{path}:{n}: episode has no steps or a step that is not an object")
            yield n, ep


def build_rows(episodes: list[dict], cfg: BuildDatasetConfig, noisy: list[list[dict]] = ()) -> list[dict]:
    """Single-turn rows (COLUMNS + "split"), in file order; splits drawn by seed.

    `noisy` holds the episodes of extra noise levels: their train-seed steps become train rows (states
    the expert path never visits, labelled with the expert's action there), and their validation-seed
    episodes are left out, so the validation split stays the clean expert path. With `error_feedback`
    > 0 that share of train rows is repeated with the `Error Feedback:` line a rejected reply leaves in
    the next prompt (same state, same label): the prompt an agent sees after an invalid reply.
    """
    val_seeds = validation_seeds(sorted({ep["seed"] for ep in episodes}), cfg.validation_fraction, cfg.seed)
    rows = []
    for ep in episodes:
        rows += _episode_rows(ep, "validation" if ep["seed"] in val_seeds else "train", cfg)
    for eps_episodes in noisy:
        for ep in eps_episodes:
            if ep["seed"] not in val_seeds:
                rows += _episode_rows(ep, "train", cfg)
    if cfg.error_feedback > 0:
        rows += feedback_rows([r for r in rows if r["split"] == "train"], cfg.error_feedback, cfg)
    for r in rows:   # what the feedback rows were made from; not a column
        del r["observation"], r["prev_action"], r["prev_reasoning"]
    return rows


def feedback_rows(rows: list[dict], share: float, cfg: BuildDatasetConfig) -> list[dict]:
    """Copies of a seeded `share` of `rows` whose prompt follows a rejected reply (see rejected_reply)."""
    rng = random.Random(cfg.seed + 1)
    out = []
    for r in rows:
        if rng.random() >= share:
            continue
        error = rejected_reply(r["answer"], r["valid_actions"], rng)
        obs = r["observation"]
        out.append({**r, "source": r["source"] + "+feedback",
                    "prompt": build_messages(obs, prev_action=r["prev_action"], prev_reasoning=r["prev_reasoning"],
                                             error=error, style=cfg.prompt_style)})
    return out


def rejected_reply(answer: str, valid_actions: list[str], rng: random.Random) -> str:
    """The environment's error text for a typical invalid reply of a small model: a valid action cut off
    after a few words, an action naming an object of another kind, or a reply without an action."""
    words = rng.choice(valid_actions).split()
    kind = rng.random()
    if kind < 0.45 and len(words) > 2:
        reply = "Action: " + " ".join(words[:rng.randrange(1, len(words))])
    elif kind < 0.9:
        names = sorted({w for a in valid_actions for w in a.split() if any(c.isdigit() for c in w)})
        target = answer.split()
        spots = [i for i, w in enumerate(target) if w in names]
        if spots and len(names) > 1:
            i = rng.choice(spots)
            target[i] = rng.choice([n for n in names if n != target[i]])
        reply = "Action: " + " ".join(target)
    else:
        reply = rng.choice(["", "Action:", answer.split()[0]])
    parsed = parse_action(reply, valid_actions)
    return parsed.error or f"action '{reply}' is not valid"


def _episode_rows(ep: dict, split: str, cfg: BuildDatasetConfig) -> list[dict]:
    """One row per step. With reasoning, the previous turn's reasoning in the prompt is the expert's at that
    step, also after a noise step (an agent that meant well and did something else)."""
    reasons = episode_reasonings(ep, cfg.reasoning)
    rows, prev, prev_reason = [], None, None
    for st, reason in zip(ep["steps"], reasons):
        rows.append({
            "prompt": build_messages(st["observation"], prev_action=prev, prev_reasoning=prev_reason,
                                     style=cfg.prompt_style),
            "completion": [{"role": "assistant", "content": answer_text(st["expert_action"], reason)}],
            "answer": st["expert_action"], "valid_actions": list(st["valid_actions"]),
            "task": ep["task"], "seed": ep["seed"], "step": st["step"], "split": split,
            "source": f"eps{float(ep.get('eps', 0.0))}",
            "observation": st["observation"], "prev_action": prev, "prev_reasoning": prev_reason})
        prev, prev_reason = st["action"], reason
    return rows


def validation_seeds(seeds: list[int], fraction: float, seed: int) -> set[int]:
    """A seeded draw of round(fraction x n) seeds (at least 1 when fraction > 0, never all of them)."""
    if fraction <= 0 or len(seeds) < 2:
        return set()
    k = min(max(1, round(fraction * len(seeds))), len(seeds) - 1)
    return set(random.Random(seed).sample(sorted(seeds), k))


def save_rows(rows: list[dict], out_dir: Path) -> None:
    """Save rows as a DatasetDict (train/validation) with explicit features."""
    import datasets

    msg = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]
    features = datasets.Features({
        "prompt": msg, "completion": msg, "answer": datasets.Value("string"),
        "valid_actions": datasets.List(datasets.Value("string")), "task": datasets.Value("string"),
        "seed": datasets.Value("int64"), "step": datasets.Value("int64"), "source": datasets.Value("string")})
    splits = {}
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        splits[split] = datasets.Dataset.from_dict({c: [r[c] for r in part] for c in COLUMNS}, features=features)
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()   # the CLI shows its own progress; restore the caller's setting after
    try:
        datasets.DatasetDict(splits).save_to_disk(str(out_dir))
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def load_rows(dataset_dir: Path | str) -> list[dict]:
    """Rows (COLUMNS + "split") of a saved DatasetDict, as plain Python values."""
    import datasets

    path = Path(dataset_dir)
    if not (path / "dataset_dict.json").exists():
        raise DatasetError(f"{path} is not a saved DatasetDict (no dataset_dict.json); run `taskplan build-dataset`")
    dd = datasets.load_from_disk(str(path))
    rows = []
    for split in dd:
        rows += [{**r, "split": split} for r in dd[split].to_list()]
    return rows


def action_schema(action: str) -> str:
    if _FILL_POT.match(action):
        return "fill_pot"
    if action.startswith("Fill "):
        return "fill_bowl"
    for prefix, name in _SCHEMAS:
        if action.startswith(prefix):
            return name
    return "other"


def dataset_stats(rows: list[dict]) -> dict:
    """Rows per task and split, prompt length (words and characters), answer schema counts."""
    def dist(values: list[int]) -> dict:
        if not values:
            return {"mean": None, "p50": None, "p90": None, "max": None}
        v = sorted(values)
        pick = lambda q: v[min(len(v) - 1, math.ceil(q * len(v)) - 1)]  # noqa: E731 (nearest rank)
        return {"mean": round(sum(v) / len(v), 1), "p50": pick(0.5), "p90": pick(0.9), "max": v[-1]}

    texts = [" ".join(m["content"] for m in r["prompt"]) for r in rows]
    per_task: dict[str, dict[str, int]] = {}
    for r in rows:
        per_task.setdefault(r["task"], {s: 0 for s in SPLITS})[r["split"]] += 1
    seeds = {s: len({r["seed"] for r in rows if r["split"] == s}) for s in SPLITS}
    schemas = Counter(action_schema(r["answer"]) for r in rows)
    return {
        "rows": {**{s: sum(r["split"] == s for r in rows) for s in SPLITS}, "total": len(rows)},
        "seeds": seeds,
        "rows_per_task": per_task,
        "prompt_words": dist([len(t.split()) for t in texts]),
        "prompt_chars": dist([len(t) for t in texts]),
        "valid_actions": dist([len(r["valid_actions"]) for r in rows]),
        "answer_schema": dict(sorted(schemas.items())),
    }


def check_report(report_path: Path, trajectories_path: Path, cfg: BuildDatasetConfig) -> None:
    """The validation gate: a passed report for this very trajectory file and these row parameters."""
    report = read_json_input(report_path, "validation report", DatasetError, "run `taskplan validate` (again)")
    if not isinstance(report, dict):
        raise DatasetError(f"validation report {report_path} is not a JSON object; run `taskplan validate` again")
    if not report.get("passed"):
        raise DatasetError(f"validation report {report_path} says the data failed "
                           f"({report.get('first_failure')}); fix the trajectories and run `taskplan validate`")
    for path in (trajectories_path, *cfg.noise_paths):
        if not path.exists():
            raise DatasetError(f"trajectory file {path} not found; run `taskplan generate` "
                               f"with build_dataset.eps and noise_levels among generate.noise_levels")
        recorded = (report.get("trajectories") or {}).get(path.name, {}).get("sha256")
        if recorded != path_digest(path):
            raise DatasetError(f"validation report {report_path} does not cover the current {path.name}; "
                               f"run `taskplan validate` again")
    if (report.get("dataset") or {}).get("params") != cfg.fingerprint:
        raise DatasetError(f"validation report {report_path} checked rows built with other build_dataset params "
                           f"{(report.get('dataset') or {}).get('params')}; run `taskplan validate` again")


STAGE = StageSpec("build_dataset", BuildDatasetConfig, run_build_dataset,
                  "Single-turn rows (HF DatasetDict, split by seed) + stats JSON, from validated trajectories.")
