#!/usr/bin/env bash
# The platform half of the main job: serve the registry (Results API), sync it into the platform library, serve the
# platform UI, print both URLs, and keep both servers up until Ctrl-C. Run scripts/demo.sh first (it fills the
# registry). Ports: $RDBRIDGE_API_PORT (8765) and $RDBRIDGE_UI_PORT (8766), loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export RDBRIDGE_HOME="${RDBRIDGE_HOME:-./.rdbridge}"
API_PORT="${RDBRIDGE_API_PORT:-8765}"
UI_PORT="${RDBRIDGE_UI_PORT:-8766}"
API="http://127.0.0.1:${API_PORT}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
.venv/bin/rdbridge serve --host 127.0.0.1 --port "$API_PORT" &
pids+=($!)
for _ in $(seq 1 120); do curl -fsS "$API/health" >/dev/null 2>&1 && break; sleep 0.5; done
.venv/bin/rdbridge sync --api "$API" || true   # exit 1 = something refused; the report above says what
.venv/bin/rdbridge ui --host 127.0.0.1 --port "$UI_PORT" &
pids+=($!)
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:${UI_PORT}/factors" >/dev/null 2>&1 && break; sleep 0.5; done
echo "Results API:  $API/catalog/factors"
echo "Platform UI:  http://127.0.0.1:${UI_PORT}/factors"
echo "(Ctrl-C stops both)"
wait
