"""``parafe sign`` and ``parafe verify``: the signing engine on the command line, for operators and scripts.

``add_commands(subparsers)`` registers both commands on the top-level ``parafe`` parser (``parafe/cli.py``);
``python -m parafe.signing.cli`` runs them standalone.

    parafe sign pdf IN.pdf OUT.pdf --p12 cle.p12 [--password-file F] [--level B-B|B-T|B-LT|B-LTA]
                [--tsa-url URL] [--stamp "x,y[,page]"] [--quality Q] [--line TEXTE]... [--image logo.png]
    parafe sign pes IN.xml OUT.xml --p12 cle.p12 [--per-bordereau] [--role Maire] [--city C] [--postal-code P]
    parafe sign xades IN.odt OUT.xades.xml --p12 cle.p12 [--zip OUT.zip]
    parafe verify FICHIER [--json] [--trust ca.pem]... [--crl ca.crl]... [--document DOC]

Keys: ``--p12`` with ``--password``, ``--password-file`` or ``$PARAFE_SIGN_PASSWORD`` (else asked on a
terminal), or a PKCS#11 token: ``--pkcs11-lib`` ``--token`` ``--pin`` ``--key-label``. Trust for ``verify`` and
B-LT: ``--trust`` (repeatable; default ``$PARAFE_TRUST_ROOTS``, paths separated by ``:``).
Exit codes: 0 success / valid signature, 1 invalid signature or signing refused, 2 bad usage, unreadable input
or key.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import logging
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parafe.signing.errors import KeyLoadError, SigningError, VerificationInputError

__all__ = ["add_commands", "main"]


def add_commands(subparsers: Any) -> None:
    """Register ``sign`` and ``verify`` on the ``parafe`` command's sub-parsers."""
    p_sign = subparsers.add_parser(
        "sign", help="Signer un document / Sign a document (PAdES, PES XAdES-EPES, XAdES détaché)",
        description="Signer un document avec une clé PKCS#12 ou PKCS#11 / Sign a document.")
    kinds = p_sign.add_subparsers(dest="kind", metavar="TYPE", required=True)
    for kind, help_text in (("pdf", "PDF → PAdES"), ("pes", "PES_Aller → XAdES-EPES enveloppé"),
                            ("xades", "document bureautique → XAdES détaché")):
        p = kinds.add_parser(kind, help=help_text)
        p.add_argument("input", type=Path, metavar="ENTRÉE")
        p.add_argument("output", type=Path, metavar="SORTIE")
        _key_options(p)
        if kind == "pdf":
            p.add_argument("--level", default="B-B", help="B-B (défaut), B-T, B-LT ou B-LTA")
            p.add_argument("--tsa-url", help="autorité d'horodatage RFC 3161 (B-T et plus)")
            p.add_argument("--stamp", metavar="X,Y[,PAGE]",
                           help="pictogramme visible : coin bas-gauche en cm, page (1 = première, -1 = dernière)")
            p.add_argument("--stamp-json", metavar="JSON", help='pictogramme en points : {"x":..,"y":..,"page":..}')
            p.add_argument("--name", help="nom affiché dans le pictogramme (défaut : CN du certificat)")
            p.add_argument("--quality", help="qualité du signataire (ex. « Maire »)")
            p.add_argument("--line", action="append", default=[], help="ligne de métadonnée du pictogramme")
            p.add_argument("--image", type=Path, help="image PNG/JPEG du pictogramme")
            p.add_argument("--reason", help="motif de la signature")
            p.add_argument("--location", help="lieu de la signature")
            _trust_options(p)
        elif kind == "pes":
            p.add_argument("--per-bordereau", action="store_true",
                           help="une signature par bordereau (défaut : signature globale)")
            p.add_argument("--role", default="Ordonnateur", help="rôle déclaré (ClaimedRole), défaut Ordonnateur")
            p.add_argument("--city", help="ville (SignatureProductionPlace)")
            p.add_argument("--postal-code", help="code postal (SignatureProductionPlace)")
            p.add_argument("--info-dematerialisee", choices=["set", "check", "keep"], default="set",
                           help="InfoDematerialisee : mettre à 1 (défaut), vérifier, ou laisser")
        else:
            p.add_argument("--zip", type=Path, help="écrire aussi l'archive ZIP document + signature")
            p.add_argument("--name", help="nom du document dans la signature (défaut : nom du fichier d'entrée)")
        p.set_defaults(func=cmd_sign)

    p_verify = subparsers.add_parser(
        "verify", help="Vérifier les signatures d'un fichier / Verify a file's signatures",
        description="Vérifier un PDF signé, un PES signé, ou une signature XAdES détachée (fichier .xml avec "
                    "--document, ou archive ZIP document + signature).")
    p_verify.add_argument("file", type=Path, metavar="FICHIER")
    p_verify.add_argument("--json", action="store_true", help="rapport JSON / machine-readable report")
    p_verify.add_argument("--document", type=Path, help="document signé par une signature XAdES détachée")
    _trust_options(p_verify)
    p_verify.set_defaults(func=cmd_verify)


