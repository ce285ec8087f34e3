"""The `validate` stage: trajectories and single-turn rows through Great Expectations.

    report = run_validate(ValidateConfig(), dataset_cfg=BuildDatasetConfig())

Trajectories are flattened to one row per step (`trajectory_frame`); the rows
`build_dataset` will write are built in memory with the same code and the same
`build_dataset` params (`dataset_frame`); `validate.dataset_dir` adds a saved
DatasetDict. Checks that need the kitchen or more than one row are computed
here in pandas as derived columns (replay of every episode, prompt -> action
consistency, seed split) and checked by GX like the plain columns, so one
report and one set of data docs hold everything.

On failure the report JSON and the data docs are still written, then
`ValidationFailed` (a DatasetError) names the first failed check; `.reports`
carries every failure for the CLI to print one line each.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskplan.catalog import StageSpec
from taskplan.data.dataset import COLUMNS, SPLITS, BuildDatasetConfig, collect_rows, iter_episodes, load_rows
from taskplan.data.expectations import Check, ValidationReport, run_suite
from taskplan.data.prompts import answer_text
from taskplan.data.suite import read_suite
from taskplan.errors import ConfigError, DatasetError, TaskplanError
from taskplan.io import atomic_write_json, path_digest
from taskplan.kitchen.env import KitchenEnv
from taskplan.kitchen.layout import seeded_instance
from taskplan.kitchen.tasks import EVAL_SEEDS, all_tasks

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

TRAJECTORY_TYPES = {"file": "str", "line": "int", "task": "str", "seed": "int", "eps": "float",
                    "optimal_steps": "int", "step": "int", "observation": "str", "valid_actions": "list",
                    "goal": "str", "expert_action": "str", "action": "str", "is_noise": "bool"}
TRAJECTORY_DERIVED = ("eps_matches_file", "step_in_sequence", "goal_matches_task", "expert_action_valid",
                      "action_valid", "noise_only_if_eps", "noise_flag_consistent", "observation_matches_replay",
                      "valid_actions_match_replay", "episode_reaches_goal", "episode_length_ok", "prompt_actions")
DATASET_TYPES = {"prompt": "list", "completion": "list", "answer": "str", "valid_actions": "list", "task": "str",
                 "seed": "int", "step": "int", "source": "str", "split": "str"}
DATASET_DERIVED = ("prompt_well_formed", "completion_matches_answer", "answer_valid", "seed_splits", "prompt_answers")


class ValidationFailed(DatasetError):
    """A suite failed; the message names the first failed check, `.reports` holds all of them."""

    def __init__(self, message: str, reports: tuple[ValidationReport, ...]):
        super().__init__(message)
        self.reports = reports

    def details(self) -> list[str]:
        """Every failed check, one line each (the command prints them before the error line)."""
        return [f"FAILED {line}" for report in self.reports for line in report.lines()]


@dataclass(frozen=True, slots=True)
class ValidateConfig:
    trajectories_dir: Path = Path("outputs/trajectories")   # every trajectories_eps*.jsonl in it
    out_dir: Path = Path("outputs/validate")                 # report.json + data_docs/ (kept on failure)
    metrics_path: Path = Path("metrics/validate.json")
    dataset_dir: Path | None = None                          # also validate a saved DatasetDict
    suite: Path | None = Path("data/suite.json")             # frozen held-out evaluation seeds
    data_docs: bool = True                                   # build the GX data docs HTML
    replay: bool = True                                      # replay every episode in the kitchen

    def __post_init__(self) -> None:
        if self.dataset_dir is not None and self.dataset_dir.resolve() == self.out_dir.resolve():
            raise ConfigError("validate.dataset_dir must differ from validate.out_dir")

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.json"

    @property
    def docs_dir(self) -> Path:
        return self.out_dir / "data_docs"


@dataclass(frozen=True, slots=True)
class ValidateResult:
    reports: tuple[ValidationReport, ...]
    trajectories: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports)

    @property
    def metrics(self) -> dict:
        return {"passed": self.passed, "seconds": round(self.seconds, 2),
                **{r.suite: {"rows": r.rows, "checks": len(r.results), "failed": len(r.failed)} for r in self.reports}}

    def summary(self) -> str:
        parts = [f"{r.suite}: {len(r.results) - len(r.failed)}/{len(r.results)} checks passed on {r.rows} rows"
                 for r in self.reports]
        return ("validation passed" if self.passed else "validation FAILED") + f" ({'; '.join(parts)}) " \
            f"in {self.seconds:.1f} s"


def run_validate(cfg: ValidateConfig, dataset_cfg: BuildDatasetConfig | None = None,
                 progress: Progress | None = None) -> ValidateResult:
    """Run the suites, write the report (and data docs), raise ValidationFailed on any failed check."""
    t0 = time.perf_counter()
    files = sorted(cfg.trajectories_dir.glob("trajectories_eps*.jsonl"))
    if not files:
        raise DatasetError(f"no trajectories_eps*.jsonl in {cfg.trajectories_dir}; run `taskplan generate` first")
    held_out = held_out_seeds(cfg.suite)
    docs = cfg.docs_dir if cfg.data_docs else None
    cfg.report_path.unlink(missing_ok=True)   # no stale "passed" report survives a run that stops early
    if cfg.docs_dir.exists():
        shutil.rmtree(cfg.docs_dir)
    frame = trajectory_frame(files, replay=cfg.replay, progress=progress)
    reports = [run_suite("trajectories", frame, trajectory_checks(held_out), docs)]
    traj_info = {f.name: {"sha256": path_digest(f), "episodes": int(frame.loc[frame["file"] == f.name, "line"].nunique())
                          if "line" in frame else 0, "steps": int((frame["file"] == f.name).sum())} for f in files}
    dataset_doc = None
    if dataset_cfg is not None and reports[0].passed:
        path = dataset_cfg.trajectories_path
        for read in (path, *dataset_cfg.noise_paths):
            if read.resolve() not in {f.resolve() for f in files}:
                raise DatasetError(f"build_dataset reads {read}, which validate did not check; set build_dataset.eps "
                                   "and noise_levels to generated noise levels and the same trajectories_dir")
        rows = collect_rows(dataset_cfg)
        reports.append(run_suite("dataset", dataset_frame(rows), dataset_checks(held_out), docs))
        dataset_doc = {"params": dataset_cfg.fingerprint, "file": path.name, "rows": len(rows)}
    if cfg.dataset_dir is not None:
        frame_disk = dataset_frame(load_rows(cfg.dataset_dir))
        reports.append(run_suite("dataset_dir", frame_disk, dataset_checks(held_out), docs))
    result = ValidateResult(reports=tuple(reports), trajectories=traj_info, seconds=time.perf_counter() - t0)
    first = next((r.first_failure for r in reports if not r.passed), None)
    atomic_write_json(cfg.report_path, {
        "passed": result.passed, "first_failure": first, "trajectories": traj_info, "dataset": dataset_doc,
        "dataset_dir": str(cfg.dataset_dir) if cfg.dataset_dir else None,
        "suites": [{**r.to_dict(), "data_docs": None} for r in reports],
        "data_docs": str(cfg.docs_dir / "index.html") if docs else None})
    atomic_write_json(cfg.metrics_path, result.metrics)
    if not result.passed:
        n = sum(len(r.failed) for r in reports)
        where = f"; data docs: {cfg.docs_dir / 'index.html'}" if docs else ""
        raise ValidationFailed(f"validation failed: {first} ({n} failed check(s) in all; report: {cfg.report_path}"
                               f"{where})", tuple(reports))
    log.debug(result.summary())
    return result


def held_out_seeds(suite: Path | None) -> list[int]:
    """EVAL_SEEDS plus the frozen suite's eval_seeds (ConfigError when the suite file is missing)."""
    seeds = set(EVAL_SEEDS)
    if suite is not None:
        seeds |= set(read_suite(suite).get("eval_seeds") or [])
    return sorted(seeds)


