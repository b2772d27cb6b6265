#!/usr/bin/env bash
# Run a command with the project's broker up; stop the broker afterwards if we started it,
# also on Ctrl-C, so nothing is left running.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$HERE/kafka/kafka.sh"

started=0
if ! bash "$KAFKA" status >/dev/null 2>&1; then
  bash "$KAFKA" start || exit 1
  started=1
fi
stop_broker() { if [[ $started == 1 ]]; then bash "$KAFKA" stop; fi; }
trap stop_broker EXIT
# Ctrl-C reaches the command too; it stops its own children, then we stop the broker.
trap ':' INT TERM
"$@"
