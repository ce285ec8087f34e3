#!/usr/bin/env bash
# The production-like stack on this machine, without Docker (`make stack`): the same services and
# settings as infra/docker-compose.yml (all from infra/stack.env), as processes on 127.0.0.1.
#
#   infra/local/up.sh                 everything, in order: postgres s3 mlflow prefect deploy worker
#   infra/local/up.sh worker          only these services (e.g. a worker again after it was killed)
#   source .stack/client.env          then `taskplan ...`, `prefect ...`, `mlflow ...`, `dvc ...` use it
#   infra/local/down.sh               stop what this started (PID files); --wipe also deletes .stack/
#
# - postgres: the machine's own server (`initdb`/`pg_ctl` on PATH or in /usr/lib/postgresql/*/bin;
#   .ci/run installs it with apt-get where missing); databases for MLflow and Prefect.
# - s3: moto's S3 server (compose: MinIO) with the MLflow and DVC buckets. It keeps objects IN MEMORY:
#   a restart of the stack loses MLflow artifacts and DVC-remote objects (runs in Postgres stay).
# - mlflow: `mlflow server`, Postgres backend, artifacts proxied to s3://$TASKPLAN_MLFLOW_BUCKET.
# - prefect: `prefect server start` on Postgres (PREFECT_API_DATABASE_CONNECTION_URL).
# - deploy: the work pool, `prefect deploy --prefect-file flows/prefect.yaml --all` (TASKPLAN_DIR: where
#   the worker runs the flow, default this project) and the zombie-run automation (infra/prefect_automations.py).
# - worker: `prefect worker start` on the pool, with MLFLOW_TRACKING_URI set to the server. It runs every
#   flow with its own Python (this project's .venv, TASKPLAN_STACK_PYTHON), so that is the taskplan it runs.
# Data, logs (logs/<service>.log) and PID files live in TASKPLAN_STACK_DIR (default .stack/, ignored by git).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SERVICES=(postgres s3 mlflow prefect deploy worker)
if [[ $# -gt 0 ]]; then
  for s in "$@"; do [[ " ${SERVICES[*]} " == *" $s "* ]] || die "unknown service '$s' (use: ${SERVICES[*]})"; done
  SERVICES=("$@")
fi
[[ -x $PY ]] || die "$PY not found: run \`make install\` first (or set TASKPLAN_STACK_PYTHON)"
mkdir -p "$STACK" "$RUN" "$LOGS"
chmod 755 "$STACK"                         # the postgres user must reach its folder when we run as root
T0=$(date +%s%N)
PG_PASSWORD_Q=$("$PY" "$ROOT/infra/local/stack_tools.py" quote "$TASKPLAN_POSTGRES_PASSWORD")
PG_URL_AUTH="$TASKPLAN_POSTGRES_USER:$PG_PASSWORD_Q@$HOST:$TASKPLAN_POSTGRES_PORT"
export AWS_ACCESS_KEY_ID=$TASKPLAN_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$TASKPLAN_S3_SECRET_KEY \
       AWS_DEFAULT_REGION=$TASKPLAN_S3_REGION AWS_ENDPOINT_URL=$S3_URL
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false \
       DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=false HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

tools() { "$PY" "$ROOT/infra/local/stack_tools.py" "$@"; }
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# start_bg NAME CMD...: CMD in its own session (so down.sh can stop its whole process group), output
# appended to logs/NAME.log, PID in run/NAME.pid. A service that is still running is left alone.
start_bg() {
  local name=$1 pid; shift
  pid=$(alive_pid "$name")
  if [[ -n $pid ]]; then say "$name: already running (pid $pid)"; return 1; fi
  printf '\n=== %s %s\n' "$(date -Is)" "$*" >>"$LOGS/$name.log"
  ( exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null ) &
  echo $! >"$RUN/$name.pid"
}

pg_bin() {
  local dir
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then dirname "$(command -v pg_ctl)"; return; fi
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $dir && -x $dir/initdb ]] || die "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian/Ubuntu: apt-get install postgresql; .ci/run does)"
  echo "$dir"
}

up_postgres() {
  local bin major pwfile
  bin=$(pg_bin)
  major=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
  [[ $major == "$TASKPLAN_POSTGRES_VERSION" ]] ||
    say "warning: PostgreSQL $major here, $TASKPLAN_POSTGRES_VERSION in infra/stack.env (compose's image)"
  if [[ ! -s $PGDATA/PG_VERSION ]]; then
    mkdir -p "$STACK/postgres"
    [[ $(id -u) -ne 0 ]] || chown "$(pg_user)" "$STACK/postgres"
    chmod 700 "$STACK/postgres"
    as_pg test -w "$STACK/postgres" || die "user $(pg_user) cannot reach $STACK/postgres (a parent folder is \
closed to others, e.g. under /root): set TASKPLAN_STACK_DIR=/tmp/taskplan-stack"
    pwfile=$STACK/postgres/.pwfile
    (umask 077; printf '%s\n' "$TASKPLAN_POSTGRES_PASSWORD" >"$pwfile")
    [[ $(id -u) -ne 0 ]] || chown "$(pg_user)" "$pwfile"
    as_pg "$bin/initdb" -D "$PGDATA" -U "$TASKPLAN_POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --no-locale \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$LOGS/postgres-initdb.log" 2>&1 ||
      { rm -f "$pwfile"; die "initdb failed: $(tail -5 "$LOGS/postgres-initdb.log")"; }
    rm -f "$pwfile"
    printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
  fi
  if as_pg "$bin/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    say "postgres: already running"
  else
    as_pg "$bin/pg_ctl" start -D "$PGDATA" -w -t 60 -l "$STACK/postgres/postgres.log" \
      -o "-p $TASKPLAN_POSTGRES_PORT" >/dev/null ||
      die "postgres did not start: $(tail -5 "$STACK/postgres/postgres.log")"
  fi
  tools create-dbs "$TASKPLAN_MLFLOW_DB" "$TASKPLAN_PREFECT_DB"
  say "postgres: 127.0.0.1:$TASKPLAN_POSTGRES_PORT ($(elapsed))"
}

