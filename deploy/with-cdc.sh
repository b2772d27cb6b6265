#!/usr/bin/env bash
# Run a command with the demo's provider database and the Kafka Connect worker up (the
# broker must be up already: deploy/with-broker.sh). CDC=0 runs the command without them.
# The provider tables live in the database `providers` of the project's PostgreSQL.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG="$HERE/postgres/pg.sh"
CONNECT="$HERE/connect/connect.sh"
# shellcheck source=deploy/lib.sh
source "$HERE/lib.sh"

if [[ "${CDC:-1}" == 0 ]]; then
  exec "$@"
fi
bash "$PG" start || exit 1
base="$(bash "$PG" url)"
server="${base%/*}"
if ! psql "${server/+psycopg/}/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'providers'" | grep -q 1; then
  psql "${server/+psycopg/}/postgres" -qc "CREATE DATABASE providers" || exit 1
fi
export GOVBUS_PROVIDER_DB_URL="$server/providers"
run_with "$CONNECT" "$@"
