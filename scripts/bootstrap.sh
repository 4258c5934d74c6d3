#!/usr/bin/env bash
# Sourced by scripts/demo and scripts/test: installs what smfel needs on a Debian/Ubuntu
# machine (system packages when missing, then a virtual environment in .venv) and is quick
# when everything is already there.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SMFEL_VENV:-$ROOT_DIR/.venv}

_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "smfel: need root (or sudo) to run: $*" >&2; return 1; fi
}

# Debian packages: name of the package, then a command or file that proves it is installed.
_need_apt=()
_want() { if ! command -v "$2" >/dev/null 2>&1 && [ ! -e "$2" ]; then _need_apt+=("$1"); fi; }

_find_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
      "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$py"; return 0
    fi
  done
  return 1
}

smfel_system_packages() {
  # $@: extra "package:probe" pairs the caller needs beyond the basics.
  _need_apt=()
  if ! _find_python >/dev/null; then _need_apt+=(python3 python3-venv python3-dev); fi
  _want mosquitto mosquitto
  _want mosquitto-clients mosquitto_pub
  _want git git
  for pair in "$@"; do _want "${pair%%:*}" "${pair#*:}"; done
  if [ ${#_need_apt[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "smfel: please install: ${_need_apt[*]} (no apt-get on this machine)" >&2; return 1
    fi
    echo "smfel: installing Debian packages: ${_need_apt[*]}" >&2
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${_need_apt[@]}" >&2
  fi
}

smfel_venv() {
  # $1: the extras to install, e.g. "dev" or "dev,plot".
  local extras=${1:-dev}
  local py
  py=$(_find_python) || { echo "smfel: Python >= 3.11 with venv is required" >&2; return 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    echo "smfel: creating $VENV" >&2
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.smfel-stamp"
  local want
  want="$extras $(cat "$ROOT_DIR/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "smfel: installing smfel[$extras] into $VENV" >&2
    local log="$VENV/pip-install.log"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
      "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT_DIR[$extras]"; } \
      >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "smfel: pip install failed; the whole log is $log" >&2
      return 1
    fi
    echo "$want" >"$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

export SMFEL_MITDB=${SMFEL_MITDB:-$ROOT_DIR/../shared/data/mitdb}
