#!/usr/bin/env bash
# Run the whole test suite (installs what it needs: virtualenv, Python and Debian packages).
# Extra arguments go to pytest (e.g. ./test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-venv.sh dev
missing=()
while read -r pkg; do
  case "$pkg" in ""|\#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-test-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Parafe : installation des paquets Debian : ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Paquets Debian manquants (à installer en root) : ${missing[*]}" >&2
    exit 1
  fi
fi
# PostgreSQL for the PostgreSQL half of the suite (running on these machines; start it if stopped).
if [ -z "${PARAFE_TEST_POSTGRES_URL:-}" ]; then
  export PARAFE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
fi
if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start 2>/dev/null || true
fi
workers="${PARAFE_TEST_WORKERS:-auto}"
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile -q "$@"
