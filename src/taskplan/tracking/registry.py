"""Model registry: register the trained planner, promote it to `champion` only when it is better.

    cfg = load_config(RegisterConfig, "register", "params.yaml")
    result = register(cfg)          # new version of `taskplan-planner`, decision recorded as tags
    policy = load_champion()        # models:/taskplan-planner@champion as an evaluate Policy

`register` logs `cfg.model_dir` with `mlflow.transformers` (model + tokenizer with
its chat template) as a new version of the registered model; a folder already
registered (same content digest) reuses its version instead of adding one.
The alias moves to the new version only when it beats the current champion on
mean SR over the evaluation tasks of `metrics/eval.json` (ties: lower mean
ASAT wins), compared on the tasks both were evaluated on with the same number
of episodes, and only when `compare`'s verdict passed. Registrations on one
store take a lock (tracking/backend.py), and the alias is re-checked after it
moves, so concurrent runs add one version per folder and the better model ends
as champion. Every version carries its scores and the decision as tags:
`sr_mean`, `sr/<task>`, `eval_run_id`, `decision`, `reason`, `mean_sr`,
`mean_asat`, `scores` (JSON per task), `champion_version`, `champion_mean_sr`,
`champion_mean_asat`. Registry stages are never used (deprecated in MLflow).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from taskplan.catalog import StageSpec
from taskplan.config import short_repr
from taskplan.errors import ConfigError, DatasetError, ModelNotFoundError
from taskplan.evaluate.policies import HFPolicy, PolicyOptions
from taskplan.evaluate.report import read_eval
from taskplan.io import atomic_write_json, path_digest, read_json_input
from taskplan.model.factory import load_policy, load_tokenizer, model_folder_problem
from taskplan.tracking.backend import configure, registry_lock, use_backend
from taskplan.tracking.runs import run_name, source_tags
from taskplan.tracking.values import flat_config

log = logging.getLogger(__name__)

EPS = 1e-9
RESERVED_ALIASES = ("latest",)


@dataclass(frozen=True, slots=True)
class RegisterConfig:
    model_dir: Path = Path("models/grpo")             # trained planner folder (HF: safetensors + tokenizer)
    policy: str = "grpo"                              # its policy name in eval_path
    eval_path: Path = Path("metrics/eval.json")       # written by `taskplan evaluate`
    tasks: tuple[str, ...] = ()                       # tasks the means run over (empty: all the policy's tasks)
    verdict_path: Path | None = Path("metrics/compare.json")  # compare's verdict must pass (null: no gate)
    model_name: str = "taskplan-planner"              # registered model
    alias: str = "champion"                           # moved only to a version that beats the holder
    decision_path: Path = Path("metrics/register.json")
    seed: int = 42                                    # common.seed (run name only)

    def __post_init__(self) -> None:
        if not self.model_name.strip():
            raise ConfigError("register.model_name is empty; e.g. taskplan-planner")
        if not self.alias.strip() or self.alias in RESERVED_ALIASES or \
                (self.alias[0] in "vV" and self.alias[1:].isdigit()):
            raise ConfigError(f"register.alias={self.alias!r} is reserved by MLflow; e.g. champion")
        if not self.policy:
            raise ConfigError("register.policy is empty; name the evaluated policy, e.g. grpo")


@dataclass(frozen=True, slots=True)
class Decision:
    promote: bool
    reason: str
    candidate_sr: float
    candidate_asat: float
    champion_version: str | None = None
    champion_sr: float | None = None
    champion_asat: float | None = None
    tasks: tuple[str, ...] = ()                       # the tasks the means were taken over


@dataclass(frozen=True, slots=True)
class RegisterResult:
    model_name: str
    version: str
    alias: str
    decision: Decision
    run_id: str
    reused: bool = False                              # the folder was registered before (same digest)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    @property
    def metrics(self) -> dict[str, float]:
        d = self.decision
        out = {"register/candidate_sr": d.candidate_sr, "register/candidate_asat": d.candidate_asat,
               "register/promoted": float(d.promote), "register/version": float(self.version)}
        if d.champion_sr is not None:
            out["register/champion_sr"] = d.champion_sr
        if d.champion_asat is not None:
            out["register/champion_asat"] = d.champion_asat
        return out

    def to_json(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "version": self.version, "alias": self.alias,
                "promoted": self.promoted, "reused": self.reused, "run_id": self.run_id,
                "decision": asdict(self.decision), "scores": self.scores}

    def summary(self) -> str:
        d = self.decision
        verb = f"now @{self.alias}" if d.promote else \
            f"@{self.alias} stays on v{d.champion_version}" if d.champion_version else "not promoted"
        return (f"register: {self.model_name} v{self.version}{' (reused)' if self.reused else ''} "
                f"SR {d.candidate_sr:.3f} ASAT {d.candidate_asat:.1f}; {verb} ({d.reason})")


def candidate_scores(eval_doc: Mapping[str, Any], policy: str, tasks: Sequence[str] = ()) -> dict[str, dict]:
    """{task: {"sr", "asat", "episodes"}} of `policy` in an eval.json document, each value checked: a score
    that cannot come from an evaluation (NaN, infinity, a string, SR outside [0, 1], no episodes) is refused
    with one line, so it can never become the champion every later model is compared with."""
    table = eval_doc.get(policy)
    if not table:
        raise DatasetError(f"policy {policy!r} is not in the evaluation results (have: {', '.join(eval_doc)[:200]}); "
                           f"evaluate it or set register.policy")
    if not isinstance(table, Mapping):
        raise DatasetError(f"policy {policy!r} in the evaluation results is not a table of tasks; rerun evaluate")
    missing = [t for t in tasks if t not in table]
    if missing:
        raise DatasetError(f"policy {policy!r} was not evaluated on {', '.join(missing)}; "
                           "evaluate those tasks or set register.tasks")
    return {t: checked_scores(policy, t, table[t]) for t in (tasks or sorted(table))}


def checked_scores(policy: str, task: str, row: Any) -> dict[str, Any]:
    """{"sr", "asat", "episodes"} of one eval.json row, or a one-line DatasetError naming the bad value."""
    where = f"evaluation results of {policy!r} on {str(task)[:60]!r}"
    if not isinstance(row, Mapping):
        raise DatasetError(f"{where}: not an object; rerun `taskplan evaluate`")
    episodes = row.get("episodes")
    if not _is_int(episodes) or episodes < 1:
        raise DatasetError(f"{where}: episodes={short_repr(episodes, 40)} is not a count >= 1; rerun `taskplan evaluate`")
    sr, asat = row.get("sr"), row.get("asat")
    if not _is_number(sr) or not 0.0 <= sr <= 1.0:
        raise DatasetError(f"{where}: sr={short_repr(sr, 40)} is not a finite number in [0, 1]; rerun `taskplan evaluate`")
    if not _is_number(asat) or asat < 0:
        raise DatasetError(f"{where}: asat={short_repr(asat, 40)} is not a finite number >= 0; rerun `taskplan evaluate`")
    return {"sr": float(sr), "asat": float(asat), "episodes": int(episodes)}


def valid_held_scores(scores: Mapping[str, Any]) -> bool:
    """Whether a champion's recorded scores are all real scores (see checked_scores)."""
    try:
        for task, row in scores.items():
            checked_scores("champion", task, row)
    except DatasetError:
        return False
    return True


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def mean_scores(scores: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> tuple[float, float]:
    """Mean SR and mean ASAT over `tasks`."""
    return (sum(scores[t]["sr"] for t in tasks) / len(tasks), sum(scores[t]["asat"] for t in tasks) / len(tasks))


def decide(candidate: Mapping[str, Mapping[str, Any]], champion: Mapping[str, Mapping[str, Any]] | None,
           champion_version: str | None = None) -> Decision:
    """Promote when the candidate's mean SR is higher, or equal with a lower mean ASAT, over the tasks
    both were evaluated on with the same number of episodes; no champion yet: promote."""
    all_tasks = tuple(sorted(candidate))
    c_sr, c_asat = mean_scores(candidate, all_tasks)
    if champion is None:
        return Decision(True, "no champion yet", c_sr, c_asat, tasks=all_tasks)
    common = tuple(t for t in all_tasks if t in champion and champion[t].get("episodes") == candidate[t]["episodes"])
    if not common:
        return Decision(False, f"not comparable: champion v{champion_version} was evaluated on other tasks or "
                        f"seeds ({', '.join(sorted(champion)) or 'no scores'})", c_sr, c_asat, champion_version,
                        tasks=all_tasks)
    c_sr, c_asat = mean_scores(candidate, common)
    h_sr, h_asat = mean_scores(champion, common)
    if c_sr > h_sr + EPS:
        promote, reason = True, f"higher mean SR ({c_sr:.3f} > {h_sr:.3f})"
    elif abs(c_sr - h_sr) <= EPS and c_asat < h_asat - EPS:
        promote, reason = True, f"equal mean SR {c_sr:.3f}, lower mean ASAT ({c_asat:.2f} < {h_asat:.2f})"
    elif abs(c_sr - h_sr) <= EPS:
        promote, reason = False, f"equal mean SR {c_sr:.3f}, mean ASAT not lower ({c_asat:.2f} >= {h_asat:.2f})"
    else:
        promote, reason = False, f"lower mean SR ({c_sr:.3f} < {h_sr:.3f})"
    return Decision(promote, reason, c_sr, c_asat, champion_version, h_sr, h_asat, common)


def register(cfg: RegisterConfig, *, parent_run_id: str | None = None, tags: Mapping[str, str] | None = None,
             experiment: str | None = None, write_decision: bool = True) -> RegisterResult:
    """Register `cfg.model_dir` and move the alias when it beats the champion (see module docstring).
    `write_decision=False` leaves `cfg.decision_path` (a DVC output recording the pipeline's own decision)
    as it is: `taskplan register --if-missing` fills another store without touching the repository."""
    import mlflow

    scores = candidate_scores(read_eval(cfg.eval_path), cfg.policy, cfg.tasks)
    _require_model(cfg)
    gate = _compare_gate(cfg)
    experiment_id = configure(experiment)
    client = mlflow.MlflowClient()
    digest = path_digest(cfg.model_dir, flat=True)   # the format versions are tagged with
    nested = bool(parent_run_id) or mlflow.active_run() is not None
    # Under the lock, two registrations on this store run in turn: the digest lookup sees the other's
    # version (one version per folder) and the champion read is never stale when the alias moves.
    with registry_lock(), mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name("register", cfg, _task_label(scores)), nested=nested,
            parent_run_id=parent_run_id,
            tags={**source_tags(), "taskplan.stage": "register", "taskplan.kind": "stage", **(tags or {})}) as run:
        mlflow.log_params(flat_config(cfg))
        champion = champion_version(client, cfg.model_name, cfg.alias)
        existing = _version_with_digest(client, cfg.model_name, digest)
        if existing is not None:
            version = existing.version
            log.info("%s is already registered as %s v%s; reusing it", cfg.model_dir, cfg.model_name, version)
        else:
            version = _log_model(cfg, digest, scores)
        _describe(client, cfg.model_name)
        decision = _decision(scores, champion, version, gate)
        eval_run = evaluation_run(client, experiment_id, cfg.eval_path)
        _link_policy_run(client, experiment_id, eval_run, cfg, str(version))
        _tag_version(client, cfg, version, digest, scores, decision, eval_run)   # scores first: a champion has them
        if decision.promote:
            promote(cfg.model_name, version, cfg.alias)
            decision = _settle_alias(client, cfg, str(version), scores, decision)
        result = RegisterResult(cfg.model_name, str(version), cfg.alias, decision, run.info.run_id,
                                reused=existing is not None, scores=scores)
        mlflow.log_metrics(result.metrics)
        mlflow.set_tags({"taskplan.decision": _decision_word(decision), "taskplan.reason": decision.reason,
                         "taskplan.model_version": str(version), "taskplan.summary": result.summary(),
                         **({"taskplan.eval_run_id": eval_run} if eval_run else {})})
        if write_decision:
            atomic_write_json(cfg.decision_path, result.to_json())
            mlflow.log_artifact(str(cfg.decision_path), "outputs")
        else:
            mlflow.log_dict(result.to_json(), "outputs/register.json")
    return result


