"""Helios through S²LOW against the local S²LOW double (mutual TLS, S²LOW's request and answer shapes):
the demo PES circuit end to end (transmitted, acknowledged, PES_ACQUIT downloaded by SOAP and REST), a KO answer
retried, a file S²LOW already holds refused, a refusal by Helios, a timed-out post whose retry meets S²LOW's
duplicate answer (one transaction only, the operator names it, the circuit finishes), PES_Retour fetched once,
listed, downloaded and marked read, and the operators' commands (``parafe admin s2low``, ``providers check``)."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from parafe.db.models import Document, OutboxItem, S2lowTransaction
from parafe.domain.states import State
from parafe.formats.pes import validate_acquit
from parafe.security import pki
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import AGENT, SIGNER
from parafe.services.helios import returns, s2low
from parafe.signing.keys import load_signer
from parafe.transmission.helios import etat_ack
from parafe.transmission.s2low import S2lowClient, S2lowCredentials, S2lowError, load_client_certificate
from tests.conftest import ROOT, TESTDATA, Home, start_server, stop_server
from tests.doubles.s2low import REFUSED_PROGRESSION, S2lowDouble
from tests.workflow.conftest import deposit_file, document, history, run_jobs, state_of, states

SIREN = "123456789"
SAMPLES = TESTDATA / "pes" / "samples"
HELIOS_OK = [State.SENDING, State.SENT_TO_FAST, State.SENT_TO_HELIOS, State.ACKNOWLEDGED, State.FILED]
V1 = "/parapheur-ws/rest/v1"


def pes(name: str, nom_fic: str) -> bytes:
    data = (SAMPLES / name).read_bytes()
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="{nom_fic}"/>'.encode(), data, count=1)


def finished(ctx: Any, doc_id: int) -> Any:
    return lambda: state_of(ctx, doc_id) in (
        State.FILED.value, State.FAST_PROCESSING_FAILED.value, State.SEND_TO_HELIOS_FAILED.value,
        State.SEND_TO_FAST_FAILED.value, State.SIGNATURE_REJECTED.value)


@pytest.fixture
def double(tmp_path: Path) -> Iterator[S2lowDouble]:
    d = S2lowDouble(tmp_path / "s2low").start()
    yield d
    d.stop()


@pytest.fixture
def s2low_env(double: S2lowDouble, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> S2lowDouble:
    """The demo subscriber's S²LOW account on the double, set as an operator does (``parafe admin s2low``)."""
    cert_path, key_path = double.write_client_files(double.add_user(SIREN), "commune-de-demo")
    monkeypatch.setenv("PARAFE_HELIOS_TRANSPORT", "s2low")
    monkeypatch.setenv("PARAFE_S2LOW_STATUS_POLL_SECONDS", "0.05")
    monkeypatch.setenv("PARAFE_S2LOW_STATUS_POLL_MAX_SECONDS", "0.2")
    monkeypatch.setenv("PARAFE_S2LOW_TIMEOUT", "10")
    s2low.set_account(ctx, SIREN, url=double.url, cert=cert_path.read_bytes(), key=key_path.read_bytes(),
                      ca=double.ca_file().read_bytes())
    return double


def sign_pes(ctx: Any, doc_id: int) -> None:
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) == State.SENT_FOR_SIGN.value)
    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, key, quality="Ordonnateur")


def credentials(double: S2lowDouble, cert: pki.CertAndKey, **kw: Any) -> S2lowCredentials:
    cert_pem, key_pem = load_client_certificate(cert.cert_pem(), cert.key_pem())
    return S2lowCredentials(url=double.url, cert_pem=cert_pem, key_pem=key_pem,
                            ca_pem=double.server_ca.cert_pem(), **kw)


# --- the protocol against the double --------------------------------------------------------------------------

