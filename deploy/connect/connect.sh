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

# shellcheck source=deploy/lib.sh
source "$REPO/deploy/lib.sh"

require_port GOVBUS_CONNECT_PORT "$PORT"

python_bin() {
  if [[ -x "$REPO/.venv/bin/python" ]]; then echo "$REPO/.venv/bin/python"; else echo python3; fi
}

stamp_text() { echo "connect pom-sha256 $(sha256sum "$POM" | cut -d' ' -f1)"; }
fetched() { jars_fetched "$LIBS" "$(stamp_text)"; }
jars_missing() {
  ls "$1"/connect-runtime-*.jar "$1"/debezium-connector-postgres-*.jar >/dev/null 2>&1 ||
    echo "connect-runtime or the Debezium connector is missing"
}

cmd_fetch() {
  fetched && return 0
  command -v java >/dev/null 2>&1 || die "java not found: apt-get install openjdk-17-jre-headless"
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it fetches the Connect jars: apt-get install maven"
  fetch_jars "$POM" "$LIBS" "$(stamp_text)" "Kafka Connect and Debezium" Connect jars_missing
}

worker_pid() { running_pid "$PIDFILE" ConnectDistributed; }

# Ready = the REST API answers and the worker has joined its group (/connectors answers 200).
ready() { curl -fsS -m 2 "http://$HOST:$PORT/connectors" >/dev/null 2>&1; }

cmd_wait() {
  local rc=0
  await_ready ready "$PIDFILE" ConnectDistributed "$WAIT_S" || rc=$?
  case $rc in
    0) log "ready at http://$HOST:$PORT" ;;
    1) log "worker exited; last lines of $OUTFILE:" ;;
    *) log "REST API not ready at $HOST:$PORT after ${WAIT_S} s; last lines of $OUTFILE:" ;;
  esac
  if ((rc != 0)); then
    tail -n 30 "$OUTFILE" "$LOG_DIR/server.log" >&2 || true
    exit 1
  fi
}

cmd_start() {
  local pid
  pid="$(worker_pid)"
  if [[ -n "$pid" ]]; then
    log "already running (pid $pid)"
    cmd_wait
    return 0
  fi
  rm -f "$PIDFILE"
  cmd_fetch
  port_open "$HOST" "$PORT" && die "$HOST:$PORT is in use; pick GOVBUS_CONNECT_PORT"
  mkdir -p "$DATA" "$LOG_DIR"
  (cd "$REPO" && GOVBUS_CONNECT_HOST="$HOST" GOVBUS_CONNECT_PORT="$PORT" \
    "$(python_bin)" -m services.ingest.adapters.connect_worker "$PROPS") ||
    die "could not render $PROPS from the settings"
  read -r -a HEAP <<<"$HEAP_OPTS"
  log "starting the Connect worker at http://$HOST:$PORT (data $DATA)"
  start_detached "$PIDFILE" "$OUTFILE" \
    java "${HEAP[@]}" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$PROPS" ||
    die "launcher did not write $PIDFILE"
  cmd_wait
}

cmd_stop() { stop_running "$PIDFILE" ConnectDistributed || true; }

cmd_status() {
  local pid
  pid="$(worker_pid)"
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
