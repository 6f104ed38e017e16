"""The signing helper's local HTTP server (127.0.0.1 only): the portal page talks to it, the signer confirms in it.

API for the portal page (JSON, CORS answered only for the ``--origin`` sites):

- ``GET /v1/certificat`` → ``{"version", "name", "subject", "not_after", "certificates": [PEM signer, PEM chain…]}``
- ``POST /v1/signatures`` ``{"origin", "signer", "documents": [{"id", "name", "kind", "prepared",
  "requests": [{"data_to_sign"}]}]}`` → ``{"job", "confirm_url"}``: nothing is signed yet;
- ``GET /v1/signatures/<job>`` → ``{"status": "pending"|"signed"|"cancelled"|"error", "message",
  "signatures": {"<id>": [base64…]}}``.

The confirmation page ``/confirmer/<job>?t=<secret>`` (the secret is given only to the page that created the
job) shows what is signed — each document's name, number, format, pages, the fingerprint that is signed and,
for a PDF, a check that the prepared file shown (``/confirmer/<job>/document/<id>``) is exactly what the
signature covers (SHA-256 of the ``/ByteRange`` = the ``messageDigest`` signed attribute) — and the signer's
certificate. Only the « Signer » button of this page makes the key sign; a job whose PDF check fails cannot be
signed. Requests whose ``Host`` is not the loopback address are refused (DNS rebinding), and so are POSTs from
another origin.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization

from parafe import __version__
from parafe.signing.keys import ServerSigner

JOB_TTL = 15 * 60
MAX_JOBS = 32
MAX_BODY = 400 * 1024 * 1024
_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #161616; background: #f6f6f6; line-height: 1.5; }
header { background: #000091; color: #fff; padding: .75rem 1.25rem; }
header h1 { margin: 0; font-size: 1.3rem; }
main { max-width: 52rem; margin: 0 auto; padding: 1rem 1.25rem; }
section { background: #fff; border: 1px solid #cecece; border-radius: 4px; padding: 1rem; margin: 0 0 1rem; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: .4rem; border-bottom: 1px solid #cecece; vertical-align: top;
  overflow-wrap: anywhere; }
.ok { color: #18753c; font-weight: 600; } .ko { color: #ce0500; font-weight: 600; }
button { font: inherit; font-weight: 600; padding: .6rem 1.2rem; border-radius: 4px; border: 1px solid #000091;
  background: #fff; color: #000091; cursor: pointer; margin-right: .5rem; }
button.primary { background: #000091; color: #fff; }
button:focus-visible, a:focus-visible { outline: 3px solid #0a76f6; outline-offset: 2px; }
code { overflow-wrap: anywhere; }
.origin { font-size: 1.1rem; font-weight: 700; }
"""


@dataclass
class JobDocument:
    id: int
    name: str
    kind: str
    requests: list[bytes]
    prepared: bytes | None
    pages: int | None = None
    check: str | None = None  # None: not applicable; "ok"; or the reason the check failed
    fingerprint: str = ""


@dataclass
class Job:
    id: str
    secret: str
    origin: str
    signer: str
    documents: list[JobDocument]
    created: float = field(default_factory=time.monotonic)
    status: str = "pending"
    message: str | None = None
    signatures: dict[str, list[str]] = field(default_factory=dict)

    @property
    def signable(self) -> bool:
        return all(d.check in (None, "ok") for d in self.documents)


def message_digest(signed_attrs: bytes) -> bytes | None:
    """The ``messageDigest`` value of DER CMS signed attributes."""
    from asn1crypto import cms

    try:
        attrs = cms.CMSAttributes.load(signed_attrs)
        for attr in attrs:
            if attr["type"].native == "message_digest":
                return bytes(attr["values"][0].native)
    except (ValueError, TypeError, KeyError):
        return None
    return None


