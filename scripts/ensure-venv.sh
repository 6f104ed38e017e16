#!/usr/bin/env bash
# Create .venv if missing and (re)install Parafe into it when pyproject.toml changed.
# Usage: scripts/ensure-venv.sh [extra]   (extra: "dev" for the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "Parafe : création de l'environnement virtuel .venv…"
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
fi
spec="."
[ -n "$extra" ] && spec=".[$extra]"
stamp=".venv/.parafe-installed-${extra:-run}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Parafe : installation des dépendances ($spec)…"
  # (the grep only hides pip's notices about this machine's optional local package indexes)
  .venv/bin/python -m pip install --quiet -e "$spec" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  test "${PIPESTATUS[0]}" -eq 0
  echo "$want" > "$stamp"
fi
