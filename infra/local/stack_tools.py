"""Small steps of infra/local/up.sh that are easier in Python (run with the stack's Python):

    stack_tools.py wait-http URL SECONDS [PIDFILE]    until URL answers (any status below 500); fail early when
                                                     the process of PIDFILE has exited
    stack_tools.py create-dbs NAME...                 Postgres databases (TASKPLAN_POSTGRES_* from stack.env)
    stack_tools.py create-buckets NAME...             S3 buckets (AWS_* and AWS_ENDPOINT_URL in the environment)
    stack_tools.py wait-worker POOL NAME SINCE SECONDS [PIDFILE]   until worker NAME of POOL sent a heartbeat after SINCE
                                                     (epoch seconds; PREFECT_API_URL and PREFECT_API_AUTH_STRING
                                                     in the environment)
    stack_tools.py check-auth URL                     URL refuses a request without credentials (401) and takes
                                                     one with STACK_AUTH ("user:password", from the environment:
                                                     not on a command line that `ps` shows)
    stack_tools.py mlflow-admin                       give MLflow's admin user the configured password (below)
    stack_tools.py quote TEXT                         TEXT percent-encoded for a URL's user or password
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime


def wait_http(url: str, seconds: float, pidfile: str | None = None) -> None:
    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3):
                return True
        except urllib.error.HTTPError as err:
            return err.code < 500
        except (urllib.error.URLError, OSError):
            return False

    _wait_until(answers, seconds, 0.3, pidfile, f"{url}: the process ({pidfile}) exited before answering",
                f"{url}: no answer after {seconds:.0f} s")


def check_auth(url: str) -> None:
    """Exit with one line saying what is wrong unless `url` answers 401 without credentials and 2xx with them."""
    import httpx

    user, _, password = os.environ["STACK_AUTH"].partition(":")
    try:
        anonymous = httpx.get(url, timeout=10).status_code
        ours = httpx.get(url, auth=(user, password), timeout=10).status_code
    except httpx.HTTPError as err:
        sys.exit(f"{url} did not answer ({err})")
    if anonymous != 401:
        sys.exit(f"{url} answers HTTP {anonymous} without credentials (not 401): it runs without basic auth")
    if not 200 <= ours < 300:
        sys.exit(f"{url} answers HTTP {ours} to user {user} with the stack's password")


def mlflow_admin() -> None:
    """Set the password of MLflow's admin user (MLFLOW_AUTH_ADMIN_USERNAME) in the auth database of
    MLFLOW_AUTH_CONFIG_PATH to MLFLOW_AUTH_ADMIN_PASSWORD when it is another one. Run before `mlflow server`:
    MLflow reads that password only to create the user at its first start and ignores later changes, so
    without this a changed password would lock the clients out. No user store or no such user yet: nothing
    to do (the server creates them)."""
    import configparser

    import sqlalchemy as sa
    from werkzeug.security import check_password_hash, generate_password_hash

    user, password = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    if len(password) < 12:
        sys.exit("the MLflow password is shorter than 12 characters, MLflow's minimum: set a longer one")
    config = configparser.ConfigParser()              # read as MLflow reads it (auth/config.py)
    config.read(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
    engine = sa.create_engine(config["mlflow"]["database_uri"])
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table("users"):
            return
        row = conn.execute(sa.text("SELECT password_hash FROM users WHERE username = :u"), {"u": user}).first()
        if row is None or check_password_hash(row[0], password):
            return
        # werkzeug's hash, as MLflow's own store writes and checks it (auth/sqlalchemy_store.py)
        conn.execute(sa.text("UPDATE users SET password_hash = :h WHERE username = :u"),
                     {"h": generate_password_hash(password), "u": user})
    print(f"mlflow: password of user {user} changed to the configured one")


def create_dbs(names: list[str]) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=int(os.environ["TASKPLAN_POSTGRES_PORT"]),
                            user=os.environ["TASKPLAN_POSTGRES_USER"],
                            password=os.environ["TASKPLAN_POSTGRES_PASSWORD"], dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
                print(f"database {name}: created")
    conn.close()


def create_buckets(names: list[str]) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for name in names:
        if name not in have:
            s3.create_bucket(Bucket=name)
            print(f"bucket {name}: created")


def wait_worker(pool: str, name: str, since: float, seconds: float, pidfile: str | None = None) -> None:
    import httpx

    api = os.environ["PREFECT_API_URL"].rstrip("/")
    auth_string = os.environ.get("PREFECT_API_AUTH_STRING")
    auth = tuple(auth_string.split(":", 1)) if auth_string else None

    def reported() -> bool:
        try:
            workers = httpx.post(f"{api}/work_pools/{pool}/workers/filter", json={}, auth=auth, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        for w in workers if isinstance(workers, list) else []:
            beat = w.get("last_heartbeat_time")
            if w.get("name") == name and beat and datetime.fromisoformat(beat).timestamp() >= since:
                return True
        return False

    _wait_until(reported, seconds, 0.5, pidfile, f"worker {name}: the process ({pidfile}) exited before reporting",
                f"worker {name} did not report to pool {pool} within {seconds:.0f} s")


def _wait_until(ready, seconds: float, every: float, pidfile: str | None, died: str, timeout: str) -> None:
    """Poll `ready()` until it is true; exit with `died` if the pidfile's process ends, `timeout` at the
    deadline."""
    deadline = time.monotonic() + seconds
    while not ready():
        if pidfile and not _alive(pidfile):
            sys.exit(died)
        if time.monotonic() > deadline:
            sys.exit(timeout)
        time.sleep(every)


def _alive(pidfile: str) -> bool:
    try:
        pid = int(open(pidfile).read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"     # a zombie has exited
    except OSError:
        return True


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "wait-http":
        wait_http(args[0], float(args[1]), args[2] if len(args) > 2 else None)
    elif cmd == "create-dbs":
        create_dbs(args)
    elif cmd == "create-buckets":
        create_buckets(args)
    elif cmd == "wait-worker":
        wait_worker(args[0], args[1], float(args[2]), float(args[3]), args[4] if len(args) > 4 else None)
    elif cmd == "check-auth":
        check_auth(args[0])
    elif cmd == "mlflow-admin":
        mlflow_admin()
    elif cmd == "quote":
        print(urllib.parse.quote(args[0], safe=""))
    else:
        sys.exit(f"unknown command {cmd!r}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
