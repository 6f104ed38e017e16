"""Real SMS providers (issue 16) against faithful local doubles (``tests/fixtures/sms_doubles.py``, real TLS):
an OTP document of the demo circuit ``otp`` receives its code through the generic HTTPS gateway and through
OVHcloud (the official ``ovh`` client, whose signature the double checks), the test reads the code from the
double and signs with it; refusals and exhausted retries show in the document history and getSMSHistory;
delivery status read back from OVHcloud; signed delivery receipts on ``POST /hooks/sms/http`` (SOAP and REST
history)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import func, select

from parafe.db.models import DevMessage, SmsDelivery
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import ACTOR_OTP, State
from parafe.notify.sms import check_sms_provider
from parafe.services.access.auth import principal_for_email
from parafe.services.circuits import SmsEntry, sms_history
from parafe.services.demo import ADMIN
from parafe.services.otp import codes as otp
from parafe.services.otp import sms_deliveries
from tests.conftest import Home, start_server, stop_server
from tests.fixtures.sms_doubles import GatewayDouble, OvhDouble, make_tls
from tests.workflow.conftest import history, run_jobs, state_of
from tests.workflow.test_otp import code_in, otp_document

SIREN = "123456789"


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def gateway(home: Home, tls: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayDouble]:
    double = GatewayDouble(tls)
    for name, value in gateway_env(double).items():
        monkeypatch.setenv(name, value)
    try:
        yield double
    finally:
        double.close()


def gateway_env(double: GatewayDouble) -> dict[str, str]:
    return {"PARAFE_SMS_PROVIDER": "http", "PARAFE_SMS_HTTP_URL": double.url,
            "PARAFE_SMS_HTTP_AUTHORIZATION": double.authorization, "PARAFE_SMS_HTTP_ID_PATH": "message.id",
            "PARAFE_SMS_SENDER": "PARAFE", "PARAFE_SMS_CA": str(double.ca)}


@pytest.fixture
def ovh(home: Home, tls: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[OvhDouble]:
    double = OvhDouble(tls)
    for name, value in {
            "PARAFE_SMS_PROVIDER": "ovh", "PARAFE_SMS_OVH_ENDPOINT": double.endpoint,
            "PARAFE_SMS_OVH_APPLICATION_KEY": double.application_key,
            "PARAFE_SMS_OVH_APPLICATION_SECRET": double.application_secret,
            "PARAFE_SMS_OVH_CONSUMER_KEY": double.consumer_key, "PARAFE_SMS_OVH_SERVICE_NAME": double.service,
            "PARAFE_SMS_SENDER": "PARAFE", "PARAFE_SMS_CA": str(double.ca)}.items():
        monkeypatch.setenv(name, value)
    try:
        yield double
    finally:
        double.close()


def entries(ctx: Any) -> list[SmsEntry]:
    return sms_history(ctx, principal_for_email(ctx, ADMIN), SIREN, "otp", None)


def dev_sms_count(ctx: Any) -> int:
    with ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(DevMessage).where(DevMessage.channel == "sms")) or 0)


def failure_comments(ctx: Any, doc_id: int) -> list[str]:
    return [e.comment or "" for e in history(ctx, doc_id)
            if e.user_fullname == ACTOR_OTP and (e.comment or "").startswith("Échec de l'envoi du code")]


def run_periodic_sms_status(ctx: Any) -> None:
    """Run the worker's periodic task ``parafe_sms_status`` as huey would at the next minute."""
    from huey import MemoryHuey

    from parafe.composition import SMS_STATUS
    from parafe.jobs import current, tasks

    huey = MemoryHuey("sms-status-test")
    tasks.register(huey)
    (task,) = [t for t in huey.read_periodic(datetime.now()) if t.name == SMS_STATUS]
    previous = current.set_context(ctx)
    try:
        huey.execute(task)
    finally:
        current.set_context(previous)


def sign_with(ctx: Any, doc_id: int, code: str) -> None:
    assert otp.check_code(ctx, [doc_id], code) == [doc_id]
    run_jobs(ctx)
    assert state_of(ctx, doc_id) == State.FILED.value


# --- generic HTTPS gateway -------------------------------------------------------------------------------------

