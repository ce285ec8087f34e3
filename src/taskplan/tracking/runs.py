"""MLflow runs of the pipeline: a parent run per pipeline run, a run per stage opened when the stage starts.

    with pipeline_run("pipeline__all__seed42", params={...}) as parent:       # the flow's parent run
        with stage_run("sft", cfg, io, parent_run_id=parent.run_id) as run:   # started now: real start/end
            result = run_sft(cfg, callbacks=run.callbacks())                  # loss, reward, KL, accuracy live
            run.finish(result)                                                # final metrics, outputs

    log_stage("grpo", cfg, outcome, io)      # a finished stage at once (a cached result: tagged cached)

Stage-agnostic. A stage result offers `metrics` (nested dicts flatten with '/'), `history` (per-step rows),
`summary()`, and optionally `child_runs` (name -> {"metrics", "tags", "model_dir"}: evaluate's one run
per policy). What a stage read and wrote comes from dvc.yaml (`io`: taskplan.orchestrate.stages.stage_io):
datasets among them are logged as MLflow inputs with their DVC md5 as digest, outputs as artifacts (a
model folder only with `log_models`, JSONL folders as a sample of their first lines, datasets as inputs
only). Metric names are `<stage>/<key>` unless already namespaced. Run names: `<stage>__<task>__seed<N>`.
A stage that raises ends FAILED (KILLED on Ctrl-C / SIGTERM) with the error as a tag and the outputs it
wrote before failing (validate: the GX data docs). Every run carries where it came from (`source_tags`):
the command, the git commit of the checkout and the user, which the UI shows as Source, Version and User.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import itertools
import logging
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskplan.io import path_digest
from taskplan.model.factory import is_model_dir
from taskplan.tracking.backend import configure
from taskplan.tracking.values import flat_config, history_metrics, log_metrics, log_params, one_line, stage_metrics

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PipelineRun:
    """Handle on the open parent run; `stage`/`cfg` name what is running now (recorded on failure)."""

    run_id: str
    stage: str | None = None
    cfg: Any = None
    task: str | None = None       # the pipeline's task label for stage run names (None: from each config)
    started: float = dataclasses.field(default_factory=time.time)


@dataclasses.dataclass
class StageRun:
    """An open stage run. `callbacks()` are TrainerCallbacks that log step metrics into it as training goes
    (and move it to the run a resumed checkpoint was logged in); `finish(result)` logs the rest."""

    run_id: str
    stage: str
    cfg: Any
    io: Any = None
    log_models: bool = True
    transcripts_sample: int = 20
    started: float = dataclasses.field(default_factory=time.time)
    live: bool = False            # a callback logged the history as it came: do not replay it

    def callbacks(self) -> list[Any]:
        from taskplan.tracking.live import MlflowStepCallback

        self.live = True
        return [MlflowStepCallback(self)]

    def finish(self, result: Any) -> None:
        import mlflow

        client = mlflow.MlflowClient()
        history = [] if self.live else history_metrics(self.stage, _get(result, "history") or [])
        last = max((s for _, _, s in history), default=_last_step(result))
        log_metrics(client, self.run_id, [(k, v, last) for k, v in stage_metrics(self.stage, result).items()])
        log_metrics(client, self.run_id, history)
        summary = _get(result, "summary")
        summary = summary() if callable(summary) else summary
        if summary:
            client.set_tag(self.run_id, "taskplan.summary", str(summary)[:5000])
        log_outputs(client, self.run_id, self.io, log_models=self.log_models, samples=self.transcripts_sample)
        log_children(client, self.run_id, self.stage, _get(result, "child_runs") or {})


@contextmanager
def pipeline_run(name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None,
                 artifacts: Sequence[Path | str] = (), experiment: str | None = None) -> Iterator[PipelineRun]:
    """Open the parent run of a pipeline. Not made the thread's active run: stages nest under it by id,
    whichever thread they run in. On an exception the run ends FAILED (KILLED on Ctrl-C / SIGTERM), tagged
    with the error and the stage that raised it."""
    import mlflow

    experiment_id = configure(experiment)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=name,
                            tags={**source_tags(), "taskplan.kind": "pipeline", **(tags or {})})
    handle = PipelineRun(run.info.run_id)
    try:
        log_params(client, handle.run_id, params or {})
        for path in artifacts:
            if Path(path).exists():
                client.log_artifact(handle.run_id, str(path))
        yield handle
    except BaseException as err:
        client.set_tag(handle.run_id, "taskplan.error", one_line(err))
        if handle.stage:
            client.set_tag(handle.run_id, "taskplan.failed_stage", handle.stage)
        client.set_terminated(handle.run_id, _end_status(err))
        raise
    client.set_terminated(handle.run_id, "FINISHED")


@contextmanager
def stage_run(stage: str, cfg: Any, io: Any = None, *, parent_run_id: str | None = None,
              experiment: str | None = None, task: str | None = None, tags: Mapping[str, str] | None = None,
              log_models: bool = True, transcripts_sample: int = 20) -> Iterator[StageRun]:
    """A stage's run, opened now (its start is the stage's start) with the config as params and the
    datasets it reads as inputs; ended FINISHED after the block, FAILED/KILLED if the block raises."""
    import mlflow

    experiment_id = configure(experiment)
    client = mlflow.MlflowClient()
    run_tags = {**source_tags(), "taskplan.stage": stage, "taskplan.kind": "stage", **(tags or {})}
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name(stage, cfg, task), tags=run_tags)
    handle = StageRun(run.info.run_id, stage, cfg, io, log_models, transcripts_sample)
    try:
        if cfg is not None:
            log_params(client, handle.run_id, flat_config(cfg))
        log_datasets(client, handle.run_id, io, "inputs")
        yield handle
    except BaseException as err:
        client.set_tag(handle.run_id, "taskplan.error", one_line(err))
        log_outputs(client, handle.run_id, io, log_models=False, samples=0, since=handle.started)
        client.set_terminated(handle.run_id, _end_status(err))
        raise
    client.set_terminated(handle.run_id, "FINISHED")


def log_stage(stage: str, cfg: Any, result: Any, io: Any = None, *, parent_run_id: str | None = None,
              tags: Mapping[str, str] | None = None, log_models: bool = True, transcripts_sample: int = 20,
              experiment: str | None = None, task: str | None = None) -> str:
    """Log a finished stage as one run (nested under `parent_run_id` when given); returns the run id.
    `result` is the stage's result or a mapping with the same keys (a cached flow outcome)."""
    with stage_run(stage, cfg, io, parent_run_id=parent_run_id, experiment=experiment, task=task, tags=tags,
                   log_models=log_models, transcripts_sample=transcripts_sample) as run:
        run.finish(result)
    return run.run_id


