"""Command line of the signing helper: ``parafe-signer serve`` / ``parafe signer serve`` (and ``info``).

The key is loaded once at start: a PKCS#12 file (password from ``--password-file``, the environment variable
named by ``--password-env``, or typed at the prompt) or a PKCS#11 token such as a smart card (PIN the same
way). The helper then listens on 127.0.0.1 for the portal page of the ``--origin`` sites.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from parafe.signing.errors import KeyLoadError

if TYPE_CHECKING:
    from parafe.signing.keys import ServerSigner

DEFAULT_PORT = 36123


def _secret(file: str | None, env: str | None, prompt: str) -> str:
    if file:
        return Path(file).read_text(encoding="utf-8").strip()
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SystemExit(f"parafe-signer : la variable d'environnement {env} n'est pas définie")
        return value
    return getpass.getpass(prompt)


def load_key(args: argparse.Namespace) -> ServerSigner:
    """The signer's key from the command-line options."""
    from parafe.signing.keys import load_pkcs11_signer, load_signer

    if args.p12:
        password = _secret(args.password_file, args.password_env, "Mot de passe du fichier PKCS#12 : ")
        return load_signer(args.p12, password)
    if args.pkcs11_lib:
        if not args.token_label or not args.key_label:
            raise SystemExit("parafe-signer : --token-label et --key-label sont obligatoires avec --pkcs11-lib")
        pin = _secret(args.pin_file, args.pin_env, f"Code PIN du jeton « {args.token_label} » : ")
        return load_pkcs11_signer(args.pkcs11_lib, args.token_label, pin, args.key_label, cert_label=args.cert_label)
    raise SystemExit("parafe-signer : indiquez --p12 FICHIER ou --pkcs11-lib BIBLIOTHEQUE")


def _key_options(parser: argparse.ArgumentParser) -> None:
    key = parser.add_argument_group("clé du signataire (PKCS#12 ou PKCS#11)")
    key.add_argument("--p12", help="fichier PKCS#12 (.p12, .pfx) du signataire")
    key.add_argument("--password-file", help="fichier contenant le mot de passe du PKCS#12")
    key.add_argument("--password-env", help="variable d'environnement contenant le mot de passe du PKCS#12")
    key.add_argument("--pkcs11-lib", help="module PKCS#11 de la carte ou du jeton (ex. opensc-pkcs11.so)")
    key.add_argument("--token-label", help="libellé du jeton PKCS#11")
    key.add_argument("--key-label", help="libellé de la clé privée sur le jeton")
    key.add_argument("--cert-label", help="libellé du certificat (par défaut celui de la clé)")
    key.add_argument("--pin-file", help="fichier contenant le code PIN")
    key.add_argument("--pin-env", help="variable d'environnement contenant le code PIN")


def _cmd_serve(args: argparse.Namespace) -> int:
    from parafe.signer.server import Helper, make_server

    if not args.origin:
        raise SystemExit("parafe-signer : indiquez --origin https://votre-parapheur (le site autorisé)")
    try:
        signer = load_key(args)
    except KeyLoadError as exc:
        print(f"parafe-signer : {exc}", file=sys.stderr)
        return 1
    helper = Helper(signer, set(args.origin), args.port, log=lambda text: print(text, flush=True))
    server = make_server(helper)
    print(f"Assistant de signature Parafe : signataire {signer.common_name}, à l'écoute sur "
          f"http://127.0.0.1:{helper.port}/ pour {', '.join(sorted(helper.origins))} (Ctrl+C pour arrêter)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        signer = load_key(args)
    except KeyLoadError as exc:
        print(f"parafe-signer : {exc}", file=sys.stderr)
        return 1
    cert = signer.certificate
    print(f"Signataire : {signer.common_name}")
    print(f"Sujet      : {cert.subject.rfc4514_string()}")
    print(f"Émetteur   : {cert.issuer.rfc4514_string()}")
    print(f"Validité   : jusqu'au {cert.not_valid_after_utc:%d/%m/%Y}")
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from parafe.signer import desktop

    for line in desktop.install(args):
        print(line)
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from parafe.signer import desktop

    for line in desktop.uninstall():
        print(line)
    return 0


def _cmd_open_url(args: argparse.Namespace) -> int:
    from parafe.signer import desktop

    config = desktop.load_config()
    return desktop.serve_installed([desktop.parse_url(args.url, list(config["origins"]))], _cmd_serve, DEFAULT_PORT)


def _cmd_start(args: argparse.Namespace) -> int:
    from parafe.signer import desktop

    return desktop.serve_installed(list(desktop.load_config()["origins"]), _cmd_serve, DEFAULT_PORT)


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p_serve = sub.add_parser("serve", help="Démarrer l'assistant de signature (127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port local (défaut {DEFAULT_PORT})")
    p_serve.add_argument("--origin", action="append", default=[],
                         help="adresse du parapheur autorisé (https://…), répétable")
    _key_options(p_serve)
    p_serve.set_defaults(func=_cmd_serve)
    p_info = sub.add_parser("info", help="Afficher le certificat de la clé (vérifie mot de passe / PIN)")
    _key_options(p_info)
    p_info.set_defaults(func=_cmd_info)
    p_install = sub.add_parser("install", help="Démarrage automatique et liens parafe-signer:// (cet utilisateur)")
    p_install.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port local (défaut {DEFAULT_PORT})")
    p_install.add_argument("--origin", action="append", default=[],
                           help="adresse du parapheur autorisé (https://…), répétable")
    _key_options(p_install)
    p_install.set_defaults(func=_cmd_install)
    sub.add_parser("uninstall", help="Retirer ce qu'a installé « install »").set_defaults(func=_cmd_uninstall)
    p_url = sub.add_parser("open-url", help="Ouvrir un lien parafe-signer://start?origin=… (gestionnaire de liens)")
    p_url.add_argument("url")
    p_url.set_defaults(func=_cmd_open_url)
    sub.add_parser("start", help="Démarrer avec la configuration installée (session)").set_defaults(func=_cmd_start)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``parafe signer serve|info`` (registered by ``parafe.cli``)."""
    parser = subparsers.add_parser("signer", help="Assistant de signature local / Local signing helper")
    _add(parser.add_subparsers(dest="signer_command", metavar="COMMANDE", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    """``parafe-signer`` console script."""
    parser = argparse.ArgumentParser(
        prog="parafe-signer", description="Assistant de signature Parafe : signe avec votre clé, sur votre poste.")
    _add(parser.add_subparsers(dest="command", metavar="COMMANDE", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
