"""The clients' load of the chaos scenario (:mod:`parafe.devtools.chaos`) and of the soak bench: REST, SOAP and
WebDAV deposits in ``serveur``, REST deposits in ``bureautique`` then the visa and the signature through the
portal's API, REST deposits in ``otp`` then the OTP information, the link and the code, OSS ``signServerDoc``,
downloads and deletes; :class:`Load` remembers what the clients were told (acknowledged ids, deletes)."""

from __future__ import annotations

import base64
import contextlib
import io
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx

if TYPE_CHECKING:
    from parafe.devtools.chaos_report import Report


SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
REST = "/parapheur-ws/rest/v1"
SOAP = "/parapheur-soap/soap/v1/Documents"
DAV = "/partage/webdav/clients"
OSS_WORKFLOW = "oss-demo"


def _pdf(seed: str) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 760, f"Parafe chaos {seed}")
    c.drawString(72, 740, "Arrêté municipal — document de test")
    c.showPage()
    c.save()
    return buf.getvalue()


def _otp_xml(email: str) -> bytes:
    items = "".join(f'<meta-data name="OTP_{k}_0" value="{v}"/>'
                    for k, v in (("firstname", "Jean"), ("lastname", "Chaos"), ("email", email)))
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{items}</meta-data-list>'.encode()


def _soap_upload(name: str, data: bytes) -> bytes:
    from parafe.connectors.soap.contract import NS, SOAP_ENV

    inner = (f"<label>chaos</label><comment/><subscriberId>{SIREN}</subscriberId><circuitId>serveur</circuitId>"
             f"<dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler><filename>{name}</filename>"
             "</dataFileVO>")
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sei="{NS}"><soapenv:Header/><soapenv:Body>'
            f"<sei:upload>{inner}</sei:upload></soapenv:Body></soapenv:Envelope>").encode()


