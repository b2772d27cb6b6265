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
#
# Security: the client listener takes SASL/SCRAM-SHA-512 only, and the StandardAuthorizer
# denies whatever no ACL allows. The bus's own services are the super user
# GOVBUS_KAFKA_USERNAME (default govbus), whose password is generated once into
# GOVBUS_KAFKA_PASSWORD_FILE (default <repo>/.govbus/kafka-service.password, created private)
# and added to the metadata when the storage is formatted. The broker reaches its own
# controller as the super user 'controller' (SASL/PLAIN on the controller listener).
#   GOVBUS_KAFKA_SECURITY_PROTOCOL      SASL_PLAINTEXT (default) or SASL_SSL
#   GOVBUS_KAFKA_SSL_KEYSTORE_LOCATION  with SASL_SSL: the broker's key and certificate
#                                       (PKCS12, or PEM with GOVBUS_KAFKA_SSL_KEYSTORE_TYPE=PEM)
#   GOVBUS_KAFKA_SSL_KEYSTORE_PASSWORD  its password (PKCS12)
#   GOVBUS_KAFKA_SSL_CA_LOCATION        with SASL_SSL: the CA (PEM) the broker trusts when it
#                                       connects to itself
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
LOG4J_CONF="$HERE/log4j2.properties"
# shellcheck source=deploy/lib.sh
source "$REPO/deploy/lib.sh"

BOOTSTRAP="${GOVBUS_KAFKA_BOOTSTRAP:-localhost:9092}"
DATA="${GOVBUS_KAFKA_DIR:-$REPO/.govbus/kafka}"
LIBS="${GOVBUS_KAFKA_LIBS:-$REPO/.govbus/kafka/libs}"
# Absolute, so server.properties and the pid checks do not depend on the caller's cwd.
DATA="$(realpath -m "$DATA")"
LIBS="$(realpath -m "$LIBS")"
WAIT_S="${GOVBUS_KAFKA_WAIT_S:-60}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1G -Xms256m}"

SECURITY_PROTOCOL="${GOVBUS_KAFKA_SECURITY_PROTOCOL:-SASL_PLAINTEXT}"
SERVICE_USER="${GOVBUS_KAFKA_USERNAME:-govbus}"
PASSWORD_FILE="$(realpath -m "${GOVBUS_KAFKA_PASSWORD_FILE:-$REPO/.govbus/kafka-service.password}")"
case "$SECURITY_PROTOCOL" in
  SASL_PLAINTEXT) ;;
  SASL_SSL)
    [[ -n "${GOVBUS_KAFKA_SSL_KEYSTORE_LOCATION:-}" ]] ||
      { log "GOVBUS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs GOVBUS_KAFKA_SSL_KEYSTORE_LOCATION"; exit 2; }
    ;;
  *)
    log "GOVBUS_KAFKA_SECURITY_PROTOCOL must be SASL_PLAINTEXT or SASL_SSL, got '$SECURITY_PROTOCOL'"
    exit 2
    ;;
esac
if [[ ! "$SERVICE_USER" =~ ^[A-Za-z0-9_.-]+$ ]]; then
  log "GOVBUS_KAFKA_USERNAME must be letters, digits, '_', '.', '-', got '$SERVICE_USER'"
  exit 2
fi

HOST="${BOOTSTRAP%:*}"
PORT="${BOOTSTRAP##*:}"
if [[ "$HOST" == "$BOOTSTRAP" || ! "$PORT" =~ ^[0-9]+$ ]]; then
  log "GOVBUS_KAFKA_BOOTSTRAP must be host:port, got '$BOOTSTRAP'"
  exit 2
fi
CONTROLLER_PORT=$((PORT + 1))

