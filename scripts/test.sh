#!/usr/bin/env bash
# Run the whole test suite: real SQLite files and the PostgreSQL server on 127.0.0.1:5432 (started if it is down).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if [ ! -x /usr/bin/chromium ]; then
  # the browser tests drive Debian's chromium through Playwright (no browser download by Playwright)
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
./scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
