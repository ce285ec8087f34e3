"""flows/prefect.yaml against a real local Prefect server (started here, in a temporary PREFECT_HOME):
create the process work pool, `prefect deploy` the nightly deployment, read it back through the client."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "taskplan-process"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free port; yields (api_url, env for CLI calls against it)."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_PROFILE", None)
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    with running_server([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                        f"{api}/health", home / "server.log", server_env, "prefect server"):
        yield api, env


def _cli(args: list[str], env: dict, cwd: Path = ROOT) -> str:
    out = subprocess.run([PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out.stdout


@pytest.mark.smoke
def test_nightly_deployment_is_created_from_prefect_yaml(prefect_server):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api, env = prefect_server
    yaml_file = ROOT / "flows" / "prefect.yaml"
    before = hashlib.sha256(yaml_file.read_bytes()).hexdigest()
    _cli(["work-pool", "create", POOL, "--type", "process"], env)
    _cli(["--no-prompt", "deploy", "--prefect-file", "flows/prefect.yaml", "--all"],
         {**env, "TASKPLAN_DIR": str(ROOT)})
    assert hashlib.sha256(yaml_file.read_bytes()).hexdigest() == before, "deploying must not rewrite prefect.yaml"

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name("taskplan-pipeline/nightly")

    with temporary_settings(updates={PREFECT_API_URL: api}):
        deployment = asyncio.run(read())
    schedule = deployment.schedules[0]
    assert schedule.schedule.cron == "0 2 * * *" and schedule.schedule.timezone == "UTC" and schedule.active
    assert deployment.work_pool_name == POOL
    assert deployment.entrypoint == "flows/pipeline.py:taskplan_pipeline"
    assert deployment.parameters["params"] == "params.yaml"
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    assert "params" in deployment.parameter_openapi_schema["properties"], "the flow's parameters are published"
