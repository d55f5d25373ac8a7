#!/usr/bin/env bash
# Create .venv (once) and install rdbridge with its test extras. Idempotent; used by demo.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e '.[test]'
# The shared factor package (its own distribution, numpy + pandas only), editable so promotions are seen at once.
.venv/bin/python -m pip install -q -e factors-lib
