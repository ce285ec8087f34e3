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
# - mlflow: `mlflow server --app-name basic-auth`, Postgres backend, artifacts proxied to
#   s3://$TASKPLAN_MLFLOW_BUCKET; its users in a SQLite file, mlflow/auth.db.
# - prefect: `prefect server start` on Postgres (PREFECT_API_DATABASE_CONNECTION_URL), basic auth
#   (PREFECT_SERVER_API_AUTH_STRING).
# - deploy: the work pool, `prefect deploy --prefect-file flows/prefect.yaml --all` (TASKPLAN_DIR: where
#   the worker runs the flow, default this project) and the zombie-run automation (infra/prefect_automations.py).
# - worker: `prefect worker start` on the pool, with MLFLOW_TRACKING_URI set to the server. It runs every
#   flow with its own Python (this project's .venv, TASKPLAN_STACK_PYTHON), so that is the taskplan it runs.
# Data, logs (logs/<service>.log) and PID files live in TASKPLAN_STACK_DIR (default .stack/, ignored by git).
# Passwords of the MLflow and Prefect servers: the environment's (TASKPLAN_MLFLOW_PASSWORD, ...), else those
# of credentials.env there, else new random ones at the first start; kept in credentials.env (mode 0600).
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

# The servers' secrets: the environment's, else those kept in $CREDS by an earlier start, else new ones; then
# kept there. Each server reads its own at start, so a changed one is refused while a reader of it runs
# (the down.sh services that read it are listed here): they would disagree.
declare -A READERS=([TASKPLAN_MLFLOW_PASSWORD]="mlflow worker" [TASKPLAN_MLFLOW_SECRET_KEY]="mlflow"
                    [TASKPLAN_PREFECT_PASSWORD]="prefect worker")