def check_pdf(prepared: bytes, signed_attrs: bytes) -> tuple[str, int | None, str]:
    """("ok" or the problem, page count, hex SHA-256 signed) for a prepared PDF and its signed attributes."""
    matches = list(_BYTE_RANGE.finditer(prepared))
    if not matches:
        return "aucune zone de signature (/ByteRange) dans le fichier préparé", None, ""
    a, b, c, d = (int(x) for x in matches[-1].groups())
    if a != 0 or a + b > c or c + d != len(prepared):
        return "zone de signature (/ByteRange) incohérente", None, ""
    digest = hashlib.sha256(prepared[a:a + b] + prepared[c:c + d]).digest()
    pages = None
    try:
        import pikepdf

        with pikepdf.open(io.BytesIO(prepared)) as pdf:
            pages = len(pdf.pages)
    except Exception:  # the digest check below is what matters
        pages = None
    if message_digest(signed_attrs) != digest:
        return "l'empreinte signée ne correspond pas au document affiché", pages, digest.hex()
    return "ok", pages, digest.hex()


class Helper:
    """State of the helper: the signer's key, the allowed portal origins and the pending jobs."""

    def __init__(self, signer: ServerSigner, origins: set[str], port: int, *, log: Any = print) -> None:
        self.signer = signer
        self.origins = {o.rstrip("/") for o in origins}
        self.port = port
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.log = log

    @property
    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    def certificate_info(self) -> dict[str, Any]:
        cert = self.signer.certificate
        pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, *self.signer.chain)]
        return {"version": __version__, "name": self.signer.common_name, "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(), "not_after": cert.not_valid_after_utc.isoformat(),
                "certificates": pems}

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, j in self.jobs.items() if now - j.created > JOB_TTL]:
            del self.jobs[key]

    def create_job(self, origin: str, data: dict[str, Any]) -> Job:
        raw_docs = data.get("documents")
        if not isinstance(raw_docs, list) or not raw_docs:
            raise ValueError("aucun document à signer")
        documents = []
        for raw in raw_docs:
            requests = [base64.b64decode(r["data_to_sign"], validate=True) for r in raw.get("requests") or []]
            if not requests:
                raise ValueError(f"rien à signer pour {raw.get('name')}")
            prepared = base64.b64decode(raw["prepared"], validate=True) if raw.get("prepared") else None
            doc = JobDocument(int(raw["id"]), str(raw.get("name") or raw["id"]), str(raw.get("kind") or ""),
                              requests, prepared)
            if doc.kind == "pdf":
                if prepared is None or len(requests) != 1:
                    doc.check = "le document préparé n'a pas été transmis"
                else:
                    doc.check, doc.pages, doc.fingerprint = check_pdf(prepared, requests[0])
            else:
                doc.fingerprint = ", ".join(hashlib.sha256(r).hexdigest()[:16] + "…" for r in requests)
            documents.append(doc)
        job = Job(secrets.token_urlsafe(16), secrets.token_urlsafe(32), origin, str(data.get("signer") or ""),
                  documents)
        with self.lock:
            self._expire()
            if len(self.jobs) >= MAX_JOBS:
                raise ValueError("trop de demandes de signature en attente")
            self.jobs[job.id] = job
        names = ", ".join(d.name for d in documents)
        self.log(f"Demande de signature de {origin} : {len(documents)} document(s) ({names}). "
                 f"Confirmez dans la fenêtre de l'assistant.")
        return job

    def job(self, job_id: str) -> Job | None:
        with self.lock:
            self._expire()
            return self.jobs.get(job_id)

    def decide(self, job: Job, sign: bool) -> None:
        with self.lock:
            if job.status != "pending":
                return
            if not sign:
                job.status, job.message = "cancelled", "Signature annulée par le signataire."
                self.log("Signature annulée.")
                return
            if not job.signable:
                job.status, job.message = "error", "Vérification du document échouée : signature refusée."
                return
            try:
                for doc in job.documents:
                    job.signatures[str(doc.id)] = [
                        base64.b64encode(self.signer.sign_raw(r, "sha256")).decode() for r in doc.requests]
            except Exception as exc:  # token removed, PIN blocked…
                job.signatures.clear()
                job.status, job.message = "error", f"La clé n'a pas pu signer : {exc}"
                self.log(job.message)
                return
            job.status = "signed"
            self.log(f"{len(job.documents)} document(s) signé(s).")


def _page(title: str, body: str) -> bytes:
    return ("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} — assistant de signature Parafe</title>"
            "<link rel=\"stylesheet\" href=\"/style.css\"></head><body>"
            "<header><h1>Parafe — assistant de signature</h1></header>"
            f"<main>{body}</main></body></html>").encode()


