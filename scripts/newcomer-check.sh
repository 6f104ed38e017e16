#!/usr/bin/env bash
# The newcomer check (CI): what a new user does first, with the RUNTIME install only (no test extras).
# A virtualenv built from this checkout with `pip install .`, `pip check`, every `parafe.*` module imported,
# then `parafe serve` on a free port with a fresh PARAFE_HOME: /healthz, one REST deposit and one SOAP `upload`
# by the demo agent with curl, and a clean stop. Any failure exits non-zero with a French message.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "Vérification du nouvel arrivant : ÉCHEC — $*" >&2; [ -f "$work/serve.log" ] && tail -n 40 "$work/serve.log" >&2; exit 1; }

echo "== nouvel arrivant : environnement d'exécution seul (pip install ., sans extras)"
"${PYTHON:-python3}" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
"$work/venv/bin/python" -m pip install --quiet . 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
test "${PIPESTATUS[0]}" -eq 0 || fail "pip install . a échoué"
"$work/venv/bin/python" -m pip check || fail "pip check signale des dépendances manquantes ou incompatibles"

echo "== nouvel arrivant : import de chaque module parafe.*"
(cd "$work" && "$work/venv/bin/python" - <<'EOF') || fail "un module ne s'importe pas avec les seules dépendances d'exécution"
import importlib
import pkgutil

import parafe

failed = []
count = 0
for info in pkgutil.walk_packages(parafe.__path__, "parafe."):
    if ".migrations" in info.name or info.name.endswith("__main__"):
        continue
    count += 1
    try:
        importlib.import_module(info.name)
    except BaseException as exc:  # noqa: BLE001 - report every failure, SystemExit included
        failed.append(f"{info.name}: {exc!r}")
for line in failed:
    print("  import impossible :", line)
print(f"  {count} modules, {len(failed)} en échec")
raise SystemExit(1 if failed else 0)
EOF

echo "== nouvel arrivant : parafe serve sur un PARAFE_HOME neuf"
port=$("$work/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
home="$work/home"
base="https://127.0.0.1:$port"
(cd "$work" && PARAFE_HOME="$home" exec "$work/venv/bin/parafe" serve --host 127.0.0.1 --port "$port") \
  > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if curl -fsS --cacert "$home/pki/ca.pem" "$base/healthz" > "$work/healthz" 2>/dev/null; then break; fi
  kill -0 "$server_pid" 2>/dev/null || fail "parafe serve s'est arrêté au démarrage"
  sleep 0.2
done
grep -q '"ok"' "$work/healthz" 2>/dev/null || fail "/healthz ne répond pas"
echo "  /healthz : $(cat "$work/healthz")"

agent="$home/demo/agent@demo.parafe.test"
tls=(--cacert "$home/pki/ca.pem" --cert "$agent.pem" --key "$agent.key")
"$work/venv/bin/python" - "$work/newcomer.pdf" <<'EOF'
import sys

from reportlab.pdfgen import canvas

c = canvas.Canvas(sys.argv[1])
c.drawString(72, 720, "Premier dépôt d'un nouvel arrivant")
c.save()
EOF
rest_id=$(curl -fsS "${tls[@]}" -F "content=@$work/newcomer.pdf;filename=nouvel-arrivant-rest.pdf" \
  "$base/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload") || fail "dépôt REST refusé"
[[ "$rest_id" =~ ^[0-9]{9,}$ ]] || fail "dépôt REST : identifiant inattendu « $rest_id »"
echo "  dépôt REST : document $rest_id"

b64=$(base64 -w0 "$work/newcomer.pdf")
cat > "$work/upload.xml" <<EOF
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sei="http://sei.ws.fast.cdc.com/">
<soapenv:Body><sei:upload><label>nouvel arrivant</label><comment></comment><subscriberId>123456789</subscriberId>
<circuitId>bureautique</circuitId><dataFileVO><dataHandler>$b64</dataHandler>
<filename>nouvel-arrivant-soap.pdf</filename></dataFileVO></sei:upload></soapenv:Body></soapenv:Envelope>
EOF
soap=$(curl -fsS "${tls[@]}" -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: ""' \
  --data-binary "@$work/upload.xml" "$base/parapheur-soap/soap/v1/Documents") || fail "upload SOAP refusé"
soap_id=$(printf '%s' "$soap" | sed -n 's:.*<return>\([0-9]*\)</return>.*:\1:p')
[[ "$soap_id" =~ ^[0-9]{9,}$ ]] || fail "upload SOAP : réponse inattendue « $soap »"
echo "  upload SOAP : document $soap_id"

kill -TERM "$server_pid"
for _ in $(seq 1 150); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$server_pid" 2>/dev/null; then fail "parafe serve ne s'arrête pas sur SIGTERM"; fi
wait "$server_pid" && status=0 || status=$?
server_pid=""
[ "$status" -eq 0 ] || fail "parafe serve s'est arrêté avec le code $status"
echo "Vérification du nouvel arrivant : réussie (installation, imports, service, dépôts REST et SOAP, arrêt propre)."