load_secrets() {
  local key kept s
  for key in "${!READERS[@]}"; do
    kept=$(sed -n "s/^$key=//p" "$CREDS" 2>/dev/null || true)
    if [[ -z ${!key} ]]; then
      export "$key=${kept:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')}"
    elif [[ -n $kept && $kept != "${!key}" ]]; then
      for s in ${READERS[$key]}; do
        [[ -z $(alive_pid "${s/prefect/prefect-server}") ]] ||
          die "$key differs from the one in $CREDS, which $s runs with: stop first \
(infra/local/down.sh ${READERS[$key]}), then start again"
      done
    fi
  done
  [[ ${#TASKPLAN_MLFLOW_PASSWORD} -ge 12 ]] ||
    die "TASKPLAN_MLFLOW_PASSWORD is shorter than 12 characters, MLflow's minimum: set a longer one"
  (umask 077; for key in "${!READERS[@]}"; do printf '%s=%s\n' "$key" "${!key}"; done >"$CREDS")
  chmod 600 "$CREDS"
}

# check_auth NAME URL USER:PASSWORD DOWN: the server of NAME refuses anonymous requests to URL and takes ours;
# else (started before basic auth, or with other passwords) restarting it (down.sh DOWN) fixes it.
check_auth() {
  local msg
  msg=$(STACK_AUTH=$3 tools check-auth "$2" 2>&1) ||
    die "$1: $msg; restart it: infra/local/down.sh $4 && infra/local/up.sh"
}

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
  "$PY" -c 'import flask_wtf' 2>/dev/null ||
    die "Flask-WTF is missing, MLflow's basic-auth app needs it: \
$PY -m pip install 'mlflow[auth]==$TASKPLAN_MLFLOW_VERSION'"
  # MLflow's auth config: its own user store; the admin's name and password come from the environment
  mkdir -p -m 700 "$STACK/mlflow"
  (umask 077; printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s\nauthorization_function = %s\nauth_cache_ttl_seconds = %s\n' \
    "$STACK/mlflow/auth.db" "mlflow.server.auth:authenticate_request_basic_auth" \
    "$TASKPLAN_MLFLOW_AUTH_CACHE_SECONDS" >"$STACK/mlflow/auth.ini")
  export MLFLOW_AUTH_CONFIG_PATH=$STACK/mlflow/auth.ini MLFLOW_AUTH_ADMIN_USERNAME=$TASKPLAN_MLFLOW_USER \
         MLFLOW_AUTH_ADMIN_PASSWORD=$TASKPLAN_MLFLOW_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY=$TASKPLAN_MLFLOW_SECRET_KEY
  [[ -n $(alive_pid mlflow) ]] || tools mlflow-admin || die "mlflow: setting the admin's password failed (above)"
  # the backend URI and the passwords go through the environment, not the command line
  if start_bg mlflow env MLFLOW_BACKEND_STORE_URI="postgresql://$PG_URL_AUTH/$TASKPLAN_MLFLOW_DB" \
      MLFLOW_S3_ENDPOINT_URL="$S3_URL" \
      "$BIN/mlflow" server --app-name basic-auth --host "$HOST" --port "$TASKPLAN_MLFLOW_PORT" \
      --workers "$TASKPLAN_MLFLOW_WORKERS" --artifacts-destination "s3://$TASKPLAN_MLFLOW_BUCKET" --serve-artifacts; then
    tools wait-http "$MLFLOW_URL/health" 180 "$RUN/mlflow.pid" || die "mlflow did not start: $(tail -20 "$LOGS/mlflow.log")"
  fi
  unset MLFLOW_AUTH_CONFIG_PATH MLFLOW_AUTH_ADMIN_USERNAME MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY
  check_auth mlflow "$MLFLOW_URL/api/2.0/mlflow/experiments/search?max_results=1" \
    "$TASKPLAN_MLFLOW_USER:$TASKPLAN_MLFLOW_PASSWORD" "mlflow worker"
  say "mlflow: $MLFLOW_URL, user $TASKPLAN_MLFLOW_USER ($(elapsed))"
}

up_prefect() {
  if start_bg prefect-server env -u PREFECT_API_URL -u PREFECT_API_AUTH_STRING PREFECT_HOME="$STACK/prefect-server" \
      PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://$PG_URL_AUTH/$TASKPLAN_PREFECT_DB" \
      PREFECT_SERVER_API_AUTH_STRING="$PREFECT_AUTH" \
      "$BIN/prefect" server start --host "$HOST" --port "$TASKPLAN_PREFECT_PORT"; then
    tools wait-http "$PREFECT_API/health" 180 "$RUN/prefect-server.pid" ||     # /health needs no login
      die "prefect server did not start: $(tail -20 "$LOGS/prefect-server.log")"
  fi
  check_auth prefect "$PREFECT_API/admin/version" "$PREFECT_AUTH" "prefect worker"
  say "prefect: $PREFECT_API, user $TASKPLAN_PREFECT_USER ($(elapsed))"
}

up_deploy() {
  local taskplan_dir=${TASKPLAN_DIR:-$ROOT}
  grep -q "name: $TASKPLAN_WORK_POOL\$" "$ROOT/flows/prefect.yaml" ||
    die "flows/prefect.yaml does not deploy to work pool $TASKPLAN_WORK_POOL (infra/stack.env): make them agree"
  (
    cd "$ROOT"
    export PREFECT_API_URL=$PREFECT_API PREFECT_API_AUTH_STRING=$PREFECT_AUTH PREFECT_HOME=$STACK/prefect-client \
           TASKPLAN_DIR=$taskplan_dir
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
      PREFECT_API_URL="$PREFECT_API" PREFECT_API_AUTH_STRING="$PREFECT_AUTH" MLFLOW_TRACKING_URI="$MLFLOW_URL" \
      MLFLOW_TRACKING_USERNAME="$TASKPLAN_MLFLOW_USER" MLFLOW_TRACKING_PASSWORD="$TASKPLAN_MLFLOW_PASSWORD" \
      PREFECT_HOME="$STACK/prefect-worker" PATH="$BIN:$PATH" TASKPLAN_DIR="${TASKPLAN_DIR:-$ROOT}" \
      PREFECT_FLOWS_HEARTBEAT_FREQUENCY="$PREFECT_FLOWS_HEARTBEAT_FREQUENCY" \
      "$BIN/prefect" worker start --pool "$TASKPLAN_WORK_POOL" --type process --name "$name" "${limit[@]}"; then
    PREFECT_API_URL=$PREFECT_API PREFECT_API_AUTH_STRING=$PREFECT_AUTH \
      tools wait-worker "$TASKPLAN_WORK_POOL" "$name" "$since" 120 "$RUN/worker.pid" ||
      die "worker did not start: $(tail -20 "$LOGS/worker.log")"
  fi
  say "worker: $name on pool $TASKPLAN_WORK_POOL, limit ${TASKPLAN_WORKER_LIMIT:-none} ($(elapsed))"
}

load_secrets
PREFECT_AUTH=$TASKPLAN_PREFECT_USER:$TASKPLAN_PREFECT_PASSWORD
for s in "${SERVICES[@]}"; do "up_$s"; done
(umask 077; client_env >"$STACK/client.env")
chmod 600 "$STACK/client.env"                # it holds the passwords (an older one may have been 0644)
say "up in $(elapsed); clients: source ${STACK#"$PWD"/}/client.env; logs: ${LOGS#"$PWD"/}/; stop: infra/local/down.sh"
