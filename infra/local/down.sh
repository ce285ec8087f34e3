#!/usr/bin/env bash
# Stop what infra/local/up.sh started (`make stack-down`), found by its PID files, never by name.
#
#   infra/local/down.sh               worker (and the flow runs it started), prefect, mlflow, s3, postgres
#   infra/local/down.sh worker        only these services (e.g. kill the worker, keep the servers)
#   infra/local/down.sh --wipe        stop everything, then delete the stack's folder (.stack/: databases, logs)
#
# Each service gets SIGTERM on its process group (it runs in its own session), then SIGKILL after
# TASKPLAN_STOP_SECONDS (default 20). The worker starts each flow run in a new session: those runs are
# stopped first, the same way (SIGTERM lets Prefect mark them Crashed), with a second SIGTERM halfway in
# case Python dropped the first. Postgres stops with `pg_ctl stop -m fast`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WIPE=0
SERVICES=()
for a in "$@"; do
  case $a in
    --wipe) WIPE=1 ;;
    worker|prefect|mlflow|s3|postgres) SERVICES+=("$a") ;;
    *) die "unknown argument '$a' (use: --wipe, worker, prefect, mlflow, s3, postgres)" ;;
  esac
done
[[ ${#SERVICES[@]} -gt 0 ]] || SERVICES=(worker prefect mlflow s3 postgres)
[[ $WIPE -eq 0 || ${#SERVICES[@]} -eq 5 ]] || die "--wipe stops everything: name no service with it"
STOP_SECONDS=${TASKPLAN_STOP_SECONDS:-20}

children() {             # PIDs whose parent is $1 (read from /proc: no procps needed)
  local f stat rest
  for f in /proc/[0-9]*/stat; do
    { read -r stat <"$f"; } 2>/dev/null || continue               # the process may have ended since the glob
    rest=${stat##*) }
    read -r _ ppid _ <<<"$rest"
    [[ $ppid == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}

term() { local p; for p in "$@"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done; }

alive() {                # a process that has not exited (a zombie has: it only waits for its parent to reap it)
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1      # (not $(<...): its failure ends the script)
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

gone() { local p; for p in "$@"; do alive "$p" && return 1; done; return 0; }

stop_bg() {              # stop_bg NAME: its process group and, for the worker, its flow runs' groups
  local name=$1 pid runs=() p i start=$SECONDS
  pid=$(alive_pid "$name")
  if [[ -z $pid ]]; then rm -f "$RUN/$name.pid"; say "$name: not running"; return; fi
  [[ $name != worker ]] || mapfile -t runs < <(children "$pid")
  if [[ ${#runs[@]} -gt 0 ]]; then       # flow runs first, while the worker still relays their output
    term "${runs[@]}"
    for ((i = 0; i < STOP_SECONDS * 5; i++)); do
      gone "${runs[@]}" && break
      # once more halfway: Python drops the exception its SIGTERM handler raises when the signal lands
      # inside a finaliser (__del__), and that run would go on training until the SIGKILL
      [[ $i -ne $((STOP_SECONDS * 5 / 2)) ]] || { say "$name: flow runs still up, SIGTERM again"; term "${runs[@]}"; }
      sleep 0.2
    done
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_SECONDS * 5; i++)); do gone "$pid" "${runs[@]}" && break; sleep 0.2; done
  if ! gone "$pid" "${runs[@]}"; then
    say "$name: still running after ${STOP_SECONDS} s, sending SIGKILL"
    for p in "$pid" "${runs[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  fi
  rm -f "$RUN/$name.pid"
  say "$name: stopped in $((SECONDS - start)) s (pid $pid${runs[*]:+; flow runs ${runs[*]}})"
}

stop_postgres() {
  local bin
  if [[ ! -s $PGDATA/postmaster.pid ]]; then say "postgres: not running"; return; fi
  bin=$(dirname "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
  as_pg "$bin/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null && say "postgres: stopped"
}

for s in "${SERVICES[@]}"; do
  case $s in
    worker) stop_bg worker ;;
    prefect) stop_bg prefect-server ;;
    mlflow) stop_bg mlflow ;;
    s3) stop_bg s3 ;;
    postgres) stop_postgres ;;
  esac
done
if [[ $WIPE -eq 1 ]]; then rm -rf "$STACK"; say "deleted $STACK"; fi
