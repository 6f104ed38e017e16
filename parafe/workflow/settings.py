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
    sms_provider: str  # outbox
    # server signature key (PKCS#12); default: $PARAFE_HOME/pki/server-signing.p12, created in dev homes
    signing_p12: Path | None
    signing_password: str
    # OTP (DECISIONS D15)
    otp_digits: int
    otp_ttl_seconds: int
    otp_attempts: int
    # Helios simulator (DECISIONS D13)
    helios_transport: str  # simulator
    helios_sim_delay: float  # seconds between the simulator's stages (FAST → Hélios → acknowledgement)
    helios_poll_seconds: float  # how often the engine asks for the transmission status
    helios_sim_ack_ko: str  # a PES whose NomFic or name contains this gets EtatAck 0
    helios_sim_fail_fast: str  # … "Échec du traitement FAST"
    helios_sim_fail_helios: str  # … "Échec de l'envoi à Hélios"
    helios_sim_fail_send: str  # … the send itself fails ("Échec de l'envoi à FAST" after the retries)
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
        helios_transport=(_str("PARAFE_HELIOS_TRANSPORT", "simulator") or "simulator").lower(),
        helios_sim_delay=_float("PARAFE_HELIOS_SIM_DELAY", 2.0),
        helios_poll_seconds=_float("PARAFE_HELIOS_POLL_SECONDS", 1.0),
        helios_sim_ack_ko=_str("PARAFE_HELIOS_SIM_ACK_KO", "SIMU_ACK_KO") or "SIMU_ACK_KO",
        helios_sim_fail_fast=_str("PARAFE_HELIOS_SIM_FAIL_FAST", "SIMU_ECHEC_FAST") or "SIMU_ECHEC_FAST",
        helios_sim_fail_helios=_str("PARAFE_HELIOS_SIM_FAIL_HELIOS", "SIMU_ECHEC_HELIOS") or "SIMU_ECHEC_HELIOS",
        helios_sim_fail_send=_str("PARAFE_HELIOS_SIM_FAIL_SEND", "SIMU_ECHEC_ENVOI") or "SIMU_ECHEC_ENVOI",
        purge_days=_int("PARAFE_PURGE_DAYS", 15),
        fault_pause=_str("PARAFE_FAULT_PAUSE"),
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
