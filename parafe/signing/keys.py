"""Signer keys: PKCS#12 files, PEM pairs and PKCS#11 tokens, loaded once and reused.

Public API
----------
``load_signer(p12, password) -> ServerSigner``
    ``p12`` is a path or the bytes of a PKCS#12 file; ``password`` a str, bytes or None.
``load_pem_signer(cert_pem, key_pem, chain_pem=(), password=None) -> ServerSigner``
``load_pkcs11_signer(lib, token_label, pin, key_label, *, cert_label=None, chain=()) -> ServerSigner``
    ``lib`` is the path of the PKCS#11 module (e.g. ``/usr/lib/softhsm/libsofthsm2.so``). The session stays
    open for the life of the signer.

A :class:`ServerSigner` parses its private key exactly once. ``sign_raw(data, "sha256")`` returns the raw
signature (PKCS#1 v1.5 for RSA, DER ECDSA for EC keys) and is safe to call from several threads (software keys
are thread-safe in OpenSSL; token calls are serialised by a lock). ``pyhanko_signer()`` adapts it to pyHanko
without the per-call key re-parsing of pyHanko's stock ``SimpleSigner`` (see research/stack-notes.md §4).

pyHanko and asn1crypto load only when a pyHanko view is asked for (``pyhanko_signer()``, ``asn1_*``): the PES and
XAdES paths (``parafe sign pes``) never pay for them (issue 17).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from parafe.signing.errors import KeyLoadError, SigningError

if TYPE_CHECKING:
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers.pdf_cms import Signer

__all__ = [
    "ServerSigner",
    "load_pem_signer",
    "load_pkcs11_signer",
    "load_signer",
    "verify_raw",
]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash object for ``sha1``/``sha256``/``sha384``/``sha512``."""
    try:
        return _HASHES[name.lower().replace("-", "")]()
    except KeyError:
        raise SigningError(f"Algorithme de hachage non pris en charge : {name}") from None


class KeyBackend(Protocol):
    """Where the private key lives: in memory or in a token."""

    key_type: str  # "rsa" or "ec"
    key_size: int  # bits

    def sign(self, data: bytes, digest_algorithm: str) -> bytes: ...


class _SoftwareKey:
    """A private key held in memory as a parsed ``cryptography`` object (parsed once)."""

    def __init__(self, key: Any) -> None:
        if isinstance(key, rsa.RSAPrivateKey):
            self.key_type = "rsa"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            self.key_type = "ec"
        else:
            raise KeyLoadError("Type de clé non pris en charge (RSA ou EC attendu).")
        self.key_size: int = key.key_size
        self._key = key

    def sign(self, data: bytes, digest_algorithm: str) -> bytes:
        algo = hash_algorithm(digest_algorithm)
        if self.key_type == "rsa":
            return bytes(self._key.sign(data, padding.PKCS1v15(), algo))
        return bytes(self._key.sign(data, ec.ECDSA(algo)))


class _Pkcs11Key:
    """A private key inside a PKCS#11 token; the session is opened once and calls are serialised."""

    def __init__(self, session: Any, key: Any, key_type: str, key_size: int) -> None:
        self._session = session
        self._key = key
        self.key_type = key_type
        self.key_size = key_size
        self._lock = threading.Lock()

    def sign(self, data: bytes, digest_algorithm: str) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.util.ec import encode_ecdsa_signature

        name = digest_algorithm.lower().replace("-", "")
        if self.key_type == "rsa":
            mech = {
                "sha1": Mechanism.SHA1_RSA_PKCS,
                "sha256": Mechanism.SHA256_RSA_PKCS,
                "sha384": Mechanism.SHA384_RSA_PKCS,
                "sha512": Mechanism.SHA512_RSA_PKCS,
            }.get(name)
        else:
            mech = {
                "sha1": Mechanism.ECDSA_SHA1,
                "sha256": Mechanism.ECDSA_SHA256,
                "sha384": Mechanism.ECDSA_SHA384,
                "sha512": Mechanism.ECDSA_SHA512,
            }.get(name)
        if mech is None:
            raise SigningError(f"Algorithme de hachage non pris en charge : {digest_algorithm}")
        with self._lock:
            sig = bytes(self._key.sign(data, mechanism=mech))
        return encode_ecdsa_signature(sig) if self.key_type == "ec" else sig


