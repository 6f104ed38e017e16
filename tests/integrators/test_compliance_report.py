"""The compliance report per client certificate (issue 21) against a real ``parafe serve`` over TLS.

Two integrators drive the WebDAV connector with their own certificates: the misbehaving one polls ``out/``
every second, fetches its signed file without ever deleting it, and leaves its refused deposit in ``in/``;
the well-behaved one lists once, fetches then deletes its return, and deletes its refused file. The report —
from the REST route ``/compliance`` (each client its own) and from ``parafe admin report clients`` — flags
exactly the first one's three breaches, with their references in the interface document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parafe.services.compliance.rules import BREACH, CONFORME, RULES
from tests.api.webdav.davutil import DAV, OTHER, Dav, dav_server, propfind, put, unique, url_path
from tests.conftest import ROOT, SPEC
from tests.fixtures.files import pdf_bytes

BAD, GOOD = "agent@demo.parafe.test", OTHER
SIRENS = {BAD: "123456789", GOOD: "987654321"}
V1 = "/parapheur-ws/rest/v1"
ENV = {"PARAFE_COMPLIANCE_GRACE_SECONDS": "0", "PARAFE_COMPLIANCE_POLL_FLOOR_SECONDS": "600",
       "PARAFE_COMPLIANCE_FLUSH_SECONDS": "3600"}  # flushes come from the report itself: no timing in the test


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dav(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[Dav]:
    with dav_server(tmp_path_factory, pki_template, str(request.param), ENV) as server:
        yield server


def _deposit_and_sign(dav: Dav, c: httpx.Client, siren: str) -> str:
    name = unique(prefix="signe")
    r = put(c, url_path(siren, "in", "bureautique", name), pdf_bytes(text=name))
    assert r.status_code == 201, r.text
    dav.sign(int(r.headers["x-fast-docid"]), pdf_bytes(text="signé " + name))
    return name


def _refused(c: httpx.Client, siren: str) -> str:
    name = unique(".exe", "refuse")
    r = put(c, url_path(siren, "in", "bureautique", name), b"MZ not a document")
    assert r.status_code >= 400, r.text
    assert r.headers.get("x-fast-error"), r.text
    return name


def _report(dav: Dav, email: str) -> dict[str, Any]:
    with dav.client(email) as c:
        r = c.get(f"{V1}/compliance")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _verdicts(report: dict[str, object]) -> dict[str, str]:
    return {rule["id"]: rule["verdict"] for rule in report["rules"]}  # type: ignore[attr-defined]


def test_misbehaving_and_well_behaved_clients(dav: Dav) -> None:
    bad_siren, good_siren = SIRENS[BAD], SIRENS[GOOD]
    with dav.client(BAD) as c:
        signed_bad = _deposit_and_sign(dav, c, bad_siren)
        refused_bad = _refused(c, bad_siren)
        out_folder = url_path(bad_siren, "out", "bureautique", collection=True)
        for _ in range(4):  # polls every second
            assert propfind(c, out_folder).status_code == 207
            time.sleep(1)
        assert c.get(url_path(bad_siren, "out", "bureautique", signed_bad)).status_code == 200  # never deleted
    with dav.client(GOOD) as c:
        signed = _deposit_and_sign(dav, c, good_siren)
        refused = _refused(c, good_siren)
        c.delete(url_path(good_siren, "in", "bureautique", refused))  # clears the blocked file
        assert propfind(c, url_path(good_siren, "out", collection=True)).status_code == 207  # one round: two folders
        assert propfind(c, url_path(good_siren, "out", "bureautique", collection=True)).status_code == 207
        assert c.get(url_path(good_siren, "out", "bureautique", signed)).status_code == 200
        assert c.delete(url_path(good_siren, "out", "bureautique", signed)).status_code == 204

    bad, good = _report(dav, BAD), _report(dav, GOOD)
    bad_verdicts, good_verdicts = _verdicts(bad), _verdicts(good)
    assert set(bad_verdicts) == set(good_verdicts) == {rule.id for rule in RULES}
    assert {k for k, v in bad_verdicts.items() if v == BREACH} == {"polling", "returns_deleted", "blocked_in"}
    assert {k for k, v in good_verdicts.items() if v == BREACH} == set()
    assert bad["verdict"] == BREACH
    assert good["verdict"] == CONFORME
    rules = {rule["id"]: rule for rule in bad["rules"]}
    assert rules["polling"]["figures"]["too_frequent"] == 3
    assert rules["polling"]["figures"]["listings"] == 4
    assert rules["polling"]["reference"] == "§2.3, §2.4 et §4.3"
    assert [e["detail"] for e in rules["returns_deleted"]["examples"]] == [f"{bad_siren}/out/bureautique/{signed_bad}"]
    assert [e["detail"] for e in rules["blocked_in"]["examples"]] == [f"{bad_siren}/in/bureautique/{refused_bad}"]
    assert rules["deposit_refusals"]["figures"]["by_connector_and_code"] == {"webdav:139": 1}
    assert bad["accounts"] == [{"siren": bad_siren, "email": BAD}]
    assert bad["calls"]["webdav"] >= 7
    # the operator's view: every client, in JSON and in French text
    env = {**dav.home.env(), **ENV}
    out = subprocess.run([sys.executable, "-m", "parafe", "admin", "report", "clients", "--json"], cwd=str(ROOT),
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    by_email = {r["email"]: _verdicts(r) for r in json.loads(out.stdout)}
    assert by_email[BAD] == bad_verdicts
    assert by_email[GOOD] == good_verdicts
    text = subprocess.run([sys.executable, "-m", "parafe", "admin", "report", "clients", "--siren", bad_siren],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "[non conforme] Fichiers bloqués retirés de « in » (§4.1 (note 2) et §4.5)" in text.stdout
    assert GOOD not in text.stdout


def test_report_needs_a_certificate(dav: Dav) -> None:
    with dav.basic() as c:
        r = c.get(f"{V1}/compliance")
    assert r.status_code == 403
    assert r.json()["errorCode"] == 265


def test_rule_quotes_are_verbatim() -> None:
    spec = re.sub(r"\s+", " ", (SPEC / "FAST-Parapheur-interfacage-v3.4.txt").read_text())
    for rule in RULES:
        assert re.sub(r"\s+", " ", rule.quote) in spec, rule.id


def test_dav_prefix_is_the_recorded_one() -> None:
    from parafe.services.compliance.classify import WEBDAV_PREFIX

    assert DAV == WEBDAV_PREFIX


def test_refused_certificates_are_reported(dav: Dav) -> None:
    import hashlib
    import ssl

    from parafe.services.compliance.report import client_report

    pem, key = dav.home.bad("expired")
    with httpx.Client(base_url=dav.url, verify=dav.home.ssl_context((pem, key)), timeout=60) as c:
        r = c.get(f"{V1}/documents/v2/123456789/ack/remaining")
    assert r.status_code == 401
    assert r.json()["errorCode"] == 162
    with dav.client(GOOD) as c:  # asking for a report flushes the server's recorder (whatever the answer)
        c.get(f"{V1}/compliance")
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(pem).read_text())).hexdigest()
    report = client_report(dav.ctx, fingerprint)
    assert report is not None
    rule = next(r for r in report.rules if r.id == "certificate")
    assert rule.verdict == BREACH
    assert rule.figures["refused_connections"] == {"expired": 1}
    assert "certificat périmé × 1" in rule.summary


def test_subscriber_sandbox_marks_its_clients_answers(dav: Dav) -> None:
    env = {**dav.home.env(), **ENV}

    def admin(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "parafe", "admin", "subscriber", "sandbox", *args],
                             cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def marked(email: str) -> bool:
        with dav.client(email) as c:
            return c.get(f"{V1}/documents/v2/{SIRENS[email]}/ack/remaining").headers.get("x-parafe-sandbox") == "1"

    assert not marked(BAD)
    assert "Abonné 123456789 en bac à sable" in admin("123456789", "--on")
    try:
        deadline = time.monotonic() + 60  # the server re-reads the flag within its few seconds' cache
        while not marked(BAD):
            assert time.monotonic() < deadline, "the sandbox header never appeared"
            time.sleep(0.5)
        assert not marked(GOOD)  # another subscriber's client: no sandbox
    finally:
        admin("123456789", "--off")
