"""``parafe pki``: command line of the development PKI (:mod:`parafe.security.pki`).

``parafe/cli.py`` calls :func:`add_commands` with its top-level sub-parsers; every handler takes the parsed
arguments and returns an exit code; :mod:`parafe.security.pki` (and cryptography) load when a handler runs.
Messages for the operator are in French; nothing secret is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

Handler = Callable[[argparse.Namespace], int]


def _err(message: str) -> int:
    print(f"parafe pki : erreur : {message}", file=sys.stderr)
    return 1


def _guard(handler: Handler) -> Handler:
    """Turn the expected failures into a French message and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        from parafe.security import pki

        try:
            return handler(args)
        except FileExistsError as exc:
            what = f"{exc.filename} existe déjà" if exc.filename else str(exc.args[0] if exc.args else exc)
            return _err(f"{what} ; utilisez --force pour l'écraser.")
        except pki.PkiError as exc:
            return _err(str(exc))
        except FileNotFoundError as exc:
            return _err(f"fichier introuvable : {exc.filename or exc}")
        except PermissionError as exc:
            return _err(f"permission refusée : {exc.filename or exc}")
        except ValueError as exc:
            return _err(f"valeur invalide : {exc}")
        except OSError as exc:
            return _err(f"erreur d'entrée/sortie : {exc}")

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _prefix(value: str) -> Path:
    path = Path(value).expanduser()
    return path.with_suffix("") if path.suffix in (".pem", ".key", ".p12", ".crt") else path


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    if force:
        return
    for p in paths:
        if p.exists():
            raise FileExistsError(f"{p} existe déjà")


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"nombre entier attendu : {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"nombre strictement positif attendu : {value!r}")
    return n


def _user_spec(value: str) -> tuple[str, str]:
    email, sep, name = value.partition("=")
    if not sep or "@" not in email or not name.strip():
        raise argparse.ArgumentTypeError(f"format attendu EMAIL=« Nom complet » : {value!r}")
    return email.strip(), name.strip()