# ---------------------------------------------------------------- trajectories


def trajectory_checks(held_out: list[int]) -> list[Check]:
    cols = [*TRAJECTORY_TYPES, *TRAJECTORY_DERIVED]
    return [
        _rows_check("the trajectory files hold at least one step"),
        Check("columns", "the columns are exactly the trajectory schema", "ExpectTableColumnsToMatchSet",
              {"column_set": cols, "exact_match": True}),
        *_type_checks(TRAJECTORY_TYPES),
        *_null_checks(TRAJECTORY_TYPES),
        _task_check(),
        Check("seed_held_out", "the seed is not a held-out evaluation seed", "ExpectColumnValuesToNotBeInSet",
              {"column": "seed", "value_set": held_out}),
        Check("eps_range", "eps is in [0, 1)", "ExpectColumnValuesToBeBetween",
              {"column": "eps", "min_value": 0.0, "max_value": 1.0, "strict_max": True}),
        _true("eps_matches_file", "eps equals the noise level in the file name", ("eps",)),
        Check("optimal_steps_positive", "optimal_steps is at least 1", "ExpectColumnValuesToBeBetween",
              {"column": "optimal_steps", "min_value": 1}),
        Check("step_unique", "each step index appears once per episode", "ExpectCompoundColumnsToBeUnique",
              {"column_list": ["file", "line", "step"]}),
        _true("step_in_sequence", "steps are numbered 0, 1, 2, ... in file order", ("step",)),
        _true("goal_matches_task", "the goal text is the task's goal", ("goal",)),
        _true("expert_action_valid", "the expert action is one of the valid actions", ("expert_action",)),
        _true("action_valid", "the executed action is one of the valid actions", ("action",)),
        _true("noise_only_if_eps", "noise steps appear only in noisy (eps > 0) files", ("is_noise",)),
        _true("noise_flag_consistent", "is_noise is true exactly when the executed action differs from the "
              "expert action", ("is_noise", "action", "expert_action")),
        _true("observation_matches_replay", "the observation is the one the replayed episode shows",
              ("observation",)),
        _true("valid_actions_match_replay", "the valid actions are those of the replayed state",
              ("valid_actions",)),
        _true("episode_reaches_goal", "replaying the executed actions reaches the goal exactly at the last step",
              ("action",)),
        _true("episode_length_ok", "an eps=0 episode has exactly optimal_steps steps (a noisy one at least as many)",
              ("optimal_steps",)),
        Check("prompt_consistent", "the same prompt (observation + previous action) always has the same expert "
              "action", "ExpectColumnValuesToBeInSet", {"column": "prompt_actions", "value_set": [1]},
              ("expert_action",)),
    ]


