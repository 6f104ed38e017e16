"""Fixtures of the signing tests: a throw-away PKI, an in-process RFC 3161 TSA, sample PDFs, validators.

The PKI is built with ``cryptography`` once per test session (one per xdist worker): a root CA, two signers,
a revoked signer (listed in the CA's CRL), an unrelated CA, a TSA certificate. The TSA is pyHanko's
``DummyTimeStamper`` behind a real HTTP server on a free port, so B-T goes through the HTTP client path.
Independent validators run as subprocesses: ``pdfsig`` (poppler, with an NSS database trusting the test CA)
and ``xmlsec1``.
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree
from pyhanko.sign.timestamps import DummyTimeStamper

from parafe.formats.pes import XSD_ROOT
from parafe.signing._aio import run_sync
from parafe.signing.keys import ServerSigner

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "data"
PES_SAMPLES = TESTDATA / "pes" / "samples"
PES_XSD = XSD_ROOT / "PES_V2" / "Rev0" / "PES_Aller.xsd"
P12_PASSWORD = "mot-de-passe"


def _name(cn: str, org: str = "Parafe Tests") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


@dataclass
class Party:
    """A key pair with its certificate and files (PEM cert, PEM key, PKCS#12)."""

    name: str
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_pem: Path
    key_pem: Path
    p12: Path


@dataclass
class Pki:
    dir: Path
    ca: Party
    signer: Party
    signer2: Party
    revoked: Party
    ec_signer: Party
    tsa: Party
    other_ca: Party
    other_signer: Party
    crl_pem: Path
    crl_der: bytes
    nssdb: Path
    extra: dict[str, Path] = field(default_factory=dict)

    @property
    def ca_pem(self) -> Path:
        return self.ca.cert_pem

    def crl(self) -> x509.CertificateRevocationList:
        return x509.load_der_x509_crl(self.crl_der)


def _issue(
    tmp: Path, name: str, cn: str, issuer: Party | None, *, ca: bool = False, serial: int,
    eku: list[x509.ObjectIdentifier] | None = None, ec_key: bool = False, org: str = "Parafe Tests",
) -> Party:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if ec_key else rsa.generate_private_key(65537, 2048))
    now = dt.datetime.now(dt.UTC)
    subject = _name(cn, org)
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(serial).not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=3650 if ca else 730))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier("http://crl.parafe.invalid/ca.crl")], None, None, None)]),
            critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    cert = builder.sign(signing_key, hashes.SHA256())
    cert_pem = tmp / f"{name}.pem"
    key_pem = tmp / f"{name}.key"
    p12 = tmp / f"{name}.p12"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    chain = [issuer.cert] if issuer else []
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, chain, serialization.BestAvailableEncryption(P12_PASSWORD.encode())))
    return Party(cn, key, cert, cert_pem, key_pem, p12)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca = _issue(tmp, "ca", "Parafe Test Root CA", None, ca=True, serial=1)
    signer = _issue(tmp, "signer", "Jean Dupont", ca, serial=1001)
    signer2 = _issue(tmp, "signer2", "Marie-Hélène Lefèvre", ca, serial=1002)
    revoked = _issue(tmp, "revoked", "Paul Révoqué", ca, serial=1003)
    ec_signer = _issue(tmp, "ec", "Élise Courbe", ca, serial=1004, ec_key=True)
    tsa = _issue(tmp, "tsa", "Parafe Test TSA", ca, serial=1005, eku=[ExtendedKeyUsageOID.TIME_STAMPING])
    other_ca = _issue(tmp, "other_ca", "Other Root CA", None, ca=True, serial=7, org="Elsewhere")
    other_signer = _issue(tmp, "other_signer", "Intrus", other_ca, serial=70, org="Elsewhere")
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(hours=1)).next_update(now + dt.timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked.cert.serial_number)
            .revocation_date(now - dt.timedelta(hours=2)).build())
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    crl_pem = tmp / "ca.crl.pem"
    crl_pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    nssdb = tmp / "nssdb"
    nssdb.mkdir()
    if shutil.which("certutil"):
        subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "parafe-test-ca", "-t", "CT,C,C",
                        "-i", str(ca.cert_pem)], check=True, capture_output=True)
        # With the CA's CRL in the database, pdfsig checks revocation offline (-no-ocsp).
        crl_der = tmp / "ca.crl"
        crl_der.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        subprocess.run(["crlutil", "-I", "-i", str(crl_der), "-d", f"sql:{nssdb}", "-t", "1"], check=True,
                       capture_output=True)
    return Pki(tmp, ca, signer, signer2, revoked, ec_signer, tsa, other_ca, other_signer, crl_pem,
               crl.public_bytes(serialization.Encoding.DER), nssdb)


