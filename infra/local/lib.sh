# Shared by infra/local/up.sh and down.sh (sourced, not run). Reads infra/stack.env without overriding
# variables already set, and names the stack's folder, Python and PID files.
#   TASKPLAN_STACK_DIR     where the stack keeps its data, logs and PID files (default: .stack/ in the project)
#   TASKPLAN_STACK_PYTHON  the Python whose packages run the servers and the worker (default: .venv/bin/python)
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

while IFS= read -r line || [[ -n $line ]]; do
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  key=${line%%=*}
  [[ -v $key ]] || export "$key=${line#*=}"
done < "$ROOT/infra/stack.env"
unset line key

STACK=${TASKPLAN_STACK_DIR:-$ROOT/.stack}
PY=${TASKPLAN_STACK_PYTHON:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
RUN=$STACK/run                     # <service>.pid
LOGS=$STACK/logs                   # <service>.log
PGDATA=$STACK/postgres/data
CREDS=$STACK/credentials.env       # the servers' passwords (mode 0600), kept from the first start
HOST=127.0.0.1
PG_URL_AUTH="$TASKPLAN_POSTGRES_USER:$TASKPLAN_POSTGRES_PASSWORD@$HOST:$TASKPLAN_POSTGRES_PORT"
S3_URL=http://$HOST:$TASKPLAN_S3_PORT
MLFLOW_URL=http://$HOST:$TASKPLAN_MLFLOW_PORT
PREFECT_API=http://$HOST:$TASKPLAN_PREFECT_PORT/api

say() { printf '[stack] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Postgres refuses to run as root: as root, its commands run as the `postgres` user (else `nobody`).
pg_user() {
  if [[ $(id -u) -ne 0 ]]; then id -un; elif id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u "$(pg_user)" -- "$@"; else "$@"; fi
}

# The PID of a service started by up.sh if it is still that process (the PID file's PID is alive and its
# command line names the service's program), else nothing: a recycled PID is never taken for ours.
alive_pid() {
  local name=$1 pid
  [[ -f $RUN/$name.pid ]] || return 0
  pid=$(<"$RUN/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$(program_of "$name")" && echo "$pid"
  return 0
}
program_of() {
  case $1 in
    s3) echo moto_server ;;
    mlflow) echo "mlflow server" ;;
    prefect-server) echo "prefect server start" ;;
    worker) echo "prefect worker start" ;;
    *) echo "$1" ;;
  esac
}

# What a client of the stack needs (written to $STACK/client.env, mode 0600, by up.sh; `source` it).
# Values are shell-quoted: a password set by the user may hold any character.
client_env() {
  local kv
  for kv in "PREFECT_API_URL=$PREFECT_API" \
      "PREFECT_API_AUTH_STRING=$TASKPLAN_PREFECT_USER:$TASKPLAN_PREFECT_PASSWORD" \
      "MLFLOW_TRACKING_URI=$MLFLOW_URL" "MLFLOW_TRACKING_USERNAME=$TASKPLAN_MLFLOW_USER" \
      "MLFLOW_TRACKING_PASSWORD=$TASKPLAN_MLFLOW_PASSWORD" \
      "AWS_ACCESS_KEY_ID=$TASKPLAN_S3_ACCESS_KEY" "AWS_SECRET_ACCESS_KEY=$TASKPLAN_S3_SECRET_KEY" \
      "AWS_DEFAULT_REGION=$TASKPLAN_S3_REGION" "AWS_ENDPOINT_URL=$S3_URL" "MLFLOW_S3_ENDPOINT_URL=$S3_URL"; do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
}
