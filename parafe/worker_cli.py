"""Commands of the workflow: ``parafe worker`` and ``parafe dev outbox|inject|helios|jobs|purge|digest|chaos``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any


def _ctx() -> Any:
    from parafe.config import get_settings
    from parafe.context import AppContext

    return AppContext.from_settings(get_settings())


def _cmd_worker(args: argparse.Namespace) -> int:
    from parafe.cli import initialise
    from parafe.composition import install_jobs
    from parafe.jobs.runtime import run_worker

    install_jobs()
    logging.getLogger("parafe").setLevel(logging.INFO if args.verbose else logging.WARNING)
    initialise(verbose=False)
    ctx = _ctx()
    print(f"Parafe worker : {args.threads or 'défaut'} fil(s) d'exécution, Ctrl+C pour arrêter", flush=True)
    try:
        return run_worker(ctx, args.threads)
    finally:
        ctx.close()


def _cmd_outbox(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from parafe.db.models import DevMessage
    from parafe.notify.mail import paris

    ctx = _ctx()
    try:
        with ctx.db.read() as session:
            stmt = select(DevMessage).order_by(DevMessage.id.desc()).limit(args.limit)
            if args.channel:
                stmt = stmt.where(DevMessage.channel == args.channel)
            if args.to:
                stmt = stmt.where(DevMessage.recipient.contains(args.to))
            rows = list(session.scalars(stmt))[::-1]
            if args.json:
                print(json.dumps([{"id": r.id, "channel": r.channel, "to": r.recipient, "subject": r.subject,
                                   "body": r.body, "document_id": r.document_id,
                                   "date": r.created_at.isoformat()} for r in rows], ensure_ascii=False, indent=2))
                return 0
            if not rows:
                print("Boîte d'envoi de développement vide.")
            for r in rows:
                kind = "SMS " if r.channel == "sms" else "MAIL"
                print(f"#{r.id} {kind} {paris(r.created_at)} → {r.recipient}"
                      + (f" — {r.subject}" if r.subject else ""))
                print("    " + r.body.strip().replace("\n", "\n    "))
        return 0
    finally:
        ctx.close()


def _cmd_inject(args: argparse.Namespace) -> int:
    from parafe.transmission.chorus import inject, inject_pes_retour
    from parafe.transmission.helios import HeliosSimulator

    ctx = _ctx()
    try:
        if args.file:
            data = Path(args.file).read_bytes()
            name = args.name or Path(args.file).name
        elif args.kind == "pes-retour":
            data = HeliosSimulator.pes_retour()
            name = args.name or "PES_Retour_simulateur.xml"
        else:
            print("Un fichier Chorus (flux pivot XML) est nécessaire.")
            return 2
        try:
            if args.kind == "pes-retour":
                public_id = inject_pes_retour(ctx, args.siren, data, name)
            else:
                public_id = inject(ctx, args.siren, data, name)
        except ValueError as exc:
            print(f"Refusé : {exc}")
            return 1
        print(public_id)
        return 0
    finally:
        ctx.close()


def _cmd_helios(args: argparse.Namespace) -> int:
    from parafe.transmission.helios import HeliosSimulator

    ctx = _ctx()
    try:
        print(json.dumps(HeliosSimulator.for_context(ctx).transmissions(), ensure_ascii=False, indent=2))
        return 0
    finally:
        ctx.close()


def _cmd_jobs(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from parafe.db.models import OutboxItem
    from parafe.jobs import outbox

    ctx = _ctx()
    try:
        if args.run:
            from parafe.composition import install_jobs

            install_jobs()
            print(f"{outbox.run_due(ctx, limit=args.run)} tâche(s) exécutée(s)")
        with ctx.db.read() as session:
            rows = session.scalars(select(OutboxItem).where(OutboxItem.done_at.is_(None))
                                   .order_by(OutboxItem.available_at))
            for row in rows:
                print(f"#{row.id} {row.kind} document={row.document_id} essais={row.attempts} "
                      f"prévu={row.available_at.isoformat()} {row.last_error or ''}")
        return 0
    finally:
        ctx.close()


def _cmd_digest(args: argparse.Namespace) -> int:
    from parafe.services.digest import daily_digest

    ctx = _ctx()
    try:
        print(json.dumps(daily_digest(ctx), ensure_ascii=False))
        return 0
    finally:
        ctx.close()


def _cmd_purge(args: argparse.Namespace) -> int:
    from parafe.services.retention import purge

    ctx = _ctx()
    try:
        print(json.dumps(purge(ctx), ensure_ascii=False))
        return 0
    finally:
        ctx.close()


def add_commands(sub: Any) -> None:
    p_worker = sub.add_parser("worker", help="Exécuter les tâches (signature serveur, Hélios, courriels…)")
    p_worker.add_argument("--threads", type=int, default=None, help="fils d'exécution (PARAFE_WORKER_THREADS)")
    p_worker.add_argument("-v", "--verbose", action="store_true")
    p_worker.set_defaults(func=_cmd_worker)

    p_dev = sub.add_parser("dev", help="Outils de développement (boîte d'envoi, simulateurs, tâches)")
    dev = p_dev.add_subparsers(dest="dev_command", metavar="OUTIL")
    p_out = dev.add_parser("outbox", help="Courriels et SMS gardés par les fournisseurs de développement")
    p_out.add_argument("--channel", choices=["sms", "mail"])
    p_out.add_argument("--to", help="filtrer sur le destinataire")
    p_out.add_argument("--limit", type=int, default=20)
    p_out.add_argument("--json", action="store_true")
    p_out.set_defaults(func=_cmd_outbox)
    p_inj = dev.add_parser("inject", help="Injecter un flux PES_Retour ou Chorus chez un abonné")
    p_inj.add_argument("kind", choices=["pes-retour", "chorus"])
    p_inj.add_argument("--siren", required=True)
    p_inj.add_argument("--name", help="nom du fichier rendu au client")
    p_inj.add_argument("file", nargs="?", help="fichier XML (PES_Retour : généré par le simulateur si absent)")
    p_inj.set_defaults(func=_cmd_inject)
    p_hel = dev.add_parser("helios", help="Ce que le simulateur Hélios a reçu")
    p_hel.set_defaults(func=_cmd_helios)
    p_jobs = dev.add_parser("jobs", help="Tâches en attente (outbox); --run N en exécute ici")
    p_jobs.add_argument("--run", type=int, default=0)
    p_jobs.set_defaults(func=_cmd_jobs)
    p_purge = dev.add_parser("purge", help="Lancer la purge quotidienne maintenant")
    p_purge.set_defaults(func=_cmd_purge)
    p_digest = dev.add_parser("digest", help="Envoyer maintenant le récapitulatif quotidien des documents en attente")
    p_digest.set_defaults(func=_cmd_digest)
    p_chaos = dev.add_parser("chaos", help="Scénario de pannes : nœuds tués, PostgreSQL relancé, S3 en panne, "
                             "puis invariants vérifiés (docs/chaos.md)")
    _chaos_arguments(p_chaos)
    p_chaos.set_defaults(func=_cmd_chaos)


def _cmd_chaos(args: argparse.Namespace) -> int:
    from parafe.devtools import chaos

    return chaos.main_from_args(args)


def _chaos_arguments(parser: Any) -> None:
    """``parafe dev chaos`` options (:mod:`parafe.devtools.chaos`, imported when the command runs)."""
    parser.add_argument("--duration", type=float, default=600.0, help="durée de la charge en secondes (600)")
    parser.add_argument("--clients", type=int, default=4, help="clients simultanés (4)")
    parser.add_argument("--kill-every", type=float, default=6.0, help="un kill -9 toutes les N secondes (6)")
    parser.add_argument("--restart-after", type=float, default=2.0, help="relance après N secondes (2)")
    parser.add_argument("--pg-restarts", type=int, default=1, help="redémarrages de PostgreSQL (1)")
    parser.add_argument("--s3-fault-seconds", type=float, default=15.0, help="durée des pannes S3 (15)")
    parser.add_argument("--postgres", default=None,  # default: $PARAFE_TEST_POSTGRES_URL, else chaos.DEFAULT_POSTGRES
                        help="URL d'administration du serveur PostgreSQL (une base y est créée puis supprimée)")
    parser.add_argument("--workdir", default=None, help="répertoire de travail (défaut : temporaire)")
    parser.add_argument("--keep", action="store_true", help="garder le répertoire de travail (journaux)")
    parser.add_argument("--seed", type=int, default=None, help="graine du hasard (rejouer un scénario)")
    parser.add_argument("--json", default=None, help="écrire aussi les comptes dans ce fichier JSON")
