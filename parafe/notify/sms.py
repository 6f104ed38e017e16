"""SMS: phone numbers (E.164), length and segments (GSM-7 / UCS-2), the providers, and the operator check.

Providers (``PARAFE_SMS_PROVIDER``, settings in :func:`parafe.config.sms_settings`, docs/sms.md):

- ``outbox`` (default, DECISIONS D15) sends nothing: the message is kept in the development outbox (table
  ``dev_messages``), where ``parafe dev outbox`` and the tests read it.
- ``ovh``: OVHcloud SMS through the official ``ovh`` client (signed requests), ``POST /sms/{serviceName}/jobs``;
  the delivery status is read back from ``GET /sms/{serviceName}/outgoing/{id}`` (:meth:`OvhSms.status`).
- ``http``: a generic HTTPS gateway: a JSON (or form) body from a template, a secret header, the message id read
  at a JSON path in the answer; delivery receipts arrive on ``POST /hooks/sms/http`` (``services.sms_deliveries``).

A provider's ``send`` answers the provider's message id, or raises :class:`SmsTemporaryError` (network, timeout,
5xx, 429: the outbox retries later) or :class:`SmsPermanentError` (the gateway refused the message or the
credentials: no retry). Error texts are French and never carry a secret. :func:`check_sms_provider` is the
operator's check (``parafe admin providers check``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
import requests

from parafe.config import SmsSettings, sms_settings
from parafe.context import AppContext
from parafe.db.models import DevMessage

log = logging.getLogger(__name__)

PROVIDERS = ("outbox", "ovh", "http")


# --- errors ----------------------------------------------------------------------------------------------------

class SmsError(Exception):
    """A failed send or check; ``str(exc)`` is a French sentence without any secret."""


class SmsTemporaryError(SmsError):
    """Worth retrying later (network, timeout, HTTP 5xx / 408 / 429)."""


class SmsPermanentError(SmsError):
    """Retrying will not help (number, sender or credentials refused, configuration error)."""


class SmsConfigError(SmsPermanentError):
    """The SMS settings are incomplete or wrong."""


class SmsNotFound(SmsPermanentError):
    """The provider does not know the object (HTTP 404)."""


# --- phone numbers ---------------------------------------------------------------------------------------------

# French overseas departments keep 10-digit national numbers starting with these prefixes but have their own
# country codes (ARCEP numbering plan): Réunion and Mayotte +262, Guadeloupe +590, Guyane +594, Martinique +596.
_OVERSEAS = {"0639": "262", "0692": "262", "0693": "262", "0690": "590", "0691": "590", "0694": "594",
             "0696": "596", "0697": "596"}


class InvalidPhoneNumber(SmsPermanentError):
    pass


def e164(phone: str) -> str:
    """A phone number in E.164 (``+33612345678``). French national numbers are the default: ``06 12 34 56 78``,
    ``+33 6 12…``, ``0033 6…``, ``+33 (0)6…``; overseas departments get their own country code. Raises
    :class:`InvalidPhoneNumber` (French message) for anything else than ``+`` and 8 to 15 digits."""
    cleaned = re.sub(r"[\s.\-/()\u00a0]", "", (phone or "").replace("(0)", ""))
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if re.fullmatch(r"0[1-9]\d{8}", cleaned):
        overseas = _OVERSEAS.get(cleaned[:4])
        cleaned = "+" + (overseas or "33") + cleaned[1:]
    elif re.fullmatch(r"\+330[1-9]\d{8}", cleaned):  # +33 0612… (trunk zero kept by mistake)
        cleaned = "+33" + cleaned[4:]
    if not re.fullmatch(r"\+[1-9]\d{7,14}", cleaned) or (cleaned.startswith("+33") and len(cleaned) != 12):
        raise InvalidPhoneNumber(f"numéro de téléphone invalide : « {phone} » (attendu : 06 12 34 56 78 ou "
                                 f"+33 6 12 34 56 78, ou un numéro international +…)")
    return cleaned


def normalise_phone(phone: str) -> str:
    """:func:`e164` when the number is valid, else its digits (kept for display and identity comparison)."""
    try:
        return e164(phone)
    except InvalidPhoneNumber:
        digits = re.sub(r"[^\d+]", "", phone or "")
        return "+" + digits[2:] if digits.startswith("00") else digits


def mask_phone(phone: str) -> str:
    """``+33606060606`` → ``+33 6 •• •• •• 06`` (shown on the OTP page and in history comments)."""
    p = normalise_phone(phone)
    return p[:4] + "•" * max(len(p) - 6, 0) + p[-2:] if len(p) > 6 else "•" * len(p)


# --- length and segments ---------------------------------------------------------------------------------------

# GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1) without the escape character, and its extension table
# (each extension character is sent as ESC + character: 2 septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsParts:
    encoding: str  # GSM-7 | UCS-2
    length: int  # characters of the text
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int  # SMS parts the operator bills


def _pack(units: list[int], single: int, part: int) -> int:
    """Segments needed: one if everything fits in ``single``, else parts of ``part`` units, never cutting a
    character (an escape pair or a surrogate pair) across two parts."""
    total = sum(units)
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return segments


def sms_parts(text: str) -> SmsParts:
    """Encoding, length and segment count of an SMS text: GSM-7 (160 septets, 153 per part of a long message,
    extension characters count 2) when every character is in the GSM alphabet, else UCS-2 (70 code units, 67 per
    part)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsParts("GSM-7", len(text), sum(units), _pack(units, 160, 153))
    units = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsParts("UCS-2", len(text), sum(units), _pack(units, 70, 67))


