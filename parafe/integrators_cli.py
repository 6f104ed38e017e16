"""Operators' commands for integrators (issue 21): ``parafe admin report clients`` (the compliance report of
every client certificate, or of one) and ``parafe admin subscriber sandbox SIREN --on|--off``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

Runner = Callable[[Callable[[Any, argparse.Namespace], list[str] | None]], Callable[[argparse.Namespace], int]]


def _subscriber_sandbox(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.services.admin.sandbox import set_subscriber_sandbox

    set_subscriber_sandbox(ctx, args.siren, args.on)
    state = "en bac à sable" if args.on else "hors bac à sable"
    return [f"Abonné {args.siren} {state} (étapes de visa et de signature automatiques : "
            f"{'oui' if args.on else 'non'})."]


def format_report(report: dict[str, Any]) -> list[str]:
    """A client's report as French text lines (the CLI's default output)."""
    lines = [f"Client {report['subject'] or report['fingerprint']}",
             f"  empreinte SHA-256 : {report['fingerprint']}",
             f"  comptes : {', '.join(a['email'] + ' (' + a['siren'] + ')' for a in report['accounts']) or '—'}",
             f"  vu du {report['first_seen']} au {report['last_seen']} ; période du rapport : "
             f"{report['period_days']} jours",
             f"  appels : {', '.join(f'{k} {v}' for k, v in sorted(report['calls'].items())) or '—'}",
             f"  verdict : {report['verdict'].upper()}"]
    for rule in report["rules"]:
        lines.append(f"  [{rule['verdict']}] {rule['title']} ({rule['reference']}) : {rule['summary']}")
        for example in rule["examples"]:
            lines.append(f"      {example['at']}  {example['detail']}")
    return lines


def _report_clients(ctx: Any, args: argparse.Namespace) -> list[str]:
    from parafe.domain.errors import E, ParafeError
    from parafe.services.admin.platform import _subscriber
    from parafe.services.compliance import report

    subscriber_id = None
    if args.siren:
        with ctx.db.read() as session:
            subscriber_id = _subscriber(session, args.siren).id
    if args.fingerprint:
        fingerprints = [args.fingerprint.lower().replace(":", "")]
        if subscriber_id is not None and fingerprints[0] not in report.client_fingerprints_of(ctx, subscriber_id):
            raise ParafeError(E.COMPLIANCE_CLIENT_UNKNOWN)
    else:
        fingerprints = [c.fingerprint for c in report.clients_of(ctx, subscriber_id)]
    reports = []
    for fp in fingerprints:
        found = report.client_report(ctx, fp)
        if found is None:
            raise ParafeError(E.COMPLIANCE_CLIENT_UNKNOWN)
        reports.append(found.to_dict())
    if args.json:
        return [json.dumps(reports, ensure_ascii=False, indent=2)]
    if not reports:
        return ["Aucun client enregistré."]
    lines: list[str] = []
    for item in reports:
        lines += [*format_report(item), ""]
    return lines


def add_subscriber_commands(subscriber: Any, run: Runner) -> None:
    p = subscriber.add_parser("sandbox", help="Bac à sable d'un abonné / Subscriber's sandbox mode")
    p.add_argument("siren")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--on", dest="on", action="store_true", help="activer / turn on")
    group.add_argument("--off", dest="on", action="store_false", help="désactiver / turn off")
    p.set_defaults(func=run(_subscriber_sandbox))


def add_report_commands(admin: Any, run: Runner) -> None:
    r = admin.add_parser("report", help="Rapports / Reports").add_subparsers(metavar="RAPPORT", required=True)
    p = r.add_parser("clients", help="Conformité des clients (certificats) / Clients' compliance")
    p.add_argument("--siren", help="les clients liés aux comptes de cet abonné / bound to this subscriber")
    p.add_argument("--fingerprint", help="un seul client (empreinte SHA-256) / one client")
    p.add_argument("--json", action="store_true", help="sortie JSON / JSON output")
    p.set_defaults(func=run(_report_clients))