def confirmation_page(helper: Helper, job: Job) -> bytes:
    from parafe.signing.names import readable_name

    e = html.escape
    cert = helper.signer.certificate
    rows = []
    for doc in job.documents:
        view = ""
        if doc.prepared is not None:
            view = (f" — <a href=\"/confirmer/{e(job.id)}/document/{doc.id}?t={e(job.secret)}\" target=\"_blank\" "
                    f"rel=\"noopener\">afficher le document</a>")
        if doc.check is None:
            check = "<span>contenu XML : empreinte(s) signée(s) " + e(doc.fingerprint) + "</span>"
        elif doc.check == "ok":
            check = ("<span class=\"ok\">Vérifié : ce document est exactement celui qui sera signé</span>"
                     f"<br><small>SHA-256 signé : <code>{e(doc.fingerprint)}</code></small>")
        else:
            check = f"<span class=\"ko\">Anomalie : {e(doc.check)}</span>"
        pages = f", {doc.pages} page(s)" if doc.pages else ""
        rows.append(f"<tr><td><strong>{e(doc.name)}</strong>{view}<br><small>n° {doc.id}, {e(doc.kind.upper())}"
                    f"{pages}</small></td><td>{check}</td></tr>")
    if job.status != "pending":
        state = {"signed": "<p class=\"ok\">Signature effectuée : vous pouvez fermer cette fenêtre.</p>",
                 "cancelled": "<p>Signature annulée : vous pouvez fermer cette fenêtre.</p>"}.get(
            job.status, f"<p class=\"ko\">{e(job.message or 'Erreur')}</p>")
        actions = state
    else:
        disabled = "" if job.signable else " disabled"
        actions = (f"<form method=\"post\" action=\"/confirmer/{e(job.id)}\">"
                   f"<input type=\"hidden\" name=\"t\" value=\"{e(job.secret)}\">"
                   f"<button type=\"submit\" name=\"decision\" value=\"signer\" class=\"primary\"{disabled}>"
                   f"Signer {len(job.documents)} document(s)</button>"
                   "<button type=\"submit\" name=\"decision\" value=\"annuler\">Annuler</button></form>")
    body = (f"<section><p>Demande de signature venant de</p><p class=\"origin\">{e(job.origin)}</p>"
            f"<p>Signataire : <strong>{e(helper.signer.common_name)}</strong><br><small>Certificat : "
            f"{e(readable_name(cert.subject))} — émis par {e(readable_name(cert.issuer))}, valide jusqu'au "
            f"{cert.not_valid_after_utc:%d/%m/%Y}</small></p></section>"
            f"<section><h2>Documents à signer</h2><table><thead><tr><th scope=\"col\">Document</th>"
            f"<th scope=\"col\">Vérification</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
            f"<section>{actions}</section>")
    return _page("Confirmer la signature", body)


