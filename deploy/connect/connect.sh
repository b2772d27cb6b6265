#!/usr/bin/env bash
# A Kafka Connect worker in distributed mode running the Debezium PostgreSQL connector.
# Its jars come from Maven Central via deploy/connect/pom.xml and are cached; its config,
# offset and status topics live on our broker; its Kafka client properties are rendered from
# the bus's settings (services/ingest/adapters/connect_worker.py), so SASL follows the bus.
#
#   connect.sh fetch | start | stop | status | wait
#
# Environment (besides the GOVBUS_KAFKA_* ones the properties come from):
#   GOVBUS_CONNECT_HOST, GOVBUS_CONNECT_PORT  REST listener (default 127.0.0.1:8083)
#   GOVBUS_CONNECT_GROUP  worker group; its topics are <group>.configs|offsets|status
#   GOVBUS_CONNECT_DIR    pid, properties, logs (default <repo>/.govbus/connect)
#   GOVBUS_CONNECT_LIBS   jar cache (default <repo>/.govbus/connect/libs)
#   GOVBUS_CONNECT_WAIT_S readiness deadline, seconds (default 120)
#   CONNECT_HEAP_OPTS     JVM heap (default -Xmx384m -Xms128m)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
LOG4J_CONF="$REPO/deploy/kafka/log4j2.properties"

HOST="${GOVBUS_CONNECT_HOST:-127.0.0.1}"
PORT="${GOVBUS_CONNECT_PORT:-8083}"
DATA="$(realpath -m "${GOVBUS_CONNECT_DIR:-$REPO/.govbus/connect}")"
LIBS="$(realpath -m "${GOVBUS_CONNECT_LIBS:-$REPO/.govbus/connect/libs}")"
WAIT_S="${GOVBUS_CONNECT_WAIT_S:-120}"
HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xmx384m -Xms128m}"
PIDFILE="$DATA/connect.pid"
PROPS="$DATA/worker.properties"
LOG_DIR="$DATA/logs"
OUTFILE="$DATA/connect.out"
STAMP="$LIBS/.govbus-stamp"

log() { echo "connect.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "GOVBUS_CONNECT_PORT must be a port number, got '$PORT'"

python_bin() {
  if [[ -x "$REPO/.venv/bin/python" ]]; then echo "$REPO/.venv/bin/python"; else echo python3; fi
}

stamp_text() { echo "connect pom-sha256 $(sha256sum "$POM" | cut -d' ' -f1)"; }
fetched() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_text)" ]]; }

cmd_fetch() {
  fetched && return 0
  command -v java >/dev/null 2>&1 || die "java not found: apt-get install openjdk-17-jre-headless"
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it fetches the Connect jars: apt-get install maven"
  mkdir -p "$(dirname "$LIBS")"
  (
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if fetched; then exit 0; fi
    log "fetching Kafka Connect and Debezium jars from Maven Central into $LIBS"
    t0=$SECONDS
    tmp="$LIBS.tmp.$$"
    rm -rf "$tmp"
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      die "mvn could not fetch the Connect jars (see above)"
    fi
    rm -f "$tmp.log"
    ls "$tmp"/connect-runtime-*.jar "$tmp"/debezium-connector-postgres-*.jar >/dev/null 2>&1 ||
      { rm -rf "$tmp"; die "fetch finished but connect-runtime or the Debezium connector is missing"; }
    stamp_text >"$tmp/.govbus-stamp"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
  ) 9>"$LIBS.lock"
}

running_pid() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q ConnectDistributed; then
    return 0
  fi
  echo "$pid"
}

# Ready = the REST API answers and the worker has joined its group (/connectors answers 200).
ready() { curl -fsS -m 2 "http://$HOST:$PORT/connectors" >/dev/null 2>&1; }

cmd_wait() {
  local deadline=$((SECONDS + WAIT_S))
  until ready; do
    if [[ -f "$PIDFILE" && -z "$(running_pid)" ]]; then
      log "worker exited; last lines of $OUTFILE:"
      tail -n 30 "$OUTFILE" "$LOG_DIR/server.log" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "REST API not ready at $HOST:$PORT after ${WAIT_S} s; last lines of $OUTFILE:"
      tail -n 30 "$OUTFILE" "$LOG_DIR/server.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready at http://$HOST:$PORT"
}

cmd_start() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    log "already running (pid $pid)"
    cmd_wait
    return 0
  fi
  rm -f "$PIDFILE"
  cmd_fetch
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null && die "$HOST:$PORT is in use; pick GOVBUS_CONNECT_PORT"
  mkdir -p "$DATA" "$LOG_DIR"
  (cd "$REPO" && GOVBUS_CONNECT_HOST="$HOST" GOVBUS_CONNECT_PORT="$PORT" \
    "$(python_bin)" -m services.ingest.adapters.connect_worker "$PROPS") ||
    die "could not render $PROPS from the settings"
  read -r -a HEAP <<<"$HEAP_OPTS"
  log "starting the Connect worker at http://$HOST:$PORT (data $DATA)"
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  nohup "${launcher[@]}" bash -c 'echo $$ >"$0"; cd "${0%/*}"; exec "$@"' "$PIDFILE" \
    java "${HEAP[@]}" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$PROPS" \
    >"$OUTFILE" 2>&1 </dev/null &
  local deadline=$((SECONDS + 10))
  until [[ -s "$PIDFILE" ]]; do
    ((SECONDS < deadline)) || die "launcher did not write $PIDFILE"
    sleep 0.1
  done
  cmd_wait
}

cmd_stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping pid $pid"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "connect: not running ($DATA)"
    return 1
  fi
  local state=starting
  ready && state=ready
  echo "connect: running, $state (pid $pid, http://$HOST:$PORT)"
}

case "${1:-}" in
  fetch) cmd_fetch; log "jars in $LIBS" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  *) echo "usage: $0 fetch|start|stop|status|wait" >&2; exit 2 ;;
esac
