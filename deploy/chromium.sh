#!/usr/bin/env bash
# Debian's chromium for the data hall's browser tests (Playwright drives it; nothing is
# downloaded at test time), with CJK fonts so the Chinese pages render in screenshots.
#
#   chromium.sh ensure   install chromium and fonts-noto-cjk when missing (root or sudo)
#   chromium.sh path     print the browser's path
set -euo pipefail

BROWSER="${GOVBUS_CHROMIUM:-/usr/bin/chromium}"
PACKAGES=(chromium fonts-noto-cjk)

log() { echo "chromium.sh: $*" >&2; }

missing() {
  local pkg out=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || out+=("$pkg")
  done
  echo "${out[@]}"
}

ensure() {
  local want
  want="$(missing)"
  [[ -z "$want" && -x "$BROWSER" ]] && return 0
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: $want"; exit 1; }
    sudo=(sudo)
  fi
  log "installing $want"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  # shellcheck disable=SC2086 # one word per package
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $want >/dev/null
  [[ -x "$BROWSER" ]] || { log "$BROWSER missing after installing chromium"; exit 1; }
}

case "${1:-}" in
  ensure) ensure ;;
  path) echo "$BROWSER" ;;
  *) echo "usage: $0 ensure|path" >&2; exit 2 ;;
esac