# --- delivery status -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryStatus:
    """What a provider says about one message: ``sent`` (no receipt yet), ``delivered`` or ``failed``."""

    state: str
    provider_status: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    detail: str | None = None


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, text: str, *, document_id: int | None = None,
             reference: str | None = None) -> str: ...


# --- outbox (development) --------------------------------------------------------------------------------------

class OutboxSms:
    """Keeps SMS in the development outbox."""

    name = "outbox"

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def send(self, phone: str, text: str, *, document_id: int | None = None, reference: str | None = None) -> str:
        with self.ctx.db.write() as session:
            message = DevMessage(channel="sms", recipient=normalise_phone(phone), body=text,
                                 document_id=document_id)
            session.add(message)
            session.flush()
            return f"outbox-{message.id}"


# --- shared HTTP rules -----------------------------------------------------------------------------------------

def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_url(url: str | None, what: str) -> str:
    """``url`` if it is HTTPS, or plain HTTP on a loopback address (tests); else :class:`SmsConfigError`."""
    if not url:
        raise SmsConfigError(f"{what} : adresse manquante")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise SmsConfigError(f"{what} : HTTPS obligatoire (HTTP en clair accepté seulement sur une adresse de "
                         f"bouclage) : {parts.scheme}://{parts.hostname or ''}")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"


