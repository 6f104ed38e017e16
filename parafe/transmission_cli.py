"""``parafe admin s2low …`` and ``parafe admin providers check`` (Helios through S²LOW, SMS providers).

- ``s2low set SIREN --url URL --cert FILE [--key FILE] [--ca FILE] [--login LOGIN]``: the subscriber's S²LOW
  account; the certificate is PEM (with ``--key``) or PKCS#12. Secrets come from standard input, one per line,
  in this order: the PKCS#12 / key password (``--cert-password-stdin``), then the login's password
  (``--password-stdin``). ``show [SIREN]`` prints the accounts without their secrets; ``remove SIREN``.
- ``s2low transaction DOCUMENT NUMBER``: names the S²LOW transaction of a document whose send answer was lost.
- ``s2low retours``: fetches the unread PES_Retour now (the worker does it every ``PARAFE_S2LOW_POLL_SECONDS``).
- ``providers check``: tests the SMS provider and every S²LOW account; exit code 1 when one fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Runner = Callable[[Callable[[Any, argparse.Namespace], list[str] | None]], Callable[[argparse.Namespace], int]]


def _file(path: str | None) -> bytes | None:
    from parafe.domain.errors import E, ParafeError

    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ParafeError(E.S2LOW_ACCOUNT_INVALID, reason=f"fichier illisible {path} ({exc.strerror})") from None


def _set(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.helios import s2low

    cert_password = sys.stdin.readline().rstrip("\n") if args.cert_password_stdin else None
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    cert = _file(args.cert)
    assert cert is not None
    credentials = s2low.set_account(ctx, args.siren, url=args.url, cert=cert, key=_file(args.key),
                                    cert_password=cert_password, ca=_file(args.ca), login=args.login,
                                    password=password)
    return [f"Compte S²LOW de l'abonné {args.siren} enregistré.", *s2low.describe(credentials)]


def _show(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.helios import s2low

    return s2low.describe_accounts(ctx, args.siren)


def _remove(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.helios import s2low

    s2low.remove_account(ctx, args.siren)
    return [f"Compte S²LOW de l'abonné {args.siren} supprimé (le compte par défaut s'applique désormais)."]


def _transaction(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.helios import s2low

    return [s2low.attach_transaction(ctx, args.document, args.number)]


def _retours(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.domain.errors import E, ParafeError
    from parafe.services.helios import s2low

    report = s2low.poll_retours(ctx, force=True)
    lines = [f"{report.accounts} compte(s) S²LOW interrogé(s) : {report.fetched} PES_Retour reçu(s), "
             f"{report.marked_read} marqué(s) lu(s) sur S²LOW."]
    if report.errors:
        raise ParafeError(E.S2LOW_UNAVAILABLE, reason=" ; ".join(report.errors))
    return lines


def _check(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.domain.errors import E, ParafeError
    from parafe.services.helios import s2low

    verdicts = s2low.check_providers(ctx)
    for verdict in verdicts:
        print(f"{verdict.provider} : {'OK' if verdict.ok else 'ÉCHEC'} — {verdict.message}")
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise ParafeError(E.S2LOW_UNAVAILABLE if any(v.provider.startswith("S²LOW") for v in failed)
                          else E.BAD_REQUEST,
                          reason=f"{len(failed)} fournisseur(s) en échec : "
                                 + ", ".join(v.provider for v in failed))
    return ["Tous les fournisseurs configurés répondent."]


def add_commands(sub: Any, run: Runner) -> None:
    """Register ``s2low`` and ``providers`` under ``parafe admin``."""
    s = sub.add_parser("s2low", help="Comptes S²LOW (Hélios) / S2LOW accounts").add_subparsers(
        metavar="ACTION", required=True)
    p = s.add_parser("set", help="Définir le compte S²LOW d'un abonné / Set a subscriber's account")
    p.add_argument("siren")
    p.add_argument("--url", required=True, help="adresse de S²LOW (https://…)")
    p.add_argument("--cert", required=True, help="certificat client PEM, ou PKCS#12 (.p12/.pfx)")
    p.add_argument("--key", help="clé privée PEM du certificat (certificat PEM)")
    p.add_argument("--ca", help="AC du serveur S²LOW (PEM) ; sinon les AC du système")
    p.add_argument("--login", help="identifiant S²LOW (certificat partagé par plusieurs utilisateurs)")
    p.add_argument("--cert-password-stdin", action="store_true",
                   help="lire le mot de passe du PKCS#12 / de la clé sur l'entrée standard (1re ligne)")
    p.add_argument("--password-stdin", action="store_true",
                   help="lire le mot de passe S²LOW sur l'entrée standard (ligne suivante)")
    p.set_defaults(func=run(_set))
    p = s.add_parser("show", help="Afficher les comptes (sans secret) / Show accounts")
    p.add_argument("siren", nargs="?")
    p.set_defaults(func=run(_show))
    p = s.add_parser("remove", help="Supprimer le compte d'un abonné / Remove an account")
    p.add_argument("siren")
    p.set_defaults(func=run(_remove))
    p = s.add_parser("transaction", help="Renseigner la transaction d'un envoi à la réponse perdue")
    p.add_argument("document", type=int, help="identifiant du document")
    p.add_argument("number", help="numéro de la transaction S²LOW")
    p.set_defaults(func=run(_transaction))
    p = s.add_parser("retours", help="Récupérer maintenant les PES_Retour / Fetch PES_Retour now")
    p.set_defaults(func=run(_retours))

    v = sub.add_parser("providers", help="Fournisseurs externes (SMS, S²LOW) / Providers").add_subparsers(
        metavar="ACTION", required=True)
    p = v.add_parser("check", help="Tester les fournisseurs configurés / Check the providers")
    p.set_defaults(func=run(_check))
