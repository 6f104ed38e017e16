"""The ``parafe`` command: serve, init, pki, sign, verify (and more as the project grows).

Each area registers its sub-commands with an ``add_commands(subparsers)`` function; every handler returns an
exit code. Messages to operators are in French, with English in ``--help`` where it helps.

Start-up stays cheap (issue 17): this module and the command-group modules import only the standard library
and light parafe modules at the top; each handler imports what it uses (FastAPI, SQLAlchemy, pyHanko, the
settings with pydantic-settings) when it runs. ``tests/cli/test_cli_imports.py`` keeps it so.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from parafe import __version__

if TYPE_CHECKING:
    from parafe.config import Settings

# Command groups: (module, function, the top-level commands it registers). Every one is part of Parafe: one that
# cannot be imported is an error (CommandGroupError), never a command that silently vanishes from ``--help``.
# ``parafe COMMAND …`` imports only the group of COMMAND; ``parafe --help`` (or no or an unknown command), all of
# them. tests/cli/test_cli_imports.py checks that each group registers exactly the commands listed here.
_COMMAND_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("parafe.security.pki_cli", "add_commands", ("pki",)),
    ("parafe.admin_cli", "add_commands", ("admin",)),
    ("parafe.signing.cli", "add_commands", ("sign", "verify")),
    ("parafe.worker_cli", "add_commands", ("worker", "dev")),
    ("parafe.signer.cli", "add_commands", ("signer",)),
    ("parafe.client.cli", "add_commands", ("client",)),  # parafe client … (issue 21)
)


class CommandGroupError(RuntimeError):
    """A command group of ``parafe`` could not be loaded (broken installation or code)."""


def _say(message: str) -> None:
    print(message, flush=True)


def _tidy_home(settings: Settings) -> None:
    """Owner-only permissions on the home (issue 18) and the spool files a killed process left behind."""
    from parafe.security.home_permissions import secure_home
    from parafe.storage.spool import clean_leftovers

    home = settings.resolved_home
    secure_home(home, extra_dirs=(settings.blob_dir, settings.tmp_dir), skip=(settings.blob_dir,))
    for directory in (settings.tmp_dir, settings.blob_dir / "tmp"):
        clean_leftovers(directory)


def initialise(*, verbose: bool = True) -> int:
    """Create the home, migrate the database and, on an empty home, the dev PKI and the demo set."""
    from parafe.config import get_settings
    from parafe.context import AppContext
    from parafe.db.migrate import upgrade
    from parafe.services.demo import ensure_demo

    settings = get_settings()
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    _tidy_home(settings)
    marker = home / ".parafe-initialised"
    first = not marker.exists()
    if verbose:
        _say(f"Parafe : répertoire de données {home}")
        _say("  - base de données : migration du schéma…")
    upgrade(settings.db_url)
    ctx = AppContext.from_settings(settings)
    try:
        if first:
            if verbose:
                _say("  - première initialisation : AC de développement, certificats et jeu de démonstration…")
            readme = ensure_demo(ctx)
            marker.write_text("ok\n")
            if verbose:
                _say(f"  - jeu de démonstration prêt : voir {readme}")
        elif verbose:
            _say("  - déjà initialisé")
    finally:
        ctx.close()
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    return initialise()


def _cmd_serve(args: argparse.Namespace) -> int:
    from parafe.config import get_settings
    from parafe.server.run import serve

    if getattr(args, "sandbox", False):  # issue 21: every process of this server (and its workers) is a sandbox
        from parafe.config import reset_settings

        os.environ["PARAFE_SANDBOX"] = "1"
        reset_settings()
        _say("Parafe : BAC À SABLE — visas et signatures automatiques, réponses marquées X-Parafe-Sandbox: 1")
    initialise()
    settings = get_settings()
    workers = args.workers if args.workers is not None else settings.workers
    if workers <= 0:  # one per core this process may run on (cgroup/affinity aware, unlike os.cpu_count)
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    scheme = "http" if args.no_tls else "https"
    _say(f"Parafe {__version__} : écoute sur {scheme}://{args.host}:{args.port}/ "
         f"({workers} processus ; Ctrl+C pour arrêter)")
    serve(settings, args.host, args.port, tls=not args.no_tls, workers=workers, log_level=args.log_level)
    return 0


def _groups_for(argv: Sequence[str] | None) -> list[tuple[str, str, tuple[str, ...]]]:
    """The command groups to load for ``argv``: the one of its command, else all (help, usage errors)."""
    command = None
    for arg in argv if argv is not None else ():
        if not arg.startswith("-"):
            command = arg
            break
        if arg in ("-h", "--help"):  # ``parafe -h sign``: the top-level help, every command listed
            break
    if command in ("serve", "init"):
        return []
    chosen = [group for group in _COMMAND_GROUPS if command in group[2]]
    return chosen or list(_COMMAND_GROUPS)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``parafe`` parser; with ``argv``, only the command group that ``argv`` asks for is loaded."""
    parser = argparse.ArgumentParser(
        prog="parafe", description="Parafe — parapheur électronique compatible FAST-Parapheur.")
    parser.add_argument("--version", action="version", version=f"parafe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMANDE")

    p_serve = sub.add_parser("serve", help="Démarrer le serveur HTTPS / Start the HTTPS server")
    p_serve.add_argument("--host", default="127.0.0.1", help="adresse d'écoute (défaut 127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=8443, help="port d'écoute (défaut 8443)")
    p_serve.add_argument("--no-tls", action="store_true",
                         help="HTTP en clair, derrière un proxy qui termine TLS (X-SSL-Client-Cert)")
    p_serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p_serve.add_argument("--workers", type=int, default=None,
                         help="nombre de processus serveur (défaut PARAFE_WORKERS, sinon un par cœur) / server "
                              "processes (default PARAFE_WORKERS, else one per core)")
    p_serve.add_argument("--sandbox", action="store_true",
                         help="bac à sable pour intégrateurs : visas et signatures automatiques (docs/integrators.md)"
                              " / sandbox for integrators")
    p_serve.set_defaults(func=_cmd_serve)

    p_init = sub.add_parser("init", help="Initialiser sans démarrer / Initialise without serving")
    p_init.set_defaults(func=_cmd_init)

    for module_name, function, _commands in _groups_for(argv):
        try:
            register = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as exc:
            raise CommandGroupError(f"le groupe de commandes {module_name} ne peut pas être chargé "
                                    f"({type(exc).__name__} : {exc})") from exc
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from parafe.security.home_permissions import restrict_umask

    restrict_umask()  # whatever parafe creates is the owner's only (files 0600, folders 0700)
    try:
        parser = build_parser(sys.argv[1:] if argv is None else argv)
    except CommandGroupError as exc:
        print(f"parafe : installation incomplète ou défectueuse : {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
