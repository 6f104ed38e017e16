"""Sign a generated 10 MB PES with 20 bordereaux, one XAdES-EPES signature per bordereau, and compare with ONE
whole-file enveloped signature made by the ``xmlsec1`` CLI (Debian package xmlsec1) in the same run.

Our time is bytes in → bytes out (parse, 20 × [exclusive C14N of the bordereau, SHA-256, XAdES properties,
C14N of SignedInfo, RSA-2048], serialise). The CLI time is the wall time of ``xmlsec1 --sign`` on a template
holding one ``ds:Signature`` (enveloped + exc-c14n, rsa-sha256), process start included. Target: ours <= 1.5x
the CLI. Each figure is the median of ``--runs`` runs.

The generated document is parsed with ``huge_tree=False`` like untrusted input: no single text node comes near
libxml2's 10 MB limit, the document size itself is not limited by it. (``huge_tree=True`` would only be needed
for our own trusted data holding a text node over 10 MB, e.g. a large base64 PJ.)

Usage: ``.venv/bin/python bench/pes_sign.py [--mb 10] [--bordereaux 20] [--runs 3]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

HEAD = """<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller" Id="PESBENCH">
 <Enveloppe><Parametres><Version V="2"/><TypFic V="PESALR2"/><NomFic V="BENCH"/></Parametres>
  <Emetteur><Sigle V="PARAFE"/><Adresse V="BENCH"/></Emetteur></Enveloppe>
 <EnTetePES><DteStr V="2026-11-27"/><IdPost V="031007"/><IdColl V="24310063300011"/><CodCol V="100"/>
  <CodBud V="00"/></EnTetePES>
 <PES_DepenseAller>
  <EnTeteDepense><IdVer V="2"/><InfoDematerialisee V="1"/></EnTeteDepense>
"""
PIECE = (
    '   <Piece><BlocPiece><InfoPce><IdPce V="{p}"/><TypPce V="01"/><NatPce V="01"/>'
    '<Obj V="FACTURE {b}-{p} ENTRETIEN DES ESPACES VERTS"/></InfoPce></BlocPiece>\n'
    '    <LigneDePiece><BlocLignePiece><InfoLignePce><IdLigne V="1"/><Nature V="60628"/><Fonction V="64"/>'
    '<LibVir1 V="Facture {b}-{p}"/><ModRegl V="03"/><TVAIntraCom V="0"/><MtHT V="{p}.50"/></InfoLignePce>'
    '</BlocLignePiece>\n     <Tiers><InfoTiers><IdTiers V="37909534200018"/><NatIdTiers V="01"/>'
    '<RefTiers V="{p}"/><CatTiers V="50"/><NatJur V="03"/><Nom V="FOURNISSEUR NUMERO {p}"/></InfoTiers>'
    '<Adresse><TypAdr V="1"/><Adr2 V="ZONE INDUSTRIELLE DU MOULIN"/><CP V="09000"/><Ville V="FOIX"/>'
    '<CodRes V="0"/></Adresse></Tiers>\n    </LigneDePiece></Piece>\n'
)


def make_pes(target_bytes: int, n_bordereaux: int) -> bytes:
    piece_size = len(PIECE.format(b=1, p=1000))
    per_bordereau = max(1, (target_bytes - len(HEAD)) // n_bordereaux // piece_size)
    parts = [HEAD]
    for b in range(1, n_bordereaux + 1):
        parts.append(f'  <Bordereau Id="BORD{b}">\n   <BlocBordereau><Exer V="2026"/><IdBord V="{b}"/>'
                     f'<DteBordEm V="2026-11-20"/><TypBord V="01"/><NbrPce V="{per_bordereau}"/>'
                     f'<MtCumulAnnuel V="1000000.00"/><MtBordHT V="1000.00"/></BlocBordereau>\n')
        parts.extend(PIECE.format(b=b, p=p) for p in range(1000, 1000 + per_bordereau))
        parts.append("  </Bordereau>\n")
    parts.append(" </PES_DepenseAller>\n</n:PES_Aller>\n")
    return "".join(parts).encode("iso-8859-1")


TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="SIG"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
    '<ds:Reference URI="#PESBENCH"><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>'
    '</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>'
)


def make_key(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ordonnateur de test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .sign(key, hashes.SHA256()))
    key_pem, cert_pem, p12 = tmp / "key.pem", tmp / "cert.pem", tmp / "bench.p12"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    p12.write_bytes(pkcs12.serialize_key_and_certificates(b"b", key, cert, None, serialization.NoEncryption()))
    return key_pem, cert_pem, p12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--bordereaux", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("xmlsec1"):
        sys.exit("xmlsec1 (Debian package xmlsec1) is required")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, the CLI inherits it

    from parafe.signing.keys import load_signer
    from parafe.signing.pes import sign_pes

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        key_pem, cert_pem, p12 = make_key(tmp)
        signer = load_signer(p12, None)
        pes = make_pes(int(args.mb * 1024 * 1024), args.bordereaux)
        template = tmp / "template.xml"
        template.write_bytes(pes.replace(b"</n:PES_Aller>", TEMPLATE.encode() + b"</n:PES_Aller>"))
        ours, cli = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            signed = sign_pes(pes, signer, per_bordereau=True)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["xmlsec1", "--sign", "--privkey-pem", f"{key_pem},{cert_pem}", "--id-attr:Id",
                            "PES_Aller", "--output", str(tmp / "cli.xml"), str(template)], check=True,
                           capture_output=True)
            cli.append(time.perf_counter() - start)
        assert signed.count(b"<ds:SignatureValue") == args.bordereaux
        t_ours, t_cli = statistics.median(ours), statistics.median(cli)
    print(f"pes_sign ({len(pes) / 1e6:.1f} MB, {args.bordereaux} bordereaux, 1 core, median of {args.runs}): "
          f"parafe per-bordereau XAdES-EPES {t_ours:.2f} s vs xmlsec1 CLI one whole-file enveloped signature "
          f"{t_cli:.2f} s -> ratio {t_ours / t_cli:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
