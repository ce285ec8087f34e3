"""Where MLflow records: the tracking backend, the experiment, and a lock for registry writes.

    experiment_id = configure("taskplan")       # backend from MLFLOW_TRACKING_URI, else ./mlflow.db
    with registry_lock():                       # one registration at a time on this store
        ...
    find_experiment(experiment_name(), tracking_uri())   # its id, or None, without creating anything

Backend: `MLFLOW_TRACKING_URI` when set; otherwise a SQLite file `mlflow.db` in the current directory (the
project root) with artifacts in `mlartifacts/` beside it, so a fresh clone needs no server. MLflow records
the artifact folder of a SQLite store as an absolute path: a checkout copied or moved with its `mlflow.db`
would keep writing artifacts into the old checkout, so `configure` refuses such a store with one line.
The experiment is created in MLflow 3's model-training view (tag `mlflow.experimentKind`) with a
description.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taskplan.env import quiet_env
from taskplan.errors import ConfigError

quiet_env()

DEFAULT_EXPERIMENT = "taskplan"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",   # open on the runs table, not GenAI traces
    "mlflow.note.content": (
        "taskplan planners: one parent run per pipeline run with a nested run per stage. SFT and GRPO runs "
        "log loss, reward, KL and validation accuracy live; evaluate has one child run per policy with the "
        "same metric names (sr/<task>, asat/<task>, sr_mean, ...): select them and compare."),
}


_default_set: str | None = None     # the default URI we handed to mlflow (which exports it to the environment)


def tracking_uri(root: Path | str | None = None) -> str:
    """`MLFLOW_TRACKING_URI`, else `sqlite:///<root>/mlflow.db` (root: the current directory). mlflow's
    set_tracking_uri exports the variable: a value this module set is not taken as the user's."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env and env != _default_set:
        return env
    return f"sqlite:///{(Path(root or Path.cwd()) / DEFAULT_DB).resolve()}"


def artifact_location(uri: str) -> str | None:
    """Artifact folder for new experiments: `mlartifacts/` beside a SQLite file; None lets a server decide."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return (db.parent / DEFAULT_ARTIFACTS).resolve().as_uri()
    return None


def use_backend() -> str:
    """Point mlflow at the tracking backend, re-read from the environment; returns its URI. The registry
    follows it unless MLFLOW_REGISTRY_URI says otherwise (mlflow reads that variable itself)."""
    import mlflow

    global _default_set
    user = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if not user or user == _default_set:
        _default_set = os.environ.get("MLFLOW_TRACKING_URI", "").strip() or None
    return uri


def configure(experiment: str | None = None) -> str:
    """Point mlflow at the backend and the experiment (created in the model-training view if absent);
    returns the experiment id. A SQLite store whose artifacts live in another checkout is refused."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = use_backend()
    name = experiment_name(experiment)
    # The first access creates a SQLite store's tables: under the registry's lock, so two commands started
    # together on a fresh checkout do not both create them (`table experiments already exists`).
    with registry_lock(uri):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                return client.create_experiment(name, artifact_location=artifact_location(uri),
                                                tags=EXPERIMENT_TAGS)
            except MlflowException:  # created meanwhile by a process on another host
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    check_copy_safe(uri, exp.artifact_location)
    for key, value in EXPERIMENT_TAGS.items():
        if key not in (exp.tags or {}):
            client.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def experiment_name(experiment: str | None = None) -> str:
    """The experiment runs go to: `experiment`, else MLFLOW_EXPERIMENT_NAME, else taskplan."""
    return experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def find_experiment(name: str, uri: str) -> str | None:
    """The id of the live experiment `name` in the store at `uri`, or None while it has none. Only looks:
    a SQLite file that is not there yet is not created, and a server is asked once (MLflow would retry an
    unreachable one for minutes), so a store that does not answer is one line at once."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None
    import mlflow
    from mlflow.exceptions import MlflowException

    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    try:
        exp = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    except (MlflowException, OSError) as err:
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(f"cannot read the tracking store {uri} ({why}); start it, or point "
                          "MLFLOW_TRACKING_URI at one that answers") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return None if exp is None or exp.lifecycle_stage == "deleted" else exp.experiment_id


def check_copy_safe(uri: str, location: str) -> None:
    """Refuse a SQLite store (in its default place) whose experiment writes artifacts into another folder
    than the `mlartifacts/` beside it: the checkout was copied or moved, and runs would land in the old one."""
    if not uri.startswith("sqlite:///") or "://" in location.removeprefix("file://"):
        return                                       # a server, or artifacts in an object store
    db = Path(uri.removeprefix("sqlite:///"))
    old = Path(location.removeprefix("file://")).resolve()
    if old != (db.parent / DEFAULT_ARTIFACTS).resolve() and old.name == DEFAULT_ARTIFACTS:
        raise ConfigError(f"{db} records its artifacts in {old}, another checkout's folder (copied or moved?); "
                          f"move {db.name} aside (e.g. `mv {db.name} {db.name}.bak`) to start a store here, or "
                          "point MLFLOW_TRACKING_URI at a server")


@contextmanager
def registry_lock(uri: str | None = None) -> Iterator[None]:
    """An exclusive lock for registry writes on this machine: beside a SQLite store, else in the temp folder
    keyed by the store's URI. Two `taskplan register` at once then add one version and move the alias once
    each, in turn (registry.register also re-checks the alias after writing, for writers on other hosts)."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).with_suffix(".register.lock")
    else:
        key = hashlib.sha256(uri.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"taskplan-register-{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