def test_client_authentication_and_field_checks(double: S2lowDouble) -> None:
    user = double.add_user(SIREN)
    client = S2lowClient(credentials(double, user), timeout=10)
    assert client.test_connection() == "OK"
    # a certificate of the right CA that no S²LOW user holds: S²LOW's own refusal
    stranger = pki.issue_user_cert(double.client_ca, "inconnu@collectivite.test", "Inconnu")
    with pytest.raises(S2lowError, match="Échec de l'authentification"):
        S2lowClient(credentials(double, stranger), timeout=10).post_pes("a.xml", b"<x/>")
    with pytest.raises(S2lowError, match="S²LOW a répondu : KO"):
        S2lowClient(credentials(double, stranger), timeout=10).test_connection()
    # no certificate at all: the TLS handshake fails (Apache's SSLVerifyClient require)
    with httpx.Client(verify=ssl.create_default_context(cadata=double.server_ca.cert_pem().decode())) as anonymous, \
            pytest.raises(httpx.HTTPError):
        anonymous.get(double.url + "/api/test-connexion.php")
    # a certificate of another CA: the TLS handshake fails
    foreign = pki.issue_user_cert(pki.create_ca("Autre AC"), "x@y.test", "X")
    with pytest.raises(S2lowError, match="connexion à S²LOW impossible"):
        S2lowClient(credentials(double, foreign), timeout=10).test_connection()
    # a user with a login: the password is checked
    shared = double.add_user(SIREN, login="tresorier", password="s3cret")
    with pytest.raises(S2lowError):
        S2lowClient(credentials(double, shared, login="tresorier", password="faux"), timeout=10).test_connection()
    assert S2lowClient(credentials(double, shared, login="tresorier", password="s3cret")).test_connection() == "OK"
    assert "identifiant ou mot de passe faux" in double.rejected
    # the multipart field must be named "enveloppe" (S²LOW answers KO otherwise)
    context = S2lowClient(credentials(double, user))._ssl_context()
    with httpx.Client(verify=context) as raw:
        r = raw.post(double.url + "/modules/helios/api/helios_importer_fichier.php",
                     files={"fichier": ("a.xml", b"<x/>", "application/xml")})
    assert b"<resultat>KO</resultat>" in r.content
    assert "Aucune enveloppe trouvée" in r.text
    assert double.transactions == {}
    # the status answer is declared ISO-8859-1 and written in UTF-8: the message is repaired
    answer = client.post_pes("mandat é.xml", (SAMPLES / "valid_PES_PJ.xml").read_bytes())
    assert answer.ok
    assert answer.id
    assert answer.message == "Téléchargement du fichier réussi."
    assert double.transactions[int(answer.id)].filename == "mandat _.xml"
    assert client.status(answer.id).message == "Fichier bien reçu par la plate-forme S2low"
    assert client.status(answer.id).message == "Transmis au serveur Hélios"
    duplicate = client.post_pes("autre.xml", (SAMPLES / "valid_PES_PJ.xml").read_bytes())
    assert not duplicate.ok
    assert duplicate.id is None
    assert "doublon" in duplicate.message
    # another collectivity cannot read the transaction
    other = S2lowClient(credentials(double, double.add_user("999999999")), timeout=10)
    with pytest.raises(S2lowError, match="Accès refusé"):
        other.status(answer.id)


# --- the demo PES circuit end to end -------------------------------------------------------------------------