# --- where a run came from ----------------------------------------------------------------------------------

def source_tags() -> dict[str, str]:
    """The tags of the UI's Source, Version and User columns, which mlflow.start_run sets itself and
    MlflowClient.create_run (our stage runs) does not. The UI shows a source name only after its last '/',
    so `mlflow.source.name` is the program and its subcommand (`taskplan sft`) and `taskplan.command` the
    whole command line. The git commit is the current directory's checkout (the project root the stages
    run from); outside a git checkout it is left out."""
    argv = sys.argv if sys.argv and sys.argv[0] else ["python"]
    program = Path(argv[0]).name
    words = itertools.takewhile(lambda a: not a.startswith("-") and "/" not in a, argv[1:])
    tags = {"mlflow.source.name": " ".join([program, *words]), "mlflow.source.type": "LOCAL",
            "taskplan.command": shlex.join([program, *argv[1:]])[:5000], "mlflow.user": _user()}
    commit = git_commit(str(Path.cwd()))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


@functools.lru_cache(maxsize=8)
def git_commit(folder: str) -> str | None:
    """HEAD of the git checkout holding `folder`, or None (not a checkout, no git, git hanging)."""
    try:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) >= 40 else None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no user name in the environment or passwd (a bare container)
        return "unknown"


def run_name(stage: str, cfg: Any = None, task: str | None = None, seed: int | None = None) -> str:
    """`<stage>__<task-or-all>__seed<N>`: the config's task when it names exactly one, else `task`, else all."""
    tasks = getattr(cfg, "tasks", None)
    if isinstance(tasks, (tuple, list)) and len(tasks) == 1:
        task = tasks[0]
    if seed is None:
        seed = getattr(cfg, "seed", 42)
    return f"{stage}__{task or 'all'}__seed{seed}"


# --- what a stage read and wrote ---------------------------------------------------------------------------

def log_datasets(client: Any, run_id: str, io: Any, side: str) -> None:
    """Datasets among `io.inputs` / `io.outputs` as MLflow inputs (name, DVC md5 digest, source path)."""
    if io is None:
        return
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for label, path in getattr(io, side):
        if path is None or not is_dataset(path):
            continue
        ds = MetaDataset(LocalArtifactDatasetSource(label), name=Path(label).name,
                         digest=dvc_md5(path, getattr(io, "root", None)))
        inputs.append(DatasetInput(ds._to_mlflow_entity(),
                                   [InputTag("mlflow.data.context", "input" if side == "inputs" else "output")]))
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def log_outputs(client: Any, run_id: str, io: Any, *, log_models: bool, samples: int,
                since: float | None = None) -> None:
    """A stage's outputs: files and folders as artifacts, model folders under `model/` (if `log_models`),
    JSONL folders as the first `samples` lines of each file, datasets as MLflow inputs. JSON outputs are
    also tagged with their sha256 (`taskplan.digest.<name>`) so a later step can find the run that wrote
    them. With `since`, older outputs (an earlier run's) are left out."""
    if io is None:
        return
    for label, path in io.outputs:
        if path is None or not path.exists() or (since is not None and _newest_mtime(path) < since):
            continue
        if path.is_file() and path.suffix == ".json":
            client.set_tag(run_id, f"taskplan.digest.{path.name}", path_digest(path))
        if is_model_dir(path):
            client.set_tag(run_id, "taskplan.model_digest", path_digest(path, flat=True))   # evaluate links back
            if log_models:
                client.log_artifacts(run_id, str(path), "model")
        elif is_dataset(path):
            if path.is_dir() and any(path.glob("*.jsonl")) and samples > 0:
                _log_samples(client, run_id, sorted(path.glob("*.jsonl")), samples)
        elif path.is_dir():
            client.log_artifacts(run_id, str(path), label)        # the project's layout: plots/sft, ...
        else:
            client.log_artifact(run_id, str(path), str(Path(label).parent))
    if since is None:
        log_datasets(client, run_id, io, "outputs")


