#!/usr/bin/env bash
# Stop what bin/start.sh started: SIGTERM to each service its pid files name, but only while that
# process is still TaskHub's (its command line says taskhub and the component), then wait for the
# graceful drain up to TASKHUB_STOP_TIMEOUT seconds (default 40: workers drain for TASKHUB_DRAIN_S,
# 30 by default), then SIGKILL what is left, process group included. Safe when nothing runs.
set -uo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
TASKHUB_HOME="$(cd "${TASKHUB_HOME:-$SRC}" 2>/dev/null && pwd)" || { echo "nothing to stop (no $TASKHUB_HOME)"; exit 0; }
PIDS="$TASKHUB_HOME/data/pids"
TIMEOUT_S="${TASKHUB_STOP_TIMEOUT:-40}"

is_ours() {  # pid component -> 0 when alive and still that TaskHub component
  local pid=$1 component=$2 cmd state
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" = Z ] && return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *taskhub* && " $cmd " == *" $component "* ]]
}

stop_group() {  # files...: SIGTERM, wait, SIGKILL
  local f name pid component
  local -a names=() pids=() comps=()
  for f in "$@"; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid); component=${name%%-*}
    pid=$(cat "$f" 2>/dev/null)
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_ours "$pid" "$component"; then
      kill -TERM "$pid" 2>/dev/null && { names+=("$name"); pids+=("$pid"); comps+=("$component"); }
      echo "stopping $name (pid $pid)"
    else
      echo "$name is not running (stale pid file removed)"
      rm -f "$f"
    fi
  done
  local deadline=$((SECONDS + TIMEOUT_S)) i left
  while :; do
    left=0
    for i in "${!pids[@]}"; do is_ours "${pids[$i]}" "${comps[$i]}" && left=1; done
    [ $left = 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
      for i in "${!pids[@]}"; do
        if is_ours "${pids[$i]}" "${comps[$i]}"; then
          echo "${names[$i]} did not stop within ${TIMEOUT_S}s; killing it" >&2
          kill -KILL -- "-${pids[$i]}" 2>/dev/null || kill -KILL "${pids[$i]}" 2>/dev/null
          [ "${comps[$i]}" = worker ] && forced_worker=1
        fi
      done
      deadline=$((SECONDS + 5))  # SIGKILL cannot be ignored; only wait for the kernel to finish
      while [ $SECONDS -lt $deadline ]; do
        left=0
        for i in "${!pids[@]}"; do is_ours "${pids[$i]}" "${comps[$i]}" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
      done
      break
    fi
    sleep 0.2
  done
  for i in "${!names[@]}"; do rm -f "$PIDS/${names[$i]}.pid"; done
}

# A worker killed before it finished draining leaves its runs' processes behind (they live in their
# own sessions). Find them by the run folder in their environment, which names this home only;
# the log still shows those runs as running: the reaper fails or retries them on the next start.
kill_orphaned_runs() {
  local env_file pid n=0
  for env_file in /proc/[0-9]*/environ; do
    pid=${env_file#/proc/}; pid=${pid%/environ}
    # Processes of other users, or gone meanwhile, cannot be read: nothing to say about them.
    if { tr '\0' '\n' < "$env_file"; } 2>/dev/null | grep -q "^TASKHUB_RUN_DIR=$TASKHUB_HOME/data/runs/"; then
      kill -KILL "$pid" 2>/dev/null && n=$((n + 1))
    fi
  done
  [ $n -gt 0 ] && echo "killed $n process(es) of unfinished runs; the reaper records them at the next start" >&2
  return 0
}

forced_worker=0
if ! compgen -G "$PIDS/*.pid" >/dev/null; then
  echo "TaskHub is not running in $TASKHUB_HOME (no pid files)"; exit 0
fi
# The API and the workers first (workers drain their runs); the reaper last, so it can still
# reap anything a worker left behind until the very end.
stop_group "$PIDS"/api.pid "$PIDS"/worker-*.pid
stop_group "$PIDS"/*.pid
[ $forced_worker = 1 ] && kill_orphaned_runs
echo "TaskHub stopped"
