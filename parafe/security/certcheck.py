"""Client certificate verification for the identity middleware (pure: no web framework, no database).

:class:`CertificateVerifier` answers, for the DER certificate a client presented, one :class:`CertVerdict`:
``ok``, or why not — ``missing``, ``expired`` (FAST §4.4 "certificat périmé"), ``revoked`` ("certificat
révoqué"), ``unknown_ca`` ("certificat émis par une AC non référencée") or ``invalid`` (unparsable, not yet
valid, or rejected by the X.509 path policy).

Checks, in this order:
1. a chain from the certificate to a certificate of the CA bundle (every bundle certificate is a trust
   anchor, so a bundle may hold several roots and intermediates; the client may also send intermediates),
   with valid signatures — otherwise ``unknown_ca``;
2. the validity period of every certificate of that chain — ``expired`` (or ``invalid`` if not yet valid);
3. each certificate of the chain against the CRL of its issuer, when the CRL file holds one whose signature
   verifies with that issuer's key — ``revoked``; a stale CRL is still applied (and logged);
4. the path policy of ``cryptography.x509.verification.ClientVerifier`` (signature algorithms, RSA ≥ 2048,
   CA flags, path length, no unknown critical extension, EKU clientAuth when an EKU is present) —
   ``invalid``. The default ``policy="compatible"`` relaxes cryptography's Web PKI profile where real
   certificates accepted by OpenSSL (nginx, our TLS server) differ: a person's certificate may lack SAN and
   AKI and carry critical certificatePolicies; a CA needs basicConstraints cA=true (any criticality) and, if
   it has a keyUsage, keyCertSign. ``policy="webpki"`` keeps cryptography's defaults.

The bundle and the CRL file are re-read when they change on disk (checked at most once per
``recheck_interval`` seconds). Verdicts are cached by certificate fingerprint for ``cache_ttl`` seconds
(bounded LRU) because this runs on every request; a reload empties the cache.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

log = logging.getLogger(__name__)

Reason = Literal["ok", "missing", "expired", "revoked", "unknown_ca", "invalid"]

MAX_CHAIN_DEPTH = 8


@dataclass(frozen=True)
class CertVerdict:
    """The outcome of one verification; ``detail`` is an English explanation for logs, not for users."""

    ok: bool
    reason: Reason
    cert: x509.Certificate | None
    email: str | None
    fingerprint: str | None
    detail: str = ""


def certificate_email(cert: x509.Certificate) -> str | None:
    """The e-mail of a certificate: the first SAN rfc822Name, else the subject emailAddress (lower-case)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for value in san.get_values_for_type(x509.RFC822Name):
            if value.strip():
                return value.strip().lower()
    except (x509.ExtensionNotFound, ValueError):
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("utf-8", "replace")
        if value.strip():
            return value.strip().lower()
    return None


def _require_ca(policy: Policy, cert: x509.Certificate, bc: x509.BasicConstraints) -> None:
    if not bc.ca:
        raise ValueError("basicConstraints.cA is not asserted")