@pytest.fixture(scope="session")
def signer(pki: Pki) -> ServerSigner:
    from parafe.signing.keys import load_signer

    return load_signer(pki.signer.p12, P12_PASSWORD)


@pytest.fixture(scope="session")
def signer2(pki: Pki) -> ServerSigner:
    from parafe.signing.keys import load_signer

    return load_signer(pki.signer2.p12, P12_PASSWORD)


# --- time-stamp authority -------------------------------------------------------------------------------
def dummy_timestamper(pki: Pki) -> DummyTimeStamper:
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    tsa_cert = asn1_x509.Certificate.load(pki.tsa.cert.public_bytes(serialization.Encoding.DER))
    ca_cert = asn1_x509.Certificate.load(pki.ca.cert.public_bytes(serialization.Encoding.DER))
    tsa_key = asn1_keys.PrivateKeyInfo.load(pki.tsa.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return DummyTimeStamper(tsa_cert=tsa_cert, tsa_key=tsa_key,
                            certs_to_embed=SimpleCertificateStore.from_certs([ca_cert]))


class _TsaHandler(http.server.BaseHTTPRequestHandler):
    stamper: DummyTimeStamper  # set on the subclass made per server
    requests = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        req = tsp.TimeStampReq.load(self.rfile.read(length))
        resp = run_sync(self.stamper.async_request_tsa_response(req))
        body = resp.dump()
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def tsa_url(pki: Pki) -> Iterator[str]:
    """URL of an RFC 3161 TSA served over HTTP on a free port for the whole session."""
    handler = type("Handler", (_TsaHandler,), {"stamper": dummy_timestamper(pki)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_tsa_url() -> str:
    """A URL where nothing listens (a port bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


# --- sample documents -------------------------------------------------------------------------------------
def make_pdf(pages: int = 5, *, rotate: int = 0, text: str = "Délibération du conseil municipal") -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        c.setFont("Helvetica", 14)
        c.drawString(72, 760, f"{text} — page {i + 1}")
        for j in range(30):
            c.drawString(72, 700 - 20 * j, f"Article {j + 1} : considérant que la séance est ouverte.")
        if rotate:
            c.setPageRotation(rotate)
        c.showPage()
    c.save()
    return buf.getvalue()


@pytest.fixture(scope="session")
def pdf5() -> bytes:
    return make_pdf(5)


def xref_stream_pdf(data: bytes) -> bytes:
    import pikepdf

    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    return out.getvalue()


# --- validators -------------------------------------------------------------------------------------------
@dataclass
class PdfsigSignature:
    valid: bool
    trusted: bool
    total: bool
    subfilter: str
    raw: str


def pdfsig(path: Path, pki: Pki) -> tuple[int, list[PdfsigSignature], str]:
    """Run poppler's ``pdfsig`` with an NSS database that trusts the test CA."""
    if not shutil.which("pdfsig"):
        pytest.fail("pdfsig (poppler-utils) is required for the signing tests")
    proc = subprocess.run(["pdfsig", "-nssdir", f"sql:{pki.nssdb}", "-no-ocsp", str(path)],
                          capture_output=True, text=True, timeout=60)
    sigs: list[PdfsigSignature] = []
    for block in proc.stdout.split("Signature #")[1:]:
        sigs.append(PdfsigSignature(
            valid="Signature Validation: Signature is Valid." in block,
            trusted="Certificate Validation: Certificate is Trusted." in block,
            total="Total document signed" in block,
            subfilter=next((ln.split(":", 1)[1].strip() for ln in block.splitlines() if "Signature Type" in ln), ""),
            raw=block,
        ))
    return proc.returncode, sigs, proc.stdout + proc.stderr


def der_length(blob: bytes) -> int:
    """Total length of the DER element at the start of ``blob`` (the CMS inside zero padding)."""
    first = blob[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    return 2 + n + int.from_bytes(blob[2:2 + n], "big")


def openssl_cms_verify(data: bytes, pki: Pki, tmp: Path) -> list[tuple[bool, str]]:
    """Verify each PDF signature's CMS and certificate chain with ``openssl cms -verify`` (trusting the CA).

    Only the signature dictionaries' ``/Contents`` and ``/ByteRange`` are read (pikepdf); the digest, signature
    and chain checks are OpenSSL's.
    """
    import pikepdf

    results: list[tuple[bool, str]] = []
    with pikepdf.open(io.BytesIO(data)) as pdf:
        fields = list(pdf.Root.AcroForm.Fields) if "/AcroForm" in pdf.Root else []
        sig_dicts = [f.V for f in fields if f.get("/FT") == "/Sig" and "/V" in f]
        for i, sig in enumerate(sig_dicts):
            contents = bytes(sig.Contents)
            cms_der = contents[:der_length(contents)]
            br = [int(v) for v in sig.ByteRange]
            content = data[br[0]:br[0] + br[1]] + data[br[2]:br[2] + br[3]]
            (tmp / f"sig{i}.der").write_bytes(cms_der)
            (tmp / f"content{i}.bin").write_bytes(content)
            proc = subprocess.run(
                ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / f"sig{i}.der"),
                 "-content", str(tmp / f"content{i}.bin"), "-CAfile", str(pki.ca_pem), "-purpose", "any",
                 "-out", "/dev/null"], capture_output=True, text=True, timeout=60)
            results.append((proc.returncode == 0, proc.stdout + proc.stderr))
    return results


def xmlsec1_verify(path: Path, *id_attrs: str, trusted: Path | None = None,
                   cwd: Path | None = None) -> tuple[bool, str]:
    """``xmlsec1 --verify`` with ``--id-attr:Id`` for each element name given; (ok, output)."""
    if not shutil.which("xmlsec1"):
        pytest.fail("xmlsec1 is required for the signing tests")
    cmd = ["xmlsec1", "--verify"]
    cmd += ["--trusted-pem", str(trusted)] if trusted else ["--insecure"]
    for name in id_attrs:
        cmd += ["--id-attr:Id", name]
    cmd.append(str(path))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)
    return proc.returncode == 0 and "OK" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def pes_schema() -> etree.XMLSchema:
    """The PES_Aller v5.17 schema, compiled once per session."""
    return etree.XMLSchema(etree.parse(str(PES_XSD)))


def xmlsec1_verify_signatures(path: Path, signature_ids: list[str], *id_attrs: str,
                              trusted: Path | None = None) -> list[tuple[bool, str]]:
    """``xmlsec1 --verify`` once per signature (``--node-id``), registering ``Id`` on ``id_attrs``."""
    attrs = [*id_attrs, "http://www.w3.org/2000/09/xmldsig#:Signature"]
    results = []
    for sig_id in signature_ids:
        if not shutil.which("xmlsec1"):
            pytest.fail("xmlsec1 is required for the signing tests")
        cmd = ["xmlsec1", "--verify", *(["--trusted-pem", str(trusted)] if trusted else ["--insecure"])]
        for name in attrs:
            cmd += ["--id-attr:Id", name]
        cmd += ["--node-id", sig_id, str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        results.append((proc.returncode == 0 and "SignedInfo References (ok/all): 2/2" in out, out))
    return results


def signxml_verify_each(xml: bytes, ca_pem: Path) -> list[tuple[bool, str]]:
    """signxml's verifier on each ds:Signature (the others removed from a copy: they sign disjoint elements)."""
    from lxml import etree
    from signxml import XMLVerifier

    ds = "{http://www.w3.org/2000/09/xmldsig#}Signature"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    count = len(list(etree.fromstring(xml, parser).iter(ds)))
    results = []
    for k in range(count):
        root = etree.fromstring(xml, parser)
        sigs = list(root.iter(ds))
        for i, s in enumerate(sigs):
            if i != k:
                s.getparent().remove(s)
        try:
            XMLVerifier().verify(root, ca_pem_file=str(ca_pem), expect_references=2, id_attribute="Id")
            results.append((True, ""))
        except Exception as exc:  # signxml raises InvalidSignature, InvalidDigest, InvalidCertificate...
            results.append((False, f"{type(exc).__name__}: {exc}"))
    return results


_PES_HEAD = """<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"{root_id}>
 <Enveloppe><Parametres><Version V="2"/><TypFic V="PESALR2"/><NomFic V="GEN_{n}"/></Parametres>
  <Emetteur><Sigle V="PARAFE"/><Adresse V="TESTS"/></Emetteur></Enveloppe>
 <EnTetePES><DteStr V="2026-11-27"/><IdPost V="031007"/><IdColl V="24310063300011"/><CodCol V="100"/>
  <CodBud V="00"/><LibelleColBud V="COMMUNE DE TÉST"/></EnTetePES>
 <PES_DepenseAller>
  <EnTeteDepense><IdVer V="2"/>{info}</EnTeteDepense>
"""
_BORD = """  <Bordereau{bid}>
   <BlocBordereau><Exer V="2026"/><IdBord V="{b}"/><DteBordEm V="2026-11-20"/><TypBord V="01"/><NbrPce V="{np}"/>
    <MtCumulAnnuel V="1000000.00"/><MtBordHT V="{total}"/></BlocBordereau>
{pieces}  </Bordereau>
"""
_PIECE = (
    '   <Piece><BlocPiece><InfoPce><IdPce V="{p}"/><TypPce V="01"/><NatPce V="01"/>'
    '<Obj V="FACTURE {b}-{p} Élagage"/></InfoPce></BlocPiece>\n'
    '    <LigneDePiece><BlocLignePiece><InfoLignePce><IdLigne V="1"/><Nature V="60628"/><Fonction V="64"/>\n'
    '     <LibVir1 V="Facture {b}-{p}"/><ModRegl V="03"/><TVAIntraCom V="0"/><MtHT V="{amount}"/>'
    '</InfoLignePce></BlocLignePiece>\n'
    '     <Tiers><InfoTiers><IdTiers V="37909534200018"/><NatIdTiers V="01"/><RefTiers V="{p}"/>'
    '<CatTiers V="50"/><NatJur V="03"/>\n'
    '      <Nom V="FOURNISSEUR {p}"/></InfoTiers><Adresse><TypAdr V="1"/><Adr2 V="ZI DU MOULIN"/>'
    '<CP V="09000"/><Ville V="FOIX"/><CodRes V="0"/></Adresse></Tiers>\n'
    '    </LigneDePiece></Piece>\n'
)


def make_pes(n_bordereaux: int = 3, pieces: int = 2, *, ids: bool | None = True, info: str | None = "0") -> bytes:
    """A schema-valid PES_Aller with ``n_bordereaux`` bordereaux (``ids=None``: every other one without Id)."""
    body = [_PES_HEAD.format(root_id=' Id="PESGEN"' if ids else "", n=n_bordereaux,
                             info=f'<InfoDematerialisee V="{info}"/>' if info is not None else "")]
    for b in range(1, n_bordereaux + 1):
        ps = "".join(_PIECE.format(b=b, p=p, amount=f"{100 + p}.50") for p in range(1, pieces + 1))
        with_id = ids if ids is not None else b % 2 == 1
        body.append(_BORD.format(bid=f' Id="BORD{b}"' if with_id else "", b=b, np=pieces,
                                 total=f"{sum(100.5 + p for p in range(1, pieces + 1)):.2f}", pieces=ps))
    body.append(" </PES_DepenseAller>\n</n:PES_Aller>\n")
    return "".join(body).encode("iso-8859-1")