def test_otp_code_through_the_generic_gateway(ctx: Any, tmp_path: Path, gateway: GatewayDouble) -> None:
    doc_id = otp_document(ctx, tmp_path, "gateway.pdf")
    sent = otp.send_code(ctx, [doc_id])
    assert sent.channel == "sms"
    (message,) = gateway.messages
    request = gateway.requests[-1]
    assert request["headers"]["authorization"] == gateway.authorization  # the secret header, as configured
    assert json.loads(request["body"]) == {"to": "+33612345678", "text": message["text"], "sender": "PARAFE"}
    assert dev_sms_count(ctx) == 0  # nothing went to the development outbox
    (entry,) = entries(ctx)
    assert (entry.provider, entry.delivery, entry.provider_id) == ("http", "sent", "gw-1")
    assert (entry.message_length, entry.segments, entry.encoding) == (len(message["text"]), 1, "GSM-7")
    assert entry.sent_at is not None
    assert entry.delivered_at is None
    assert entry.receiver == "+33612345678"
    with ctx.db.read() as s:  # the text (it carries the code) is not kept once sent
        assert s.scalar(select(SmsDelivery.body)) is None
    sign_with(ctx, doc_id, code_in(message["text"]))
    assert entries(ctx)[0].status == "done"
    assert check_sms_provider() == (True, check_sms_provider()[1])
    assert "joignable" in check_sms_provider()[1]


def test_gateway_refusal_is_visible_to_the_agent(ctx: Any, tmp_path: Path, gateway: GatewayDouble) -> None:
    doc_id = otp_document(ctx, tmp_path, "refus.pdf")
    gateway.fail_status = 400
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [doc_id])
    assert info.value.error is E.SMS_SEND_FAILED
    assert "HTTP 400" in info.value.message
    assert len(gateway.requests) == 1  # a permanent refusal is not retried
    (comment,) = failure_comments(ctx, doc_id)
    assert "+336••••••78" in comment
    assert "HTTP 400" in comment
    assert gateway.authorization not in comment
    (entry,) = entries(ctx)
    assert (entry.delivery, entry.status, entry.sent_at) == ("failed", "failed", None)
    assert sms_deliveries.receipt_code(entry.delivery) == 2
    assert [e.id for e in sms_history(ctx, principal_for_email(ctx, ADMIN), SIREN, "otp", None,
                                      status="waiting")] == [entry.id]
    run_jobs(ctx)
    assert len(gateway.requests) == 1
    # a wrong secret is a refusal too, and the operator check says so
    gateway.fail_status = None
    gateway.authorization = "Bearer another"
    ok, verdict = check_sms_provider()
    assert not ok
    assert "identifiants refusés" in verdict


def test_gateway_5xx_retried_until_given_up(ctx: Any, tmp_path: Path, gateway: GatewayDouble,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_JOB_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "0.05")
    doc_id = otp_document(ctx, tmp_path, "panne.pdf")
    gateway.fail_status = 503
    sent = otp.send_code(ctx, [doc_id])  # the first try failed: queued for a retry, the page is answered
    assert sent.channel == "sms"
    assert len(gateway.requests) == 1
    assert entries(ctx)[0].delivery == "queued"
    assert "HTTP 503" in (entries(ctx)[0].error or "")
    run_jobs(ctx)
    assert len(gateway.requests) == 3  # PARAFE_JOB_MAX_ATTEMPTS tries, then given up
    (entry,) = entries(ctx)
    assert entry.delivery == "failed"
    assert entry.status == "failed"
    assert "abandon après 3 essais" in (entry.error or "")
    (comment,) = failure_comments(ctx, doc_id)
    assert "abandon après 3 essais" in comment
    assert "HTTP 503" in comment


def test_gateway_5xx_then_recovered(ctx: Any, tmp_path: Path, gateway: GatewayDouble,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "0.05")
    doc_id = otp_document(ctx, tmp_path, "reprise.pdf")
    gateway.fail_status = 502
    otp.send_code(ctx, [doc_id])
    assert gateway.messages == []
    gateway.fail_status = None
    run_jobs(ctx)
    (message,) = gateway.messages
    assert entries(ctx)[0].delivery == "sent"
    assert failure_comments(ctx, doc_id) == []
    sign_with(ctx, doc_id, code_in(message["text"]))