def _require_cert_sign(policy: Policy, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("keyUsage of a CA without keyCertSign")


@functools.cache
def _compatible_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, end-entity policy) of ``policy="compatible"``."""
    ca_policy = (
        ExtensionPolicy.webpki_defaults_ca()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_cert_sign)
    )
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
        .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None)
    )
    return ca_policy, ee_policy


def _fp(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return False


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return False
    try:
        return crl.is_signature_valid(key)
    except (TypeError, ValueError):
        return False


def _file_signature(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _load_certs(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    data = path.read_bytes()
    if b"-----BEGIN" not in data:
        return [x509.load_der_x509_crl(data)] if data.strip() else []
    crls = []
    marker = b"-----BEGIN X509 CRL-----"
    for chunk in data.split(marker)[1:]:
        crls.append(x509.load_pem_x509_crl(marker + chunk))
    return crls


@dataclass(frozen=True)
class _State:
    anchors: tuple[x509.Certificate, ...]
    anchor_fps: frozenset[str]
    by_subject: dict[x509.Name, tuple[x509.Certificate, ...]]
    store: Store
    revoked: dict[str, frozenset[int]]  # issuer fingerprint -> revoked serials
    generation: int


class CertificateVerifier:
    """Verifies client certificates against a CA bundle (PEM, several CAs) and an optional CRL file."""

    def __init__(
        self,
        ca_bundle: Path | str,
        crl: Path | str | None = None,
        *,
        cache_ttl: float = 60.0,
        cache_size: int = 4096,
        recheck_interval: float = 1.0,
        policy: Literal["compatible", "webpki"] = "compatible",
    ) -> None:
        self.ca_bundle = Path(ca_bundle)
        self.crl_path = Path(crl) if crl is not None else None
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self.recheck_interval = recheck_interval
        self.policy = policy
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, CertVerdict]] = OrderedDict()
        self._generation = 0
        self._next_check = 0.0
        self._bundle_sig: tuple[int, int, int] | None = None
        self._crl_sig: tuple[int, int, int] | None = None
        if not self.ca_bundle.is_file():
            raise FileNotFoundError(f"CA bundle not found: {self.ca_bundle}")
        self._state = self._load()

    # ------------------------------------------------------------------------------------------ loading

    def _load(self) -> _State:
        bundle_sig = _file_signature(self.ca_bundle)
        crl_sig = _file_signature(self.crl_path)
        anchors = tuple(_load_certs(self.ca_bundle))
        if not anchors:
            raise ValueError(f"no certificate in CA bundle {self.ca_bundle}")
        by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in anchors:
            by_subject.setdefault(cert.subject, []).append(cert)
        revoked: dict[str, frozenset[int]] = {}
        latest: dict[str, dt.datetime] = {}
        if self.crl_path is not None and crl_sig is not None:
            try:
                crls = _load_crls(self.crl_path)
            except (OSError, ValueError) as exc:
                log.error("CRL file %s unreadable, ignored: %s", self.crl_path, exc)
                crls = []
            now = dt.datetime.now(dt.UTC)
            for crl in crls:
                issuers = [
                    ca for ca in by_subject.get(crl.issuer, []) if _crl_signed_by(crl, ca)
                ]
                if not issuers:
                    log.warning(
                        "CRL of %s in %s ignored: issuer not in the CA bundle or bad signature",
                        crl.issuer.rfc4514_string(), self.crl_path,
                    )
                    continue
                if crl.next_update_utc is not None and crl.next_update_utc < now:
                    log.warning("CRL of %s is stale (next update %s); still applied",
                                crl.issuer.rfc4514_string(), crl.next_update_utc.isoformat())
                serials = frozenset(r.serial_number for r in crl)
                for ca in issuers:
                    key = _fp(ca)
                    if key not in latest or crl.last_update_utc > latest[key]:
                        latest[key] = crl.last_update_utc
                        revoked[key] = serials
        elif self.crl_path is not None:
            log.warning("CRL file %s not found; revocation not checked until it appears", self.crl_path)
        self._bundle_sig, self._crl_sig = bundle_sig, crl_sig
        self._generation += 1
        return _State(
            anchors=anchors,
            anchor_fps=frozenset(_fp(c) for c in anchors),
            by_subject={k: tuple(v) for k, v in by_subject.items()},
            store=Store(list(anchors)),
            revoked=revoked,
            generation=self._generation,
        )

    def _maybe_reload(self) -> _State:
        now = time.monotonic()
        if now < self._next_check:
            return self._state
        with self._lock:
            if now < self._next_check:
                return self._state
            self._next_check = now + self.recheck_interval
            if (
                _file_signature(self.ca_bundle) != self._bundle_sig
                or _file_signature(self.crl_path) != self._crl_sig
            ):
                self._reload_locked()
        return self._state

    def _reload_locked(self) -> None:
        try:
            self._state = self._load()
        except (OSError, ValueError) as exc:
            # A half-written or removed bundle must not lock everybody out: keep the last good state.
            log.error("CA bundle %s could not be reloaded, keeping the previous one: %s", self.ca_bundle, exc)
            return
        self._cache.clear()
        log.info("CA bundle / CRL reloaded (%d CA certificates)", len(self._state.anchors))

    def reload(self) -> None:
        """Re-read the bundle and the CRL now, and forget cached verdicts."""
        with self._lock:
            self._reload_locked()
            self._next_check = time.monotonic() + self.recheck_interval

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------------------------------ API

    def verify_pem(
        self, pem: bytes | str | None, now: dt.datetime | None = None, *, intermediates: Sequence[bytes] = ()
    ) -> CertVerdict:
        """Like :meth:`verify_der` for a PEM certificate (the first one of the text)."""
        if pem is None or not pem.strip():
            return CertVerdict(False, "missing", None, None, None, "no certificate")
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            return CertVerdict(False, "invalid", None, None, None, f"unparsable PEM: {exc}")
        der = cert.public_bytes(serialization.Encoding.DER)
        return self.verify_der(der, now, intermediates=intermediates)

    def verify_der(
        self, der: bytes | None, now: dt.datetime | None = None, *, intermediates: Sequence[bytes] = ()
    ) -> CertVerdict:
        """Verify a DER certificate. ``now`` (tests) bypasses the cache. ``intermediates``: DER certificates
        the client sent after its own (they are never trust anchors)."""
        if not der:
            return CertVerdict(False, "missing", None, None, None, "no certificate")
        state = self._maybe_reload()
        key = hashlib.sha256(der).hexdigest()
        if intermediates:
            joined = b"".join(hashlib.sha256(i).digest() for i in intermediates)
            key += ":" + hashlib.sha256(joined).hexdigest()
        if now is None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and hit[0] > time.monotonic():
                    self._cache.move_to_end(key)
                    return hit[1]
        verdict, valid_until = self._verify(der, intermediates, now, state)
        if now is None:
            ttl = self.cache_ttl
            if valid_until is not None:
                ttl = min(ttl, (valid_until - dt.datetime.now(dt.UTC)).total_seconds())
            if ttl > 0:
                with self._lock:
                    if state.generation == self._state.generation:
                        self._cache[key] = (time.monotonic() + ttl, verdict)
                        self._cache.move_to_end(key)
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        return verdict

    # ------------------------------------------------------------------------------------------ checks

    def _verify(
        self, der: bytes, intermediates: Sequence[bytes], now: dt.datetime | None, state: _State
    ) -> tuple[CertVerdict, dt.datetime | None]:
        fingerprint = hashlib.sha256(der).hexdigest()
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            detail = f"unparsable certificate: {exc}"
            return CertVerdict(False, "invalid", None, None, fingerprint, detail), None
        email = certificate_email(cert)

        def verdict(reason: Reason, detail: str) -> CertVerdict:
            return CertVerdict(reason == "ok", reason, cert, email, fingerprint, detail)

        extra: list[x509.Certificate] = []
        for item in intermediates:
            try:
                extra.append(x509.load_der_x509_certificate(item))
            except ValueError:
                continue

        chain = self._build_chain(cert, extra, state)
        if chain is None:
            detail = f"no chain to a trusted CA for issuer {cert.issuer.rfc4514_string()}"
            return verdict("unknown_ca", detail), None

        when = now if now is not None else dt.datetime.now(dt.UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        for c in chain:
            if when > c.not_valid_after_utc:
                what = "certificate" if c is cert else f"CA {c.subject.rfc4514_string()}"
                return verdict("expired", f"{what} expired on {c.not_valid_after_utc.isoformat()}"), None
            if when < c.not_valid_before_utc:
                what = "certificate" if c is cert else f"CA {c.subject.rfc4514_string()}"
                detail = f"{what} not valid before {c.not_valid_before_utc.isoformat()}"
                return verdict("invalid", detail), None

        for child, issuer in zip(chain, chain[1:], strict=False):
            serials = state.revoked.get(_fp(issuer))
            if serials is not None and child.serial_number in serials:
                what = "certificate" if child is cert else f"CA {child.subject.rfc4514_string()}"
                return verdict("revoked", f"{what} serial {child.serial_number:x} is in the CRL"), None

        try:
            builder = PolicyBuilder().store(state.store).time(when).max_chain_depth(MAX_CHAIN_DEPTH)
            if self.policy == "compatible":
                ca_policy, ee_policy = _compatible_policies()
                builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            builder.build_client_verifier().verify(cert, extra)
        except VerificationError as exc:
            return verdict("invalid", f"path policy: {exc}"), None

        valid_until = min(c.not_valid_after_utc for c in chain)
        return verdict("ok", "ok"), valid_until

    def _build_chain(
        self, cert: x509.Certificate, extra: list[x509.Certificate], state: _State
    ) -> list[x509.Certificate] | None:
        """[cert, issuer, …] up to a trust anchor (or further up inside the bundle), or None."""
        chain = [cert]
        current = cert
        anchored = False
        for _ in range(MAX_CHAIN_DEPTH):
            if current.issuer == current.subject and _issued_by(current, current):
                break  # self-signed: the top
            issuer = None
            for candidate in state.by_subject.get(current.issuer, ()):
                if _is_ca(candidate) and _issued_by(current, candidate):
                    issuer, anchored = candidate, True
                    break
            if issuer is None and not anchored:
                for candidate in extra:
                    if (
                        candidate.subject == current.issuer
                        and _is_ca(candidate)
                        and _issued_by(current, candidate)
                    ):
                        issuer = candidate
                        break
            if issuer is None or any(issuer == c for c in chain):
                break
            chain.append(issuer)
            current = issuer
        return chain if anchored else None