def _key_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clé / key")
    g.add_argument("--p12", type=Path, help="fichier PKCS#12 du signataire")
    g.add_argument("--password", help="mot de passe du PKCS#12 (préférer --password-file)")
    g.add_argument("--password-file", type=Path, help="fichier contenant le mot de passe")
    g.add_argument("--pkcs11-lib", help="module PKCS#11 (ex. /usr/lib/softhsm/libsofthsm2.so)")
    g.add_argument("--token", help="libellé du jeton PKCS#11")
    g.add_argument("--pin", help="code PIN du jeton (défaut : $PARAFE_PKCS11_PIN)")
    g.add_argument("--key-label", help="libellé de la clé sur le jeton")


def _trust_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust", action="append", default=[], type=Path, metavar="CA",
                   help="certificat(s) racine de confiance, PEM ou DER (répétable)")
    p.add_argument("--crl", action="append", default=[], type=Path, help="liste de révocation (répétable)")
    p.add_argument("--fetch", action="store_true", help="autoriser le téléchargement des CRL/OCSP")


def _err(message: str) -> None:
    print(f"parafe : {message}", file=sys.stderr)


def _trust_roots(args: argparse.Namespace) -> list[Path]:
    roots = list(args.trust)
    if not roots and os.environ.get("PARAFE_TRUST_ROOTS"):
        roots = [Path(p) for p in os.environ["PARAFE_TRUST_ROOTS"].split(os.pathsep) if p]
    return roots


def _load_key(args: argparse.Namespace) -> Any:
    from parafe.signing.keys import load_pkcs11_signer, load_signer

    if args.pkcs11_lib:
        pin = args.pin or os.environ.get("PARAFE_PKCS11_PIN")
        if not (args.token and args.key_label and pin):
            raise _Usage("--pkcs11-lib exige --token, --key-label et --pin (ou $PARAFE_PKCS11_PIN).")
        return load_pkcs11_signer(args.pkcs11_lib, args.token, pin, args.key_label)
    if not args.p12:
        raise _Usage("indiquez une clé : --p12 FICHIER ou --pkcs11-lib …")
    password: str | None = args.password
    if password is None and args.password_file:
        password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    if password is None:
        password = os.environ.get("PARAFE_SIGN_PASSWORD")
    if password is None and sys.stdin.isatty():
        password = getpass.getpass("Mot de passe du PKCS#12 : ")
    return load_signer(args.p12, password)


class _Usage(Exception):
    """A usage error: exit code 2."""


def cmd_sign(args: argparse.Namespace) -> int:
    """``parafe sign pdf|pes|xades IN OUT``."""
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        _err(f"lecture impossible : {exc}")
        return 2
    try:
        signer = _load_key(args)
        if args.kind == "pdf":
            out = _sign_pdf(args, data, signer)
            args.output.write_bytes(out)
            print(f"Document signé : {args.output} (PAdES {args.level.upper()}, {signer.common_name})")
        elif args.kind == "pes":
            from parafe.signing.pes import sign_pes

            out = sign_pes(data, signer, per_bordereau=args.per_bordereau, role=args.role, city=args.city,
                           postal_code=args.postal_code, info_dematerialisee=args.info_dematerialisee)
            args.output.write_bytes(out)
            mode = "par bordereau" if args.per_bordereau else "globale"
            print(f"PES signé : {args.output} (XAdES-EPES, signature {mode}, {signer.common_name})")
        else:
            from parafe.signing.xades import sign_xades_detached

            sig_xml, zip_bytes = sign_xades_detached(data, args.name or args.input.name, signer)
            args.output.write_bytes(sig_xml)
            if args.zip:
                args.zip.write_bytes(zip_bytes)
            print(f"Signature détachée : {args.output}" + (f" ; archive : {args.zip}" if args.zip else ""))
    except (_Usage, KeyLoadError) as exc:
        _err(str(exc))
        return 2
    except (SigningError, ValueError) as exc:
        _err(str(exc))
        return 1
    except OSError as exc:
        _err(f"écriture impossible : {exc}")
        return 2
    return 0


