#!/usr/bin/env bash
# Prepare a fresh Debian machine (Python 3.10+): system packages, then a local virtual
# environment in .venv with kit-jupyter installed in editable mode.
#   scripts/bootstrap.sh EXTRAS APT_PACKAGE...
# Sourced by run-demo and run-tests; safe to re-run (skips what is already there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="$1"; shift
APT_PACKAGES=("$@")

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "kit-jupyter needs Python 3.10 or newer as $PY" >&2; exit 1
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=("python3-venv")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "==> creating $ROOT/.venv"
  "$PY" -m venv "$ROOT/.venv"
fi
echo "==> pip install -e .[$EXTRAS]"
"$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
"$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]" \
  2>&1 | grep -v "^WARNING: Location" || true
"$ROOT/.venv/bin/python" -c "import kit_jupyter" 