def test_demo_pes_circuit_end_to_end_with_soap_and_rest_downloads(s2low_env: S2lowDouble, ctx: Any,
                                                                    home: Home, tmp_path: Path) -> None:
    """Deposited in WebDAV ``in/pes``, signed, sent through S²LOW, acknowledged; the PES_ACQUIT in WebDAV
    ``out/pes``, by SOAP (zeep) and REST; a PES_Retour fetched from S²LOW, listed and downloaded."""
    from tests.api.soap.soaputil import zeep_client
    from tests.api.webdav.davutil import url_path

    double = s2low_env
    server = start_server(home, {"PARAFE_WORKER_IN_PROCESS": "false"})  # the jobs run here, with the double
    try:
        with server.client(AGENT) as dav:
            put = dav.put(url_path(SIREN, "in", "pes", "mandats.xml"),
                          content=pes("valid_unsigned_PES_ex.xml", "PARAFE_S2LOW_1"))
            assert put.status_code in (201, 204), put.text
        with ctx.db.read() as session:
            doc_id = session.scalar(select(Document.id).where(Document.name == "mandats.xml"))
        assert doc_id is not None
        sign_pes(ctx, doc_id)
        run_jobs(ctx, until=finished(ctx, doc_id))
        assert states(ctx, doc_id) == [State.PREPARED, State.SENT_FOR_SIGN, State.SIGNED, *HELIOS_OK]
        # S²LOW received the signed PES once, under the document's name
        signed = ctx.store.read_bytes(document(ctx, doc_id).signed_blob_sha256 or "")
        mine = double.transactions_of(SIREN)
        assert len(mine) == 1
        assert mine[0].data == signed
        assert mine[0].filename == "mandats.xml"
        tid = str(mine[0].id)
        comments = {h.state: h.comment or "" for h in history(ctx, doc_id)}
        assert comments[State.SENT_TO_FAST.value] == f"Transmission {tid}"
        assert (f"S²LOW, transaction {tid} : Transmis — Transmis au serveur Hélios"
                in comments[State.SENT_TO_HELIOS.value])
        assert comments[State.ACKNOWLEDGED.value].startswith("Acquittement positif (EtatAck 1)")
        assert "Acquittement reçu" in comments[State.ACKNOWLEDGED.value]
        with ctx.db.read() as session:
            row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.document_id == doc_id))
            assert row is not None
            assert row.transaction_id == tid
            assert row.last_status == 4
            assert row.attempts == 1
        # a PES_Retour waits on S²LOW
        retour_data = (SAMPLES / "pes_retour_depense.xml").read_bytes()
        retour_s2low_id = double.add_retour(SIREN, "PES_Retour_20261207.xml", retour_data)
        report = s2low.poll_retours(ctx, force=True)
        assert (report.fetched, report.marked_read, report.errors) == (1, 1, [])
        assert double.retours[retour_s2low_id].read
        # the real server serves them: WebDAV out/, SOAP (zeep), REST (httpx)
        with server.client(AGENT) as dav:
            got = dav.get(url_path(SIREN, "out", "pes", "ACQUIT_mandats.xml"))
            assert got.status_code == 200, got.text[:300]
            assert validate_acquit(got.content) == [], got.text[:300]
            assert dav.get(url_path(SIREN, "out", "pes", "mandats.xml")).content == signed
            got = dav.get(url_path(SIREN, "out", "PES_Retour", "PES_Retour_20261207.xml"))
            assert got.status_code == 200
            assert got.content == retour_data
        soap = zeep_client(server, AGENT)
        assert str(doc_id) in soap.service.listRemainingAcknowledgements(siren=SIREN)
        ack = soap.service.downloadAcknowledgement(documentId=str(doc_id))
        assert validate_acquit(ack.content) == []
        assert etat_ack(ack.content) == 1
        assert str(doc_id) not in (soap.service.listRemainingAcknowledgements(siren=SIREN) or [])
        with server.client(AGENT) as rest:
            r = rest.get(f"{V1}/documents/v2/{doc_id}/ack/download")
            assert r.status_code == 200
            assert r.content == ack.content
            remaining = rest.get(f"{V1}/documents/v2/{SIREN}/pes-retour/remaining").json()
            assert len(remaining) == 1
        assert soap.service.listRemainingPesRetour(siren=SIREN) == [str(remaining[0])]
        assert soap.service.downloadPesRetour(documentId=str(remaining[0])).content == retour_data
        with server.client(AGENT) as rest:
            r = rest.get(f"{V1}/documents/v2/{remaining[0]}/pes-retour/download")
            assert r.status_code == 200
            assert r.content == retour_data
            assert "PES_Retour_20261207.xml" in r.headers["content-disposition"]
    finally:
        stop_server(server)
    # fetched once: a second round finds nothing new
    assert s2low.poll_retours(ctx, force=True).fetched == 0


def test_ko_answer_is_retried_then_sent_once(s2low_env: S2lowDouble, ctx: Any, tmp_path: Path) -> None:
    double = s2low_env
    double.fail_next_import = "Erreur de l'initialisaton de l'accès à la table helios_transactions."
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", pes("valid_PES_PJ.xml", "PARAFE_S2LOW_KO"), circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, *HELIOS_OK]
    assert len(double.transactions_of(SIREN)) == 1
    with ctx.db.read() as session:
        send = session.scalar(select(OutboxItem).where(OutboxItem.document_id == doc_id,
                                                       OutboxItem.kind == "helios.send"))
        assert send is not None
        assert send.attempts == 2
        assert "helios_transactions" in (send.last_error or "")


def test_s2low_outage_while_polling_does_not_fail_the_document(s2low_env: S2lowDouble, ctx: Any,
                                                                tmp_path: Path) -> None:
    double = s2low_env
    double.drop_status = 3  # S²LOW unreachable for three status requests
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", pes("valid_PES_PJ.xml", "PARAFE_S2LOW_PANNE"), circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, *HELIOS_OK]
    assert double.drop_status == 0
    assert len(double.transactions_of(SIREN)) == 1
    with ctx.db.read() as session:
        polls = list(session.scalars(select(OutboxItem).where(OutboxItem.document_id == doc_id,
                                                              OutboxItem.kind == "helios.poll")))
    assert len(polls) == 6  # 3 cut + posted, transmitted, acknowledged
    assert all(p.attempts == 1 for p in polls)