def json_path(data: Any, path: str) -> Any:
    """The value at a dotted path (``messages.0.message-id``); None when absent."""
    for part in (p for p in path.split(".") if p):
        if isinstance(data, list):
            try:
                data = data[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(data, dict):
            if part not in data:
                return None
            data = data[part]
        else:
            return None
    return data


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- OVHcloud --------------------------------------------------------------------------------------------------

# deliveryReceipt of sms.Outgoing (the DLR codes of OVHcloud's SMS API): 1 delivered, 2 not delivered,
# 4 pending, 8 delivered to the SMSC, 16 not delivered to the SMSC.
_OVH_FAILED_RECEIPTS = frozenset({2, 16})


class _CaSession(requests.Session):
    """A requests session that verifies with ``PARAFE_SMS_CA`` (a session-level ``verify`` would lose to
    ``REQUESTS_CA_BUNDLE`` from the environment; a per-request one does not)."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.ca_file = ca_file

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("verify", self.ca_file)
        return super().request(*args, **kwargs)


class OvhSms:
    """OVHcloud SMS through the official ``ovh`` client: it signs every request (``X-Ovh-Application``,
    ``X-Ovh-Consumer``, ``X-Ovh-Timestamp``, ``X-Ovh-Signature`` = ``$1$`` + SHA-1 of secret, consumer key,
    method, URL, body and the server's time read from ``GET /auth/time``)."""

    name = "ovh"

    def __init__(self, settings: SmsSettings) -> None:
        self.s = settings
        missing = [label for label, value in (
            ("PARAFE_SMS_OVH_APPLICATION_KEY", settings.ovh_application_key),
            ("PARAFE_SMS_OVH_APPLICATION_SECRET", settings.ovh_application_secret),
            ("PARAFE_SMS_OVH_CONSUMER_KEY", settings.ovh_consumer_key),
            ("PARAFE_SMS_OVH_SERVICE_NAME", settings.ovh_service_name)) if not value]
        if missing:
            raise SmsConfigError("OVHcloud : réglage(s) manquant(s) : " + ", ".join(missing))
        self.service = quote(settings.ovh_service_name or "", safe="")

    def client(self) -> Any:
        import ovh

        endpoint = self.s.ovh_endpoint
        custom = endpoint.startswith(("http://", "https://"))
        try:
            client = ovh.Client(endpoint="ovh-eu" if custom else endpoint,
                                application_key=self.s.ovh_application_key,
                                application_secret=self.s.ovh_application_secret,
                                consumer_key=self.s.ovh_consumer_key, timeout=self.s.timeout)
        except ovh.exceptions.InvalidRegion:
            raise SmsConfigError(f"OVHcloud : point d'accès inconnu « {endpoint} » (ovh-eu, ovh-ca, ovh-us ou une "
                                 f"adresse https)") from None
        if custom:
            # The client names regions only; an https URL (a test double, a proxy) replaces the region's base.
            client._endpoint = checked_url(endpoint, "OVHcloud").rstrip("/")
        if self.s.ca_file:
            client._session = _CaSession(str(self.s.ca_file))
        return client

    def _call(self, method: str, path: str, **data: Any) -> Any:
        import ovh.exceptions as oe

        try:
            client = self.client()
            return client.get(path, **data) if method == "GET" else client.post(path, **data)
        except (oe.HTTPError, oe.NetworkError, oe.InvalidResponse) as exc:
            raise SmsTemporaryError(f"OVHcloud injoignable : {_short(str(exc).splitlines()[0])}") from None
        except oe.APIError as exc:
            status = getattr(exc.response, "status_code", 0) if exc.response is not None else 0
            text = _short(str(exc.args[0]) if exc.args else exc.__class__.__name__)
            if status >= 500 or status in (408, 429):
                raise SmsTemporaryError(f"OVHcloud a répondu HTTP {status} : {text}") from None
            if status == 404:
                raise SmsNotFound(f"OVHcloud : objet inconnu (HTTP 404) : {text}") from None
            raise SmsPermanentError(f"OVHcloud a refusé la requête (HTTP {status}) : {text}") from None

    def send(self, phone: str, text: str, *, document_id: int | None = None, reference: str | None = None) -> str:
        number = e164(phone)
        body: dict[str, Any] = {
            "message": text, "receivers": [number], "charset": "UTF-8",
            "coding": "7bit" if sms_parts(text).encoding == "GSM-7" else "8bit",
            "noStopClause": True, "priority": "high"}
        if self.s.sender:
            body["sender"] = self.s.sender
        else:
            body["senderForResponse"] = True  # no declared sender: OVHcloud's short number
        if reference:
            body["tag"] = reference[:20]
        answer = self._call("POST", f"/sms/{self.service}/jobs", **body)
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if not ids:
            invalid = ", ".join(answer.get("invalidReceivers") or []) if isinstance(answer, dict) else ""
            raise SmsPermanentError(f"OVHcloud n'a accepté aucun destinataire ({invalid or number} refusé)")
        return str(ids[0])

    def find_sent(self, reference: str) -> str | None:
        """The id of an SMS already sent with this tag (a retry after a lost answer must not send twice);
        ``GET /sms/{serviceName}/outgoing?tag=…``. A job OVHcloud has not sent yet has no tag to search."""
        ids = self._call("GET", f"/sms/{self.service}/outgoing", tag=reference[:20])
        return str(ids[0]) if isinstance(ids, list) and ids else None

    def status(self, provider_id: str) -> DeliveryStatus | None:
        """The delivery status of a sent message (None while OVHcloud still holds it as a job)."""
        try:
            out = self._call("GET", f"/sms/{self.service}/outgoing/{quote(provider_id, safe='')}")
        except SmsNotFound:
            return None  # still a pending job (GET /sms/{serviceName}/jobs/{id}), not yet an outgoing SMS
        receipt = out.get("deliveryReceipt")
        ptt = out.get("ptt")
        code = f"dlr={receipt} ptt={ptt}"
        delivered = _parse_time(out.get("deliveredAt"))
        if delivered is not None or receipt == 1:
            return DeliveryStatus("delivered", code, _parse_time(out.get("sentAt")), delivered)
        if receipt in _OVH_FAILED_RECEIPTS:
            return DeliveryStatus("failed", code, _parse_time(out.get("sentAt")), None,
                                  f"non remis au destinataire selon OVHcloud (accusé {receipt}, code PTT {ptt})")
        return DeliveryStatus("sent", code, _parse_time(out.get("sentAt")))

    def check(self) -> str:
        self._call("GET", "/auth/time", _need_auth=False)
        account = self._call("GET", f"/sms/{self.service}")
        credits = account.get("creditsLeft") if isinstance(account, dict) else None
        return (f"OVHcloud : authentification réussie, compte SMS {self.s.ovh_service_name} accessible"
                + (f" ({credits} crédits restants)." if credits is not None else "."))


# --- generic HTTPS gateway -------------------------------------------------------------------------------------

def render_body(template: str, values: dict[str, str]) -> dict[str, Any]:
    """The request body: the JSON template with ``{name}`` placeholders replaced inside its strings (so that
    values are escaped by the JSON encoder, never spliced into JSON text)."""
    try:
        data = json.loads(template)
    except ValueError as exc:
        raise SmsConfigError(f"PARAFE_SMS_HTTP_BODY n'est pas un JSON valide : {exc}") from None
    if not isinstance(data, dict):
        raise SmsConfigError("PARAFE_SMS_HTTP_BODY doit être un objet JSON ({…})")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for key, replacement in values.items():
                value = value.replace("{" + key + "}", replacement)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return {k: fill(v) for k, v in data.items()}


class HttpSms:
    """A generic HTTPS SMS gateway (``PARAFE_SMS_HTTP_*``)."""

    name = "http"

    def __init__(self, settings: SmsSettings, public_url: str | None = None) -> None:
        self.s = settings
        self.url = checked_url(settings.http_url, "PARAFE_SMS_HTTP_URL")
        if settings.http_format not in ("json", "form"):
            raise SmsConfigError("PARAFE_SMS_HTTP_FORMAT : json ou form")
        render_body(settings.http_body, {})  # a wrong template is a configuration error, found now
        self.callback_url = f"{public_url.rstrip('/')}/hooks/sms/http" if public_url else ""

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "Parafe"}
        if self.s.http_authorization:
            headers[self.s.http_auth_header] = self.s.http_authorization
        return headers

    def _client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.s.ca_file)) if self.s.ca_file else True
        return httpx.Client(verify=verify, timeout=self.s.timeout, follow_redirects=False)

    def send(self, phone: str, text: str, *, document_id: int | None = None, reference: str | None = None) -> str:
        number = e164(phone)
        body = render_body(self.s.http_body, {
            "phone": number, "phone_digits": number.lstrip("+"), "text": text, "sender": self.s.sender or "",
            "reference": reference or "", "callback_url": self.callback_url})
        try:
            with self._client() as client:
                if self.s.http_format == "form":
                    form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
                    response = client.post(self.url, data=form, headers=self._headers())
                else:
                    response = client.post(self.url, json=body, headers=self._headers())
        except httpx.TimeoutException:
            raise SmsTemporaryError(f"passerelle SMS : pas de réponse en {self.s.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise SmsTemporaryError(f"passerelle SMS injoignable : {_short(str(exc)) or exc.__class__.__name__}"
                                    ) from None
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise SmsTemporaryError(f"la passerelle SMS a répondu HTTP {status} : {_short(response.text)}")
        if status >= 300:
            raise SmsPermanentError(f"la passerelle SMS a refusé le message (HTTP {status}) : "
                                    f"{_short(response.text)}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        message_id = json_path(answer, self.s.http_id_path)
        if message_id is None or isinstance(message_id, (dict, list)):
            log.warning("SMS gateway answered HTTP %s without a message id at %r", status, self.s.http_id_path)
            return ""
        return str(message_id)

    def check(self) -> str:
        """Reachability of the gateway (no SMS is sent): TLS and an HTTP answer; 401/403 = credentials refused."""
        try:
            with self._client() as client:
                response = client.get(self.url, headers=self._headers())
        except httpx.HTTPError as exc:
            raise SmsTemporaryError(f"passerelle SMS injoignable ({self.url}) : "
                                    f"{_short(str(exc)) or exc.__class__.__name__}") from None
        if response.status_code in (401, 403):
            raise SmsPermanentError(f"passerelle SMS : identifiants refusés (HTTP {response.status_code})")
        return (f"passerelle SMS joignable ({self.url}, HTTP {response.status_code}, TLS vérifié) ; "
                f"l'authentification n'est vérifiée qu'à l'envoi d'un SMS.")


# --- choosing and checking -------------------------------------------------------------------------------------

def provider(ctx: AppContext, settings: SmsSettings | None = None) -> SmsProvider:
    """The configured provider (``PARAFE_SMS_PROVIDER``)."""
    s = settings or sms_settings()
    if s.provider == "outbox":
        return OutboxSms(ctx)
    if s.provider == "ovh":
        return OvhSms(s)
    if s.provider == "http":
        return HttpSms(s, ctx.settings.public_url)
    raise SmsConfigError(f"fournisseur SMS inconnu : {s.provider!r} (disponibles : {', '.join(PROVIDERS)})")


def check_sms_provider(settings: object | None = None) -> tuple[bool, str]:
    """Test the configured SMS provider (authentication, reachability) without sending an SMS.

    ``settings`` may be an :class:`SmsSettings`; anything else (``WorkflowSettings``, the application
    ``Settings``, None) means the current ``PARAFE_SMS_*`` settings. Answers (ok, French verdict).
    """
    s = settings if isinstance(settings, SmsSettings) else sms_settings()
    try:
        if s.provider == "outbox":
            return True, ("SMS : fournisseur « outbox » (développement) — aucun SMS n'est envoyé, les messages "
                          "restent dans la boîte de développement (parafe dev outbox).")
        if s.provider == "ovh":
            return True, "SMS : " + OvhSms(s).check()
        if s.provider == "http":
            from parafe.config import get_settings

            return True, "SMS : " + HttpSms(s, get_settings().public_url).check()
        raise SmsConfigError(f"fournisseur inconnu « {s.provider} » (disponibles : {', '.join(PROVIDERS)})")
    except SmsError as exc:
        return False, f"SMS ({s.provider}) : échec — {exc}"
