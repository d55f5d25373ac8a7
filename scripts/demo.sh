#!/usr/bin/env bash
# The main job on the embedded default (SQLite under ./.rdbridge, the bundled sample trace), the whole path:
# ingest the RD-Agent trace -> materialize each finished loop's documents and charts -> promote the accepted factors
# into rd_factors_lib -> export the catalogs -> serve the read-only Results API -> sync it into the platform library -> verify the promoted
# factor against a Qlib expression a user wrote for it -> compute Alpha158 and that factor with the engine on a
# synthetic Qlib data dir -> serve the platform UI and print both URLs.
# On a terminal both servers stay up until Ctrl-C; otherwise (or with RDBRIDGE_DEMO_EXIT=1) the script stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --no-test
export RDBRIDGE_HOME="${RDBRIDGE_HOME:-./.rdbridge}"
RD=.venv/bin/rdbridge
API_PORT="${RDBRIDGE_API_PORT:-8765}"
UI_PORT="${RDBRIDGE_UI_PORT:-8766}"
API="http://127.0.0.1:${API_PORT}"

echo "== ingest"
$RD ingest --log-root examples/sample_trace/log --workspace-root examples/sample_trace/workspace \
  --signing-key-file examples/sample_trace/artifact_signing.key "$@"
echo "== materialize"
$RD materialize
$RD loops
echo "artifacts in $RDBRIDGE_HOME/artifacts:"
(cd "$RDBRIDGE_HOME/artifacts" && find . -type f -not -name '.*' -not -path './factor_package/*' | sort | sed 's|^\./|  |')
echo "== promote accepted factors into rd_factors_lib ($RDBRIDGE_HOME/factor_package)"
$RD factorlib promote
VERSION="$($RD factorlib versions --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["versions"][-1]["version"])')"
$RD factorlib bundle --version "$VERSION" --format tar.gz --out "$RDBRIDGE_HOME/rd_factors_lib-$VERSION.tar.gz"
echo "== export the catalogs ($RDBRIDGE_HOME/catalogs)"
$RD catalog export --out "$RDBRIDGE_HOME/catalogs"
ls -l "$RDBRIDGE_HOME/catalogs" | sed 1d | awk '{print "  " $NF " (" $5 " bytes)"}'

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
echo "== serve the Results API and sync the platform library"
$RD serve --host 127.0.0.1 --port "$API_PORT" &
pids+=($!)
for _ in $(seq 1 120); do curl -fsS "$API/health" >/dev/null 2>&1 && break; sleep 0.5; done
$RD sync --api "$API" || true   # exit 1 = something refused; the report above says what
echo "== verify the promoted factor against a platform expression (reference: rd_factors_lib $VERSION)"
$RD verify factor Momentum_Vol_Adj_10D --bundle "$RDBRIDGE_HOME/rd_factors_lib-$VERSION.tar.gz" --version "$VERSION" \
  --expr 'If(Count($close/Ref($close,1)-1, 20) == 20, ($close/Ref($close,10)-1) / Std($close/Ref($close,1)-1, 20), Ref($close, 100000))' || true
echo "== compute Alpha158 and the promoted factor (rd_factors_lib $VERSION) with the engine ($RDBRIDGE_HOME/engine)"
SAMPLE="$RDBRIDGE_HOME/engine/qlib_sample"   # synthetic prices: no market data ships with rdbridge
[ -d "$SAMPLE" ] || $RD engine sample-data --out "$SAMPLE" --instruments 50 --days 500
PYTHONPATH="$RDBRIDGE_HOME/factor_package" $RD engine compute --data "$SAMPLE" --alpha158 \
  --factor rd_factors_lib.generated:factor_momentum_vol_adj_10d --out "$RDBRIDGE_HOME/engine/factors.parquet"
$RD ui --host 127.0.0.1 --port "$UI_PORT" &
pids+=($!)
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:${UI_PORT}/factors" >/dev/null 2>&1 && break; sleep 0.5; done
echo "Results API:  $API/catalog/factors"
echo "Platform UI:  http://127.0.0.1:${UI_PORT}/factors"
if [ -t 1 ] && [ -z "${RDBRIDGE_DEMO_EXIT:-}" ]; then
  echo "(Ctrl-C stops both)"
  wait
fi