def trajectory_frame(files: list[Path], replay: bool = True, progress: Progress | None = None) -> Any:
    """One row per step (episode keys repeated), object dtype, plus TRAJECTORY_DERIVED columns."""
    import pandas as pd

    episodes = [(f.name, _file_eps(f.name), n, ep) for f in files for n, ep in iter_episodes(f)]
    rows: list[dict] = []
    for done, (name, file_eps, n, ep) in enumerate(episodes, 1):
        base = {"file": name, "line": n, **{k: v for k, v in ep.items() if k != "steps"}}
        ep_rows = [{**base, **st} for st in ep["steps"]]
        _derive_episode(ep_rows, file_eps, replay)
        rows += ep_rows
        if progress:
            progress(done, len(episodes))
    cols = [*TRAJECTORY_TYPES, *TRAJECTORY_DERIVED]
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    frame = pd.DataFrame(rows, dtype=object)
    key = [_key((r.get("observation"), r["_prev"])) for r in rows]
    experts = [_key(r.get("expert_action")) for r in rows]
    counts = pd.DataFrame({"k": key, "a": experts}).groupby("k")["a"].transform("nunique")
    frame["prompt_actions"] = counts.astype(object).values
    return frame.drop(columns=["_prev"])


def _derive_episode(rows: list[dict], file_eps: float | None, replay: bool) -> None:
    """Fill the per-row derived columns of one episode in place."""
    tasks = {t.name: t for t in all_tasks()}
    ep = rows[0]
    task = tasks.get(ep.get("task")) if isinstance(ep.get("task"), str) else None
    eps = ep.get("eps") if _is_num(ep.get("eps")) else None
    prev = None
    for pos, r in enumerate(rows):
        va, ex, act, noise = r.get("valid_actions"), r.get("expert_action"), r.get("action"), r.get("is_noise")
        ok_types = isinstance(va, list) and isinstance(ex, str) and isinstance(act, str)
        r["_prev"] = prev
        prev = act
        r["eps_matches_file"] = None if eps is None or file_eps is None else eps == file_eps
        r["step_in_sequence"] = r.get("step") == pos if _is_int(r.get("step")) else None
        r["goal_matches_task"] = r.get("goal") == task.goal_text if task and isinstance(r.get("goal"), str) else None
        r["expert_action_valid"] = ex in va if ok_types else None
        r["action_valid"] = act in va if ok_types else None
        r["noise_only_if_eps"] = (not noise or eps > 0) if isinstance(noise, bool) and eps is not None else None
        r["noise_flag_consistent"] = noise == (act != ex) if ok_types and isinstance(noise, bool) else None
        for c in ("observation_matches_replay", "valid_actions_match_replay", "episode_reaches_goal"):
            r[c] = None
    opt = ep.get("optimal_steps")
    length_ok = None
    if _is_int(opt) and eps is not None:
        length_ok = len(rows) == opt if eps == 0 else len(rows) >= opt
    for r in rows:
        r["episode_length_ok"] = length_ok
    if replay and task is not None and _is_int(ep.get("seed")):
        _replay_episode(rows, task.name, ep["seed"])


