#!/usr/bin/env bash
# The project's own single-node Kafka (KRaft: one process is broker and controller).
# Kafka is not installed on our machines and no tarball can be downloaded, so the
# broker jars come from Maven Central via deploy/kafka/pom.xml and are cached.
#
#   kafka.sh fetch | start | stop | status | wait | reset
#
# Environment:
#   GOVBUS_KAFKA_BOOTSTRAP  host:port of the broker listener (default localhost:9092);
#                           the controller listener takes port+1
#   GOVBUS_KAFKA_DIR        data dir: config, pid, logs, partitions (default <repo>/.govbus/kafka)
#   GOVBUS_KAFKA_LIBS       jar cache, shared by every data dir (default <repo>/.govbus/kafka/libs)
#   GOVBUS_KAFKA_WAIT_S     readiness deadline for start/wait, seconds (default 60)
#   KAFKA_HEAP_OPTS         JVM heap (default -Xmx1G -Xms256m)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
LOG4J_CONF="$HERE/log4j2.properties"

BOOTSTRAP="${GOVBUS_KAFKA_BOOTSTRAP:-localhost:9092}"
DATA="${GOVBUS_KAFKA_DIR:-$REPO/.govbus/kafka}"
LIBS="${GOVBUS_KAFKA_LIBS:-$REPO/.govbus/kafka/libs}"
# Absolute, so server.properties and the pid checks do not depend on the caller's cwd.
DATA="$(realpath -m "$DATA")"
LIBS="$(realpath -m "$LIBS")"
WAIT_S="${GOVBUS_KAFKA_WAIT_S:-60}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms256m}"

HOST="${BOOTSTRAP%:*}"
PORT="${BOOTSTRAP##*:}"
if [[ "$HOST" == "$BOOTSTRAP" || ! "$PORT" =~ ^[0-9]+$ ]]; then
  echo "kafka.sh: GOVBUS_KAFKA_BOOTSTRAP must be host:port, got '$BOOTSTRAP'" >&2
  exit 2
fi
CONTROLLER_PORT=$((PORT + 1))

PIDFILE="$DATA/kafka.pid"
PROPS="$DATA/server.properties"
LOG_DIR="$DATA/logs"         # log4j output (server.log)
LOG_DATA="$DATA/data"        # partitions + KRaft metadata log
OUTFILE="$DATA/kafka.out"    # JVM stdout/stderr
CLUSTER_ID_FILE="$DATA/cluster.id"
STAMP="$LIBS/.govbus-stamp"

read -r -a HEAP <<<"$HEAP_OPTS"
# Kafka's own kafka-run-class.sh JVM flags (minus JMX and GC logging); die on OOM rather than limp.
JAVA=(java "${HEAP[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)
PY=""  # python used by the readiness probe; set by pick_python

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found. Kafka $KAFKA_VERSION needs Java 17+: apt-get install openjdk-17-jre-headless (or any JDK 17+ on PATH)"
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [[ -n "$major" && "$major" -lt 17 ]]; then
    die "java $major found; Kafka $KAFKA_VERSION needs Java 17+: apt-get install openjdk-17-jre-headless"
  fi
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it fetches the Kafka jars from Maven Central: apt-get install maven"
}

# The stamp names the pinned version and the pom's hash, so editing the pom
# (new Kafka or log4j version) invalidates the cache.
stamp_text() { echo "kafka_2.13 $KAFKA_VERSION pom-sha256 $(sha256sum "$POM" | cut -d' ' -f1)"; }

fetched() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_text)" ]]; }

