#!/usr/bin/env bash
# Create .venv (once) and install rdbridge. Idempotent; used by demo.sh, test.sh and CI.
#   ./scripts/bootstrap.sh           rdbridge with its test extras (pytest, pyqlib, ...): what test.sh needs
#   ./scripts/bootstrap.sh --no-test rdbridge alone: what the main job (demo.sh) needs, a shorter first run
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TARGET='.[test]'
if [ "${1:-}" = "--no-test" ]; then
  TARGET='.'
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e "$TARGET"
# The shared factor package (its own distribution, numpy + pandas only), editable so promotions are seen at once.
.venv/bin/python -m pip install -q -e factors-lib