up_s3() {
  if start_bg s3 "$BIN/moto_server" -H "$HOST" -p "$TASKPLAN_S3_PORT"; then
    tools wait-http "$S3_URL/" 60 "$RUN/s3.pid" || die "s3 did not start: $(tail -5 "$LOGS/s3.log")"
  fi
  tools create-buckets "$TASKPLAN_MLFLOW_BUCKET" "$TASKPLAN_DVC_BUCKET"
  say "s3 (moto, in memory): $S3_URL ($(elapsed))"
}

up_mlflow() {
  # the backend URI (with the password) goes through the environment, not the command line
  if start_bg mlflow env MLFLOW_BACKEND_STORE_URI="postgresql://$PG_URL_AUTH/$TASKPLAN_MLFLOW_DB" \
      MLFLOW_S3_ENDPOINT_URL="$S3_URL" \
      "$BIN/mlflow" server --host "$HOST" --port "$TASKPLAN_MLFLOW_PORT" --workers "$TASKPLAN_MLFLOW_WORKERS" \
      --artifacts-destination "s3://$TASKPLAN_MLFLOW_BUCKET" --serve-artifacts; then
    tools wait-http "$MLFLOW_URL/health" 180 "$RUN/mlflow.pid" || die "mlflow did not start: $(tail -20 "$LOGS/mlflow.log")"
  fi
  say "mlflow: $MLFLOW_URL ($(elapsed))"
}

up_prefect() {
  if start_bg prefect-server env -u PREFECT_API_URL PREFECT_HOME="$STACK/prefect-server" \
      PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://$PG_URL_AUTH/$TASKPLAN_PREFECT_DB" \
      "$BIN/prefect" server start --host "$HOST" --port "$TASKPLAN_PREFECT_PORT"; then
    tools wait-http "$PREFECT_API/health" 180 "$RUN/prefect-server.pid" ||
      die "prefect server did not start: $(tail -20 "$LOGS/prefect-server.log")"
  fi
  say "prefect: $PREFECT_API ($(elapsed))"
}

up_deploy() {
  local taskplan_dir=${TASKPLAN_DIR:-$ROOT}
  grep -q "name: $TASKPLAN_WORK_POOL\$" "$ROOT/flows/prefect.yaml" ||
    die "flows/prefect.yaml does not deploy to work pool $TASKPLAN_WORK_POOL (infra/stack.env): make them agree"
  (
    cd "$ROOT"
    export PREFECT_API_URL=$PREFECT_API PREFECT_HOME=$STACK/prefect-client TASKPLAN_DIR=$taskplan_dir
    "$BIN/prefect" work-pool create "$TASKPLAN_WORK_POOL" --type process --overwrite >"$LOGS/deploy.log" 2>&1
    "$BIN/prefect" --no-prompt deploy --prefect-file flows/prefect.yaml --all >>"$LOGS/deploy.log" 2>&1
    "$PY" infra/prefect_automations.py --zombie-seconds "$TASKPLAN_ZOMBIE_SECONDS" >>"$LOGS/deploy.log" 2>&1
  ) || die "deploy failed: $(tail -20 "$LOGS/deploy.log")"
  say "deploy: pool $TASKPLAN_WORK_POOL, flows/prefect.yaml (runs in $taskplan_dir), zombie automation ($(elapsed))"
}

up_worker() {
  local since name="taskplan-local-$(hostname -s)"
  since=$(date +%s)
  local limit=()
  [[ -z $TASKPLAN_WORKER_LIMIT ]] || limit=(--limit "$TASKPLAN_WORKER_LIMIT")
  # no S3 keys: the worker's flow runs reach artifacts only through the MLflow server (proxied)
  if start_bg worker env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL \
      PREFECT_API_URL="$PREFECT_API" MLFLOW_TRACKING_URI="$MLFLOW_URL" \
      PREFECT_HOME="$STACK/prefect-worker" PATH="$BIN:$PATH" TASKPLAN_DIR="${TASKPLAN_DIR:-$ROOT}" \
      PREFECT_FLOWS_HEARTBEAT_FREQUENCY="$PREFECT_FLOWS_HEARTBEAT_FREQUENCY" \
      "$BIN/prefect" worker start --pool "$TASKPLAN_WORK_POOL" --type process --name "$name" "${limit[@]}"; then
    PREFECT_API_URL=$PREFECT_API tools wait-worker "$TASKPLAN_WORK_POOL" "$name" "$since" 120 "$RUN/worker.pid" ||
      die "worker did not start: $(tail -20 "$LOGS/worker.log")"
  fi
  say "worker: $name on pool $TASKPLAN_WORK_POOL, limit ${TASKPLAN_WORKER_LIMIT:-none} ($(elapsed))"
}

for s in "${SERVICES[@]}"; do "up_$s"; done
client_env >"$STACK/client.env"
say "up in $(elapsed); clients: source ${STACK#"$PWD"/}/client.env; logs: ${LOGS#"$PWD"/}/; stop: infra/local/down.sh"
