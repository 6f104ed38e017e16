"""``parafe admin …``: operators' commands for subscribers, users, certificates, groups, circuits, metadata.

Every command prints what it changed, in French, and exits 1 with the catalogue's French message on bad input.
Passwords are read from standard input (``--password-stdin``), never from the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any


def _ctx() -> Any:
    from parafe.cli import initialise
    from parafe.config import get_settings
    from parafe.context import AppContext

    initialise(verbose=False)
    return AppContext.from_settings(get_settings())


def _run(action: Callable[[Any, argparse.Namespace], list[str] | None]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from parafe.domain.errors import ParafeError

        ctx = _ctx()
        try:
            for line in action(ctx, args) or []:
                print(line)
            return 0
        except ParafeError as err:
            print(f"Erreur : {err.message}", file=sys.stderr)
            return 1
        finally:
            ctx.close()
    return handler


def _password(args: argparse.Namespace) -> str | None:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    return None


def _user_spec(args: argparse.Namespace) -> Any:
    from parafe.services.admin.platform import UserSpec

    return UserSpec(email=args.email, firstname=args.firstname or "", lastname=args.lastname or "",
                    admin=args.admin, authentication_type="BASIC" if args.basic else "CERTIFICAT",
                    password=_password(args), phone=args.phone, quality=args.quality, groups=args.group or [])


def _subscriber_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.create_subscriber(ctx, args.siren, args.name)
    return [f"Abonné {args.siren} créé."]


def _subscriber_list(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    return [f"{s['siren']}  {s['name']}" for s in admin.list_subscribers(ctx)]


def _user_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.create_user(ctx, args.siren, _user_spec(args))
    lines = [f"Utilisateur {args.email} créé."]
    for cert in args.cert or []:
        fp = admin.add_certificate(ctx, args.siren, args.email, _read(cert))
        lines.append(f"Certificat lié (SHA-256 {fp}).")
    return lines


def _user_update(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.update_user(ctx, args.siren, _user_spec(args))
    return [f"Utilisateur {args.email} mis à jour."]


def _user_delete(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.delete_user(ctx, args.siren, args.email)
    return [f"Utilisateur {args.email} supprimé."]


def _user_list(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    return [json.dumps(u, ensure_ascii=False) for u in admin.list_users(ctx, args.siren)]


def _read(path: str) -> bytes:
    from parafe.domain.errors import E, ParafeError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ParafeError(E.ADMIN_FILE_UNREADABLE, reason=f"{path} : {exc.strerror}") from None


def _cert_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    fp = admin.add_certificate(ctx, args.siren, args.email, _read(args.file))
    return [f"Certificat lié à {args.email} (SHA-256 {fp})."]


def _cert_remove(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.remove_certificate(ctx, args.siren, args.email, args.fingerprint)
    return [f"Certificat {args.fingerprint} retiré de {args.email}."]


def _group_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.create_group(ctx, args.siren, args.name, args.member or [])
    return [f"Groupe {args.name} à jour."]


def _load(path: str) -> dict[str, Any]:
    from parafe.services.admin import platform as admin

    return admin.load_config_file(Path(path))


def _circuit_define(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    data = _load(args.file)
    circuits = data.get("circuits") if "circuits" in data else [data]
    return [f"Circuit {admin.define_circuit(ctx, args.siren, c)} à jour." for c in circuits or []]


def _circuit_list(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    return [f"{c['key']:20s} {c['type']:30s} {' → '.join(c['steps'])}" for c in admin.list_circuits(ctx, args.siren)]


def _circuit_delete(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    admin.delete_circuit(ctx, args.siren, args.key)
    return [f"Circuit {args.key} supprimé."]


def _metadata_set(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    fields = None
    if args.file:
        data = _load(args.file)
        fields = data.get("metadata", data.get("fields"))
    admin.set_metadata_model(ctx, args.siren, args.key, fields)
    return [f"Modèle de métadonnées du circuit {args.key} {'supprimé' if fields is None else 'à jour'}."]


def _apply(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin import platform as admin

    return admin.apply_config(ctx, _load(args.file)) or ["Rien à changer."]


def _user_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("siren", help="SIREN de l'abonné / subscriber SIREN")
    p.add_argument("email", help="adresse électronique / e-mail")
    p.add_argument("--firstname", help="prénom / first name")
    p.add_argument("--lastname", help="nom / last name")
    p.add_argument("--admin", action="store_true", help="administrateur de l'abonné / subscriber admin")
    p.add_argument("--basic", action="store_true", help="compte BASIC (mot de passe) / Basic account")
    p.add_argument("--password-stdin", action="store_true", help="lire le mot de passe sur l'entrée standard")
    p.add_argument("--phone", help="téléphone / phone")
    p.add_argument("--quality", help="qualité (pictogramme de signature) / title shown in signatures")
    p.add_argument("--group", action="append", help="groupe (répétable) / group (repeatable)")


def _document_retry(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.domain.states import State, label
    from parafe.workflow import failures

    state = failures.retry(ctx, args.document_id, actor="administrateur Parafe")
    return [f"Document {args.document_id} relancé : « {label(State(state), ctx.label_set)} »."]


def _blobs_sweep(ctx: Any, args: argparse.Namespace) -> list[str]:
    from datetime import timedelta

    from parafe.domain.errors import E, ParafeError
    from parafe.services.blob_sweep import SweepReport, sweep_orphan_blobs

    def progress(report: SweepReport) -> None:
        print(f"… {report.blobs} fichiers examinés, {report.deleted} orphelins", file=sys.stderr, flush=True)

    try:
        report = sweep_orphan_blobs(ctx, grace=timedelta(hours=args.grace_hours), dry_run=args.dry_run,
                                    progress=progress)
    except ValueError as exc:  # the service's own rule (grace period too short), in its French words
        raise ParafeError(E.BAD_REQUEST, reason=str(exc)) from None
    verb = "à supprimer (simulation)" if args.dry_run else "supprimés"
    return [f"{report.blobs} fichiers stockés : {report.referenced} référencés, {report.recent} orphelins récents "
            f"conservés, {report.deleted} orphelins {verb} ({report.freed_bytes} octets)."]


def _server_key_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.signers.server_keys import create

    info = create(ctx, args.email, args.siren)
    return [f"Clé {info.kind} créée pour {info.email} : {info.subject} (SHA-256 {info.fingerprint}, "
            f"valide jusqu'au {info.not_after:%d/%m/%Y})"]


def _server_key_revoke(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.signers.server_keys import revoke

    return [f"{revoke(ctx, args.email)} clé(s) révoquée(s)."]


def _add_server_key_commands(sub: Any) -> None:
    """``parafe admin server-key add|revoke`` (:mod:`parafe.services.signers.server_keys`)."""
    k = sub.add_parser("server-key", help="Clés de signature conservées par le serveur / Server-held signing keys")
    actions = k.add_subparsers(metavar="ACTION", required=True)
    p = actions.add_parser("add", help="Créer la clé et le certificat d'un signataire / Create a signer's key")
    p.add_argument("--email", required=True, help="adresse du compte / account e-mail")
    p.add_argument("--siren", help="abonné, si l'adresse a plusieurs comptes / subscriber when several accounts")
    p.set_defaults(func=_run(_server_key_add))
    p = actions.add_parser("revoke", help="Révoquer la clé d'un signataire / Revoke a signer's key")
    p.add_argument("--email", required=True, help="adresse du compte / account e-mail")
    p.set_defaults(func=_run(_server_key_revoke))


def _date(value: str) -> date:
    """``JJ/MM/AAAA`` or ``AAAA-MM-JJ``."""
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"date invalide « {value} » (JJ/MM/AAAA)")


def _delegation_add(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.delegations import admin_create, admin_list, describe

    number = admin_create(ctx, args.siren, args.delegator, args.delegate, args.start, args.end)
    return [describe(line) for line in admin_list(ctx, args.siren) if line.id == number]


def _delegation_list(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.delegations import admin_list, describe

    return [describe(line) for line in admin_list(ctx, args.siren)] or ["Aucune délégation."]


def _delegation_end(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.delegations import admin_end

    admin_end(ctx, args.siren, args.id)
    return [f"Délégation {args.id} terminée."]


def _add_delegation_commands(sub: Any) -> None:
    """``parafe admin delegation add|list|end`` (:mod:`parafe.services.delegations`)."""
    k = sub.add_parser("delegation", help="Délégations d'absence / Absence delegations")
    actions = k.add_subparsers(metavar="ACTION", required=True)
    p = actions.add_parser("add", help="Déléguer les visas et signatures d'un utilisateur / Add a delegation")
    p.add_argument("siren", help="SIREN de l'abonné / subscriber SIREN")
    p.add_argument("delegator", help="adresse de la personne absente / delegator e-mail")
    p.add_argument("delegate", help="adresse du collègue / delegate e-mail")
    p.add_argument("--from", dest="start", type=_date, required=True, help="premier jour (JJ/MM/AAAA)")
    p.add_argument("--to", dest="end", type=_date, required=True, help="dernier jour inclus (JJ/MM/AAAA)")
    p.set_defaults(func=_run(_delegation_add))
    p = actions.add_parser("list", help="Délégations en cours et à venir / Current and future delegations")
    p.add_argument("siren", help="SIREN de l'abonné / subscriber SIREN")
    p.set_defaults(func=_run(_delegation_list))
    p = actions.add_parser("end", help="Mettre fin à une délégation / End a delegation")
    p.add_argument("siren", help="SIREN de l'abonné / subscriber SIREN")
    p.add_argument("id", type=int, help="numéro de la délégation / delegation id")
    p.set_defaults(func=_run(_delegation_end))


def add_commands(subparsers: Any) -> None:
    admin = subparsers.add_parser(
        "admin", help="Administration (abonnés, utilisateurs, circuits) / Administration",
        description="Administration des abonnés, utilisateurs, certificats, groupes et circuits / Administration.")
    sub = admin.add_subparsers(dest="admin_command", metavar="OBJET", required=True)

    s = sub.add_parser("subscriber", help="Abonnés / Subscribers").add_subparsers(metavar="ACTION", required=True)
    p = s.add_parser("add", help="Créer un abonné / Create a subscriber")
    p.add_argument("siren")
    p.add_argument("name", help="nom de la collectivité / name")
    p.set_defaults(func=_run(_subscriber_add))
    s.add_parser("list", help="Lister / List").set_defaults(func=_run(_subscriber_list))
    from parafe.integrators_cli import add_report_commands, add_subscriber_commands

    add_subscriber_commands(s, _run)  # sandbox (issue 21)

    u = sub.add_parser("user", help="Utilisateurs / Users").add_subparsers(metavar="ACTION", required=True)
    p = u.add_parser("add", help="Créer un utilisateur / Create a user")
    _user_args(p)
    p.add_argument("--cert", action="append", help="certificat client PEM/DER à lier / client certificate")
    p.set_defaults(func=_run(_user_add))
    p = u.add_parser("update", help="Modifier un utilisateur / Update a user")
    _user_args(p)
    p.set_defaults(func=_run(_user_update))
    p = u.add_parser("delete", help="Supprimer un utilisateur / Delete a user")
    p.add_argument("siren")
    p.add_argument("email")
    p.set_defaults(func=_run(_user_delete))
    p = u.add_parser("list", help="Lister (JSON) / List (JSON)")
    p.add_argument("siren")
    p.set_defaults(func=_run(_user_list))

    c = sub.add_parser("cert", help="Certificats clients / Client certificates").add_subparsers(
        metavar="ACTION", required=True)
    p = c.add_parser("add", help="Lier un certificat / Bind a certificate")
    p.add_argument("siren")
    p.add_argument("email")
    p.add_argument("file")
    p.set_defaults(func=_run(_cert_add))
    p = c.add_parser("remove", help="Retirer un certificat / Unbind a certificate")
    p.add_argument("siren")
    p.add_argument("email")
    p.add_argument("fingerprint", help="empreinte SHA-256 / SHA-256 fingerprint")
    p.set_defaults(func=_run(_cert_remove))

    g = sub.add_parser("group", help="Groupes / Groups").add_subparsers(metavar="ACTION", required=True)
    p = g.add_parser("add", help="Créer ou compléter un groupe / Create or extend a group")
    p.add_argument("siren")
    p.add_argument("name")
    p.add_argument("--member", action="append", help="adresse d'un membre (répétable) / member e-mail")
    p.set_defaults(func=_run(_group_add))

    k = sub.add_parser("circuit", help="Circuits").add_subparsers(metavar="ACTION", required=True)
    p = k.add_parser("define", help="Créer ou remplacer depuis un fichier TOML/JSON / Define from a file")
    p.add_argument("siren")
    p.add_argument("--file", required=True)
    p.set_defaults(func=_run(_circuit_define))
    p = k.add_parser("list", help="Lister / List")
    p.add_argument("siren")
    p.set_defaults(func=_run(_circuit_list))
    p = k.add_parser("delete", help="Supprimer (sans document en cours) / Delete (no live document)")
    p.add_argument("siren")
    p.add_argument("key")
    p.set_defaults(func=_run(_circuit_delete))

    m = sub.add_parser("metadata", help="Modèles de métadonnées / Metadata models").add_subparsers(
        metavar="ACTION", required=True)
    p = m.add_parser("set", help="Définir (fichier) ou supprimer (sans fichier) / Set or clear")
    p.add_argument("siren")
    p.add_argument("key", help="identifiant du circuit / circuit id")
    p.add_argument("--file", help="fichier TOML/JSON avec une liste « metadata »")
    p.set_defaults(func=_run(_metadata_set))

    b = sub.add_parser("blobs", help="Fichiers stockés / Stored files").add_subparsers(metavar="ACTION",
                                                                                     required=True)
    p = b.add_parser("sweep", help="Supprimer les fichiers orphelins / Delete orphan files")
    p.add_argument("--dry-run", action="store_true", help="compter sans supprimer / count, do not delete")
    p.add_argument("--grace-hours", type=float, default=24.0,
                   help="âge minimal d'un orphelin supprimé, en heures (défaut 24, minimum 1)")
    p.set_defaults(func=_run(_blobs_sweep))

    d = sub.add_parser("document", help="Documents").add_subparsers(metavar="ACTION", required=True)
    p = d.add_parser("retry", help="Relancer l'étape en échec d'un document / Retry a document's failed step")
    p.add_argument("document_id", type=int, help="identifiant du document / document id")
    p.set_defaults(func=_run(_document_retry))

    from parafe.transmission_cli import add_commands as add_provider_commands

    add_provider_commands(sub, _run)
    add_report_commands(sub, _run)  # report clients (issue 21)
    _add_server_key_commands(sub)  # server-held keys and passkeys (issue 20)
    _add_delegation_commands(sub)  # absence delegations (issue 20)

    p = sub.add_parser("apply", help="Appliquer un fichier de configuration complet / Apply a full configuration")
    p.add_argument("file", help="fichier TOML ou JSON (abonné, utilisateurs, groupes, circuits)")
    p.set_defaults(func=_run(_apply))
