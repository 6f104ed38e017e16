#!/usr/bin/env bash
# Fail when a tracked file reads the sibling `shared/` folder: the repository must stand on its own
# (the spec lives in docs/spec/, the test data in tests/data/, the schemas in the package).
set -euo pipefail
cd "$(dirname "$0")/.."
hits=$(git grep -n -I -E '\.\./shared|parent ?/ ?"shared"|parents\[[0-9]+\] ?/ ?"shared"' -- . ':!scripts/check-standalone.sh' || true)
if [ -n "$hits" ]; then
  echo "Le dépôt lit ../shared (il doit se suffire à lui-même) :" >&2
  echo "$hits" >&2
  exit 1
fi
echo "Dépôt autonome : aucune référence à ../shared."
