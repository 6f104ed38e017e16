"""Settings of Parafe, read from the environment (``PARAFE_*``) and an optional TOML file (``PARAFE_CONFIG``).

Everything has an embedded default so that ``parafe serve`` works on a fresh machine: data in
``$PARAFE_HOME`` (default ``./var``), SQLite database, blobs on the local filesystem, dev PKI.
"""

from __future__ import annotations

import os
import tomllib
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
