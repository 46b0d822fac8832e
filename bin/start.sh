#!/usr/bin/env bash
# Start TaskHub in the background: the API (+ UI), N workers (default 1) and one reaper.
#   bin/start.sh [N]
# Installs what is missing first (uv, the locked Python environment, web/dist when npm exists).
# Respects TASKHUB_HOME (default: this repository), TASKHUB_HOST, TASKHUB_PORT, TASKHUB_TOKEN and
# TASKHUB_START_TIMEOUT (seconds to wait for the API, default 60). Logs: $TASKHUB_HOME/logs/*.log,
# pid files: $TASKHUB_HOME/data/pids/*.pid. bin/stop.sh stops everything this started.
set -euo pipefail
source "$(dirname "$0")/_env.sh"

N=${1:-1}
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bin/start.sh [N]   (N = number of workers, at least 1; got '$N')" >&2; exit 2
fi
export TASKHUB_HOME="${TASKHUB_HOME:-$TASKHUB_SRC}"
[ -d "$TASKHUB_HOME" ] || { echo "error: TASKHUB_HOME=$TASKHUB_HOME is not a folder; create it (with a tasks/ folder) or unset it" >&2; exit 1; }
TASKHUB_HOME="$(cd "$TASKHUB_HOME" && pwd)"
HOST="${TASKHUB_HOST:-127.0.0.1}"
PORT="${TASKHUB_PORT:-8000}"
PIDS="$TASKHUB_HOME/data/pids"
LOGS="$TASKHUB_HOME/logs"
DEADLINE_S="${TASKHUB_START_TIMEOUT:-60}"
mkdir -p "$PIDS" "$LOGS"

# Is a pid file's process still the TaskHub component it names? (A reused pid is not ours.)
is_ours() {  # pidfile -> 0 when alive and ours
  local file=$1 pid component cmd state
  pid=$(cat "$file" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  component=$(basename "$file" .pid); component=${component%%-*}
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" = Z ] && return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *taskhub* && " $cmd " == *" $component "* ]]
}

running=()
for f in "$PIDS"/*.pid; do
  [ -e "$f" ] || continue
  if is_ours "$f"; then running+=("$(basename "$f" .pid)"); else rm -f "$f"; fi
done
if [ ${#running[@]} -gt 0 ]; then
  echo "TaskHub is already running in $TASKHUB_HOME (${running[*]}); nothing started."
  echo "Stop it with bin/stop.sh first to start a different set."
  exit 0
fi

sync_env

# The UI: build it once when npm is here; the API serves a page explaining how otherwise.
if [ ! -f "$TASKHUB_SRC/web/dist/index.html" ] && [ -f "$TASKHUB_SRC/web/package.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "building the UI (web/dist) ..."
    (cd "$TASKHUB_SRC/web" && npm ci --no-audit --no-fund --loglevel=error && npm run build) >"$LOGS/web-build.log" 2>&1 || {
      echo "error: the UI build failed; see $LOGS/web-build.log" >&2; tail -n 20 "$LOGS/web-build.log" >&2; exit 1; }
  else
    echo "note: npm not found, so the UI is not built; the API still runs (install Node.js, then re-run)."
  fi
fi

started=()
stop_started() {  # everything this run started has a pid file: stop.sh stops exactly those
  TASKHUB_STOP_TIMEOUT="${TASKHUB_STOP_TIMEOUT:-10}" "$TASKHUB_SRC/bin/stop.sh" >&2 || true
}

launch() {  # name, then the taskhub arguments
  local name=$1; shift
  local log="$LOGS/$name.log"
  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting $name: taskhub $*" >>"$log"
  # setsid: each service leads its own session, so a terminal's Ctrl-C or hangup never reaches it
  # and stop.sh can signal its whole group. $! is the service's own pid (setsid execs in place).
  if command -v setsid >/dev/null 2>&1; then
    setsid nohup "$TASKHUB_BIN" "$@" >>"$log" 2>&1 </dev/null &
  else
    nohup "$TASKHUB_BIN" "$@" >>"$log" 2>&1 </dev/null &
  fi
  echo $! >"$PIDS/$name.pid"
  started+=("$name")
}

failed() {  # name: say which component failed, show its log, stop the rest
  local name=$1
  echo "error: $name failed to start; the end of $LOGS/$name.log:" >&2
  tail -n 25 "$LOGS/$name.log" >&2 || true
  echo "stopping what was started ..." >&2
  stop_started
  exit 1
}

all_alive() {
  local name
  for name in "${started[@]}"; do
    is_ours "$PIDS/$name.pid" || { dead=$name; return 1; }
  done
}

launch api api --host "$HOST" --port "$PORT"
for i in $(seq 1 "$N"); do launch "worker-w-$i" worker --id "w-$i"; done
launch reaper reaper

case "$HOST" in 0.0.0.0|"") CHECK_HOST=127.0.0.1 ;; ::) CHECK_HOST="[::1]" ;; *:*) CHECK_HOST="[$HOST]" ;; *) CHECK_HOST=$HOST ;; esac
HEALTH="http://$CHECK_HOST:$PORT/api/health"
AUTH=()
[ -n "${TASKHUB_TOKEN:-}" ] && AUTH=(-H "Authorization: Bearer $TASKHUB_TOKEN")
healthy() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 ${AUTH[@]+"${AUTH[@]}"} "$HEALTH" >/dev/null 2>&1
  else
    "$TASKHUB_PY" -c 'import sys, httpx; h = {"Authorization": "Bearer " + sys.argv[2]} if sys.argv[2] else {}
sys.exit(httpx.get(sys.argv[1], headers=h, timeout=2).status_code != 200)' "$HEALTH" "${TASKHUB_TOKEN:-}" 2>/dev/null
  fi
}

dead=""
deadline=$((SECONDS + DEADLINE_S))
until healthy; do
  all_alive || failed "$dead"
  if [ $SECONDS -ge $deadline ]; then
    echo "error: the API did not answer $HEALTH within ${DEADLINE_S}s" >&2; failed api
  fi
  sleep 0.2
done
# The workers and the reaper open the database and load the tasks while the API comes up: one more
# look, a moment later, catches one that died at startup.
settle=$((SECONDS + 2))
while [ $SECONDS -lt $settle ]; do all_alive || failed "$dead"; sleep 0.2; done

echo "TaskHub is running: http://$CHECK_HOST:$PORT/  (API, $N worker(s), reaper; logs in $LOGS)"
echo "Stop it with bin/stop.sh"
