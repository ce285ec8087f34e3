"""The production-like stack (infra/local/up.sh) brought up once for tests/stack/: Postgres, moto's S3
server, the MLflow server (Postgres backend, artifacts proxied to S3), the Prefect server on Postgres, the
nightly deployment from flows/prefect.yaml and one process worker. Everything runs on free loopback ports
in a temporary folder, the worker runs the flow in a git clone of this project (TASKPLAN_DIR), and
infra/local/down.sh --wipe removes it all afterwards. The MLflow and Prefect servers run with basic auth and
the passwords up.sh generates: the tests are clients with the credentials of its client.env.

Without PostgreSQL server binaries the tests skip (`.ci/run` installs them and sets
TASKPLAN_STACK_REQUIRED=1, which turns the skip into a failure)."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# what up.sh generates when the environment does not set it (the test stack must use its own)
SECRETS = ("TASKPLAN_MLFLOW_PASSWORD", "TASKPLAN_PREFECT_PASSWORD", "TASKPLAN_MLFLOW_SECRET_KEY")

# The micro pipeline of tests/flows/conftest.py (1 task, 2 training seeds, a 2-layer hidden-32 model,
# 2 training steps, 1 evaluation seed), as `--set` overrides of the project's own params.yaml (cpu-tiny
# profile): what a user passes to `prefect deployment run ... --param overrides=[...]`.
MICRO_OVERRIDES = [
    "generate.tasks=[cheese_sandwich]", "generate.num_train_seeds=2", "generate.noise_levels=[0.0]",
    "generate.workers=2",               # the forked planner pool, as the cpu-tiny profile runs it
    "build_dataset.validation_fraction=0.5", "build_dataset.noise_levels=[]",
    "model_init.vocab_size=512", "model_init.hidden_size=32", "model_init.num_layers=2", "model_init.num_heads=2",
    "model_init.num_kv_heads=1", "model_init.intermediate_size=64", "model_init.max_position_embeddings=1024",
    "sft.max_steps=2", "sft.batch_size=2", "sft.save_steps=1", "sft.val_rows=2", "sft.val_max_new_tokens=4",
    "sft.eval_every=0", "sft.cpu_threads=1",
    "grpo.max_steps=2", "grpo.prompts_per_step=1", "grpo.num_generations=2", "grpo.max_completion_length=4",
    "grpo.save_steps=1", "grpo.eval_every=0", "grpo.val_rows=2", "grpo.val_max_new_tokens=4", "grpo.cpu_threads=1",
    "evaluate.policies=[random, sft=models/sft, grpo=models/grpo]", "evaluate.tasks=[cheese_sandwich]",
    "evaluate.seeds=[42]", "evaluate.bound=false", "evaluate.constrained=[]", "evaluate.opt_samples=0",
    "evaluate.max_new_tokens=8", "evaluate.batch_size=4", "evaluate.dtype=float32", "evaluate.cpu_threads=1",
    "register.verdict_path=null",       # compare passes only an SR above 0, which 2 training steps do not reach
    "pipeline.transcripts_sample=3",
]
HEARTBEAT_SECONDS = 30                  # Prefect's minimum
ZOMBIE_SECONDS = 75                     # the automation marks a run Crashed after this long without a heartbeat


def stack_env() -> dict[str, str]:
    """infra/stack.env as a dict (KEY=VALUE lines)."""
    values = {}
    for line in (ROOT / "infra" / "stack.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def read_client_env(path: Path) -> dict[str, str]:
    """client.env (`export KEY=<shell-quoted value>` lines) as a dict."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = shlex.split(value)[0] if value else ""
    return values


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _postgres_available() -> bool:
    return bool(shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


@dataclass
class Stack:
    """A running stack: `env` runs up.sh/down.sh against it, `client_env` is what a client of it sets."""

    base: Path
    project: Path                       # git clone of this project: TASKPLAN_DIR of the deployment
    env: dict[str, str]
    client_env: dict[str, str]
    up_seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    env_patch: pytest.MonkeyPatch = field(default_factory=pytest.MonkeyPatch)   # undone when the stack stops

    def load_client_env(self) -> None:
        """Read up.sh's client.env; MLflow clients (MlflowClient in the tests) read the login from the
        environment, as users' do, so it goes into os.environ until the stack stops."""
        self.client_env = read_client_env(self.base / "stack" / "client.env")
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            self.env_patch.setenv(key, self.client_env[key])

    @property
    def api(self) -> str:
        return self.client_env["PREFECT_API_URL"]

    @property
    def prefect_auth(self) -> tuple[str, str]:
        user, _, password = self.client_env["PREFECT_API_AUTH_STRING"].partition(":")
        return user, password

    def request(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, f"{self.api}{path}", timeout=30, auth=self.prefect_auth, **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def s3(self) -> Any:
        import boto3

        env = self.client_env
        return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])

    def deployment(self) -> dict:
        return self.request("GET", "/deployments/name/taskplan-pipeline/nightly")

    def create_run(self, overrides: list[str], **params: Any) -> str:
        dep = self.deployment()
        run = self.request("POST", f"/deployments/{dep['id']}/create_flow_run",
                           json={"parameters": {"overrides": overrides, **params}})
        return run["id"]

    def flow_run(self, run_id: str) -> dict:
        return self.request("GET", f"/flow_runs/{run_id}")

    def states(self, run_id: str) -> list[dict]:
        return self.request("GET", "/flow_run_states/", params={"flow_run_id": run_id})

    def task_runs(self, run_id: str) -> list[dict]:
        return self.request("POST", "/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}})

    def wait(self, run_id: str, timeout: float, until: set[str] = FINAL) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state_type"] in until:
                return run
            if time.monotonic() > deadline:
                pytest.fail(f"flow run {run_id} still {run['state_name']} after {timeout:.0f} s; worker log:\n"
                            f"{self.log('worker')[-3000:]}")
            time.sleep(1)

    def script(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run([str(ROOT / "infra" / "local" / name), *args], env=self.env, cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"{name} {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    def pid(self, service: str) -> int | None:
        try:
            return int((self.base / "stack" / "run" / f"{service}.pid").read_text())
        except (OSError, ValueError):
            return None

    def log(self, service: str) -> str:
        try:
            return (self.base / "stack" / "logs" / f"{service}.log").read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="module")                 # stopped right after test_stack.py, not at the session's end
def stack() -> Stack:
    if not _postgres_available():
        msg = "PostgreSQL server binaries (initdb) not found; `.ci/run` installs them (apt-get install postgresql)"
        if os.environ.get("TASKPLAN_STACK_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    base = Path(tempfile.mkdtemp(prefix="taskplan-stack-"))
    base.chmod(0o755)                   # the postgres user must reach its data folder when tests run as root
    project = _clone_project(base / "project")
    pg, s3, mlflow_port, prefect_port = _free_ports(4)
    # the stack's own settings only: no test's Prefect/MLflow/S3 settings, and tracking on (tests/conftest.py
    # turns it off for unit tests with TASKPLAN_TRACK=0; the worker must record to the MLflow server)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "MLFLOW_TRACKING", "MLFLOW_AUTH_", "AWS_"))
           and k not in {"TASKPLAN_TRACK", "MLFLOW_FLASK_SERVER_SECRET_KEY", *SECRETS}}
    env.update({
        "TASKPLAN_STACK_DIR": str(base / "stack"), "TASKPLAN_STACK_PYTHON": str(VENV_BIN / "python"),
        "TASKPLAN_POSTGRES_PORT": str(pg), "TASKPLAN_S3_PORT": str(s3), "TASKPLAN_MLFLOW_PORT": str(mlflow_port),
        "TASKPLAN_PREFECT_PORT": str(prefect_port), "TASKPLAN_MLFLOW_WORKERS": "1",
        "TASKPLAN_DIR": str(project),
        "TASKPLAN_WORKER_LIMIT": "",     # no worker limit: the deployment's concurrency limit must do the queueing
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS), "TASKPLAN_ZOMBIE_SECONDS": str(ZOMBIE_SECONDS),
        "TASKPLAN_STOP_SECONDS": "20", "PREFECT_LOGGING_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
    })
    start = time.perf_counter()
    stack = Stack(base, project, env, {}, 0.0)
    try:
        stack.script("up.sh", timeout=420)
        stack.up_seconds = time.perf_counter() - start
        stack.load_client_env()
        yield stack
    finally:
        stack.env_patch.undo()
        start = time.perf_counter()
        subprocess.run([str(ROOT / "infra" / "local" / "down.sh"), "--wipe"], env=env, cwd=ROOT,
                       capture_output=True, timeout=180)
        stack.timings["down"] = time.perf_counter() - start
        print(f"\nstack: up in {stack.up_seconds:.1f} s; " + ", ".join(f"{k} {v:.1f} s" for k, v in stack.timings.items()))
        shutil.rmtree(base, ignore_errors=True)


def _clone_project(dest: Path) -> Path:
    """What a new user has: a git clone of the project (its committed files), with the files the flow reads
    taken from this working tree (they must match the installed package the worker imports), and data/
    rebuilt by `taskplan suite` (deterministic: data.dvc's hash), as `make repro` does on an empty remote."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True, timeout=120)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", "flows/pipeline.py", "flows/prefect.yaml"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dest / name)
    subprocess.run([str(VENV_BIN / "taskplan"), "suite", "--out", "data/suite.json"], cwd=dest, check=True,
                   capture_output=True, timeout=120)
    return dest