def registered_version(cfg: RegisterConfig, experiment: str | None = None) -> str | None:
    """The version of `cfg.model_name` that holds exactly `cfg.model_dir` (by folder digest), or None."""
    import mlflow

    _require_model(cfg)
    configure(experiment)
    with registry_lock():
        found = _version_with_digest(mlflow.MlflowClient(), cfg.model_name,
                                    path_digest(cfg.model_dir, flat=True))
    return None if found is None else str(found.version)


def evaluation_run(client: Any, experiment_id: str, eval_path: Path) -> str | None:
    """The run that wrote this very eval.json (tag `taskplan.digest.<file name>`, set by tracking on JSON
    outputs), newest first; None if untracked."""
    try:
        digest = path_digest(eval_path)
        runs = client.search_runs([experiment_id], f"tags.`taskplan.digest.{Path(eval_path).name}` = '{digest}'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
    except Exception:  # noqa: BLE001 (a link is a courtesy; registration does not depend on it)
        return None
    return runs[0].info.run_id if runs else None


def _link_policy_run(client: Any, experiment_id: str, eval_run: str | None, cfg: RegisterConfig,
                     version: str) -> None:
    """Tag the evaluate child run of the registered policy with its version (it ran before there was one)."""
    if not eval_run:
        return
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{eval_run}' and "
                              f"tags.`taskplan.policy` = '{cfg.policy}'", max_results=1)
    for run in runs:
        client.set_tag(run.info.run_id, "taskplan.model_version", f"{cfg.model_name}/{version}")