def _sign_pdf(args: argparse.Namespace, data: bytes, signer: Any) -> bytes:
    from parafe.signing.pades import sign_pdf
    from parafe.signing.stamp import StampSpec
    from parafe.signing.trust import make_validation_context

    stamp = None
    text: dict[str, Any] = {"signer_name": args.name, "quality": args.quality, "extra_lines": tuple(args.line)}
    if args.image:
        text["image"] = args.image.read_bytes()
    if args.stamp:
        stamp = StampSpec.parse_pictogramme(args.stamp, **text)
    elif args.stamp_json:
        stamp = StampSpec.from_json_pictogram(args.stamp_json, **text)
    vc = None
    if args.level.upper().replace("PADES-", "") in ("B-LT", "B-LTA"):
        vc = make_validation_context(_trust_roots(args), crls=args.crl, allow_fetching=args.fetch)
    return sign_pdf(data, signer, level=args.level, stamp=stamp, reason=args.reason, location=args.location,
                    tsa_url=args.tsa_url, validation_context=vc)


def cmd_verify(args: argparse.Namespace) -> int:
    """``parafe verify FILE``: exit 0 when every signature is valid, 1 otherwise, 2 on unreadable input."""
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    try:
        data = args.file.read_bytes()
        report = _verify(args, data)
    except (OSError, VerificationInputError, _Usage) as exc:
        _err(str(exc))
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        print(report.to_text())
    return 0 if report.valid else 1


def _verify(args: argparse.Namespace, data: bytes) -> Any:
    from parafe.signing.pes_verify import verify_pes
    from parafe.signing.verify import verify_pdf
    from parafe.signing.xades import verify_xades_detached

    roots = _trust_roots(args)
    crls = list(args.crl)
    if data.startswith(b"%PDF") or data[:1024].find(b"%PDF-") >= 0:
        return verify_pdf(data, roots, crls=crls, allow_fetching=args.fetch)
    if data.startswith(b"PK\x03\x04"):
        sig_xml, document = _from_zip(data)
        return verify_xades_detached(sig_xml, document, roots, crls=crls, allow_fetching=args.fetch)
    head = data[:4096]
    if b"PES_Aller" in head:
        return verify_pes(data, roots, crls=crls, allow_fetching=args.fetch, huge_tree=False)
    if b"Signature" in head:
        if not args.document:
            raise _Usage("signature XAdES détachée : indiquez le document signé avec --document.")
        return verify_xades_detached(data, args.document.read_bytes(), roots, crls=crls,
                                     allow_fetching=args.fetch)
    raise VerificationInputError("Format non reconnu (PDF, PES_Aller, XAdES détaché ou ZIP attendu).")


def _from_zip(data: bytes) -> tuple[bytes, bytes]:
    """The signature (``*.xades.xml``) and the one other member of a ZIP made by ``sign xades --zip``."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if len(infos) != 2 or any(i.file_size > 200 * 1024 * 1024 for i in infos):
                raise VerificationInputError("L'archive doit contenir exactement un document et sa signature.")
            sigs = [i for i in infos if i.filename.endswith(".xades.xml")]
            if len(sigs) != 1:
                raise VerificationInputError("Signature « .xades.xml » introuvable dans l'archive.")
            doc = next(i for i in infos if i is not sigs[0])
            return zf.read(sigs[0]), zf.read(doc)
    except zipfile.BadZipFile as exc:
        raise VerificationInputError(f"Archive ZIP illisible : {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m parafe.signing.cli``)."""
    parser = argparse.ArgumentParser(prog="parafe", description="Signature et vérification / Sign and verify.")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMANDE", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