@dataclass(eq=False)
class ServerSigner:
    """A certificate, its chain and a private key, ready to sign many documents.

    ``chain`` holds the other certificates to embed (intermediates, optionally the root), signer excluded.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    backend: KeyBackend
    label: str = ""

    def __post_init__(self) -> None:
        pub = self.certificate.public_key()
        expected = "rsa" if isinstance(pub, rsa.RSAPublicKey) else "ec" if isinstance(
            pub, ec.EllipticCurvePublicKey) else "?"
        if expected != self.backend.key_type:
            raise KeyLoadError("La clé privée ne correspond pas au certificat.")
        probe = b"parafe: key/certificate pairing check"
        if not verify_raw(self.certificate, self.backend.sign(probe, "sha256"), probe, "sha256"):
            raise KeyLoadError("La clé privée ne correspond pas au certificat.")

    # --- signing -------------------------------------------------------------------------------------------
    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        """Sign ``data`` (hashed here with ``digest_algorithm``); PKCS#1 v1.5 for RSA, DER ECDSA for EC."""
        return self.backend.sign(data, digest_algorithm)

    @property
    def key_type(self) -> str:
        return self.backend.key_type

    @property
    def signature_size(self) -> int:
        """Maximum size in bytes of a raw signature of this key."""
        nbytes = (self.backend.key_size + 7) // 8
        return nbytes if self.key_type == "rsa" else 2 * nbytes + 9

    def pyhanko_signer(self, *, embed_roots: bool = True) -> Signer:
        """A pyHanko ``Signer`` that delegates to this key (cheap: build one per signing call)."""
        return _pyhanko_adapter()(self, embed_roots=embed_roots)

    # --- certificate views -----------------------------------------------------------------------------------
    @cached_property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @cached_property
    def chain_der(self) -> tuple[bytes, ...]:
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    @cached_property
    def asn1_certificate(self) -> asn1_x509.Certificate:
        from asn1crypto import x509 as asn1_x509

        return asn1_x509.Certificate.load(self.cert_der)

    @cached_property
    def asn1_chain(self) -> tuple[asn1_x509.Certificate, ...]:
        from asn1crypto import x509 as asn1_x509

        return tuple(asn1_x509.Certificate.load(d) for d in self.chain_der)

    @property
    def common_name(self) -> str:
        """The signer's display name: subject CN, else the full subject."""
        return certificate_display_name(self.certificate)


def certificate_display_name(cert: x509.Certificate) -> str:
    """Subject common name (or the RFC 4514 subject when there is no CN)."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return cert.subject.rfc4514_string()


@functools.cache
def _pyhanko_adapter() -> Callable[..., Signer]:
    """The pyHanko ``Signer`` subclass backed by a :class:`ServerSigner` (defined on first use: pyHanko loads
    then)."""
    from pyhanko.sign.signers.pdf_cms import Signer
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    class _PyHankoAdapter(Signer):
        """pyHanko signer backed by a :class:`ServerSigner`; placeholder bytes on dry runs (size estimate)."""

        def __init__(self, server: ServerSigner, *, embed_roots: bool) -> None:
            self._server = server
            registry = SimpleCertificateStore.from_certs([server.asn1_certificate, *server.asn1_chain])
            super().__init__(signing_cert=server.asn1_certificate, cert_registry=registry, embed_roots=embed_roots)

        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            if dry_run:
                return bytes(self._server.signature_size)
            return self._server.sign_raw(data, digest_algorithm)

    return _PyHankoAdapter


# --- loaders -----------------------------------------------------------------------------------------------------
def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    return password.encode("utf-8")


def load_signer(p12: str | Path | bytes, password: str | bytes | None) -> ServerSigner:
    """Load a signer from a PKCS#12 file (path or bytes). The key is parsed here, once."""
    try:
        data = p12 if isinstance(p12, bytes) else Path(p12).read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"Fichier PKCS#12 illisible : {exc}") from exc
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, _password_bytes(password))
    except ValueError as exc:
        raise KeyLoadError("Fichier PKCS#12 invalide ou mot de passe incorrect.") from exc
    if key is None or cert is None:
        raise KeyLoadError("Le fichier PKCS#12 ne contient pas de clé privée et de certificat.")
    label = str(p12) if not isinstance(p12, bytes) else "pkcs12"
    return ServerSigner(cert, _order_chain(cert, extra or []), _SoftwareKey(key), label=label)