def _describe(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    from parafe.security import pki
    from parafe.security.certcheck import certificate_email

    names = {NameOID.EMAIL_ADDRESS: "emailAddress"}
    lines = [
        f"  sujet        : {cert.subject.rfc4514_string(names)}",
        f"  émetteur     : {cert.issuer.rfc4514_string(names)}",
        f"  numéro série : {cert.serial_number} (0x{cert.serial_number:x})",
        f"  validité     : {cert.not_valid_before_utc:%Y-%m-%d %H:%M} → "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        f"  empreinte    : sha256 {pki.fingerprint_sha256(cert)}",
    ]
    email = certificate_email(cert)
    if email:
        lines.insert(1, f"  e-mail       : {email}")
    return "\n".join(lines)


def _read_password(value: str | None) -> bytes | None:
    if value is None:
        return None
    if value == "-":
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ValueError("le mot de passe PKCS#12 est vide")
    return value.encode("utf-8")


# --------------------------------------------------------------------------------------------- handlers


@_guard
def cmd_init(args: argparse.Namespace) -> int:
    from parafe.security import pki_dev

    if args.home is not None:
        home = Path(args.home)
    else:
        from parafe.config import get_settings

        home = get_settings().resolved_home
    users = args.users or list(pki_dev.DEFAULT_DEMO_USERS)
    dev = pki_dev.init_dev_pki(home, users)
    if dev.created:
        print(f"PKI de développement mise à jour dans {dev.home} :")
        for p in dev.created:
            print(f"  {p}")
    else:
        print(f"PKI de développement déjà en place dans {dev.home} (rien à faire).")
    first = next(iter(dev.users.values()), None)
    if first is not None:
        print("Essai avec curl :")
        print(f"  curl --cert {first.cert} --key {first.key} --cacert {dev.ca_cert} https://localhost:8443/")
        print(f"Fichiers PKCS#12 (mot de passe « {pki_dev.DEV_P12_PASSWORD.decode()} ») dans {dev.demo_dir}.")
    return 0


@_guard
def cmd_ca(args: argparse.Namespace) -> int:
    from parafe.security import pki

    out = Path(args.out).expanduser()
    _refuse_existing([out / pki.CA_CERT, out / pki.CA_KEY], args.force)
    ca = pki.init_ca_dir(out, args.cn, days=args.days, overwrite=args.force)
    print(f"AC créée dans {out} ({pki.CA_CERT}, {pki.CA_KEY}, {pki.CRL_FILE}, {pki.REVOKED_FILE}) :")
    print(_describe(ca.cert))
    return 0


@_guard
def cmd_server(args: argparse.Namespace) -> int:
    from parafe.security import pki

    ca = pki.load_ca(Path(args.ca).expanduser())
    prefix = _prefix(args.out)
    cert_path, key_path = prefix.with_name(prefix.name + ".pem"), prefix.with_name(prefix.name + ".key")
    _refuse_existing([cert_path, key_path], args.force)
    ck = pki.issue_server_cert(ca, args.hosts, days=args.days)
    pki.write_pem(ck, cert_path, key_path, overwrite=args.force)
    print(f"Certificat serveur écrit : {cert_path} (clé : {key_path})")
    print(_describe(ck.cert))
    return 0


@_guard
def cmd_user(args: argparse.Namespace) -> int:
    from parafe.security import pki

    ca = pki.load_ca(Path(args.ca).expanduser())
    prefix = _prefix(args.out)
    cert_path, key_path = prefix.with_name(prefix.name + ".pem"), prefix.with_name(prefix.name + ".key")
    p12_path = prefix.with_name(prefix.name + ".p12")
    password = _read_password(args.p12_password)
    _refuse_existing([cert_path, key_path] + ([p12_path] if password else []), args.force)
    not_before = not_after = None
    if args.expired:
        now = dt.datetime.now(dt.UTC)
        not_after = now - dt.timedelta(days=1)
        not_before = not_after - dt.timedelta(days=args.days)
    ck = pki.issue_user_cert(
        ca,
        args.email,
        args.name,
        not_before=not_before,
        not_after=not_after,
        days=args.days,
        crl_url=args.crl_url,
    )
    pki.write_pem(ck, cert_path, key_path, overwrite=args.force)
    print(f"Certificat personnel écrit : {cert_path} (clé : {key_path})")
    if password:
        pki.write_p12(ck, p12_path, password, ca, legacy=args.p12_legacy, overwrite=args.force)
        print(f"PKCS#12 écrit : {p12_path}")
    print(_describe(ck.cert))
    return 0


@_guard
def cmd_revoke(args: argparse.Namespace) -> int:
    from parafe.security import pki

    ca_dir = Path(args.ca).expanduser()
    ca = pki.load_ca(ca_dir)
    if args.cert:
        cert = pki.load_cert(Path(args.cert).expanduser())
        try:
            cert.verify_directly_issued_by(ca.cert)
        except Exception:  # any failure means "not this CA"
            raise pki.PkiError(f"{args.cert} n'a pas été émis par l'AC de {ca_dir}.") from None
        serial = cert.serial_number
    else:
        serial = pki.parse_serial(args.serial)
    crl = pki.revoke(ca_dir, [serial], ca=ca, next_update_days=args.crl_days)
    print(f"Numéro de série {serial} (0x{serial:x}) révoqué ; LCR réémise : {crl}")
    return 0


@_guard
def cmd_crl(args: argparse.Namespace) -> int:
    from parafe.security import pki

    ca_dir = Path(args.ca).expanduser()
    crl = pki.write_crl(ca_dir, next_update_days=args.days)
    count = len(pki.read_revoked(ca_dir / pki.REVOKED_FILE))
    print(f"LCR réémise : {crl} ({count} certificat(s) révoqué(s), valable {args.days} jours)")
    return 0


@_guard
def cmd_unknown_ca(args: argparse.Namespace) -> int:
    from parafe.security import pki, pki_dev

    prefix = _prefix(args.out)
    cert_path, key_path = prefix.with_name(prefix.name + ".pem"), prefix.with_name(prefix.name + ".key")
    root_path = prefix.with_name(prefix.name + "-root.pem")
    _refuse_existing([cert_path, key_path, root_path], args.force)
    other = pki.create_ca(args.cn)
    ck = pki.issue_user_cert(other, args.email or pki_dev.UNKNOWN_CA_EMAIL, args.name)
    pki.write_pem(ck, cert_path, key_path, overwrite=args.force)
    root_path.write_bytes(other.cert_pem())
    print(f"Certificat d'une AC non référencée écrit : {cert_path} (clé : {key_path}, AC : {root_path})")
    print(_describe(ck.cert))
    return 0


@_guard
def cmd_show(args: argparse.Namespace) -> int:
    from parafe.security import pki

    cert = pki.load_cert(Path(args.file).expanduser())
    from cryptography.x509.oid import NameOID

    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    label = str(cn[0].value) if cn else "(sans CN)"
    print(f"{args.file} : {label}")
    print(_describe(cert))
    return 0


# --------------------------------------------------------------------------------------------- parser


def add_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``pki`` and its sub-commands to the top-level ``parafe`` sub-parsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    days_help = "durée de validité en jours / validity (days)"
    crl_days_help = "validité de la LCR en jours / CRL validity (days)"
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "pki",
        help="PKI de développement (AC, certificats, LCR) / Development PKI (CA, certificates, CRL)",
        description="PKI de développement de Parafe / Parafe development PKI. Voir / see docs/pki.md.",
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="pki_command", metavar="COMMANDE", required=True)

    def add(name: str, help_: str, func: Handler) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_, formatter_class=fmt)
        p.set_defaults(func=func)
        return p

    def force(p: argparse.ArgumentParser) -> None:
        p.add_argument("--force", action="store_true",
                       help="écraser les fichiers existants / overwrite existing files")

    def ca_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ca", required=True, metavar="DIR",
                       help="répertoire de l'AC (ca.pem, ca.key) / CA directory")

    p = add("init", "Créer la PKI de développement dans $PARAFE_HOME / Create the dev PKI in $PARAFE_HOME",
            cmd_init)
    p.add_argument("--home", metavar="DIR",
                   help="répertoire de données (défaut : PARAFE_HOME) / data directory "
                        "(default: PARAFE_HOME)")
    p.add_argument("--user", dest="users", action="append", type=_user_spec, metavar="EMAIL=NOM",
                   help="utilisateur de démonstration (répétable) / demo user (repeatable)")

    p = add("ca", "Créer une AC / Create a CA", cmd_ca)
    p.add_argument("--out", required=True, metavar="DIR", help="répertoire de sortie / output directory")
    p.add_argument("--cn", required=True, metavar="NOM", help="nom commun de l'AC / CA common name")
    p.add_argument("--days", type=_positive, default=3650, help=days_help)
    force(p)

    p = add("server", "Émettre un certificat serveur TLS / Issue a TLS server certificate", cmd_server)
    ca_dir(p)
    p.add_argument("--host", dest="hosts", required=True, nargs="+", action="extend", metavar="NOM",
                   help="nom DNS ou adresse IP (plusieurs possibles) / DNS name or IP address (several)")
    p.add_argument("--out", required=True, metavar="PREFIXE",
                   help="préfixe des fichiers .pem/.key / prefix of the .pem/.key files")
    p.add_argument("--days", type=_positive, default=825, help=days_help)
    force(p)

    p = add("user", "Émettre un certificat personnel / Issue a personal certificate", cmd_user)
    ca_dir(p)
    p.add_argument("--email", required=True, help="adresse e-mail / e-mail address")
    p.add_argument("--name", required=True, metavar="NOM", help="nom complet (CN) / full name (CN)")
    p.add_argument("--out", required=True, metavar="PREFIXE",
                   help="préfixe des fichiers .pem/.key/.p12 / prefix of the .pem/.key/.p12 files")
    p.add_argument("--p12-password", metavar="MDP",
                   help="écrire aussi un PKCS#12 protégé par ce mot de passe (« - » : lu sur l'entrée "
                        "standard) / also write a PKCS#12 with this password ('-': read from stdin)")
    p.add_argument("--p12-legacy", action="store_true",
                   help="PKCS#12 en SHA-1/3DES pour les anciens logiciels / "
                        "SHA-1/3DES PKCS#12 for old software")
    p.add_argument("--days", type=_positive, default=825, help=days_help)
    p.add_argument("--expired", action="store_true",
                   help="certificat déjà expiré (pour les tests) / already expired certificate (tests)")
    p.add_argument("--crl-url", metavar="URL",
                   help="point de distribution de la LCR / CRL distribution point")
    force(p)

    p = add("revoke",
            "Révoquer un certificat et réémettre la LCR / Revoke a certificate and re-issue the CRL",
            cmd_revoke)
    ca_dir(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", metavar="N",
                       help="numéro de série (décimal ou 0x…) / serial (decimal or 0x…)")
    which.add_argument("--cert", metavar="FICHIER",
                       help="certificat PEM à révoquer / PEM certificate to revoke")
    p.add_argument("--crl-days", type=_positive, default=30,
                   help=crl_days_help)

    p = add("crl", "Réémettre la LCR / Re-issue the CRL", cmd_crl)
    ca_dir(p)
    p.add_argument("--days", type=_positive, default=30, help=crl_days_help)

    p = add("unknown-ca",
            "Émettre un certificat d'une AC non référencée (tests) / "
            "Issue a certificate from an unknown CA (tests)",
            cmd_unknown_ca)
    p.add_argument("--out", required=True, metavar="PREFIXE",
                   help="préfixe : .pem, .key et -root.pem / prefix: .pem, .key and -root.pem")
    p.add_argument("--email", default=None,  # None: pki_dev.UNKNOWN_CA_EMAIL
                   help="adresse e-mail / e-mail address")
    p.add_argument("--name", default="AC Inconnue", metavar="NOM", help="nom complet / full name")
    p.add_argument("--cn", default="Parafe AC non référencée", metavar="NOM",
                   help="nom de l'AC inconnue / unknown CA name")
    force(p)

    p = add("show", "Afficher un certificat (empreinte, e-mail, validité) / Show a certificate", cmd_show)
    p.add_argument("file", metavar="FICHIER", help="certificat PEM ou DER / PEM or DER certificate")

    return parser
