"""The stack's single source of settings (infra/stack.env) against its two readers, infra/local/ and
infra/docker-compose.yml, and flows/prefect.yaml; no server is started here."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.stack.conftest import ROOT, SECRETS, stack_env

INFRA = ROOT / "infra"
# set by the caller of up.sh/down.sh, not by stack.env
CALLER_VARS = {"TASKPLAN_STACK_DIR", "TASKPLAN_STACK_PYTHON", "TASKPLAN_DIR", "TASKPLAN_STOP_SECONDS"}


def test_stack_env_is_plain_key_value_lines():
    for line in (INFRA / "stack.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s'\"#]*", line), f"not a plain KEY=VALUE line: {line!r}"


def test_versions_match_the_pinned_packages():
    env = stack_env()
    pins = dict(re.findall(r'"(mlflow|prefect)==([^"]+)"', (ROOT / "pyproject.toml").read_text()))
    assert env["TASKPLAN_MLFLOW_VERSION"] == pins["mlflow"] and env["TASKPLAN_PREFECT_VERSION"] == pins["prefect"]
    assert yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())["prefect-version"] == pins["prefect"]


def test_compose_reads_every_setting_from_stack_env():
    compose = (INFRA / "docker-compose.yml").read_text()
    body = "\n".join(line for line in compose.splitlines() if not line.lstrip().startswith("#"))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", body))
    env = stack_env()
    assert used - set(env) == set(), "compose uses variables stack.env does not define"
    # the image installs MLflow from pyproject.toml's pin (test_versions_match_the_pinned_packages)
    ignored = {k for k in env if k.startswith("TASKPLAN_")} - used - {"TASKPLAN_MLFLOW_VERSION"}
    assert ignored == set(), "stack.env settings compose ignores"
    assert not re.search(r"(?<![\w$])(5000|4200|9000|9001)(?!\d)", body.replace("5432", "")), \
        "a port written into compose instead of taken from stack.env"
    assert "prefecthq/prefect:${TASKPLAN_PREFECT_VERSION" in body and "postgres:${TASKPLAN_POSTGRES_VERSION" in body
    services = yaml.safe_load(compose)["services"]
    assert {"postgres", "minio", "minio-init", "mlflow", "prefect-server", "prefect-deploy",
            "prefect-worker"} == set(services)


def test_server_passwords_are_not_committed_and_compose_requires_them():
    env = stack_env()
    compose = (INFRA / "docker-compose.yml").read_text()
    for key in SECRETS:
        assert env[key] == "", f"{key} has a value in infra/stack.env: passwords are never committed"
        uses = re.findall(rf"\$\{{{key}(.?.?)", compose)
        assert uses and all(u == ":?" for u in uses), f"compose must refuse to start without {key}: ${{{key}:?...}}"
    assert "--app-name=basic-auth" in compose and "PREFECT_SERVER_API_AUTH_STRING" in compose
    clients = yaml.safe_load(compose)["x-taskplan-client"]
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING"} <= set(clients)


def test_local_scripts_read_their_settings_from_stack_env():
    env = stack_env()
    for name in ("lib.sh", "up.sh", "down.sh"):
        text = (INFRA / "local" / name).read_text()
        used = set(re.findall(r"\b(TASKPLAN_[A-Z0-9_]+)", text))
        assert used - set(env) - CALLER_VARS == set(), f"{name} uses settings stack.env does not define"
        out = subprocess.run(["bash", "-n", str(INFRA / "local" / name)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_prefect_yaml_deploys_to_the_stack_pool_one_run_at_a_time():
    doc = yaml.safe_load((ROOT / "flows" / "prefect.yaml").read_text())
    (dep,) = doc["deployments"]
    assert dep["work_pool"]["name"] == stack_env()["TASKPLAN_WORK_POOL"]
    assert dep["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_prefect_yaml_header_says_to_use_the_project_venv():
    header = (ROOT / "flows" / "prefect.yaml").read_text().split("\nname:", 1)[0]
    assert ".venv/bin/prefect" in header and "own Python" in header and "make stack" in header