def test_file_already_on_s2low_is_refused_at_once(s2low_env: S2lowDouble, ctx: Any, tmp_path: Path) -> None:
    double = s2low_env
    data = pes("valid_PES_PJ.xml", "PARAFE_S2LOW_DOUBLON")
    # the same file was posted by another tool (Pastell, the S²LOW web page…)
    user = next(iter(double.users.values())).cert
    assert S2lowClient(credentials(double, user)).post_pes("deja.xml", data).ok
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", data, circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, State.SENDING, State.SEND_TO_FAST_FAILED]
    assert "doublon détecté. Ce fichier a déjà été posté." in (history(ctx, doc_id)[-1].comment or "")
    assert len(double.transactions_of(SIREN)) == 1


def test_refused_by_helios_gives_a_negative_acknowledgement(s2low_env: S2lowDouble, ctx: Any,
                                                            tmp_path: Path) -> None:
    s2low_env.next_progression = REFUSED_PROGRESSION
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", pes("valid_PES_PJ.xml", "PARAFE_S2LOW_REFUS"), circuit="pes-pj")
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, *HELIOS_OK]
    comment = history(ctx, doc_id)[-2].comment or ""
    assert comment.startswith("Acquittement négatif (EtatAck 0)")
    assert "Refusé — Fichier refusé par Hélios" in comment
    agent = principal_for_email(ctx, AGENT)
    assert etat_ack(returns.download(ctx, agent, doc_id, "ack").data) == 0


