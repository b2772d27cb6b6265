#!/usr/bin/env bash
# The project's own throwaway PostgreSQL for the central store (Debian's package, a cluster
# of our own). PostgreSQL refuses to run as root and CI runs as root, so as root the cluster
# belongs to the `postgres` user and every server command runs as that user.
# wal_level=logical: Debezium adapters read the same set-up through logical decoding.
#
#   pg.sh install | start | stop | status | url | wait | reset
#
# Environment:
#   GOVBUS_PG_PORT    TCP port on 127.0.0.1 (default 55432; only TCP, no Unix socket)
#   GOVBUS_PG_DIR     cluster dir: data, log, pid (default <repo>/.govbus/postgres; as root,
#                     when the repo is closed to the postgres user, /var/tmp/govbus-postgres-*)
#   GOVBUS_PG_WAIT_S  readiness deadline for start/wait, seconds (default 30)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PORT="${GOVBUS_PG_PORT:-55432}"
default_dir() {
  if [[ "$(id -u)" == 0 ]] && ! runuser -u postgres -- test -x "$REPO" 2>/dev/null; then
    echo "/var/tmp/govbus-postgres-$(echo "$REPO" | sha1sum | cut -c1-8)"
  else
    echo "$REPO/.govbus/postgres"
  fi
}
DIR="$(realpath -m "${GOVBUS_PG_DIR:-$(default_dir)}")"
WAIT_S="${GOVBUS_PG_WAIT_S:-30}"
DATA="$DIR/data"
LOGFILE="$DIR/postgres.log"
DB="govbus"

# shellcheck source=deploy/lib.sh
source "$REPO/deploy/lib.sh"

require_port GOVBUS_PG_PORT "$PORT"

bindir() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$found" && -x "$found/initdb" ]] && echo "$found"
}

cmd_install() {
  if bindir >/dev/null; then
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL not installed: sudo apt-get install -y postgresql"
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bindir >/dev/null || die "apt-get installed postgresql, yet no initdb under /usr/lib/postgresql"
}

# Run a server command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u postgres -- "$@")  # from /, which postgres may enter: paths are absolute
  else
    "$@"
  fi
}

init_cluster() {
  [[ -f "$DATA/PG_VERSION" ]] && return 0
  local bin
  bin="$(bindir)"
  mkdir -p "$DIR"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres:postgres "$DIR"
    as_owner test -w "$DIR" ||
      die "user postgres cannot write $DIR (a parent dir is closed to it): set GOVBUS_PG_DIR"
  fi
  # A throwaway local cluster: trust on 127.0.0.1 only; C locale, so text sorts by bytes.
  as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --locale=C -E UTF8 >"$DIR/initdb.log" ||
    die "initdb failed: see $DIR/initdb.log"
  cat >>"$DATA/postgresql.conf" <<EOF
# govbus: a local, throwaway cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

running() {
  local bin
  bin="$(bindir)" || return 1
  [[ -f "$DATA/postmaster.pid" ]] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

cmd_wait() {
  local bin deadline
  bin="$(bindir)" || die "PostgreSQL not installed: run pg.sh install"
  deadline=$((SECONDS + WAIT_S))
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres; do
    ((SECONDS < deadline)) || die "no connection on 127.0.0.1:$PORT after ${WAIT_S}s: see $LOGFILE"
    running || die "PostgreSQL is not running: see $LOGFILE"
    sleep 0.1
  done
}

cmd_start() {
  cmd_install
  init_cluster
  local bin
  bin="$(bindir)"
  if ! running; then
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOGFILE" -o "-p $PORT" start >/dev/null ||
      die "start failed: see $LOGFILE"
  fi
  cmd_wait
  if ! "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
  fi
  log "PostgreSQL up on 127.0.0.1:$PORT ($DATA)"
}

cmd_stop() {
  local bin
  bin="$(bindir)" || return 0
  if running; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    log "stopped"
  fi
}

cmd_status() {
  if running; then
    echo "running on 127.0.0.1:$PORT ($DATA)"
  else
    echo "not running ($DATA)"
    return 1
  fi
}

cmd_url() { echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"; }

cmd_reset() {
  cmd_stop
  rm -rf "$DIR"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) cmd_url ;;
  wait) cmd_wait ;;
  reset) cmd_reset ;;
  *) die "usage: pg.sh install|start|stop|status|url|wait|reset" ;;
esac
