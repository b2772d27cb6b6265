#!/usr/bin/env bash
# Run a command with the project's broker up; stop the broker afterwards if we started it,
# also on Ctrl-C, so nothing is left running.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/lib.sh
source "$HERE/lib.sh"

run_with "$HERE/kafka/kafka.sh" "$@"
