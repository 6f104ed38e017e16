"""Settings of the workflow engine, job queue, notifications and simulators: ``PARAFE_*`` environment
variables, else the same keys in lower case without the prefix in the TOML file named by ``PARAFE_CONFIG``
(as :mod:`parafe.config` reads its own: ``smtp_host = "smtp.example.fr"``), else the defaults below.

Kept in ONE module so that they can move into :mod:`parafe.config` as they are; every reader goes through
:func:`workflow_settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parafe.config import config_file_values

_TOML_CACHE: dict[tuple[str, int], dict[str, Any]] = {}


def _toml() -> dict[str, Any]:
    """:func:`parafe.config.config_file_values`, re-read only when the file changes (read at every call)."""
    path = os.environ.get("PARAFE_CONFIG")
    if not path:
        return {}
    try:
        key = (path, os.stat(path).st_mtime_ns)
    except OSError:
        return {}
    if key not in _TOML_CACHE:
        _TOML_CACHE.clear()
        _TOML_CACHE[key] = config_file_values()
    return _TOML_CACHE[key]


def _raw(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        from_file = _toml().get(name.removeprefix("PARAFE_").lower())
        if isinstance(from_file, bool):
            value = "true" if from_file else "false"
        elif from_file is not None:
            value = str(from_file)
    return (value or "").strip()


def _int(name: str, default: int) -> int:
    value = _raw(name)
    return int(value) if value else default


def _float(name: str, default: float) -> float:
    value = _raw(name)
    return float(value) if value else default


def _str(name: str, default: str | None = None) -> str | None:
    return _raw(name) or default


def _bool(name: str, default: bool) -> bool:
    value = _raw(name).lower()
    if not value:
        return default
    return value in ("1", "true", "yes", "on", "oui")


@dataclass(frozen=True)
class WorkflowSettings:
    # job queue (huey) and outbox dispatch
    queue: str  # sqlite | postgres | redis | memory
    queue_url: str | None  # PostgreSQL DSN / Redis URL; default: the database URL (postgres), localhost (redis)
    worker_threads: int
    lease_seconds: float  # an outbox row handed to the queue is re-dispatched after this (crash recovery)
    max_attempts: int
    backoff_seconds: float  # first retry delay, doubled at each attempt, capped by backoff_max_seconds
    backoff_max_seconds: float
    dispatch_interval: float  # how often a worker looks for due outbox rows
    # mail
    smtp_host: str | None  # None: mails are kept in the development outbox (``parafe dev outbox``)
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    smtp_starttls: bool
    smtp_ssl: bool
    mail_from: str
    # SMS
    sms_provider: str  # outbox | ovh | http (the other SMS settings: :func:`sms_settings`)
    # server signature key (PKCS#12); default: $PARAFE_HOME/pki/server-signing.p12, created in dev homes
    signing_p12: Path | None
    signing_password: str
    # OTP (DECISIONS D15)
    otp_digits: int
    otp_ttl_seconds: int
    otp_attempts: int
    otp_max_codes: int  # codes per document and OTP step (issue 18), then error 189
    otp_max_failures: int  # wrong codes in total per document and OTP step, then its links are locked
    # Helios simulator (DECISIONS D13)
    helios_transport: str  # simulator
    helios_sim_delay: float  # seconds between the simulator's stages (FAST → Hélios → acknowledgement)
    helios_poll_seconds: float  # how often the engine asks for the transmission status
    helios_sim_ack_ko: str  # a PES whose NomFic or name contains this gets EtatAck 0
    helios_sim_fail_fast: str  # … "Échec du traitement FAST"
    helios_sim_fail_helios: str  # … "Échec de l'envoi à Hélios"
    helios_sim_fail_send: str  # … the send itself fails ("Échec de l'envoi à FAST" after the retries)
    # Helios through S²LOW (PARAFE_HELIOS_TRANSPORT=s2low; docs/helios.md): the installation-wide default account
    s2low_url: str | None
    s2low_cert: str | None  # PEM certificate (+ PARAFE_S2LOW_KEY) or PKCS#12 (+ PARAFE_S2LOW_CERT_PASSWORD)
    s2low_key: str | None
    s2low_cert_password: str | None
    s2low_ca: str | None  # the server's CA (PEM); the system's CAs without it
    s2low_login: str | None
    s2low_password: str | None
    s2low_timeout: float  # seconds per HTTP request
    s2low_poll_seconds: float  # how often the PES_Retour lists are fetched
    s2low_status_poll_seconds: float  # first delay before asking a transaction's status (then doubled)
    s2low_status_poll_max_seconds: float  # the status polling back-off stops growing there
    # purge
    purge_days: int
    # test hook: "kind=seconds,…" pauses a job after its external effect, before its commit (crash tests)
    fault_pause: str | None


def workflow_settings() -> WorkflowSettings:
    """The settings, read from the environment at each call (cheap; tests change the environment)."""
    p12 = _str("PARAFE_SERVER_SIGNING_P12")
    return WorkflowSettings(
        queue=(_str("PARAFE_QUEUE", "sqlite") or "sqlite").lower(),
        queue_url=_str("PARAFE_QUEUE_URL"),
        worker_threads=_int("PARAFE_WORKER_THREADS", 2),
        lease_seconds=_float("PARAFE_JOB_LEASE_SECONDS", 120.0),
        max_attempts=_int("PARAFE_JOB_MAX_ATTEMPTS", 8),
        backoff_seconds=_float("PARAFE_JOB_BACKOFF_SECONDS", 2.0),
        backoff_max_seconds=_float("PARAFE_JOB_BACKOFF_MAX_SECONDS", 600.0),
        dispatch_interval=_float("PARAFE_DISPATCH_INTERVAL", 0.3),
        smtp_host=_str("PARAFE_SMTP_HOST"),
        smtp_port=_int("PARAFE_SMTP_PORT", 25),
        smtp_user=_str("PARAFE_SMTP_USER"),
        smtp_password=_str("PARAFE_SMTP_PASSWORD"),
        smtp_starttls=_bool("PARAFE_SMTP_STARTTLS", False),
        smtp_ssl=_bool("PARAFE_SMTP_SSL", False),
        mail_from=_str("PARAFE_MAIL_FROM", "Parafe <parapheur@parafe.invalid>") or "",
        sms_provider=(_str("PARAFE_SMS_PROVIDER", "outbox") or "outbox").lower(),
        signing_p12=Path(p12) if p12 else None,
        signing_password=_str("PARAFE_SERVER_SIGNING_PASSWORD", "parafe") or "",
        otp_digits=_int("PARAFE_OTP_DIGITS", 6),
        otp_ttl_seconds=_int("PARAFE_OTP_TTL_SECONDS", 600),
        otp_attempts=_int("PARAFE_OTP_ATTEMPTS", 3),
        otp_max_codes=_int("PARAFE_OTP_MAX_CODES", 5),
        otp_max_failures=_int("PARAFE_OTP_MAX_FAILURES", 10),
        helios_transport=(_str("PARAFE_HELIOS_TRANSPORT", "simulator") or "simulator").lower(),
        helios_sim_delay=_float("PARAFE_HELIOS_SIM_DELAY", 2.0),
        helios_poll_seconds=_float("PARAFE_HELIOS_POLL_SECONDS", 1.0),
        helios_sim_ack_ko=_str("PARAFE_HELIOS_SIM_ACK_KO", "SIMU_ACK_KO") or "SIMU_ACK_KO",
        helios_sim_fail_fast=_str("PARAFE_HELIOS_SIM_FAIL_FAST", "SIMU_ECHEC_FAST") or "SIMU_ECHEC_FAST",
        helios_sim_fail_helios=_str("PARAFE_HELIOS_SIM_FAIL_HELIOS", "SIMU_ECHEC_HELIOS") or "SIMU_ECHEC_HELIOS",
        helios_sim_fail_send=_str("PARAFE_HELIOS_SIM_FAIL_SEND", "SIMU_ECHEC_ENVOI") or "SIMU_ECHEC_ENVOI",
        s2low_url=_str("PARAFE_S2LOW_URL"),
        s2low_cert=_str("PARAFE_S2LOW_CERT"),
        s2low_key=_str("PARAFE_S2LOW_KEY"),
        s2low_cert_password=_str("PARAFE_S2LOW_CERT_PASSWORD"),
        s2low_ca=_str("PARAFE_S2LOW_CA"),
        s2low_login=_str("PARAFE_S2LOW_LOGIN"),
        s2low_password=_str("PARAFE_S2LOW_PASSWORD"),
        s2low_timeout=_float("PARAFE_S2LOW_TIMEOUT", 60.0),
        s2low_poll_seconds=_float("PARAFE_S2LOW_POLL_SECONDS", 300.0),
        s2low_status_poll_seconds=_float("PARAFE_S2LOW_STATUS_POLL_SECONDS", 5.0),
        s2low_status_poll_max_seconds=_float("PARAFE_S2LOW_STATUS_POLL_MAX_SECONDS", 900.0),
        purge_days=_int("PARAFE_PURGE_DAYS", 15),
        fault_pause=_str("PARAFE_FAULT_PAUSE"),
    )


@dataclass(frozen=True)
class SmsSettings:
    """SMS provider settings (``PARAFE_SMS_*``, docs/sms.md). Secrets are never logged nor shown."""

    provider: str  # outbox | ovh | http
    sender: str | None  # sender name or number declared at the provider
    timeout: float  # seconds per HTTP request to the provider
    ca_file: Path | None  # CA bundle to verify the provider's TLS certificate (default: the system store)
    status_poll_hours: float  # how long a sent SMS's status is polled (OVHcloud)
    # OVHcloud (official ``ovh`` client)
    ovh_endpoint: str  # ovh-eu | ovh-ca | … or an https URL (tests: a local double)
    ovh_application_key: str | None
    ovh_application_secret: str | None
    ovh_consumer_key: str | None
    ovh_service_name: str | None
    # generic HTTPS gateway
    http_url: str | None
    http_authorization: str | None  # the header's value (secret)
    http_auth_header: str  # Authorization, or e.g. api-key (Brevo)
    http_body: str  # JSON template: {phone} {phone_digits} {text} {sender} {reference} {callback_url}
    http_format: str  # json | form
    http_id_path: str  # dotted path to the message id in the JSON answer (``messages.0.message-id``)
    # delivery receipts (POST /hooks/sms/{provider})
    hook_secret: str | None  # HMAC-SHA256 key; no secret = no receipt endpoint
    hook_signature_header: str
    hook_id_path: str
    hook_status_path: str
    hook_delivered: frozenset[str]
    hook_failed: frozenset[str]


_HOOK_DELIVERED = "delivered,delivrd"
_HOOK_FAILED = ("failed,undelivered,undeliv,undeliverable,rejected,rejectd,expired,hardbounce,hard_bounce,"
                "softbounce,soft_bounce,blacklisted,blocked,error")


def _words(value: str) -> frozenset[str]:
    return frozenset(w.strip().lower() for w in value.split(",") if w.strip())


def sms_settings() -> SmsSettings:
    """The SMS settings, read from the environment (and the TOML file) at each call."""
    ca = _str("PARAFE_SMS_CA")
    return SmsSettings(
        provider=(_str("PARAFE_SMS_PROVIDER", "outbox") or "outbox").lower(),
        sender=_str("PARAFE_SMS_SENDER"),
        timeout=_float("PARAFE_SMS_TIMEOUT", 15.0),
        ca_file=Path(ca) if ca else None,
        status_poll_hours=_float("PARAFE_SMS_STATUS_POLL_HOURS", 48.0),
        ovh_endpoint=_str("PARAFE_SMS_OVH_ENDPOINT", "ovh-eu") or "ovh-eu",
        ovh_application_key=_str("PARAFE_SMS_OVH_APPLICATION_KEY"),
        ovh_application_secret=_str("PARAFE_SMS_OVH_APPLICATION_SECRET"),
        ovh_consumer_key=_str("PARAFE_SMS_OVH_CONSUMER_KEY"),
        ovh_service_name=_str("PARAFE_SMS_OVH_SERVICE_NAME"),
        http_url=_str("PARAFE_SMS_HTTP_URL"),
        http_authorization=_str("PARAFE_SMS_HTTP_AUTHORIZATION"),
        http_auth_header=_str("PARAFE_SMS_HTTP_AUTH_HEADER", "Authorization") or "Authorization",
        http_body=_str("PARAFE_SMS_HTTP_BODY", '{"to": "{phone}", "text": "{text}", "sender": "{sender}"}') or "",
        http_format=(_str("PARAFE_SMS_HTTP_FORMAT", "json") or "json").lower(),
        http_id_path=_str("PARAFE_SMS_HTTP_ID_PATH", "id") or "id",
        hook_secret=_str("PARAFE_SMS_HOOK_SECRET"),
        hook_signature_header=_str("PARAFE_SMS_HOOK_SIGNATURE_HEADER", "X-Parafe-Signature") or "X-Parafe-Signature",
        hook_id_path=_str("PARAFE_SMS_HOOK_ID_PATH", "id") or "id",
        hook_status_path=_str("PARAFE_SMS_HOOK_STATUS_PATH", "status") or "status",
        hook_delivered=_words(_str("PARAFE_SMS_HOOK_DELIVERED", _HOOK_DELIVERED) or _HOOK_DELIVERED),
        hook_failed=_words(_str("PARAFE_SMS_HOOK_FAILED", _HOOK_FAILED) or _HOOK_FAILED),
    )


def fault_pause_for(kind: str) -> float:
    """Seconds to pause job ``kind`` before its commit (``PARAFE_FAULT_PAUSE``; crash tests only)."""
    spec = workflow_settings().fault_pause
    if not spec:
        return 0.0
    for part in spec.split(","):
        name, _, seconds = part.partition("=")
        if name.strip() == kind and seconds.strip():
            return float(seconds)
    return 0.0