class Load:
    """The client threads and what they were told (acknowledged ids, deletes)."""

    def __init__(self, cluster: Any, report: Report, rng: random.Random) -> None:
        """``cluster``: a :class:`Cluster`, or anything with ``nodes`` (``url``), ``template`` (a home with the
        demo certificates), ``ctx`` (on the same database) and ``say`` (the soak bench's single node)."""
        self.cluster = cluster
        self.report = report
        self.rng = rng
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}  # "doc:<id>" or "oss:<id>" -> how
        self.deleted: set[str] = set()
        self.to_visa: list[int] = []
        self.to_sign: list[int] = []
        self.otp_docs: list[int] = []
        self.stop = threading.Event()
        self.latencies: list[tuple[float, float]] = []  # (start, seconds) of every answered request
        home = cluster.template
        self.contexts = {email: self._ssl(home, email) for email in (AGENT, VISA, SIGNER)}
        from parafe.signing.keys import load_signer

        self.signer_key = load_signer(home / "demo" / f"{SIGNER}.p12", "demo")
        from cryptography.hazmat.primitives.serialization import Encoding

        self.signer_pem = self.signer_key.certificate.public_bytes(Encoding.PEM).decode()
        self.csrf: dict[str, str] = {}

    def _ssl(self, home: Path, email: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
        context.load_cert_chain(str(home / "demo" / f"{email}.pem"), str(home / "demo" / f"{email}.key"))
        return context

    def request(self, email: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request to a random node (the other one if the first is down); None when both failed."""
        urls = [n.url for n in self.cluster.nodes if n.url]
        self.rng.shuffle(urls)
        with self.lock:
            self.report.requests += 1
        reason = "connexion refusée ou coupée"
        for url in urls:
            try:
                began = time.monotonic()
                with httpx.Client(base_url=url, verify=self.contexts[email], timeout=60) as client:
                    response = client.request(method, path, **kwargs)
                with self.lock:
                    self.latencies.append((began, time.monotonic() - began))
            except httpx.HTTPError as exc:
                reason = f"connexion : {exc.__class__.__name__}"
                continue
            if response.status_code >= 500 or response.status_code == 401:
                reason = f"HTTP {response.status_code} {path.split('/')[-1] or path}"
                break
            return response
        with self.lock:
            self.report.request_errors += 1
            self.report.errors_by_kind[reason] += 1
        time.sleep(0.2)  # as a client would, before its next try
        return None

    def _ack(self, key: str, how: str) -> None:
        with self.lock:
            self.acked[key] = how
            self.report.acked[how] += 1

    # operations
    def deposit_rest(self, circuit: str) -> int | None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", f"{REST}/documents/v2/{SIREN}/{circuit}/upload",
                         files={"content": (name, _pdf(name), "application/pdf")})
        if r is not None and r.status_code == 200 and r.text.strip().isdigit():
            self._ack(f"doc:{int(r.text)}", f"REST {circuit}")
            return int(r.text)
        return None

    def deposit_soap(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", SOAP, content=_soap_upload(name, _pdf(name)),
                         headers={"Content-Type": "text/xml; charset=utf-8"})
        if r is not None and r.status_code == 200:
            found = re.search(rb"<return>(\d+)</return>", r.content)
            if found:
                self._ack(f"doc:{int(found.group(1))}", "SOAP serveur")

    def deposit_webdav(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "PUT", f"{DAV}/{SIREN}/in/serveur/{name}", content=_pdf(name))
        if r is not None and r.status_code == 201 and r.headers.get("x-fast-docid", "").isdigit():
            self._ack(f"doc:{int(r.headers['x-fast-docid'])}", "WebDAV serveur")

    def oss_sign(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", "/oss/signServerDoc", files={"dataFile": (name, _pdf(name), "application/pdf")},
                         data={"workflowId": OSS_WORKFLOW})
        if r is not None and r.status_code == 200 and r.content.startswith(b"%PDF"):
            self._ack(f"oss:{int(r.headers['X-FAST-document-id'])}", "OSS signServerDoc")

    def download(self) -> None:
        with self.lock:
            keys = [k for k in self.acked if k.startswith("doc:") and k not in self.deleted]
        if keys:
            doc = self.rng.choice(keys)[4:]
            self.request(AGENT, "GET", f"{REST}/documents/v2/{doc}/download")

    def deposit_and_delete(self) -> None:
        doc = self.deposit_rest("otp")
        if doc is None:
            return
        r = self.request(AGENT, "DELETE", f"{REST}/documents/v2/{doc}")
        if r is not None and 200 <= r.status_code < 300:
            with self.lock:
                self.deleted.add(f"doc:{doc}")
                self.report.deleted += 1

    def _csrf(self, email: str) -> str | None:
        if email not in self.csrf:
            r = self.request(email, "GET", "/tableau-de-bord")
            found = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text) if r is not None else None
            if not found:
                return None
            self.csrf[email] = found.group(1)
        return self.csrf[email]

    def visa(self) -> None:
        with self.lock:
            if not self.to_visa:
                return
            doc = self.to_visa.pop(0)
        token = self._csrf(VISA)
        r = self.request(VISA, "POST", f"/documents/{doc}/viser", data={"csrf": token or ""}) if token else None
        if r is not None and r.status_code == 303:
            with self.lock:
                self.to_sign.append(doc)
                self.report.visas += 1
        else:
            with self.lock:
                self.to_visa.append(doc)  # not at the visa yet, or the node went down: later

    def sign(self) -> None:
        with self.lock:
            if not self.to_sign:
                return
            doc = self.to_sign.pop(0)
        token = self._csrf(SIGNER)
        headers = {"X-CSRF-Token": token or ""}
        r = self.request(SIGNER, "POST", "/signature/preparer", json={"ids": [doc], "certificates": [self.signer_pem]},
                         headers=headers) if token else None
        ok = False
        if r is not None and r.status_code == 200:
            prepared = r.json()
            values = {str(d["id"]): [base64.b64encode(self.signer_key.sign_raw(base64.b64decode(q["data_to_sign"])))
                                     .decode() for q in d["requests"]] for d in prepared["documents"]}
            done = self.request(SIGNER, "POST", "/signature/finaliser",
                                json={"session": prepared["session"], "signatures": values}, headers=headers)
            ok = done is not None and done.status_code == 200 and all(x.get("ok") for x in done.json()["results"])
        if ok:
            with self.lock:
                self.report.signatures_by_api += 1
        else:
            with self.lock:
                self.to_sign.append(doc)

    def otp(self) -> None:
        doc = self.deposit_rest("otp")
        if doc is None:
            return
        email = f"otp-{doc}@chaos.parafe.test"
        r = self.request(AGENT, "PUT", f"{REST}/documents/v2/otp/{doc}/metadata/define",
                         files={"otpinformation": ("m.xml", _otp_xml(email))})
        if self._otp_stop("métadonnées", r):
            return
        r = self.request(AGENT, "GET", f"{REST}/documents/v2/otp/url", params={"id": str(doc)})
        if self._otp_stop("url", r):
            return
        assert r is not None
        token = parse_qs(urlsplit(r.json()["url"]).query).get("id", [""])[0]
        page = f"/boucle-sms/documentView?id={token}"
        r = self.request(AGENT, "GET", page)
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text) if r is not None else None
        if found is None:
            self._otp_stop("page", r, force=True)
            return
        csrf = found.group(1)
        deadline = time.monotonic() + 30  # the document reaches its OTP step when the worker has started it
        while True:
            r = self.request(AGENT, "POST", page, data={"csrf": csrf, "action": "code"})
            if (r is not None and r.status_code == 200) or time.monotonic() > deadline or self.stop.is_set():
                break
            time.sleep(1.0)
        if self._otp_stop("envoi du code", r):
            return
        code = self._mailed_code(email)
        if code is None:
            self._otp_stop("courriel du code", None, force=True)
            return
        r = self.request(AGENT, "POST", page, data={"csrf": csrf, "action": "signer", "code": code})
        if not self._otp_stop("signature", r, ok=(200, 303)):
            with self.lock:
                self.report.otp_signatures += 1

    def _otp_stop(self, step: str, r: httpx.Response | None, *, ok: tuple[int, ...] = (200,),
                  force: bool = False) -> bool:
        """Whether the OTP journey stops at ``step`` (counted by step, with the first answers seen)."""
        if not force and r is not None and r.status_code in ok:
            return False
        with self.lock:
            self.report.otp_interrupted[step] += 1
            if self.report.otp_interrupted[step] <= 2:
                detail = f"{r.status_code} {r.text[:300]!r}" if r is not None else "pas de réponse"
                self.cluster.say(f"  OTP interrompu à l'étape « {step} » : {detail}")
        return True

    def _mailed_code(self, email: str) -> str | None:
        from sqlalchemy import select

        from parafe.db.models import DevMessage

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.stop.is_set():
            with contextlib.suppress(Exception), self.cluster.ctx.db.read() as session:
                bodies = session.scalars(select(DevMessage.body).where(DevMessage.recipient.contains(email))
                                         .order_by(DevMessage.id.desc())).all()
                for body in bodies:
                    found = re.search(r"code de signature est : (\d+)", body)
                    if found:
                        return found.group(1)
            time.sleep(0.5)
        return None

    def deposit_serveur(self) -> None:
        self.deposit_rest("serveur")

    def bureautique(self) -> None:
        doc = self.deposit_rest("bureautique")
        if doc is not None:
            with self.lock:
                self.to_visa.append(doc)

    def one(self) -> None:
        ops: list[tuple[Callable[[], None], int]] = [
            (self.deposit_serveur, 3), (self.deposit_soap, 2), (self.deposit_webdav, 2),
            (self.bureautique, 2), (self.visa, 2), (self.sign, 2), (self.otp, 1), (self.oss_sign, 2),
            (self.download, 3), (self.deposit_and_delete, 1)]
        choice = self.rng.choices([op for op, _ in ops], weights=[w for _, w in ops])[0]
        choice()

    def run_client(self) -> None:
        while not self.stop.is_set():
            try:
                self.one()
            except Exception as exc:  # a client bug must not stop the run silently
                with self.lock:
                    self.report.request_errors += 1
                self.cluster.say(f"  client : {exc.__class__.__name__}: {exc}")
                time.sleep(0.5)

    def finish_pending(self, timeout: float) -> None:
        """After the faults: give the visas and signatures in flight a chance (no node is killed any more)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.to_visa or self.to_sign):
            self.visa()
            self.sign()
            time.sleep(0.2)