def _replay_episode(rows: list[dict], task: str, seed: int) -> None:
    try:
        env = KitchenEnv(seeded_instance(task, seed))
    except TaskplanError:
        return
    env.reset()
    reached = True
    for _pos, r in enumerate(rows):
        if env.done:            # goal already reached before this step
            reached = False
            break
        texts = env.action_texts()
        r["observation_matches_replay"] = r.get("observation") == env.observation() \
            if isinstance(r.get("observation"), str) else None
        r["valid_actions_match_replay"] = r.get("valid_actions") == texts \
            if isinstance(r.get("valid_actions"), list) else None
        act = r.get("action")
        if not isinstance(act, str) or not env.step(act).valid:
            reached = False
            break
    reached = reached and env.done
    for r in rows:
        r["episode_reaches_goal"] = reached


# ---------------------------------------------------------------- single-turn rows


def dataset_checks(held_out: list[int]) -> list[Check]:
    cols = [*DATASET_TYPES, *DATASET_DERIVED]
    return [
        _rows_check("the dataset holds at least one row"),
        Check("columns", f"the columns are exactly {', '.join(COLUMNS)} (+ split)", "ExpectTableColumnsToMatchSet",
              {"column_set": cols, "exact_match": True}),
        *_type_checks(DATASET_TYPES),
        *_null_checks(DATASET_TYPES),
        Check("split_known", f"the split is one of {', '.join(SPLITS)}", "ExpectColumnValuesToBeInSet",
              {"column": "split", "value_set": list(SPLITS)}),
        _task_check(),
        Check("seed_held_out", "the seed is not a held-out evaluation seed", "ExpectColumnValuesToNotBeInSet",
              {"column": "seed", "value_set": held_out}),
        Check("row_unique", "each (task, seed, step, source) appears once", "ExpectCompoundColumnsToBeUnique",
              {"column_list": ["task", "seed", "step", "source"]}),
        _true("prompt_well_formed", "the prompt is a system message then a user message, both with text",
              ("prompt",)),
        _true("completion_matches_answer", "the completion is the assistant message '[Reasoning: ...\\n]Action: <answer>'",
              ("completion", "answer")),
        _true("answer_valid", "the answer is one of the valid actions", ("answer",)),
        Check("seed_in_one_split", "every seed is in one split only (split by seed, never by row)",
              "ExpectColumnValuesToBeInSet", {"column": "seed_splits", "value_set": [1]}),
        Check("prompt_consistent", "the same prompt always has the same answer (the reward would contradict "
              "itself)", "ExpectColumnValuesToBeInSet", {"column": "prompt_answers", "value_set": [1]}, ("answer",)),
    ]