def test_form_encoded_body_and_template(ctx: Any, tmp_path: Path, gateway: GatewayDouble,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``PARAFE_SMS_HTTP_FORMAT=form`` (Twilio): the template's fields are form-encoded; this double takes JSON
    only, so it refuses (415), a permanent failure, and the request it kept shows the form."""
    monkeypatch.setenv("PARAFE_SMS_HTTP_FORMAT", "form")
    monkeypatch.setenv("PARAFE_SMS_HTTP_BODY", '{"To": "{phone}", "From": "{sender}", "Body": "{text}", '
                                               '"Ref": "{reference}", "Digits": "{phone_digits}"}')
    doc_id = otp_document(ctx, tmp_path, "formulaire.pdf")
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [doc_id])
    assert "HTTP 415" in info.value.message
    request = gateway.requests[-1]
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(request["body"].decode()))
    assert form["To"] == "+33612345678"
    assert form["From"] == "PARAFE"
    assert form["Digits"] == "33612345678"
    assert form["Ref"].startswith("parafe-")
    assert code_in(form["Body"])


# --- OVHcloud --------------------------------------------------------------------------------------------------

def test_otp_code_through_ovhcloud(ctx: Any, tmp_path: Path, ovh: OvhDouble) -> None:
    doc_id = otp_document(ctx, tmp_path, "ovh.pdf")
    otp.send_code(ctx, [doc_id])
    assert ovh.refused == []
    assert ovh.verified >= 1  # every signed call checked by the double
    assert ("GET", "/1.0/auth/time") in ovh.calls  # the client signs with the API's clock
    (job,) = ovh.messages()
    assert job["receiver"] == "+33612345678"
    assert job["sender"] == "PARAFE"
    assert job["coding"] == "7bit"
    (entry,) = entries(ctx)
    assert (entry.provider, entry.delivery, entry.provider_id) == ("ovh", "sent", str(job["id"]))
    assert dev_sms_count(ctx) == 0
    # the periodic task reads the status back: still a job, then sent, then delivered
    assert sms_deliveries.poll_deliveries(ctx) == 0
    ovh.process()
    assert sms_deliveries.poll_deliveries(ctx) == 0
    assert entries(ctx)[0].delivery == "sent"
    ovh.deliver(job["id"])
    run_periodic_sms_status(ctx)  # what the worker does every minute
    (entry,) = entries(ctx)
    assert entry.delivery == "delivered"
    assert entry.delivered_at is not None
    assert sms_deliveries.receipt_code(entry.delivery) == 1
    sign_with(ctx, doc_id, code_in(job["message"]))
    ok, verdict = check_sms_provider()
    assert ok
    assert "authentification réussie" in verdict
    assert ovh.service in verdict


def test_ovhcloud_lost_answer_is_not_sent_twice(ctx: Any, tmp_path: Path, ovh: OvhDouble,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """OVHcloud accepted and sent the SMS but its answer was lost (504): the retry finds it by its tag
    (``GET /sms/{serviceName}/outgoing?tag=parafe-<id>``) instead of sending a second SMS."""
    monkeypatch.setenv("PARAFE_JOB_BACKOFF_SECONDS", "0.05")
    doc_id = otp_document(ctx, tmp_path, "ovh-perdu.pdf")
    ovh.lose_answers = 1
    otp.send_code(ctx, [doc_id])
    assert entries(ctx)[0].delivery == "queued"
    assert "HTTP 504" in (entries(ctx)[0].error or "")
    run_jobs(ctx)
    (sms,) = ovh.messages()  # one SMS only
    (entry,) = entries(ctx)
    assert (entry.delivery, entry.provider_id) == ("sent", str(sms["id"]))
    assert [c for c in ovh.calls if c[0] == "POST"] == [("POST", f"/1.0/sms/{ovh.service}/jobs")]
    sign_with(ctx, doc_id, code_in(sms["message"]))


def test_ovhcloud_undelivered_sms_is_recorded(ctx: Any, tmp_path: Path, ovh: OvhDouble) -> None:
    doc_id = otp_document(ctx, tmp_path, "ovh-ko.pdf")
    otp.send_code(ctx, [doc_id])
    (job,) = ovh.messages()
    ovh.process()
    ovh.undeliverable(job["id"])
    assert sms_deliveries.poll_deliveries(ctx) == 1
    (entry,) = entries(ctx)
    assert entry.delivery == "failed"
    assert entry.status == "failed"
    assert "accusé 2" in (entry.error or "")
    (comment,) = failure_comments(ctx, doc_id)
    assert "OVHcloud" in comment


def test_ovhcloud_checks_the_signature(ctx: Any, tmp_path: Path, ovh: OvhDouble,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    doc_id = otp_document(ctx, tmp_path, "ovh-secret.pdf")
    monkeypatch.setenv("PARAFE_SMS_OVH_APPLICATION_SECRET", "not-the-secret")
    with pytest.raises(ParafeError) as info:
        otp.send_code(ctx, [doc_id])
    assert info.value.error is E.SMS_SEND_FAILED
    assert ovh.refused == ["Invalid signature"]
    assert ovh.messages() == []
    assert "not-the-secret" not in info.value.message
    (comment,) = failure_comments(ctx, doc_id)
    assert "OVHcloud a refusé la requête (HTTP 400)" in comment
    assert entries(ctx)[0].delivery == "failed"
    ok, verdict = check_sms_provider()
    assert not ok
    assert "Invalid signature" in verdict


# --- delivery receipts, SOAP and REST history (live server) ----------------------------------------------------

def _receipt(server_url: str, home: Home, secret: str, payload: dict[str, Any], *,
             signature: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    digest = signature or hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=server_url, verify=home.ssl_context(), timeout=30) as c:
        return c.post("/hooks/sms/http", content=body,
                      headers={"Content-Type": "application/json", "X-Parafe-Signature": f"sha256={digest}"})


def test_signed_receipts_and_the_sms_history(ctx: Any, home: Home, tmp_path: Path, gateway: GatewayDouble,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.api.soap.soaputil import AGENT, envelope, post, returns

    secret = "b7f1c0de-receipts"
    monkeypatch.setenv("PARAFE_SMS_HOOK_SECRET", secret)
    delivered_doc = otp_document(ctx, tmp_path, "accuse.pdf")
    otp.send_code(ctx, [delivered_doc])
    failed_doc = otp_document(ctx, tmp_path, "accuse-ko.pdf", phone="07 98 76 54 32")
    otp.send_code(ctx, [failed_doc])
    first, second = (m["id"] for m in gateway.messages)
    server = start_server(home, {**gateway_env(gateway), "PARAFE_SMS_HOOK_SECRET": secret,
                                 "PARAFE_WORKER_IN_PROCESS": "false"})
    try:
        wrong = _receipt(server.url, home, secret, {"id": first, "status": "delivered"}, signature="0" * 64)
        assert wrong.status_code == 401
        assert "signature" in wrong.json()["message"]
        forged = _receipt(server.url, home, "another secret", {"id": first, "status": "delivered"})
        assert forged.status_code == 401
        assert [e.delivery for e in entries(ctx)] == ["sent", "sent"]  # nothing applied
        assert _receipt(server.url, home, secret, {"id": "gw-999", "status": "delivered"}).status_code == 404
        ok = _receipt(server.url, home, secret, {"id": first, "status": "DELIVRD"})
        assert ok.status_code == 200
        assert ok.json()["status"] == "delivered"
        ko = _receipt(server.url, home, secret, {"id": second, "status": "undelivered"})
        assert ko.status_code == 200
        assert ko.json()["status"] == "failed"
        with server.client(AGENT) as c:
            soap = post(c, envelope("getSMSHistory", f"<siren>{SIREN}</siren><cinematiqueId>otp</cinematiqueId>"
                                                     "<date></date>"))
            rest = c.get(f"/parapheur-ws/rest/v1/documents/v2/{SIREN}/sms/history", params={"circuitId": "otp"})
        with server.client(ADMIN) as c:
            portal = c.get(f"/admin/{SIREN}/sms")
    finally:
        stop_server(server)
    vos = [{child.tag: child.text for child in vo} for vo in returns(soap, "getSMSHistory")]
    assert [vo["deliveryReceipt"] for vo in vos] == ["1", "2"]
    assert vos[0]["deliveredAt"]
    assert vos[0]["sentAt"]
    assert vos[0]["numberOfSms"] == "1"
    assert vos[0]["messageLength"] == str(len(gateway.messages[0]["text"]))
    assert vos[0]["ptt"] == "pending"
    assert vos[1]["ptt"] == "failed"
    assert "Échec de l'envoi (passerelle SMS)" in (vos[1]["pttDescription"] or "")
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert [(e["provider"], e["status"]) for e in body] == [("http", "delivered"), ("http", "failed")]
    assert body[0]["deliveredAt"]
    assert body[0]["numberOfSms"] == 1
    assert body[0]["encoding"] == "GSM-7"
    assert portal.status_code == 200
    assert "remis au destinataire (passerelle SMS, 1 SMS, remis le" in portal.text
    assert "échec (passerelle SMS, 1 SMS)" in portal.text
    assert "non remis" in portal.text
    (comment,) = failure_comments(ctx, failed_doc)
    assert "undelivered" in comment
    assert failure_comments(ctx, delivered_doc) == []