class Handler(BaseHTTPRequestHandler):
    server_version = f"parafe-signer/{__version__}"
    helper: Helper  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing ---------------------------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        return (self.headers.get("Host") or "").lower() in self.helper.hosts

    def _origin(self) -> str | None:
        return self.headers.get("Origin")

    def _cors(self) -> list[tuple[str, str]]:
        origin = self._origin()
        if origin and origin.rstrip("/") in self.helper.origins:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return [("Vary", "Origin")]

    def _send(self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]] | None = None,
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", self._cors())

    def _html(self, status: int, body: bytes) -> None:
        self._send(status, body, "text/html; charset=utf-8",
                   [("Content-Security-Policy", PAGE_CSP), ("X-Frame-Options", "DENY")])

    def _foreign_origin(self) -> bool:
        origin = self._origin()
        return origin is not None and origin.rstrip("/") not in self.helper.origins

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("requête trop volumineuse")
        return self.rfile.read(length)

    def _job_from(self, path: str, query: dict[str, list[str]], *, secret: str | None = None) -> Job | None:
        job = self.helper.job(path)
        if job is None:
            return None
        token = secret if secret is not None else (query.get("t") or [""])[0]
        return job if secrets.compare_digest(token, job.secret) else None

    # --- verbs ------------------------------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        if not self._host_ok() or self._foreign_origin():
            self._send(403, b"", "text/plain")
            return
        headers = self._cors() + [("Access-Control-Allow-Methods", "GET, POST"),
                                  ("Access-Control-Allow-Headers", "Content-Type"),
                                  ("Access-Control-Max-Age", "600")]
        if self.headers.get("Access-Control-Request-Private-Network"):
            headers.append(("Access-Control-Allow-Private-Network", "true"))
        self._send(204, b"", "text/plain", headers)

    def do_GET(self) -> None:
        if not self._host_ok():
            self._send(421, b"Misdirected request", "text/plain")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/style.css":
            self._send(200, STYLE.encode(), "text/css")
        elif url.path == "/":
            self._html(200, _page("En marche", "<section><p>L'assistant de signature est en marche. Signataire : "
                                  f"<strong>{html.escape(self.helper.signer.common_name)}</strong>.</p>"
                                  "</section>"))
        elif parts[:2] == ["v1", "certificat"] and len(parts) == 2:
            if self._foreign_origin():
                self._json(403, {"message": "Site non autorisé par l'assistant de signature."})
                return
            self._json(200, self.helper.certificate_info())
        elif parts[:2] == ["v1", "signatures"] and len(parts) == 3:
            job = self.helper.job(parts[2])
            if self._foreign_origin() or job is None:
                self._json(404, {"message": "Demande de signature inconnue ou expirée."})
                return
            self._json(200, {"status": job.status, "message": job.message,
                             "signatures": job.signatures if job.status == "signed" else {}})
        elif parts[:1] == ["confirmer"] and len(parts) == 2:
            job = self._job_from(parts[1], query)
            if job is None:
                self._html(404, _page("Introuvable", "<section><p>Demande inconnue ou expirée.</p></section>"))
                return
            self._html(200, confirmation_page(self.helper, job))
        elif parts[:1] == ["confirmer"] and len(parts) == 4 and parts[2] == "document" and parts[3].isdigit():
            job = self._job_from(parts[1], query)
            doc = next((d for d in job.documents if d.id == int(parts[3])), None) if job else None
            if doc is None or doc.prepared is None:
                self._html(404, _page("Introuvable", "<section><p>Document inconnu.</p></section>"))
                return
            self._send(200, doc.prepared, "application/pdf",
                       [("Content-Disposition", "inline"), ("Content-Security-Policy", "sandbox")])
        else:
            self._send(404, b"Not found", "text/plain")

    def do_POST(self) -> None:
        if not self._host_ok():
            self._send(421, b"Misdirected request", "text/plain")
            return
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts == ["v1", "signatures"]:
                if self._foreign_origin():
                    self._json(403, {"message": "Site non autorisé par l'assistant de signature."})
                    return
                if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                    self._json(415, {"message": "JSON attendu."})
                    return
                data = json.loads(self._body())
                origin = self._origin() or str(data.get("origin") or "")
                job = self.helper.create_job(origin, data)
                confirm = f"http://127.0.0.1:{self.helper.port}/confirmer/{job.id}?t={job.secret}"
                self._json(200, {"job": job.id, "confirm_url": confirm})
            elif parts[:1] == ["confirmer"] and len(parts) == 2:
                confirm_origin = self._origin()
                if confirm_origin not in (None, "null") and \
                        urlsplit(confirm_origin or "").netloc.lower() not in self.helper.hosts:
                    self._send(403, b"Forbidden", "text/plain")
                    return
                form = parse_qs(self._body().decode("utf-8", "replace"))
                found = self._job_from(parts[1], {}, secret=(form.get("t") or [""])[0])
                if found is None:
                    self._html(404, _page("Introuvable", "<section><p>Demande inconnue ou expirée.</p></section>"))
                    return
                self.helper.decide(found, (form.get("decision") or [""])[0] == "signer")
                self._html(200, confirmation_page(self.helper, found))
            else:
                self._send(404, b"Not found", "text/plain")
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"message": f"Requête invalide : {exc}"})


def make_server(helper: Helper, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The helper's HTTP server on ``host:helper.port`` (loopback only; port 0 picks a free port)."""
    handler = type("BoundHandler", (Handler,), {"helper": helper})
    server = ThreadingHTTPServer((host, helper.port), handler)
    server.daemon_threads = True
    if helper.port == 0:
        helper.port = server.server_address[1]
    return server
