"""PAdES B-B signatures per second on ONE core for a 5-page PDF.

Prints one line with, measured in the same run and on the same key (RSA-2048):
- our bulk path (``parafe.signing.bulk.BulkPdfSigner``: fast incremental writer, CMS from precomputed parts);
- pyHanko's stock path (``SimpleSigner.load_pkcs12`` + ``signers.sign_pdf``, PAdES subfilter);
- the raw RSA-2048 signing rate of the same key with ``cryptography`` (the physical limit);
and the ratios (target: bulk >= 20x stock). ``--profile`` prints where the bulk path spends its time
(cProfile, to stderr). Each figure is the median of ``--runs`` runs.

Usage: ``.venv/bin/python bench/pades_bulk.py [--seconds 2] [--runs 3] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import pdf_of_pages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


def make_pki(tmp: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = rsa.generate_private_key(65537, 2048)
    ca = (x509.CertificateBuilder().subject_name(name("Bench CA")).issuer_name(name("Bench CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(65537, 2048)
    cert = (x509.CertificateBuilder().subject_name(name("Serveur de signature")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    p12 = tmp / "bench.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"bench", key, cert, [ca], serialization.BestAvailableEncryption(b"bench")))
    return p12, key



def rate(fn: Callable[[], object], seconds: float, min_iter: int = 3) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    fn()  # warm-up
    n = 0
    start = time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= min_iter:
            return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    from parafe.signing.bulk import BulkPdfSigner
    from parafe.signing.keys import load_signer

    with tempfile.TemporaryDirectory() as tmpdir:
        p12, key = make_pki(Path(tmpdir))
        pdf = pdf_of_pages(5)
        ours = BulkPdfSigner(load_signer(p12, "bench"))
        stock_signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=b"bench")
        meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=fields.SigSeedSubFilter.PADES)

        def bulk_one() -> object:
            return ours.sign_one(pdf)

        def stock_one() -> object:
            return signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=stock_signer)

        def rsa_one() -> object:
            return key.sign(b"x" * 200, padding.PKCS1v15(), hashes.SHA256())

        bulk_rates, stock_rates, rsa_rates = [], [], []
        for _ in range(args.runs):
            bulk_rates.append(rate(bulk_one, args.seconds))
            stock_rates.append(rate(stock_one, args.seconds))
            rsa_rates.append(rate(rsa_one, args.seconds / 2))
        assert ours.fallback_count == 0, "the bulk path fell back to pyHanko"
        bulk, stock, limit = (statistics.median(r) for r in (bulk_rates, stock_rates, rsa_rates))
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(300):
                bulk_one()
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    print(f"pades_bulk (5-page PDF, B-B, RSA-2048, 1 core, median of {args.runs}): "
          f"parafe bulk {bulk:.0f}/s, pyHanko stock SimpleSigner {stock:.1f}/s -> {bulk / stock:.0f}x stock "
          f"(target >= 20x); RSA-2048 sign limit {limit:.0f}/s -> bulk at {100 * bulk / limit:.0f}% of the limit")


if __name__ == "__main__":
    main()
