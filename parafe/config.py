"""Settings of Parafe, read from the environment (``PARAFE_*``) and an optional TOML file (``PARAFE_CONFIG``, the
same keys in lower case without the prefix: ``smtp_host = "smtp.example.fr"``); the environment wins. Every
setting is listed in docs/configuration.md.

- :class:`Settings` (:func:`get_settings`, ``ctx.settings``): paths, storage, limits, TLS, portal; read once per
  process (:func:`reset_settings` forgets them).
- :class:`WorkflowSettings` (:func:`workflow_settings`) and :class:`SmsSettings` (:func:`sms_settings`): the
  workflow engine, job queue, mail, SMS, OTP, Hélios and purge; read at each call (cheap: the TOML file is
  re-read only when it changes), so that a test or an operator may change them in a running process.

Everything has an embedded default so that ``parafe serve`` works on a fresh machine: data in
``$PARAFE_HOME`` (default ``./var``), SQLite database, blobs on the local filesystem, dev PKI.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """All settings; environment variable names are ``PARAFE_`` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="PARAFE_", extra="ignore")

    home: Path = Field(default=Path("./var"))
    database_url: str | None = None  # default: sqlite:///$home/parafe.db
    storage: Literal["fs", "s3"] = "fs"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "parafe"
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None

    max_upload_bytes: int = 100 * MIB  # DECISIONS D8: 100 MiB
    name_limit_ws: int = 150  # DECISIONS D3
    name_limit_webdav: int = 200
    label_guard: int = 10_000  # DECISIONS D5
    history_labels: Literal["clients", "v3.4"] = "clients"
    bundle_max_total_bytes: int = 100 * MIB
    bundle_max_ratio: int = 200
    bundle_max_entries: int = 1000
    # hostile documents (issue 18): what one deposited PDF may cost, checked in a child process
    pdf_max_pages: int = Field(default=10_000, ge=1)
    pdf_max_objects: int = Field(default=500_000, ge=10)
    pdf_max_depth: int = Field(default=64, ge=2)  # nesting of the page tree and of the form fields
    pdf_check_memory_mb: int = Field(default=768, ge=128)  # address-space limit of the checking process
    pdf_check_seconds: int = Field(default=60, ge=1)  # CPU-time limit of the checking process
    # Basic authentication throttling (issue 18, parafe.services.access.login_throttle)
    login_free_failures: int = Field(default=5, ge=1)
    login_address_free_failures: int = Field(default=30, ge=1)
    login_backoff_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)

    # TLS / identity
    tls_cert: Path | None = None  # default: $home/pki/server.pem
    tls_key: Path | None = None
    client_ca: Path | None = None  # default: $home/pki/ca.pem (PEM bundle of accepted CAs)
    client_crl: Path | None = None  # default: $home/pki/crl.pem when present
    trusted_proxies: str = ""  # comma-separated addresses allowed to send X-SSL-Client-Cert
    public_url: str | None = None  # e.g. https://parapheur.example.fr (OTP links, mails)
    download_link_days: int = Field(default=30, ge=1, le=3650)  # recipients' download links (spec §2.6.3)

    # compliance report per client certificate (issue 21, parafe.services.compliance, docs/integrators.md)
    compliance: bool = True  # record how each client certificate uses the connectors
    compliance_poll_floor_seconds: float = Field(default=1800.0, ge=0)  # shortest polling interval (spec §2.4)
    compliance_fetch_ceiling_seconds: float = Field(default=86_400.0, gt=0)  # longest a return may wait
    compliance_grace_seconds: float = Field(default=900.0, ge=0)  # to delete a fetched return or a refused file
    compliance_flush_seconds: float = Field(default=5.0, gt=0)  # batched writes of the recorder
    compliance_examples: int = Field(default=5, ge=1, le=50)  # last examples kept per client and rule
    compliance_days: int = Field(default=30, ge=1)  # hours of counters kept (and reported)
    # sandbox mode (issue 21, parafe.services.admin.sandbox): steps complete by themselves, answers are marked
    sandbox: bool = False  # the whole server (``parafe serve --sandbox``); else per subscriber
    sandbox_visa_seconds: float = Field(default=5.0, ge=0)
    sandbox_signature_seconds: float = Field(default=5.0, ge=0)
    sandbox_refusal_share: float = Field(default=0.0, ge=0, le=1)  # share of visas/signatures refused
    sandbox_helios_nack_share: float = Field(default=0.0, ge=0, le=1)  # share of Helios answers that are NACK

    worker_in_process: bool = True
    workers: int = 0  # server processes of `parafe serve`; 0: one per available core

    # accessibility statement (RGAA 4.1), page /accessibilite and every portal page's footer (docs/accessibility.md)
    accessibility_organisation: str = ""  # operating body named in the statement
    accessibility_contact_email: str = ""  # where users report an accessibility problem
    accessibility_contact_url: str = ""  # contact form (optional)
    accessibility_audit_date: str = ""  # date of the RGAA audit (AAAA-MM-JJ); empty: no audit yet
    accessibility_audit_rate: str = ""  # share of RGAA criteria respected according to that audit, e.g. "72"
    accessibility_status: Literal["non", "partiellement", "totalement"] = "non"  # « … conforme »
    # server-held signing keys confirmed by passkeys (issue 20, docs/signing.md)
    server_keys_pkcs11_lib: str = ""  # PKCS#11 module holding the keys (e.g. libsofthsm2.so); empty: encrypted
    server_keys_token: str = ""  # label of that token
    server_keys_pin_file: Path | None = None  # file holding the token's user PIN
    server_keys_secret_file: Path | None = None  # encrypted keys' secret; default $home/pki/server-keys.secret
    server_keys_ca_dir: Path | None = None  # CA issuing their certificates; default $home/pki (the dev PKI)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'parafe.db'}"

    @property
    def pki_dir(self) -> Path:
        return self.resolved_home / "pki"

    @property
    def blob_dir(self) -> Path:
        return self.resolved_home / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.resolved_home / "tmp"

    @property
    def server_cert(self) -> Path:
        return self.tls_cert or self.pki_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.tls_key or self.pki_dir / "server.key"

    @property
    def ca_bundle(self) -> Path:
        return self.client_ca or self.pki_dir / "ca.pem"

    @property
    def crl_path(self) -> Path | None:
        if self.client_crl:
            return self.client_crl
        default = self.pki_dir / "crl.pem"
        return default if default.exists() else None

    @property
    def trusted_proxy_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())


def config_file_values() -> dict[str, Any]:
    """The values of the TOML file named by ``PARAFE_CONFIG`` (empty without it)."""
    path = os.environ.get("PARAFE_CONFIG")
    if not path:
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    return dict(data)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment wins over the TOML file)."""
    values = config_file_values()
    env_names = {k[len("PARAFE_"):].lower() for k in os.environ if k.startswith("PARAFE_")}
    return Settings(**{k: v for k, v in values.items() if k not in env_names})


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()


# --- workflow, jobs, notifications, simulators: read at each call ------------------------------------------

_TOML_CACHE: dict[tuple[str, int], dict[str, Any]] = {}


def _toml() -> dict[str, Any]:
    """:func:`config_file_values`, re-read only when the file changes (empty when it cannot be read)."""
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