def test_timed_out_post_is_never_posted_twice(s2low_env: S2lowDouble, ctx: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """S²LOW stores the file but answers after the client's timeout: the retry meets S²LOW's duplicate answer,
    no second transaction is created, the document waits for the operator, who names the transaction."""
    double = s2low_env
    monkeypatch.setenv("PARAFE_S2LOW_TIMEOUT", "0.5")
    double.import_delay = 1.5
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", pes("valid_PES_PJ.xml", "PARAFE_S2LOW_LENT"), circuit="pes-pj")
    run_jobs(ctx, until=lambda: state_of(ctx, doc_id) != State.SENDING.value)
    double.import_delay = 0
    assert state_of(ctx, doc_id) == State.SENT_TO_FAST.value
    lost = history(ctx, doc_id)[-1].comment or ""
    assert "doublon détecté" in lost
    assert f"parafe admin s2low transaction {doc_id}" in lost
    mine = double.transactions_of(SIREN)
    assert len(mine) == 1
    with ctx.db.read() as session:
        send = session.scalar(select(OutboxItem).where(OutboxItem.document_id == doc_id,
                                                       OutboxItem.kind == "helios.send"))
        assert send is not None
        assert "délai" in (send.last_error or "")
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.SENT_TO_FAST.value  # nothing polls an unknown transaction
    message = s2low.attach_transaction(ctx, doc_id, str(mine[0].id))
    assert f"transaction S²LOW n°{mine[0].id}" in message
    run_jobs(ctx, until=finished(ctx, doc_id))
    assert states(ctx, doc_id) == [State.PREPARED, State.SENDING, State.SENT_TO_FAST, None,
                                   State.SENT_TO_HELIOS, State.ACKNOWLEDGED, State.FILED]
    assert len(double.transactions_of(SIREN)) == 1


def test_pes_retour_of_the_default_account_and_polling_period(double: S2lowDouble, ctx: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The installation's default account: each PES_Retour goes to the subscriber named by its IdColl; one that
    names no subscriber stays unread on S²LOW; an account is polled once per ``PARAFE_S2LOW_POLL_SECONDS``."""
    cert_path, key_path = double.write_client_files(double.add_user(SIREN), "defaut")
    for name, value in (("URL", double.url), ("CERT", str(cert_path)), ("KEY", str(key_path)),
                        ("CA", str(double.ca_file())), ("POLL_SECONDS", "3600")):
        monkeypatch.setenv(f"PARAFE_S2LOW_{name}", value)
    monkeypatch.setenv("PARAFE_HELIOS_TRANSPORT", "s2low")
    mine = (SAMPLES / "pes_retour_depense.xml").read_bytes()  # IdColl 12345678900012: the demo subscriber
    foreign = mine.replace(b'IdColl V="12345678900012"', b'IdColl V="55566677700011"')
    mine_id = double.add_retour(SIREN, "PES_Retour_demo.xml", mine)
    foreign_id = double.add_retour(SIREN, "PES_Retour_autre.xml", foreign)
    report = s2low.poll_retours(ctx)
    assert (report.accounts, report.fetched, report.marked_read) == (1, 1, 1)
    assert len(report.errors) == 1
    assert "IdColl 555666777" in report.errors[0]
    assert double.retours[mine_id].read
    assert not double.retours[foreign_id].read
    agent = principal_for_email(ctx, AGENT)
    [public_id] = returns.remaining(ctx, agent, SIREN, "pes_retour")
    assert returns.download(ctx, agent, public_id, "pes_retour").data == mine
    # within the period nothing is asked; past it (or forced) the account is polled again, nothing is stored twice
    later = double.add_retour(SIREN, "PES_Retour_suivant.xml", mine)
    assert s2low.poll_retours(ctx).accounts == 0
    assert not double.retours[later].read
    monkeypatch.setenv("PARAFE_S2LOW_POLL_SECONDS", "0")
    again = s2low.poll_retours(ctx)
    assert (again.accounts, again.fetched) == (1, 1)
    assert double.retours[later].read
    assert len(returns.remaining(ctx, agent, SIREN, "pes_retour")) == 1  # the first one was downloaded


# --- operators' commands --------------------------------------------------------------------------------------

def parafe(home: Home, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    full = home.env()
    full.update(env)
    return subprocess.run([sys.executable, "-m", "parafe", *args], cwd=str(ROOT), env=full, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_admin_s2low_commands_and_providers_check(double: S2lowDouble, home: Home, tmp_path: Path) -> None:
    user = double.add_user(SIREN, login="tresorier", password="mot-de-passe-secret")
    p12 = tmp_path / "collectivite.p12"
    pki.write_p12(user, p12, b"pass-p12")
    ca = double.ca_file()
    env = {"PARAFE_HELIOS_TRANSPORT": "s2low"}
    r = parafe(home, "admin", "s2low", "set", SIREN, "--url", double.url, "--cert", str(p12), "--ca", str(ca),
               "--login", "tresorier", "--cert-password-stdin", "--password-stdin",
               stdin="pass-p12\nmot-de-passe-secret\n", **env)
    assert r.returncode == 0, r.stderr
    assert "Compte S²LOW de l'abonné 123456789 enregistré." in r.stdout
    assert "mot de passe : défini" in r.stdout
    shown = parafe(home, "admin", "s2low", "show", **env)
    assert shown.returncode == 0
    assert double.url in shown.stdout
    assert "tresorier" in shown.stdout
    for secret in ("mot-de-passe-secret", "pass-p12", "PRIVATE KEY"):
        assert secret not in shown.stdout + shown.stderr + r.stdout + r.stderr
    bad = parafe(home, "admin", "s2low", "set", SIREN, "--url", double.url, "--cert", str(p12),
                 "--cert-password-stdin", stdin="faux\n", **env)
    assert bad.returncode == 1
    assert "Compte S²LOW invalide : le fichier PKCS#12 est illisible" in bad.stderr
    ok = parafe(home, "admin", "providers", "check", **env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "S²LOW (compte S²LOW de l'abonné 123456789) : OK — connexion authentifiée" in ok.stdout
    assert "SMS" in ok.stdout
    # an installation-wide default account whose certificate S²LOW does not know: the check fails
    stranger = pki.issue_user_cert(double.client_ca, "inconnu@collectivite.test", "Inconnu")
    cert_path, key_path = double.write_client_files(stranger, "inconnu")
    failed = parafe(home, "admin", "providers", "check", PARAFE_S2LOW_URL=double.url,
                    PARAFE_S2LOW_CERT=str(cert_path), PARAFE_S2LOW_KEY=str(key_path), PARAFE_S2LOW_CA=str(ca), **env)
    assert failed.returncode == 1
    assert "S²LOW (compte S²LOW par défaut) : ÉCHEC — échec : S²LOW a répondu : KO" in failed.stdout
    assert "S²LOW (compte S²LOW de l'abonné 123456789) : OK" in failed.stdout
    removed = parafe(home, "admin", "s2low", "remove", SIREN, **env)
    assert removed.returncode == 0
    assert "supprimé" in removed.stdout
    assert parafe(home, "admin", "s2low", "show", SIREN, **env).returncode == 1
