#!/usr/bin/env bash
# The main job on the embedded default: ingest the bundled RD-Agent fin_factor trace into ./.rdbridge/registry.sqlite,
# materialize every finished loop's documents and charts into ./.rdbridge/artifacts, and list loops and artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --no-test
export RDBRIDGE_HOME="${RDBRIDGE_HOME:-./.rdbridge}"
.venv/bin/rdbridge ingest \
  --log-root examples/sample_trace/log \
  --workspace-root examples/sample_trace/workspace \
  --signing-key-file examples/sample_trace/artifact_signing.key "$@"
.venv/bin/rdbridge materialize
.venv/bin/rdbridge loops
echo "artifacts in $RDBRIDGE_HOME/artifacts:"
(cd "$RDBRIDGE_HOME/artifacts" && find . -type f -not -name '.*' | sort | sed 's|^\./|  |')
