"""``parafe client …``: the integrator's commands on :class:`parafe.client.ParafeClient` (issue 21).

``upload``, ``status``, ``wait``, ``download``, ``returns list|fetch``, ``circuits`` and ``compliance``; the
server and the certificate come from ``--url``/``--cert``/``--key``/``--ca`` or ``PARAFE_CLIENT_URL``,
``PARAFE_CLIENT_CERT``, ``PARAFE_CLIENT_KEY``, ``PARAFE_CLIENT_CA``. Messages are in French on standard error;
``--json`` prints one JSON document on standard output. Exit codes: 0 success, 1 an error of the server or of
the client (its French message and catalogue code), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from parafe.client.types import RETURN_KINDS, DocumentStatus

if TYPE_CHECKING:
    from parafe.client.api import ParafeClient


class ProgressBar:
    """A progress bar on standard error: ``[#####.....]  45 %  40,5 / 90,0 Mio  12,3 Mio/s``."""

    WIDTH = 30

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.shown = -1.0
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        share = done / total if total else 1.0
        full = int(share * self.WIDTH)
        speed = done / max(now - self.started, 1e-6) / 2**20
        figures = f"{done / 2**20:.1f} / {total / 2**20:.1f} Mio  {speed:.1f} Mio/s".replace(".", ",")
        text = f"\r{self.label} [{'#' * full}{'.' * (self.WIDTH - full)}] {share * 100:3.0f} %  {figures}"
        self.stream.write(text)
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _client(args: argparse.Namespace) -> ParafeClient:
    from parafe.client.api import ParafeClient

    url = args.url or os.environ.get("PARAFE_CLIENT_URL")
    cert = args.cert or os.environ.get("PARAFE_CLIENT_CERT")
    key = args.key or os.environ.get("PARAFE_CLIENT_KEY")
    ca = args.ca or os.environ.get("PARAFE_CLIENT_CA")
    if not url:
        raise SystemExit("Erreur : adresse du serveur manquante (--url ou PARAFE_CLIENT_URL).")
    if not cert:
        raise SystemExit("Erreur : certificat client manquant (--cert ou PARAFE_CLIENT_CERT).")
    return ParafeClient(url, cert=(cert, key or cert), ca=ca)


def _status_dict(status: DocumentStatus) -> dict[str, Any]:
    return {"id": status.id, "state": status.state,
            "history": [{"state": e.state, "actor": e.actor, "date": e.date.isoformat()} for e in status.history]}


def _out(args: argparse.Namespace, value: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(value, ensure_ascii=False, indent=2))
    else:
        for line in lines:
            print(line)


def _sandbox_note(client: ParafeClient) -> None:
    if client.sandbox:
        _say("(serveur en bac à sable : réponses marquées X-Parafe-Sandbox)")


def _upload(client: ParafeClient, args: argparse.Namespace) -> None:
    size = os.path.getsize(args.file) if os.path.exists(args.file) else 0
    bar = ProgressBar(os.path.basename(args.file)) if (size >= args.progress_from and not args.no_progress) else None
    doc = client.upload(args.siren, args.circuit, args.file, label=args.label, comment=args.comment,
                        email_to=args.email_to, progress=bar)
    _sandbox_note(client)
    result: dict[str, Any] = {"id": doc}
    lines = [f"Document déposé : identifiant {doc}."]
    if args.wait:
        status = client.wait_until(doc, args.wait, timeout=args.timeout,
                                   on_poll=None if args.json else _waiting)
        result["status"] = _status_dict(status)
        lines.append(f"Document {doc} : état « {status.state} » atteint.")
    if args.download:
        path = client.download(doc, args.download)
        result["file"] = str(path)
        lines.append(f"Document téléchargé : {path}")
    _out(args, result, lines)


def _waiting(status: DocumentStatus, delay: float) -> None:
    _say(f"… état actuel « {status.state or '—'} », nouvel essai dans {delay:.0f} s")


def _status(client: ParafeClient, args: argparse.Namespace) -> None:
    status = client.status(args.document)
    _out(args, _status_dict(status), [f"Document {status.id} : « {status.state or '—'} »"] + [
        f"  {e.date:%d/%m/%Y %H:%M:%S}  {e.state or '—'}  ({e.actor})" for e in status.history])


def _wait(client: ParafeClient, args: argparse.Namespace) -> None:
    status = client.wait_until(args.document, args.state, timeout=args.timeout,
                               on_poll=None if args.json else _waiting)
    _out(args, _status_dict(status), [f"Document {status.id} : état « {args.state} » atteint (état actuel "
                                      f"« {status.state} »)."])


def _download(client: ParafeClient, args: argparse.Namespace) -> None:
    fetch = {"document": client.download, "fdc": client.download_fdc, "ack": client.download_ack}[args.what]
    path = fetch(args.document, args.output)
    _out(args, {"id": args.document, "file": str(path), "size": path.stat().st_size},
         [f"Téléchargé : {path} ({path.stat().st_size} octets)"])


def _returns_list(client: ParafeClient, args: argparse.Namespace) -> None:
    ids = client.remaining(args.siren, args.kind)
    _out(args, ids, [f"{len(ids)} retour(s) « {args.kind} » à récupérer"] + [f"  {i}" for i in ids])


def _returns_fetch(client: ParafeClient, args: argparse.Namespace) -> None:
    ids = args.ids or (client.remaining(args.siren, args.kind) if args.siren else [])
    files = [str(client.fetch_return(args.kind, i, args.output)) for i in ids or []]
    _out(args, files, [f"Récupéré : {f}" for f in files] or ["Aucun retour à récupérer."])


def _circuits(client: ParafeClient, args: argparse.Namespace) -> None:
    rows = client.circuits(args.siren)
    _out(args, [asdict(c) for c in rows], [f"{c.id}  {c.name}  ({c.type})" for c in rows])


def _compliance(client: ParafeClient, args: argparse.Namespace) -> None:
    report = client.compliance()
    lines = [f"Verdict : {report['verdict']}"] + [
        f"  [{r['verdict']}] {r['title']} ({r['reference']}) : {r['summary']}" for r in report["rules"]]
    _out(args, report, lines)


def _run(action: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from parafe.client.api import ParafeClientError

        try:
            with _client(args) as client:
                action(client, args)
            return 0
        except ParafeClientError as err:
            if getattr(args, "json", False):
                print(json.dumps({"errorCode": err.code, "message": err.message}, ensure_ascii=False))
            _say(f"Erreur {err.code} : {err.message}")
            return 1
    return handler


def add_commands(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="adresse du serveur (PARAFE_CLIENT_URL), ex. https://parapheur.example.fr")
    common.add_argument("--cert", help="certificat client PEM (PARAFE_CLIENT_CERT)")
    common.add_argument("--key", help="clé privée PEM du certificat (PARAFE_CLIENT_KEY)")
    common.add_argument("--ca", help="AC du serveur, PEM (PARAFE_CLIENT_CA ; défaut : celles du système)")
    common.add_argument("--json", action="store_true", help="sortie JSON / JSON output")
    client = subparsers.add_parser("client", help="Client de l'API REST pour intégrateurs / REST client",
                                   description="Client de l'API REST de Parafe (certificat client).")
    sub = client.add_subparsers(dest="client_command", metavar="ACTION", required=True)

    p = sub.add_parser("upload", parents=[common], help="Déposer un document / Deposit a document")
    p.add_argument("siren")
    p.add_argument("circuit")
    p.add_argument("file")
    p.add_argument("--label", help="libellé (défaut : la date du jour AAAA-MM-JJ)")
    p.add_argument("--comment")
    p.add_argument("--email-to", help="destinataires du document signé (emailDestinataire)")
    p.add_argument("--wait", metavar="ETAT", help="attendre cet état ensuite (Signed, « Signé »…)")
    p.add_argument("--download", metavar="CHEMIN", help="puis télécharger le document dans ce fichier/dossier")
    p.add_argument("--timeout", type=float, default=600.0, help="attente maximale en secondes (défaut 600)")
    p.add_argument("--no-progress", action="store_true", help="sans barre de progression")
    p.add_argument("--progress-from", type=int, default=1024 * 1024, help=argparse.SUPPRESS)
    p.set_defaults(func=_run(_upload))

    p = sub.add_parser("status", parents=[common], help="État et historique / State and history")
    p.add_argument("document", type=int)
    p.set_defaults(func=_run(_status))

    p = sub.add_parser("wait", parents=[common], help="Attendre un état / Wait for a state")
    p.add_argument("document", type=int)
    p.add_argument("state", help="code de recherche (Signed, Refused, Filed…) ou libellé (« Signé »)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(func=_run(_wait))

    p = sub.add_parser("download", parents=[common], help="Télécharger / Download")
    p.add_argument("document", type=int)
    p.add_argument("-o", "--output", help="fichier ou dossier de destination (défaut : le nom du serveur)")
    p.add_argument("--what", choices=["document", "fdc", "ack"], default="document",
                   help="le document (signé), la fiche de circulation, l'acquittement Hélios")
    p.set_defaults(func=_run(_download))

    r = sub.add_parser("returns", help="Retours (acquittements, PES Retour, Chorus, signés) / Returns")
    rs = r.add_subparsers(dest="returns_command", metavar="ACTION", required=True)
    p = rs.add_parser("list", parents=[common], help="Lister les retours à récupérer / List")
    p.add_argument("siren")
    p.add_argument("--kind", choices=RETURN_KINDS, default="ack")
    p.set_defaults(func=_run(_returns_list))
    p = rs.add_parser("fetch", parents=[common], help="Récupérer des retours / Fetch")
    p.add_argument("--kind", choices=RETURN_KINDS, default="ack")
    p.add_argument("--siren", help="tous les retours restants de cet abonné")
    p.add_argument("ids", nargs="*", type=int, help="identifiants (sinon tous ceux de --siren)")
    p.add_argument("-o", "--output", default=".", help="dossier de destination (défaut : le dossier courant)")
    p.set_defaults(func=_run(_returns_fetch))

    p = sub.add_parser("circuits", parents=[common], help="Circuits de l'abonné / Circuits")
    p.add_argument("siren")
    p.set_defaults(func=_run(_circuits))

    p = sub.add_parser("compliance", parents=[common], help="Rapport de conformité / Compliance report")
    p.set_defaults(func=_run(_compliance))
