# Shell functions of the deploy scripts (sourced, not run): messages, jar fetches from Maven
# Central, detached processes behind pid files, and running a command with a service up.
# Messages start with the name of the script that runs ("kafka.sh: ...").

log() { echo "${0##*/}: $*" >&2; }
die() { log "$*"; exit 1; }

# require_port NAME VALUE: a value that is not a port number stops the script, naming NAME.
require_port() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a port number, got '$2'"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# jars_fetched LIBS STAMP_TEXT: the cache holds the jars of the pom the stamp text names.
jars_fetched() { [[ -f "$1/.govbus-stamp" && "$(cat "$1/.govbus-stamp")" == "$2" ]]; }

# fetch_jars POM LIBS STAMP_TEXT WHAT NAME CHECK: the pom's dependencies into LIBS.
#   WHAT names the jars in the progress line, NAME in the failure; CHECK DIR prints what is
#   missing from a finished fetch (nothing when complete).
# Two starts racing (make run + tests) must not fetch into the same dir at once; the lock lives
# in a subshell so no server inherits it. The jars land beside the cache and are swapped in
# whole, so an interrupted fetch never looks complete.
fetch_jars() {
  local pom="$1" libs="$2" stamp="$3" what="$4" name="$5" check="$6"
  mkdir -p "$(dirname "$libs")"
  (
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if jars_fetched "$libs" "$stamp"; then exit 0; fi
    log "fetching $what jars from Maven Central into $libs"
    t0=$SECONDS
    tmp="$libs.tmp.$$"
    rm -rf "$tmp"
    # mvn -q still prints colour codes on stdout: keep its output for failures only.
    if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      die "mvn could not fetch the $name jars (see above)"
    fi
    rm -f "$tmp.log"
    missing="$("$check" "$tmp")"
    if [[ -n "$missing" ]]; then
      rm -rf "$tmp"
      die "fetch finished but $missing"
    fi
    echo "$stamp" >"$tmp/.govbus-stamp"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    log "fetched $(find "$libs" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
  ) 9>"$libs.lock"
}

# running_pid PIDFILE PATTERN: the pid of our running process, or nothing. The command line
# must match PATTERN, so a stale pid file whose pid was reused reads as not running.
running_pid() {
  local pidfile="$1" pattern="$2" pid
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$pattern"; then
    return 0
  fi
  echo "$pid"
}

# start_detached PIDFILE OUTFILE COMMAND...: COMMAND in its own session, so stop can signal
# the whole tree and it outlives this shell. The inner shell records its pid, moves to the pid
# file's dir (where a JVM crash file lands), then execs COMMAND. Returns 1 when no pid file
# is written within 10 s.
start_detached() {
  local pidfile="$1" outfile="$2"
  shift 2
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  nohup "${launcher[@]}" bash -c 'echo $$ >"$0"; cd "${0%/*}"; exec "$@"' "$pidfile" "$@" \
    >"$outfile" 2>&1 </dev/null &
  local deadline=$((SECONDS + 10))
  until [[ -s "$pidfile" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# await_ready READY PIDFILE PATTERN WAIT_S: poll READY every 0.5 s. Returns 0 once it succeeds,
# 1 when the process exited (its pid file removed), 2 after WAIT_S seconds.
await_ready() {
  local ready="$1" pidfile="$2" pattern="$3" deadline=$((SECONDS + $4))
  until "$ready"; do
    # A process that died (port taken, bad config) will not become ready: fail now.
    if [[ -f "$pidfile" && -z "$(running_pid "$pidfile" "$pattern")" ]]; then
      rm -f "$pidfile"
      return 1
    fi
    ((SECONDS < deadline)) || return 2
    sleep 0.5
  done
}

# stop_running PIDFILE PATTERN [KILL_NOTE]: TERM the process group (plain pid as fallback),
# KILL after 30 s (logging KILL_NOTE first, if given). Returns 1 when nothing was running.
stop_running() {
  local pidfile="$1" pattern="$2" note="${3:-}" pid
  pid="$(running_pid "$pidfile" "$pattern")"
  if [[ -z "$pid" ]]; then
    rm -f "$pidfile"
    return 1
  fi
  log "stopping pid $pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      [[ -z "$note" ]] || log "$note"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "stopped"
}

_run_with_stop() { if [[ $_run_with_started == 1 ]]; then bash "$_run_with_service" stop; fi; }

# run_with SERVICE_SCRIPT COMMAND...: COMMAND with the service up; the service is stopped
# afterwards if we started it (or tried to), also on Ctrl-C, so nothing is left running.
# Ctrl-C reaches the command too: it stops its own children, then the service stops.
run_with() {
  local service="$1"
  shift
  _run_with_service="$service"
  _run_with_started=0
  trap _run_with_stop EXIT
  trap ':' INT TERM
  if ! bash "$service" status >/dev/null 2>&1; then
    # Marked before the start: one that fails half-way (not ready in time) is stopped too.
    _run_with_started=1
    bash "$service" start || exit 1
  fi
  "$@"
}