cmd_fetch() {
  if fetched; then
    return 0
  fi
  need_java
  need_mvn
  mkdir -p "$(dirname "$LIBS")"
  # Two starts racing (make run + tests) must not fetch into the same dir at once;
  # the lock lives in a subshell so the broker never inherits it.
  (
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if fetched; then exit 0; fi
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
    t0=$SECONDS
    tmp="$LIBS.tmp.$$"
    rm -rf "$tmp"
    # Fetch beside the cache and swap in whole, so an interrupted fetch never looks complete.
    # mvn -q still prints colour codes on stdout: keep its output for failures only.
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
      cat "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      die "mvn could not fetch the Kafka jars (see above)"
    fi
    rm -f "$tmp.log"
    if [[ ! -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
      rm -rf "$tmp"
      die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    fi
    stamp_text >"$tmp/.govbus-stamp"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
  ) 9>"$LIBS.lock"
}

# pid of our running broker, or nothing. Checks the command line too, so a
# stale pid file whose pid was reused by another process reads as not running.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka"; then
    return 0
  fi
  echo "$pid"
}

render_props() {
  mkdir -p "$DATA" "$LOG_DIR" "$LOG_DATA"
  cat >"$PROPS" <<EOF
# Rendered by deploy/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# KRaft dynamic quorum (KIP-853): one voter, bootstrapped by 'format --standalone'.
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$LOG_DATA
num.partitions=3
auto.create.topics.enable=false

# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Consumer groups (Faust workers, tests) get partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
EOF
}

run_java() {
  "${JAVA[@]}" -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" -cp "$LIBS/*" "$@"
}

# What 'StorageTool random-uuid' prints (16 random bytes, base64url, no padding,
# not starting with '-'), without paying for a JVM start.
new_cluster_id() {
  local id
  while true; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" == -* ]] || break
  done
  echo "$id"
}

format_storage() {
  # meta.properties marks a formatted log dir: existing data is never reformatted.
  if [[ -f "$LOG_DATA/meta.properties" ]]; then
    return 0
  fi
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    new_cluster_id >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  log "formatting $LOG_DATA (cluster id $(cat "$CLUSTER_ID_FILE"))"
  run_java kafka.tools.StorageTool format --ignore-formatted --standalone \
    -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS" >"$LOG_DIR/format.log" 2>&1 ||
    { cat "$LOG_DIR/format.log" >&2; die "storage format failed"; }
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pick_python() {
  local py
  for py in "$REPO/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import confluent_kafka" 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
}

# Ready = a real Kafka metadata request is answered and lists a broker.
PROBE_PY='
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=float(sys.argv[2]))
sys.exit(0 if md.brokers else 1)
'
probe() {
  # The cheap TCP check first: no python start while the JVM is still booting.
  port_open "$HOST" "$PORT" || return 1
  [[ -z "$PY" ]] || "$PY" -c "$PROBE_PY" "$BOOTSTRAP" "${1:-2}" >/dev/null 2>&1
}

show_log_tail() {
  local f
  for f in "$LOG_DIR/server.log" "$OUTFILE"; do
    if [[ -s "$f" ]]; then
      log "last 30 lines of $f:"
      tail -n 30 "$f" >&2
    fi
  done
}

cmd_wait() {
  PY="$(pick_python)"
  [[ -n "$PY" ]] || log "no python with confluent_kafka; readiness falls back to a TCP check"
  local deadline=$((SECONDS + WAIT_S))
  while true; do
    if probe 2; then
      log "ready at $BOOTSTRAP"
      return 0
    fi
    # A broker that died (port taken, bad config) will not become ready: fail now.
    if [[ -f "$PIDFILE" && -z "$(running_pid)" ]]; then
      log "broker process exited"
      show_log_tail
      rm -f "$PIDFILE"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "not ready at $BOOTSTRAP after ${WAIT_S} s"
      show_log_tail
      exit 1
    fi
    sleep 0.5
  done
}

cmd_start() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    log "already running (pid $pid, $BOOTSTRAP, $DATA)"
    cmd_wait
    return 0
  fi
  rm -f "$PIDFILE"
  need_java
  cmd_fetch
  if port_open "$HOST" "$PORT" || port_open "$HOST" "$CONTROLLER_PORT"; then
    die "$HOST:$PORT or :$CONTROLLER_PORT is already in use by another process; pick GOVBUS_KAFKA_BOOTSTRAP"
  fi
  render_props
  format_storage
  log "starting Kafka $KAFKA_VERSION at $BOOTSTRAP (data $DATA)"
  # Own session/process group so stop can signal the whole tree, and so the
  # broker outlives this shell. The inner shell records its pid, moves to the
  # data dir (where a JVM crash file would land), then execs java.
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  nohup "${launcher[@]}" bash -c 'echo $$ >"$0"; cd "${0%/*}"; exec "$@"' "$PIDFILE" \
    "${JAVA[@]}" -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" >"$OUTFILE" 2>&1 </dev/null &
  local deadline=$((SECONDS + 10))
  until [[ -s "$PIDFILE" ]]; do
    ((SECONDS < deadline)) || die "broker launcher did not write $PIDFILE"
    sleep 0.1
  done
  cmd_wait
}

cmd_stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    log "not running ($DATA)"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping pid $pid"
  # Negative pid = the process group (set up by setsid); plain pid as fallback.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "still alive after 30 s: SIGKILL"
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
    echo "kafka: not running (bootstrap $BOOTSTRAP, data $DATA)"
    return 1
  fi
  PY="$(pick_python)"
  local state=starting
  probe 2 && state=ready
  echo "kafka: running, $state (pid $pid, Kafka $KAFKA_VERSION, bootstrap $BOOTSTRAP, data $DATA)"
}

cmd_reset() {
  cmd_stop
  # Only what start creates: the jar cache may live inside the default data dir.
  rm -rf "$LOG_DATA" "$LOG_DIR" "$PROPS" "$CLUSTER_ID_FILE" "$OUTFILE" "$PIDFILE"
  log "data removed ($DATA)"
}

case "${1:-}" in
  fetch) need_java; cmd_fetch; log "jars for Kafka $KAFKA_VERSION in $LIBS" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 fetch|start|stop|status|wait|reset" >&2
    exit 2
    ;;
esac
