#!/usr/bin/env bash
# The main job on the embedded default: ingest the bundled RD-Agent fin_factor trace into ./.rdbridge/registry.sqlite,
# then promote its accepted factors into rd_factors_lib.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export RDBRIDGE_HOME="${RDBRIDGE_HOME:-./.rdbridge}"
.venv/bin/rdbridge ingest \
  --log-root examples/sample_trace/log \
  --workspace-root examples/sample_trace/workspace \
  --signing-key-file examples/sample_trace/artifact_signing.key "$@"
.venv/bin/rdbridge loops
# Promote the accepted loops' factors into the shared package ($RDBRIDGE_HOME/factor_package, scaffolded once).
.venv/bin/rdbridge factorlib promote
