"""Helios through S²LOW, the open-source *tiers de télétransmission* (``PARAFE_HELIOS_TRANSPORT=s2low``).

The wire format follows S²LOW's public API (``libriciel/s2low``, ``public.ssl/``), as its real clients use it:

- authentication: the collectivity's client certificate (TLS), plus HTTP Basic login/password when several
  S²LOW users share one certificate; ``/api/test-connexion.php`` answers ``OK`` once authenticated;
- ``POST /modules/helios/api/helios_importer_fichier.php``, multipart field ``enveloppe`` (the PES_Aller or
  PES-PJ file): an XML ``<import><id/><resultat>OK|KO</resultat><message/></import>``; a file whose SHA-1
  S²LOW already holds is refused with ``doublon détecté. Ce fichier a déjà été posté.`` and no id;
- ``GET /modules/helios/api/helios_transac_get_status.php?transaction=N``: ``<transaction>`` with ``id``,
  ``resultat``, ``message`` and ``status`` (``S2low\\Enum\\HeliosStatus``); S²LOW declares ISO-8859-1 but
  writes UTF-8, so a message may arrive double-encoded (repaired here);
- ``GET /modules/helios/helios_download_acquit.php?id=N``: the PES_ACQUIT;
- ``GET /modules/helios/api/helios_get_list.php``: the unread PES_Retour (``<liste>`` of ``<pes_retour>`` with
  ``id``, ``nom``, ``date``; ``resultat`` is empty on success, ``KO`` on failure),
  ``helios_get_retour.php?id=N`` the file itself, ``helios_change_status.php?id=N`` marks it read.

:class:`S2lowClient` speaks that protocol; :class:`S2lowHelios` is the Helios transport
(:class:`~parafe.transmission.helios_types.HeliosTransport`, chosen by :mod:`parafe.transmission.helios`): it
stores an intent (:class:`~parafe.db.models.S2lowTransaction`) before posting and the transaction id as soon as
S²LOW answers, so a retried send never posts a file S²LOW already accepted; when the answer to a post was lost,
S²LOW's duplicate refusal tells the file is there (:class:`~parafe.transmission.helios_types.HeliosAnswerLost`:
its number is then set by the operator, ``parafe admin s2low transaction``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree
from sqlalchemy import select

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.db.models import S2lowAccount, S2lowTransaction, utcnow
from parafe.formats.safexml import parse_untrusted
from parafe.transmission.helios_types import HeliosAnswerLost, HeliosRefused, HeliosSendError, HeliosStatus

log = logging.getLogger(__name__)

URL_TEST = "/api/test-connexion.php"
URL_POST = "/modules/helios/api/helios_importer_fichier.php"
URL_STATUS = "/modules/helios/api/helios_transac_get_status.php"
URL_ACQUIT = "/modules/helios/helios_download_acquit.php"
URL_RETOUR_LIST = "/modules/helios/api/helios_get_list.php"
URL_RETOUR_GET = "/modules/helios/api/helios_get_retour.php"
URL_RETOUR_READ = "/modules/helios/api/helios_change_status.php"

DUPLICATE_MARK = "doublon"
DEFAULT_ACCOUNT = "default"

# S2low\Enum\HeliosStatus
ERREUR, ANNULE, POSTE, EN_ATTENTE, TRANSMIS, ACQUITTE, VALIDE, REFUSE, EN_TRAITEMENT = -1, 0, 1, 2, 3, 4, 5, 6, 7
INFORMATION_DISPONIBLE, DETRUITE, TRANSMIS_SANS_ACK = 8, 22, 24
STATUS_NAMES: dict[int, str] = {
    -1: "Erreur", 0: "Annulé", 1: "Posté", 2: "En attente de transmission", 3: "Transmis", 4: "Acquittement reçu",
    5: "Validé", 6: "Refusé", 7: "En traitement", 8: "Information disponible", 9: "Envoyé au SAE",
    10: "Accepté par le SAE", 11: "Refusé par le SAE", 13: "En attente d'être signé",
    14: "En attente d'être posté", 19: "En attente de transmission au SAE", 20: "Erreur lors de l'envoi au SAE",
    22: "Détruit", 24: "Transmis sans acquittement",
}
# statuses after which S²LOW holds the PES_ACQUIT (its ApiHeliosStatusResolver answers 3 until the file is there)
WITH_ACQUIT = frozenset({ACQUITTE, REFUSE, INFORMATION_DISPONIBLE, 9, 10, 11, 19, 20})
AT_S2LOW = frozenset({POSTE, EN_ATTENTE, EN_TRAITEMENT, 13, 14})
AT_HELIOS = frozenset({TRANSMIS, VALIDE, TRANSMIS_SANS_ACK})
FAILED = frozenset({ERREUR, ANNULE, DETRUITE})


class S2lowError(Exception):
    """S²LOW could not be reached, refused the request (``KO``) or answered something unreadable (French)."""


class S2lowUnreachable(S2lowError):
    """No answer: network failure, TLS failure, timeout or a server error (HTTP 5xx)."""


@dataclass(frozen=True)
class S2lowCredentials:
    """Where and how to authenticate: one S²LOW account (a subscriber's, or the installation's default)."""

    url: str
    cert_pem: bytes  # certificate (and chain), PEM
    key_pem: bytes  # unencrypted PKCS#8 PEM
    ca_pem: bytes | None = None
    login: str | None = None
    password: str | None = None
    account: str = DEFAULT_ACCOUNT  # "subscriber:<id>" or "default"
    label: str = "compte S²LOW par défaut"

    def __repr__(self) -> str:  # never the key or the password
        return f"S2lowCredentials(url={self.url!r}, account={self.account!r}, login={self.login!r})"

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class Answer:
    ok: bool
    message: str
    id: str | None = None


@dataclass(frozen=True)
class TransactionStatus:
    status: int
    message: str


@dataclass(frozen=True)
class RetourRef:
    id: str
    name: str
    date: str


# --- certificates ---------------------------------------------------------------------------------------------

def load_client_certificate(cert: bytes, key: bytes | None = None, password: str | None = None
                            ) -> tuple[bytes, bytes]:
    """(certificate PEM, unencrypted key PEM) from a PEM certificate + PEM key, or from a PKCS#12.

    Raises ``ValueError`` with a French message on unreadable input."""
    if b"-----BEGIN" in cert:
        try:
            certs = x509.load_pem_x509_certificates(cert)
        except ValueError:
            raise ValueError("le certificat PEM est illisible") from None
        key_source = key if key is not None else cert
        if b"PRIVATE KEY-----" not in key_source:
            raise ValueError("la clé privée du certificat manque (fichier PEM de la clé)")
        try:
            private = serialization.load_pem_private_key(key_source, password.encode() if password else None)
        except (ValueError, TypeError):
            raise ValueError("la clé privée est illisible ou son mot de passe est faux") from None
    else:
        try:
            private_any, leaf, extra = pkcs12.load_key_and_certificates(cert, password.encode() if password else None)
        except (ValueError, TypeError):
            raise ValueError("le fichier PKCS#12 est illisible ou son mot de passe est faux") from None
        if private_any is None or leaf is None:
            raise ValueError("le fichier PKCS#12 ne contient pas de certificat avec sa clé privée")
        private = private_any
        certs = [leaf, *extra]
    if certs[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                                          ) != private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ValueError("la clé privée ne correspond pas au certificat")
    cert_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return cert_pem, key_pem


def default_credentials() -> S2lowCredentials | None:
    """The installation-wide account (``PARAFE_S2LOW_*``), or None when ``PARAFE_S2LOW_URL`` is not set."""
    s = workflow_settings()
    if not s.s2low_url:
        return None
    if not s.s2low_cert:
        raise S2lowError("PARAFE_S2LOW_URL est défini mais PARAFE_S2LOW_CERT (certificat client) manque")
    try:
        cert = Path(s.s2low_cert).read_bytes()
        key = Path(s.s2low_key).read_bytes() if s.s2low_key else None
        ca = Path(s.s2low_ca).read_bytes() if s.s2low_ca else None
        cert_pem, key_pem = load_client_certificate(cert, key, s.s2low_cert_password)
    except OSError as exc:
        raise S2lowError(f"compte S²LOW par défaut : fichier illisible ({exc.strerror} : {exc.filename})") from None
    except ValueError as exc:
        raise S2lowError(f"compte S²LOW par défaut : {exc}") from None
    return S2lowCredentials(url=s.s2low_url, cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca, login=s.s2low_login,
                            password=s.s2low_password)


def subscriber_credentials(row: S2lowAccount, siren: str) -> S2lowCredentials:
    return S2lowCredentials(url=row.url, cert_pem=row.cert_pem.encode(), key_pem=row.key_pem.encode(),
                            ca_pem=row.ca_pem.encode() if row.ca_pem else None, login=row.login,
                            password=row.password, account=f"subscriber:{row.subscriber_id}",
                            label=f"compte S²LOW de l'abonné {siren}")


def credentials_for(ctx: AppContext, subscriber_id: int | None) -> S2lowCredentials:
    """The subscriber's own S²LOW account, else the installation's default one."""
    from parafe.db.models import Subscriber

    if subscriber_id is not None:
        with ctx.db.read() as session:
            row = session.scalar(select(S2lowAccount).where(S2lowAccount.subscriber_id == subscriber_id))
            if row is not None:
                siren = session.scalar(select(Subscriber.siren).where(Subscriber.id == subscriber_id)) or "?"
                return subscriber_credentials(row, siren)
    default = default_credentials()
    if default is None:
        raise S2lowError("aucun compte S²LOW n'est configuré pour cet abonné (parafe admin s2low set) ni par "
                         "défaut (PARAFE_S2LOW_URL)")
    return default


# --- the protocol ---------------------------------------------------------------------------------------------

def _fix_text(text: str) -> str:
    """S²LOW declares ISO-8859-1 and writes UTF-8 in some answers: repair « dÃ©tectÃ© » into « détecté »."""
    if "Ã" in text or "Â" in text:
        try:
            return text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return text
    return text


def _child(root: etree._Element, name: str) -> str:
    el = root.find(name)
    return _fix_text((el.text or "").strip()) if el is not None else ""


def safe_filename(name: str) -> str:
    """The envelope's file name, as S²LOW's clients send it (letters, digits, ``._- ``; others become ``_``)."""
    return re.sub(r"[^a-zA-Z0-9._\- ]", "_", name) or "pes.xml"


class S2lowClient:
    """One S²LOW account's HTTPS client (mutual TLS; HTTP Basic when a login is configured)."""

    def __init__(self, credentials: S2lowCredentials, *, timeout: float | None = None) -> None:
        self.credentials = credentials
        self.timeout = timeout if timeout is not None else workflow_settings().s2low_timeout
        self.base = credentials.url.rstrip("/")
        if not self.base.startswith("https://"):
            raise S2lowError(f"l'adresse de S²LOW doit commencer par https:// ({credentials.url})")

    def _ssl_context(self) -> ssl.SSLContext:
        c = self.credentials
        context = ssl.create_default_context(cadata=c.ca_pem.decode() if c.ca_pem else None)
        if c.ca_pem is None:
            context.load_default_certs()
        directory = tempfile.mkdtemp(prefix="parafe-s2low-")
        try:  # the key only lives on disk (0600, private directory) while OpenSSL reads it
            cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
            for path, data in ((cert_path, c.cert_pem), (key_path, c.key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
            context.load_cert_chain(cert_path, key_path)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return context

    def _request(self, method: str, path: str, **kw: Any) -> bytes:
        c = self.credentials
        auth = httpx.BasicAuth(c.login, c.password or "") if c.login else None
        url = self.base + path
        try:
            with httpx.Client(verify=self._ssl_context(), timeout=self.timeout, auth=auth) as client:
                response = client.request(method, url, **kw)
        except httpx.TimeoutException:
            raise S2lowUnreachable(f"S²LOW n'a pas répondu dans le délai de {self.timeout:g} s ({path})") from None
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise S2lowUnreachable(f"connexion à S²LOW impossible ({c.url}) : {exc}") from None
        if response.status_code >= 500:
            raise S2lowUnreachable(f"S²LOW a répondu HTTP {response.status_code} ({path})")
        if response.status_code >= 400:
            raise S2lowError(f"S²LOW a répondu HTTP {response.status_code} ({path})")
        return response.content

    @staticmethod
    def _ko_text(body: bytes) -> str | None:
        """S²LOW's plain ``KO\\n<message>`` answers (authentication and rights checks of the legacy API)."""
        text = body.decode("utf-8", errors="replace").strip()
        if text.startswith("KO"):
            return text[2:].strip() or "KO"
        return None

    def _xml(self, body: bytes, what: str) -> etree._Element:
        ko = self._ko_text(body)
        if ko is not None:
            raise S2lowError(f"S²LOW a refusé la demande ({what}) : {ko}")
        try:
            return parse_untrusted(body).getroot()
        except Exception:
            raise S2lowError(f"la réponse de S²LOW n'a pas pu être analysée ({what})") from None

    def test_connection(self) -> str:
        body = self._request("GET", URL_TEST)
        text = body.decode("utf-8", errors="replace").strip()
        if not text.startswith("OK"):
            raise S2lowError(f"S²LOW a répondu : {text[:200] or '(vide)'}")
        return text

    def post_pes(self, filename: str, data: bytes) -> Answer:
        body = self._request("POST", URL_POST,
                             files={"enveloppe": (safe_filename(filename), data, "application/xml")})
        root = self._xml(body, "envoi du PES")
        result = _child(root, "resultat")
        return Answer(ok=result == "OK", message=_child(root, "message"), id=_child(root, "id") or None)

    def status(self, transaction_id: str) -> TransactionStatus:
        body = self._request("GET", URL_STATUS, params={"transaction": transaction_id})
        root = self._xml(body, f"statut de la transaction {transaction_id}")
        if _child(root, "resultat") != "OK":
            raise S2lowError(f"S²LOW : {_child(root, 'message') or 'statut indisponible'} "
                             f"(transaction {transaction_id})")
        try:
            status = int(_child(root, "status"))
        except ValueError:
            raise S2lowError(f"statut illisible pour la transaction {transaction_id}") from None
        return TransactionStatus(status, _child(root, "message"))

    def acquit(self, transaction_id: str) -> bytes:
        body = self._request("GET", URL_ACQUIT, params={"id": transaction_id})
        self._xml(body, f"acquittement de la transaction {transaction_id}")
        return body

    def list_retours(self) -> list[RetourRef]:
        root = self._xml(self._request("GET", URL_RETOUR_LIST), "liste des PES_Retour")
        if _child(root, "resultat") == "KO":
            raise S2lowError(f"S²LOW : {_child(root, 'message') or 'liste des PES_Retour indisponible'}")
        return [RetourRef(_child(el, "id"), _child(el, "nom"), _child(el, "date"))
                for el in root.findall("pes_retour") if _child(el, "id")]

    def get_retour(self, retour_id: str) -> bytes:
        body = self._request("GET", URL_RETOUR_GET, params={"id": retour_id})
        root = self._xml(body, f"PES_Retour {retour_id}")
        if etree.QName(root).localname == "get_retour" and _child(root, "resultat") == "KO":
            raise S2lowError(f"S²LOW : {_child(root, 'message')} (PES_Retour {retour_id})")
        return body

    def mark_read(self, retour_id: str) -> None:
        root = self._xml(self._request("GET", URL_RETOUR_READ, params={"id": retour_id}),
                         f"PES_Retour {retour_id} lu")
        if _child(root, "resultat") != "OK":
            raise S2lowError(f"S²LOW : {_child(root, 'message')} (PES_Retour {retour_id} non marqué lu)")


# --- the Helios transport -------------------------------------------------------------------------------------

class S2lowHelios:
    """The Helios transport through S²LOW for the documents of one subscriber (see the module docstring)."""

    def __init__(self, ctx: AppContext, subscriber_id: int | None) -> None:
        self.ctx = ctx
        self.subscriber_id = subscriber_id

    def client(self) -> S2lowClient:
        return S2lowClient(credentials_for(self.ctx, self.subscriber_id))

    def send(self, key: str, name: str, data: bytes, *, document_id: int | None = None) -> str:
        client = self.client()
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        with self.ctx.db.write() as session:  # the intent, committed before anything leaves
            row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.key == key).with_for_update())
            if row is None:
                row = S2lowTransaction(key=key, document_id=document_id, account=client.credentials.account,
                                       filename=safe_filename(name), sha1=sha1, status="posting", attempts=0)
                session.add(row)
            if row.transaction_id:
                return row.transaction_id  # posted before; only the document's commit was lost
            tried_before = row.attempts > 0
            previous_attempt = row.attempted_at
            row.attempts += 1
            row.attempted_at = utcnow()
        try:
            answer = client.post_pes(name, data)
        except S2lowError as exc:
            raise HeliosSendError(str(exc)) from None
        if answer.ok and answer.id:
            with self.ctx.db.write() as session:
                row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.key == key))
                assert row is not None
                row.transaction_id, row.status, row.posted_at = answer.id, "posted", utcnow()
                row.last_status, row.last_message = POSTE, answer.message
            return answer.id
        if DUPLICATE_MARK in answer.message.lower():
            if tried_before:  # an earlier execution may still be waiting for its answer: give it its time
                found = self._wait_for_id(key, previous_attempt, client.timeout)
                if found is not None:
                    return found
            with self.ctx.db.write() as session:
                row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.key == key))
                assert row is not None
                row.status = "lost" if tried_before else "refused"
                row.last_message = answer.message
            if tried_before:  # our own earlier post reached S²LOW; its answer did not reach us
                raise HeliosAnswerLost(
                    f"S²LOW a déjà reçu ce fichier (« {answer.message} ») lors d'un envoi précédent dont la réponse "
                    f"a été perdue : aucune nouvelle transaction n'a été créée. Le numéro de la transaction S²LOW "
                    f"est à renseigner avec « parafe admin s2low transaction {document_id or key} <numéro> » "
                    f"pour suivre l'acquittement.")
            raise HeliosRefused(f"S²LOW refuse le fichier : {answer.message} (fichier déjà transmis par "
                                f"ailleurs, empreinte SHA-1 {sha1})")
        raise HeliosSendError(f"S²LOW a refusé le fichier : {answer.message or 'réponse KO sans message'}")

    def _wait_for_id(self, key: str, previous_attempt: datetime | None, timeout: float) -> str | None:
        """The transaction id an earlier, still running post of the same file stores (a job whose lease expired
        while S²LOW was slow runs twice); None once that post must have ended."""
        start = previous_attempt or utcnow()
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        deadline = start + timedelta(seconds=timeout + 1)
        while True:
            with self.ctx.db.read() as session:
                found = session.scalar(select(S2lowTransaction.transaction_id).where(S2lowTransaction.key == key))
            if found or utcnow() >= deadline:
                return found
            time.sleep(0.2)

    def status(self, remote_id: str) -> HeliosStatus:
        """Where the transaction is. S²LOW out of reach changes nothing (the polling goes on with its back-off:
        the file is with S²LOW or Helios, an outage must not fail it); a ``KO`` answer is an error (retried by
        the outbox, then « Échec du traitement FAST »)."""
        client = self.client()
        try:
            current = client.status(remote_id)
        except S2lowUnreachable as exc:
            log.warning("S2LOW status of transaction %s: %s", remote_id, exc)
            return HeliosStatus("received", detail=str(exc))
        except S2lowError as exc:
            raise RuntimeError(str(exc)) from None
        self._remember(remote_id, current)
        label = STATUS_NAMES.get(current.status, f"statut {current.status}")
        detail = f"S²LOW, transaction {remote_id} : {label}" + (f" — {current.message}" if current.message else "")
        if current.status in WITH_ACQUIT:
            return HeliosStatus("acknowledged", ack=client.acquit(remote_id), detail=detail)
        if current.status in AT_HELIOS:
            return HeliosStatus("transmitted", detail=detail)
        if current.status in FAILED:
            return HeliosStatus("helios_failed" if self._was_transmitted(remote_id) else "fast_failed",
                                detail=detail)
        return HeliosStatus("received", detail=detail)

    def _remember(self, remote_id: str, current: TransactionStatus) -> None:
        with self.ctx.db.write() as session:
            row = session.scalar(select(S2lowTransaction).where(S2lowTransaction.transaction_id == remote_id))
            if row is not None and current.status != row.last_status:
                if current.status in AT_HELIOS or current.status in WITH_ACQUIT:
                    row.status = "transmitted"
                row.last_status, row.last_message = current.status, current.message

    def _was_transmitted(self, remote_id: str) -> bool:
        with self.ctx.db.read() as session:
            return session.scalar(select(S2lowTransaction.status).where(
                S2lowTransaction.transaction_id == remote_id)) == "transmitted"

    @staticmethod
    def poll_delay(rounds: int) -> float:
        """Back-off of the status polling: a few seconds first, doubled each round, capped."""
        s = workflow_settings()
        return float(min(s.s2low_status_poll_seconds * (2 ** max(rounds, 0)), s.s2low_status_poll_max_seconds))