PIDFILE="$DATA/kafka.pid"
PROPS="$DATA/server.properties"
LOG_DIR="$DATA/logs"         # log4j output (server.log)
LOG_DATA="$DATA/data"        # partitions + KRaft metadata log
OUTFILE="$DATA/kafka.out"    # JVM stdout/stderr
CLUSTER_ID_FILE="$DATA/cluster.id"
CONTROLLER_PASSWORD_FILE="$DATA/controller.password"
# Written at format time: which service password the metadata's SCRAM credential was made from.
SCRAM_STAMP="$DATA/scram.sha256"

read -r -a HEAP <<<"$HEAP_OPTS"
# Kafka's own kafka-run-class.sh JVM flags (minus JMX and GC logging); die on OOM rather than limp.
JAVA=(java "${HEAP[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)
PY=""  # python used by the readiness probe; set by pick_python

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"

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

fetched() { jars_fetched "$LIBS" "$(stamp_text)"; }
jars_missing() {
  [[ -f "$1/kafka_2.13-$KAFKA_VERSION.jar" ]] || echo "kafka_2.13-$KAFKA_VERSION.jar is missing"
}

cmd_fetch() {
  if fetched; then
    return 0
  fi
  need_java
  need_mvn
  fetch_jars "$POM" "$LIBS" "$(stamp_text)" "Kafka $KAFKA_VERSION" Kafka jars_missing
}

broker_pid() { running_pid "$PIDFILE" kafka.Kafka; }

# A new random password in file $1, created private: umask 077 before the file exists, and
# linked into place whole, so a racing start never reads half a password.
new_secret_file() {
  local target="$1" tmp
  [[ -s "$target" ]] && return 0
  mkdir -p "$(dirname "$target")"
  tmp="$target.tmp.$$"
  (
    umask 077
    head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$tmp"
  )
  ln "$tmp" "$target" 2>/dev/null || true # another start won the race: keep its password
  rm -f "$tmp"
}

password_of() { tr -d '\n' <"$1"; }

tls_props() {
  [[ "$SECURITY_PROTOCOL" == SASL_SSL ]] || return 0
  echo "ssl.keystore.location=$GOVBUS_KAFKA_SSL_KEYSTORE_LOCATION"
  echo "ssl.keystore.type=${GOVBUS_KAFKA_SSL_KEYSTORE_TYPE:-PKCS12}"
  [[ -z "${GOVBUS_KAFKA_SSL_KEYSTORE_PASSWORD:-}" ]] ||
    echo "ssl.keystore.password=$GOVBUS_KAFKA_SSL_KEYSTORE_PASSWORD"
  if [[ -n "${GOVBUS_KAFKA_SSL_CA_LOCATION:-}" ]]; then
    echo "ssl.truststore.location=$GOVBUS_KAFKA_SSL_CA_LOCATION"
    echo "ssl.truststore.type=PEM"
  fi
}

render_props() {
  mkdir -p "$DATA" "$LOG_DIR" "$LOG_DATA"
  new_secret_file "$PASSWORD_FILE"
  new_secret_file "$CONTROLLER_PASSWORD_FILE"
  local service_password controller_password
  service_password="$(password_of "$PASSWORD_FILE")"
  controller_password="$(password_of "$CONTROLLER_PASSWORD_FILE")"
  # The properties hold both passwords: private like them, from the moment they exist.
  rm -f "$PROPS"
  (
    umask 077
    cat >"$PROPS" <<EOF
# Rendered by deploy/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# KRaft dynamic quorum (KIP-853): one voter, bootstrapped by 'format --standalone'.
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=CLIENT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=CLIENT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:$SECURITY_PROTOCOL

# Clients authenticate with SCRAM-SHA-512; their credentials live in the cluster metadata.
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SERVICE_USER" password="$service_password";
$(tls_props)
# The controller listener cannot use SCRAM (its credentials are in the metadata it serves):
# PLAIN, with the one user the broker is.
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password" user_controller="$controller_password";

# Deny by default: a principal does what an ACL allows it, nothing else.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:controller;User:$SERVICE_USER

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
  )
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
  local digest
  digest="$(sha256sum "$PASSWORD_FILE" | cut -d' ' -f1)"
  # meta.properties marks a formatted log dir: existing data is never reformatted.
  if [[ -f "$LOG_DATA/meta.properties" ]]; then
    [[ "$(cat "$SCRAM_STAMP" 2>/dev/null)" == "$digest" ]] ||
      die "$LOG_DATA was formatted without the credential in $PASSWORD_FILE (older data, or a new password): 'kafka.sh reset' removes the data"
    return 0
  fi
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    new_cluster_id >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  log "formatting $LOG_DATA (cluster id $(cat "$CLUSTER_ID_FILE"))"
  run_java kafka.tools.StorageTool format --ignore-formatted --standalone \
    -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS" \
    --add-scram "SCRAM-SHA-512=[name=$SERVICE_USER,password=$(password_of "$PASSWORD_FILE")]" \
    >"$LOG_DIR/format.log" 2>&1 ||
    { cat "$LOG_DIR/format.log" >&2; die "storage format failed"; }
  echo "$digest" >"$SCRAM_STAMP"
}

pick_python() {
  local py
  for py in "$REPO/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import confluent_kafka" 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
}

# Ready = a real Kafka metadata request, authenticated as the service, is answered and lists
# a broker.
PROBE_PY='
import sys
from confluent_kafka.admin import AdminClient
bootstrap, timeout, protocol, user, password_file = sys.argv[1:6]
config = {
    "bootstrap.servers": bootstrap,
    "security.protocol": protocol,
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": user,
    "sasl.password": open(password_file).read().strip(),
    "log_level": 0,
}
if len(sys.argv) > 6:
    config["ssl.ca.location"] = sys.argv[6]
md = AdminClient(config).list_topics(timeout=float(timeout))
sys.exit(0 if md.brokers else 1)
'
probe() {
  # The cheap TCP check first: no python start while the JVM is still booting.
  port_open "$HOST" "$PORT" || return 1
  [[ -z "$PY" ]] && return 0
  local ca=()
  [[ -z "${GOVBUS_KAFKA_SSL_CA_LOCATION:-}" ]] || ca=("$GOVBUS_KAFKA_SSL_CA_LOCATION")
  "$PY" -c "$PROBE_PY" "$BOOTSTRAP" "${1:-2}" "$SECURITY_PROTOCOL" "$SERVICE_USER" \
    "$PASSWORD_FILE" "${ca[@]}" >/dev/null 2>&1
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

probe_ready() { probe 2; }

cmd_wait() {
  PY="$(pick_python)"
  [[ -n "$PY" ]] || log "no python with confluent_kafka; readiness falls back to a TCP check"
  local rc=0
  await_ready probe_ready "$PIDFILE" kafka.Kafka "$WAIT_S" || rc=$?
  case $rc in
    0) log "ready at $BOOTSTRAP"; return 0 ;;
    1) log "broker process exited" ;;
    *) log "not ready at $BOOTSTRAP after ${WAIT_S} s" ;;
  esac
  show_log_tail
  exit 1
}

cmd_start() {
  local pid
  pid="$(broker_pid)"
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
  start_detached "$PIDFILE" "$OUTFILE" \
    "${JAVA[@]}" -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" ||
    die "broker launcher did not write $PIDFILE"
  cmd_wait
}

cmd_stop() {
  stop_running "$PIDFILE" kafka.Kafka "still alive after 30 s: SIGKILL" || log "not running ($DATA)"
}

cmd_status() {
  local pid
  pid="$(broker_pid)"
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
  # The service password stays: clients and other brokers of this checkout share it.
  rm -rf "$LOG_DATA" "$LOG_DIR" "$PROPS" "$CLUSTER_ID_FILE" "$OUTFILE" "$PIDFILE" \
    "$SCRAM_STAMP" "$CONTROLLER_PASSWORD_FILE"
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