def log_children(client: Any, parent_id: str, stage: str, children: Mapping[str, Mapping[str, Any]]) -> None:
    """One nested run per child (evaluate: per policy) with its metrics and tags; a child with a
    `model_dir` links the training run that wrote that folder and its registered version."""
    if not children:
        return
    parent = client.get_run(parent_id)
    for name, child in children.items():
        tags = {**source_tags(), "mlflow.parentRunId": parent_id, "taskplan.stage": stage,
                "taskplan.kind": "child",
                **{k: str(v) for k, v in (child.get("tags") or {}).items()}}
        if child.get("model_dir"):
            tags.update(model_links(client, parent.info.experiment_id, Path(child["model_dir"])))
        run = client.create_run(parent.info.experiment_id, run_name=f"{stage}__{name}", tags=tags)
        log_metrics(client, run.info.run_id, [(k, float(v), 0) for k, v in (child.get("metrics") or {}).items()
                                              if isinstance(v, (int, float)) and v == v])
        client.set_terminated(run.info.run_id, "FINISHED")


def model_links(client: Any, experiment_id: str, model_dir: Path) -> dict[str, str]:
    """Tags linking a model folder to the training run that logged it and to its registered version."""
    if not is_model_dir(model_dir):
        return {}
    digest = path_digest(model_dir, flat=True)
    tags = {"taskplan.model_digest": digest}
    runs = client.search_runs([experiment_id], f"tags.`taskplan.model_digest` = '{digest}' and "
                              "tags.`taskplan.kind` = 'stage'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if runs:
        tags["taskplan.training_run_id"] = runs[0].info.run_id
    try:
        versions = client.search_model_versions(f"tags.model_digest = '{digest}'")
    except Exception:  # noqa: BLE001 (no registry on this store)
        versions = []
    if versions:
        v = min(versions, key=lambda v: int(v.version))
        tags["taskplan.model_version"] = f"{v.name}/{v.version}"
    return tags


def is_dataset(path: Path) -> bool:
    """A saved HF DatasetDict, a folder of JSONL files, a JSONL file, or a JSON file under data/."""
    if path.is_dir():
        return (path / "dataset_dict.json").is_file() or any(path.glob("*.jsonl"))
    return path.suffix == ".jsonl" or (path.suffix == ".json" and path.parent.name == "data")


def dvc_md5(path: Path, root: Path | None = None) -> str:
    """The md5 DVC records for `path` (a folder: `<md5>.dir`), honouring the project's .dvcignore."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    ignore, fs = None, LocalFileSystem()
    odb = HashFileDB(fs, tempfile.gettempdir())
    if root is not None and Path(path).resolve().is_relative_to(Path(root).resolve()):
        from dvc.repo import Repo

        try:
            repo = Repo(str(root))
            ignore, odb = repo.dvcignore, repo.cache.local
        except Exception:  # noqa: BLE001 (not a DVC project: hash without its ignore file)
            pass
    _, _, obj = build(odb, str(Path(path).resolve()), fs, "md5", ignore=ignore, dry_run=True)
    return obj.hash_info.value


# --- helpers ----------------------------------------------------------------------------------------------

def _log_samples(client: Any, run_id: str, sources: Sequence[Path], lines: int) -> None:
    with tempfile.TemporaryDirectory(prefix="taskplan-sample-") as tmp:
        for src in sources:
            with src.open(encoding="utf-8") as fh, (Path(tmp) / src.name).open("w", encoding="utf-8") as out:
                for n, line in enumerate(fh):
                    if n >= lines:
                        break
                    out.write(line)
        client.log_artifacts(run_id, tmp, "transcripts_sample")


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)
    return 0.0


def _end_status(err: BaseException) -> str:
    killed = isinstance(err, KeyboardInterrupt) or type(err).__name__ == "TerminationSignal"
    return "KILLED" if killed else "FAILED"


def _last_step(result: Any) -> int:
    rows = _get(result, "history") or []
    return max((int(r.get("step", n)) for n, r in enumerate(rows)), default=0)


def _get(result: Any, name: str) -> Any:
    if result is None:
        return None
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)
