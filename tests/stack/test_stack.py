"""The production-like stack end to end (conftest.py starts it with infra/local/up.sh): the nightly
deployment runs the micro pipeline on the worker, MLflow (Postgres + S3) holds the runs, artifacts and a
registered version; two overlapping runs queue on the deployment's limit; DVC round-trips data/ through
the S3 remote; a worker stopped (down.sh) or killed (SIGKILL) mid-run leaves no run stuck RUNNING, and a
restarted worker finishes the pipeline. The MLflow and Prefect servers refuse requests without the
generated credentials, which up.sh keeps in files only their owner reads, and a changed MLflow password
takes effect on a restart. The tests run in file order and share the stack (and the first run's cache)."""

from __future__ import annotations

import filecmp
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.stack.conftest import (
    HEARTBEAT_SECONDS,
    MICRO_OVERRIDES,
    ROOT,
    SECRETS,
    VENV_BIN,
    ZOMBIE_SECONDS,
    stack_env,
)

pytestmark = pytest.mark.stack

STAGES = ["generate", "validate", "build_dataset", "model_init", "sft", "grpo", "evaluate", "compare", "register"]


def test_stack_is_up_with_the_deployment_and_the_zombie_automation(stack):
    import importlib.metadata as md

    env = stack_env()
    assert env["TASKPLAN_MLFLOW_VERSION"] == md.version("mlflow") and env["TASKPLAN_PREFECT_VERSION"] == md.version(
        "prefect"), "the servers run the versions stack.env names"

    dep = stack.deployment()
    assert dep["work_pool_name"] == env["TASKPLAN_WORK_POOL"]
    assert dep["entrypoint"] == "flows/pipeline.py:taskplan_pipeline"
    assert dep["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(stack.project)}}]
    assert dep["global_concurrency_limit"]["limit"] == 1, dep.get("global_concurrency_limit")
    assert (dep.get("concurrency_options") or {}).get("collision_strategy") == "ENQUEUE"
    automations = stack.request("POST", "/automations/filter", json={})
    zombie = [a for a in automations if a["name"] == "taskplan: crash zombie flow runs"]
    assert zombie and zombie[0]["enabled"] and zombie[0]["trigger"]["within"] == ZOMBIE_SECONDS, automations
    auth = (stack.base / "stack" / "mlflow" / "auth.ini").read_text()
    assert f"auth_cache_ttl_seconds = {env['TASKPLAN_MLFLOW_AUTH_CACHE_SECONDS']}" in auth, \
        "MLflow's login cache is off: every request would hash the password again"
    workers = stack.request("POST", f"/work_pools/{env['TASKPLAN_WORK_POOL']}/workers/filter", json={})
    assert [w["status"] for w in workers] == ["ONLINE"], workers
    print(f"stack up in {stack.up_seconds:.1f} s")


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    return httpx.get(url, auth=auth, timeout=30).status_code


def _mlflow_protected(stack) -> str:
    return f"{stack.client_env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"


def test_servers_refuse_requests_without_credentials(stack):
    env, client = stack_env(), stack.client_env
    assert all(env[key] == "" for key in SECRETS), "a password is committed in infra/stack.env"
    mlflow_auth = (client["MLFLOW_TRACKING_USERNAME"], client["MLFLOW_TRACKING_PASSWORD"])
    assert mlflow_auth[0] == env["TASKPLAN_MLFLOW_USER"] and len(mlflow_auth[1]) >= 24, "a generated password"
    assert stack.prefect_auth[0] == env["TASKPLAN_PREFECT_USER"] and len(stack.prefect_auth[1]) >= 24

    mlflow = _mlflow_protected(stack)
    assert _status(mlflow) == 401
    assert _status(mlflow, (mlflow_auth[0], "not-the-password")) == 401
    assert _status(mlflow, mlflow_auth) == 200
    assert _status(f"{client['MLFLOW_TRACKING_URI']}/health") == 200, "health checks need no login"
    prefect = f"{stack.api}/admin/version"
    assert _status(prefect) == 401
    assert _status(prefect, (stack.prefect_auth[0], "not-the-password")) == 401
    assert _status(prefect, stack.prefect_auth) == 200
    assert _status(f"{stack.api}/health") == 200

    cli = subprocess.run([str(VENV_BIN / "prefect"), "work-pool", "ls"], capture_output=True, text=True,
                         env={**stack.env, **client, "PREFECT_API_AUTH_STRING": ""}, timeout=120)
    assert cli.returncode != 0 and "401" in cli.stdout + cli.stderr, cli.stdout + cli.stderr

    kept = dict(line.split("=", 1) for line in (stack.base / "stack" / "credentials.env").read_text().splitlines())
    assert kept["TASKPLAN_MLFLOW_PASSWORD"] == mlflow_auth[1]
    assert kept["TASKPLAN_PREFECT_PASSWORD"] == stack.prefect_auth[1]
    for name in ("client.env", "credentials.env"):
        mode = (stack.base / "stack" / name).stat().st_mode & 0o777
        assert mode == 0o600, f"{name} has mode {mode:o}"


def test_deployment_run_records_runs_artifacts_and_a_version(stack):
    import mlflow
    import psycopg2

    cli = subprocess.run([str(VENV_BIN / "prefect"), "deployment", "run", "taskplan-pipeline/nightly",
                          "--param", f"overrides={json.dumps(MICRO_OVERRIDES)}"],
                         env={**stack.env, **stack.client_env}, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", cli.stdout).group(1)
    run = stack.wait(run_id, timeout=900)
    assert run["state_type"] == "COMPLETED", f"{run['state_name']}: {run['state']['message']}\n" \
                                             f"{stack.log('worker')[-4000:]}"
    stack.timings["cold run"] = run["total_run_time"]
    assert "TerminationSignal" not in stack.log("worker"), "generate's forked pool kept Prefect's SIGTERM handler"

    client = mlflow.MlflowClient(tracking_uri=stack.client_env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("taskplan")
    parents = client.search_runs([exp.experiment_id], f"tags.`taskplan.flow_run_id` = '{run_id}' "
                                                      "and tags.`taskplan.kind` = 'pipeline'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", parents
    parent = parents[0]
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["taskplan.stage"] for r in children) == sorted(STAGES)
    by_stage = {r.data.tags["taskplan.stage"]: r for r in children}
    assert by_stage["grpo"].info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
    assert {"model", "metrics"} <= {a.path for a in client.list_artifacts(by_stage["grpo"].info.run_id)}

    versions = client.search_model_versions("name = 'taskplan-planner'")
    assert versions, "the register stage added a version"
    assert any(v.tags.get("taskplan.eval_run_id") or v.run_id for v in versions)

    s3 = stack.s3()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="taskplan-mlflow")
            for o in page.get("Contents", [])]
    grpo_id = by_stage["grpo"].info.run_id
    assert any(grpo_id in k and "/model/" in k for k in keys), f"no grpo model files in the bucket: {keys[:20]}"
    assert any(parent.info.run_id in k for k in keys), "the parent run's artifacts (params.yaml) are in S3"

    env = stack_env()
    conn = psycopg2.connect(host="127.0.0.1", port=int(stack.env["TASKPLAN_POSTGRES_PORT"]),
                            user=env["TASKPLAN_POSTGRES_USER"], password=env["TASKPLAN_POSTGRES_PASSWORD"],
                            dbname=env["TASKPLAN_MLFLOW_DB"])
    with conn, conn.cursor() as cur:                 # the server's backend store really is this Postgres
        cur.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (parent.info.run_id,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM model_versions WHERE name = 'taskplan-planner'")
        assert cur.fetchone()[0] == len(versions)
    conn.close()

    again = stack.wait(stack.create_run(MICRO_OVERRIDES), timeout=300)
    assert again["state_type"] == "COMPLETED", again["state"]["message"]
    stack.timings["cached run"] = again["total_run_time"]
    names = {t["name"].split("-")[0]: t for t in stack.task_runs(again["id"])}
    assert names["sft"]["state_name"] == "Cached", {k: t["state_name"] for k, t in names.items()}


def test_overlapping_runs_queue_on_the_deployment_limit(stack):
    """Both runs wait while no worker is up, so the worker's first poll submits both at once (a worker
    polling between the two requests could otherwise take the second after the first had ended)."""
    stack.script("down.sh", "worker", timeout=120)
    first, second = stack.create_run(MICRO_OVERRIDES), stack.create_run(MICRO_OVERRIDES)
    stack.script("up.sh", "worker", timeout=180)
    runs = [stack.wait(r, timeout=300) for r in (first, second)]
    assert [r["state_type"] for r in runs] == ["COMPLETED", "COMPLETED"], [r["state"]["message"] for r in runs]
    a, b = sorted(runs, key=lambda r: r["start_time"])
    assert b["start_time"] >= a["end_time"], f"the runs overlapped: {a['start_time']}..{a['end_time']} " \
                                             f"and {b['start_time']}..{b['end_time']}"
    waited = {s["name"] for s in stack.states(b["id"])}
    assert "AwaitingConcurrencySlot" in waited, f"the second run never waited for the slot: {waited}"


def test_dvc_push_to_s3_and_pull_into_a_fresh_clone(stack, tmp_path):
    env = {**stack.env, **stack.client_env}
    dvc = str(VENV_BIN / "dvc")
    endpoint = stack.client_env["AWS_ENDPOINT_URL"]

    def remote(repo: Path) -> None:                # only in .dvc/config.local: the clone's config stays as is
        for args in (["remote", "add", "--local", "-f", "stack", "s3://taskplan-dvc"],
                     ["remote", "modify", "--local", "stack", "endpointurl", endpoint]):
            subprocess.run([dvc, *args], cwd=repo, env=env, check=True, capture_output=True, timeout=60)

    project = stack.project
    remote(project)
    out = subprocess.run([dvc, "commit", "-f", "data.dvc"], cwd=project, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    diff = subprocess.run(["git", "diff", "--quiet", "--", "data.dvc"], cwd=project)
    assert diff.returncode == 0, "`taskplan suite` no longer reproduces data.dvc's hash"
    out = subprocess.run([dvc, "push", "-r", "stack", "data.dvc"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    keys = [o["Key"] for o in stack.s3().list_objects_v2(Bucket="taskplan-dvc").get("Contents", [])]
    assert keys, "dvc push wrote nothing to the bucket"

    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(fresh)], check=True, timeout=120)
    assert not (fresh / "data").exists()
    remote(fresh)
    out = subprocess.run([dvc, "pull", "-r", "stack", "data.dvc"], cwd=fresh, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    cmp = filecmp.dircmp(project / "data", fresh / "data")
    names = sorted(p.name for p in (project / "data").iterdir())
    assert sorted(p.name for p in (fresh / "data").iterdir()) == names and not cmp.left_only and not cmp.right_only
    for name in names:
        assert (project / "data" / name).read_bytes() == (fresh / "data" / name).read_bytes(), name


def test_a_changed_mlflow_password_takes_effect_on_restart(stack):
    """MLflow keeps the admin password it created the user with; up.sh applies a changed one at the next start.
    A changed password is refused while a server that read the old one runs."""
    old = dict(stack.client_env)
    new = "rotated-" + old["MLFLOW_TRACKING_PASSWORD"][:20]
    refused = subprocess.run([str(ROOT / "infra" / "local" / "up.sh")], cwd=ROOT, capture_output=True, text=True,
                             env={**stack.env, "TASKPLAN_MLFLOW_PASSWORD": new}, timeout=120)
    assert refused.returncode != 0 and "stop first" in refused.stderr, refused.stderr

    stack.script("down.sh", "worker", "mlflow", timeout=120)
    start = time.monotonic()
    stack.env["TASKPLAN_MLFLOW_PASSWORD"] = new
    try:
        stack.script("up.sh", "mlflow", "worker", timeout=300)
    finally:
        del stack.env["TASKPLAN_MLFLOW_PASSWORD"]        # kept in credentials.env from now on
    stack.timings["mlflow + worker restart with a new password"] = time.monotonic() - start
    stack.load_client_env()                          # the tests after this one use the new login too
    assert stack.client_env["MLFLOW_TRACKING_PASSWORD"] == new
    user = old["MLFLOW_TRACKING_USERNAME"]
    assert _status(_mlflow_protected(stack), (user, old["MLFLOW_TRACKING_PASSWORD"])) == 401
    assert _status(_mlflow_protected(stack), (user, new)) == 200

    run = stack.wait(stack.create_run(MICRO_OVERRIDES), timeout=300)  # the worker records with the new one
    assert run["state_type"] == "COMPLETED", f"{run['state']['message']}\n{stack.log('worker')[-4000:]}"
    assert _mlflow_pipeline_status(stack, run["id"]) == "FINISHED"


def _longer_sft(seed: int) -> list[str]:
    """Micro overrides with a 400-step SFT (time to kill it) and their own seed (nothing cached from
    generate on), so each kill test starts from the same point."""
    keep = [o for o in MICRO_OVERRIDES if not o.startswith(("sft.max_steps", "sft.save_steps"))]
    return [*keep, "sft.max_steps=400", "sft.save_steps=50", f"common.seed={seed}"]


def _start_and_wait_for_sft(stack, overrides: list[str]) -> str:
    run_id = stack.create_run(overrides)
    deadline = time.monotonic() + 300
    while not any(t["name"].startswith("sft") and t["state_type"] == "RUNNING" for t in stack.task_runs(run_id)):
        assert stack.flow_run(run_id)["state_type"] not in {"COMPLETED", "FAILED", "CRASHED"}, "ended before sft"
        assert time.monotonic() < deadline, f"sft never started:\n{stack.log('worker')[-3000:]}"
        time.sleep(0.5)
    time.sleep(2)
    return run_id


def _mlflow_pipeline_status(stack, flow_run_id: str) -> str:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stack.client_env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("taskplan")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`taskplan.flow_run_id` = '{flow_run_id}' "
                                                     "and tags.`taskplan.kind` = 'pipeline'")
    return run.info.status


def test_stopping_the_worker_crashes_its_run_at_once(stack):
    """`make stack-down` (down.sh) in the middle of SFT: the flow run gets SIGTERM before the worker, so
    Prefect records it Crashed right away and the MLflow parent run ends KILLED (not RUNNING)."""
    run_id = _start_and_wait_for_sft(stack, _longer_sft(seed=7))
    start = time.monotonic()
    try:
        out = stack.script("down.sh", "worker", timeout=120)
        assert "flow runs" in out.stderr, out.stderr
        run = stack.wait(run_id, timeout=30)
        stack.timings["crash recorded after down.sh worker"] = time.monotonic() - start
        assert run["state_type"] == "CRASHED" and "termination signal" in run["state"]["message"], run["state"]
        assert _mlflow_pipeline_status(stack, run_id) == "KILLED"
    finally:                                         # the next test needs a worker whatever happened here
        stack.script("up.sh", "worker", timeout=180)


def test_killed_worker_leaves_no_running_flow_run_and_a_new_worker_finishes(stack):
    """The worker and the flow run it started are SIGKILLed in the middle of SFT (a crashed or evicted worker
    machine: nothing can report the end). The zombie automation marks the run Crashed once heartbeats stop;
    the worker started again runs the next attempt, which serves the finished stages from the cache."""
    longer = _longer_sft(seed=11)
    run_id = _start_and_wait_for_sft(stack, longer)
    worker = stack.pid("worker")
    runs = _children(worker)
    assert runs, "the worker has no flow-run process"
    killed_at = time.monotonic()
    for pid in [worker, *runs]:
        os.kill(pid, signal.SIGKILL)
    assert stack.flow_run(run_id)["state_type"] == "RUNNING"

    crashed = stack.wait(run_id, timeout=HEARTBEAT_SECONDS + ZOMBIE_SECONDS + 90)
    stack.timings["crash detected after kill"] = time.monotonic() - killed_at
    assert crashed["state_type"] == "CRASHED", crashed["state_name"]
    assert "heartbeat" in (crashed["state"]["message"] or ""), crashed["state"]["message"]
    # known gap (reported): nothing ends the MLflow parent run of a SIGKILLed flow run; it stays RUNNING
    print(f"MLflow parent run of the SIGKILLed flow run: {_mlflow_pipeline_status(stack, run_id)}")

    stack.script("up.sh", "worker", timeout=180)
    retry = stack.wait(stack.create_run(longer), timeout=600)
    assert retry["state_type"] == "COMPLETED", f"{retry['state']['message']}\n{stack.log('worker')[-4000:]}"
    stack.timings["run after restart"] = retry["total_run_time"]
    states = {t["name"].split("-")[0]: t["state_name"] for t in stack.task_runs(retry["id"])}
    assert states["model_init"] == "Cached" and states["sft"] == "Completed", states


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-s"]))