def _completion_matches(completion: Any, answer: str) -> bool:
    """One assistant message: `Action: <answer>`, or a `Reasoning: ...` line and then it."""
    if not (isinstance(completion, list) and len(completion) == 1 and isinstance(completion[0], dict)):
        return False
    content = completion[0].get("content")
    if completion[0].get("role") != "assistant" or not isinstance(content, str):
        return False
    return content == answer_text(answer) or (content.startswith("Reasoning: ") and
                                              content.endswith("\n" + answer_text(answer)) and content.count("\n") == 1)


def dataset_frame(rows: list[dict]) -> Any:
    """Rows (COLUMNS + split) as an object-dtype frame plus DATASET_DERIVED columns."""
    import pandas as pd

    cols = [*DATASET_TYPES, *DATASET_DERIVED]
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    frame = pd.DataFrame(rows, dtype=object)
    frame["prompt_well_formed"] = [_well_formed(r.get("prompt")) for r in rows]
    frame["completion_matches_answer"] = [_completion_matches(r.get("completion"), r["answer"])
                                          if isinstance(r.get("answer"), str) else None for r in rows]
    frame["answer_valid"] = [r.get("answer") in r["valid_actions"] if isinstance(r.get("valid_actions"), list)
                             else None for r in rows]
    splits: dict[Any, set] = defaultdict(set)
    for r in rows:
        splits[_key(r.get("seed"))].add(_key(r.get("split")))
    frame["seed_splits"] = [len(splits[_key(r.get("seed"))]) for r in rows]
    answers: dict[str, set] = defaultdict(set)
    keys = [_key(r.get("prompt")) for r in rows]
    for k, r in zip(keys, rows):
        answers[k].add(_key(r.get("answer")))
    frame["prompt_answers"] = [len(answers[k]) for k in keys]
    return frame


# ---------------------------------------------------------------- helpers


def _rows_check(description: str) -> Check:
    return Check("rows_present", description, "ExpectTableRowCountToBeBetween", {"min_value": 1})


def _type_checks(types: dict[str, str]) -> list[Check]:
    return [Check(f"type_{c}", f"{c} is of type {t}", "ExpectColumnValuesToBeOfType", {"column": c, "type_": t})
            for c, t in types.items()]


def _null_checks(types: dict[str, str]) -> list[Check]:
    return [Check(f"not_null_{c}", f"{c} is never null", "ExpectColumnValuesToNotBeNull", {"column": c})
            for c in types]


def _task_check() -> Check:
    return Check("task_known", "the task is in the catalogue", "ExpectColumnValuesToBeInSet",
                 {"column": "task", "value_set": sorted(t.name for t in all_tasks())})


def _true(name: str, description: str, show: tuple[str, ...]) -> Check:
    """A derived boolean column that must be True wherever it applies (None: not applicable)."""
    return Check(name, description, "ExpectColumnValuesToBeInSet", {"column": name, "value_set": [True]}, show,
                 derived=True)


def _well_formed(prompt: Any) -> bool:
    return (isinstance(prompt, list) and len(prompt) == 2 and all(isinstance(m, dict) for m in prompt)
            and [m.get("role") for m in prompt] == ["system", "user"]
            and all(isinstance(m.get("content"), str) and m["content"] for m in prompt))


def _file_eps(name: str) -> float | None:
    try:
        return float(name.removeprefix("trajectories_eps").removesuffix(".jsonl"))
    except ValueError:
        return None


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


STAGE = StageSpec("validate", ValidateConfig, run_validate,
                  "Great Expectations suites on the trajectories and the rows build-dataset will write.",
                  needs=(("dataset_cfg", "build_dataset"),), progress="replaying episodes")
