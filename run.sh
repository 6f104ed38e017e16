#!/usr/bin/env bash
# Run Parafe with embedded defaults (SQLite, local files, dev certificates, demo subscriber).
# Extra arguments go to `parafe serve` (e.g. --host 0.0.0.0 --port 8443).
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-venv.sh
exec .venv/bin/parafe serve "$@"
