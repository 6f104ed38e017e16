"""RFC 3161 time-stamping for PAdES B-T and above.

``make_timestamper(url, *, timeout=10.0, username=None, password=None, headers=None)`` returns a pyHanko
``TimeStamper`` talking HTTP to the time-stamp authority at ``url``. ``resolve_timestamper(level, tsa_url,
timestamper)`` picks the one to use for a PAdES level: B-B needs none; B-T, B-LT and B-LTA need one, and a
missing URL is an error (never a silent downgrade to B-B). ``timestamp_token(ts, digest, "sha256")`` asks for
one token synchronously and turns every failure into :class:`~parafe.signing.errors.TimestampError`.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import cms
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

from parafe.signing._aio import run_sync
from parafe.signing.errors import TimestampError

__all__ = [
    "LEVELS", "dummy_token_size", "make_timestamper", "normalize_level", "resolve_timestamper", "timestamp_token",
]

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


def normalize_level(level: str) -> str:
    """``"b-t"``, ``"BT"``, ``"PAdES-B-T"`` → ``"B-T"``; error on anything else."""
    norm = level.strip().upper().replace("PADES-", "").replace("_", "-")
    if not norm.startswith("B-") and norm.startswith("B"):
        norm = "B-" + norm[1:]
    if norm not in LEVELS:
        raise ValueError(f"Niveau de signature inconnu : {level} (attendu : {', '.join(LEVELS)}).")
    return norm


def make_timestamper(
    url: str, *, timeout: float = 10.0, username: str | None = None, password: str | None = None,
    headers: dict[str, str] | None = None,
) -> TimeStamper:
    """An HTTP RFC 3161 client for ``url`` (``application/timestamp-query``)."""
    if not url.startswith(("http://", "https://")):
        raise TimestampError(f"URL d'horodatage invalide : {url}")
    auth: Any = (username, password or "") if username else None
    return RequestsHTTPTimeStamper(url, timeout=timeout, auth=auth, headers=headers)


def resolve_timestamper(level: str, tsa_url: str | None, timestamper: TimeStamper | None) -> TimeStamper | None:
    """The time-stamper a level needs, or an error when it needs one and none is configured."""
    if normalize_level(level) == "B-B":
        return None
    if timestamper is not None:
        return timestamper
    if not tsa_url:
        raise TimestampError(
            f"Le niveau {normalize_level(level)} exige une autorité d'horodatage : aucune URL configurée."
        )
    return make_timestamper(tsa_url)


def timestamp_token(timestamper: TimeStamper, digest: bytes, md_algorithm: str = "sha256") -> cms.ContentInfo:
    """One time-stamp token over ``digest``; any failure raises :class:`TimestampError`."""
    try:
        return run_sync(timestamper.async_timestamp(digest, md_algorithm))
    except TimestampRequestError as exc:
        raise TimestampError(f"Horodatage impossible : {exc}") from exc
    except OSError as exc:
        raise TimestampError(f"Autorité d'horodatage injoignable : {exc}") from exc


def dummy_token_size(timestamper: TimeStamper, md_algorithm: str = "sha256") -> int:
    """Size in bytes of a token from this TSA (asks it once; pyHanko caches the answer)."""
    try:
        return len(run_sync(timestamper.async_dummy_response(md_algorithm)).dump())
    except TimestampRequestError as exc:
        raise TimestampError(f"Horodatage impossible : {exc}") from exc
    except OSError as exc:
        raise TimestampError(f"Autorité d'horodatage injoignable : {exc}") from exc