def _settle_alias(client: Any, cfg: RegisterConfig, version: str, scores: Mapping[str, Any],
                  decision: Decision, tries: int = 5) -> Decision:
    """Compare-and-set after the write, for writers the lock does not reach (other hosts): while another
    version holds the alias, take it back only if this one beats it; the better model ends as champion."""
    for _ in range(tries):
        holder = champion_version(client, cfg.model_name, cfg.alias)
        if holder is None or str(holder.version) == version:
            return decision
        held = _scores_tag(holder)
        if held is not None and not decide(scores, held, str(holder.version)).promote:
            return replace(decision, promote=False, reason=f"v{holder.version} took @{cfg.alias} meanwhile and "
                           "is at least as good")
        promote(cfg.model_name, version, cfg.alias)
    return decision


def promote(model_name: str, version: str | int, alias: str = "champion") -> None:
    """Point `alias` at an explicit version (never "the latest")."""
    import mlflow

    use_backend()
    mlflow.MlflowClient().set_registered_model_alias(model_name, alias, str(version))
    log.info("%s@%s -> v%s", model_name, alias, version)


def champion_version(client: Any, model_name: str, alias: str = "champion") -> Any | None:
    """The ModelVersion holding `alias`, or None (no registered model, no alias, or version deleted)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def load_champion(model_name: str = "taskplan-planner", alias: str = "champion", options: Any = None) -> Any:
    """`models:/<model_name>@<alias>` as an evaluate Policy (HFPolicy) that answers turns with actions."""
    import mlflow

    use_backend()
    if champion_version(mlflow.MlflowClient(), model_name, alias) is None:
        raise ModelNotFoundError(f"no version of {model_name!r} holds the alias {alias!r}; "
                                 "run `taskplan register` first")
    options = options or PolicyOptions()
    parts = mlflow.transformers.load_model(f"models:/{model_name}@{alias}", return_type="components")
    model = parts["model"]
    device = options.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    return HFPolicy(model, parts["tokenizer"], name=alias, options=options)


def _require_model(cfg: RegisterConfig) -> None:
    problem = model_folder_problem(cfg.model_dir)
    if problem:
        raise ModelNotFoundError(f"no trained model at {cfg.model_dir} (it {problem}); train it first or set "
                                 "register.model_dir")


def pip_requirements() -> list[str]:
    """What loading the logged model needs (explicit: MLflow's inference would pull in torchvision)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "transformers", "torch", "tokenizers", "safetensors", "accelerate"):
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return out


def _log_model(cfg: RegisterConfig, digest: str, scores: Mapping[str, Any]) -> str:
    import mlflow
    from huggingface_hub import ModelCard

    components = {"model": load_policy(cfg.model_dir, dtype="auto"), "tokenizer": load_tokenizer(cfg.model_dir)}
    card = ModelCard(f"---\nlicense: other\nlibrary_name: transformers\n---\n# {cfg.model_name}\n\n"
                     f"taskplan planner trained from `{cfg.model_dir}` (policy `{cfg.policy}`). Evaluation "
                     f"(SR/ASAT per task): {json.dumps(scores)}\n")
    info = mlflow.transformers.log_model(components, name="model", task="text-generation",
                                         pip_requirements=pip_requirements(), registered_model_name=cfg.model_name,
                                         model_card=card, metadata={"taskplan_model_digest": digest})
    return str(info.registered_model_version)


def _decision(scores: Mapping[str, Any], champion: Any, version: str, gate: str | None) -> Decision:
    tasks = tuple(sorted(scores))
    c_sr, c_asat = mean_scores(scores, tasks)
    if champion is None:
        decision = decide(scores, None)
    elif str(champion.version) == str(version):
        return Decision(False, "already the champion", c_sr, c_asat, str(version), c_sr, c_asat, tasks)
    else:
        held = _scores_tag(champion)
        if held is not None and not valid_held_scores(held):
            # A holder with impossible scores (an old store's NaN) must not win every comparison forever.
            decision = replace(decide(scores, None), reason=f"champion v{champion.version} holds invalid scores")
            if gate is not None:
                decision = replace(decision, promote=False, reason=gate)
            return decision
        if held is None:
            return Decision(False, f"champion v{champion.version} has no recorded scores; move the alias by hand "
                            "(taskplan.tracking.promote) if this version should replace it", c_sr, c_asat,
                            str(champion.version), tasks=tasks)
        decision = decide(scores, held, str(champion.version))
    if gate is not None and decision.promote:
        decision = replace(decision, promote=False, reason=gate)
    return decision


def _compare_gate(cfg: RegisterConfig) -> str | None:
    """None when promotion may go ahead; else why compare's verdict blocks it."""
    if cfg.verdict_path is None:
        return None
    hint = "run `taskplan compare` (again), or set register.verdict_path: null"
    verdict = read_json_input(cfg.verdict_path, "compare verdict", DatasetError, hint)
    if not isinstance(verdict, dict):
        raise DatasetError(f"compare verdict {cfg.verdict_path} is not a JSON object; {hint}")
    if verdict.get("candidate") != cfg.policy:
        raise ConfigError(f"register.policy={cfg.policy!r} but compare judged {verdict.get('candidate')!r}; "
                          "make compare.candidate and register.policy the same")
    if verdict.get("passed") is None:
        return f"compare gave no verdict on {cfg.policy} vs {verdict.get('baseline')!r}"
    if not verdict["passed"]:
        return (f"compare verdict failed: {cfg.policy} SR {verdict.get('candidate_sr')} vs "
                f"{verdict.get('baseline')} SR {verdict.get('baseline_sr')}")
    return None


def _tag_version(client: Any, cfg: RegisterConfig, version: str, digest: str, scores: Mapping[str, Any],
                 d: Decision, eval_run: str | None = None) -> None:
    tags = {"sr_mean": f"{d.candidate_sr:.6g}", **{f"sr/{t}": f"{v['sr']:.6g}" for t, v in sorted(scores.items())},
            **({"eval_run_id": eval_run} if eval_run else {}),"decision": _decision_word(d), "reason": d.reason, "mean_sr": f"{d.candidate_sr:.6g}",
            "mean_asat": f"{d.candidate_asat:.6g}", "scores": json.dumps(scores, sort_keys=True),
            "eval_tasks": ",".join(sorted(scores)), "policy": cfg.policy, "model_digest": digest,
            "source_dir": str(cfg.model_dir), "champion_version": d.champion_version or "",
            "champion_mean_sr": "" if d.champion_sr is None else f"{d.champion_sr:.6g}",
            "champion_mean_asat": "" if d.champion_asat is None else f"{d.champion_asat:.6g}"}
    for key, value in tags.items():
        client.set_model_version_tag(cfg.model_name, str(version), key, value)


def _describe(client: Any, model_name: str) -> None:
    """A description on the registered model (once), as the registry page shows it."""
    model = client.get_registered_model(model_name)
    if not model.description:
        client.update_registered_model(model_name, description=(
            "taskplan planner (Qwen2 causal LM + tokenizer with its chat template) answering one kitchen turn "
            "with `Action: ...`. @champion is moved only to a version with a higher mean multi-turn SR; each "
            "version's tags carry sr_mean, sr/<task> and eval_run_id (the evaluation that justified it)."))


def _decision_word(d: Decision) -> str:
    return "promoted" if d.promote else "not_promoted"


def _scores_tag(version: Any) -> dict[str, dict[str, Any]] | None:
    raw = (version.tags or {}).get("scores")
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc else None


def _version_with_digest(client: Any, model_name: str, digest: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{model_name}' and tags.model_digest='{digest}'")
    except MlflowException:
        return None
    return min(found, key=lambda v: int(v.version)) if found else None


def _task_label(scores: Mapping[str, Any]) -> str:
    return next(iter(scores)) if len(scores) == 1 else "all"


# its command (taskplan/commands/tracking.py) adds --if-missing; it logs its own MLflow run in the registry
STAGE = StageSpec("register", RegisterConfig, register,
                  "Register the trained planner in MLflow; move @champion only if it beats the current one.",
                  json=True, command=False, tracked=False)