def load_pem_signer(
    cert_pem: bytes, key_pem: bytes, chain_pem: Iterable[bytes] = (), password: str | bytes | None = None
) -> ServerSigner:
    """Load a signer from PEM certificate and key bytes (plus optional PEM chain certificates)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, _password_bytes(password))
        chain = [c for blob in chain_pem for c in x509.load_pem_x509_certificates(blob)]
    except ValueError as exc:
        raise KeyLoadError(f"Clé ou certificat PEM invalide : {exc}") from exc
    return ServerSigner(cert, _order_chain(cert, chain), _SoftwareKey(key), label="pem")


def load_pkcs11_signer(
    lib: str | Path,
    token_label: str,
    pin: str,
    key_label: str,
    *,
    cert_label: str | None = None,
    chain: Sequence[x509.Certificate] = (),
) -> ServerSigner:
    """Open a PKCS#11 token once and return a signer using the private key labelled ``key_label``.

    The certificate is read from the token (label ``cert_label``, default ``key_label``; else the certificate
    with the key's CKA_ID). Extra chain certificates found on the token are added to ``chain``.
    """
    try:
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass
    except ImportError as exc:  # pragma: no cover - dependency is pinned
        raise KeyLoadError("python-pkcs11 n'est pas installé.") from exc
    try:
        token = pkcs11.lib(str(lib)).get_token(token_label=token_label)
        session = token.open(user_pin=pin)
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        key_id = key[Attribute.ID]
        certs_der: list[bytes] = []
        signer_der: bytes | None = None
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
            der = bytes(obj[Attribute.VALUE])
            obj_label = obj[Attribute.LABEL]
            if obj_label == (cert_label or key_label) or (cert_label is None and obj[Attribute.ID] == key_id):
                signer_der = signer_der or der
            else:
                certs_der.append(der)
        if key.key_type == KeyType.RSA:
            key_type, key_size = "rsa", int(key.key_length)
        elif key.key_type == KeyType.EC:
            key_type, key_size = "ec", 0
        else:
            raise KeyLoadError("Type de clé non pris en charge sur le jeton (RSA ou EC attendu).")
    except KeyLoadError:
        raise
    except Exception as exc:  # python-pkcs11 raises many unrelated classes
        raise KeyLoadError(f"Jeton PKCS#11 inaccessible : {type(exc).__name__} {exc}") from exc
    if signer_der is None:
        raise KeyLoadError(f"Aucun certificat pour la clé « {key_label} » sur le jeton.")
    cert = x509.load_der_x509_certificate(signer_der)
    if key_type == "ec":
        pub = cert.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        key_size = pub.key_size
    others = [x509.load_der_x509_certificate(d) for d in certs_der]
    backend = _Pkcs11Key(session, key, key_type, key_size)
    return ServerSigner(cert, _order_chain(cert, [*chain, *others]), backend, label=f"pkcs11:{token_label}")


def _order_chain(leaf: x509.Certificate, others: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """Issuer-first order from the leaf upwards; certificates not on the path are kept at the end."""
    pool = [c for c in others if c != leaf]
    ordered: list[x509.Certificate] = []
    current = leaf
    while True:
        nxt = next((c for c in pool if c.subject == current.issuer and c not in ordered), None)
        if nxt is None or nxt == current:
            break
        ordered.append(nxt)
        if nxt.subject == nxt.issuer:
            break
        current = nxt
    ordered.extend(c for c in pool if c not in ordered)
    return tuple(ordered)


def verify_raw(cert: x509.Certificate, signature: bytes, data: bytes, digest_algorithm: str = "sha256") -> bool:
    """Check a raw PKCS#1 v1.5 / ECDSA signature of ``data`` against ``cert``'s public key."""
    pub = cert.public_key()
    algo = hash_algorithm(digest_algorithm)
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, data, padding.PKCS1v15(), algo)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, data, ec.ECDSA(algo))
        else:
            return False
    except InvalidSignature:
        return False
    return True
