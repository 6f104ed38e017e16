"""The chaos scenario (``parafe dev chaos``, docs/chaos.md): several nodes under ``kill -9``, PostgreSQL restarted,
S3 failing for a while, a mixed load, then the invariants checked and counted.

What runs, all on this machine:

- one PostgreSQL database (a new one on the server named by ``--postgres``), shared by every process, which is
  also the job queue (``PARAFE_QUEUE=postgres``);
- an S3 server: moto's server mode behind :class:`parafe.devtools.faulty_s3.FaultInjector` (a separate process);
- ``nodes`` × ``parafe serve`` (one process each, no in-process job worker) and ``workers`` × ``parafe worker``,
  each with its own ``$PARAFE_HOME`` copied from one initialised home (same PKI, same portal secret);
- ``clients`` load threads for ``duration`` seconds: REST, SOAP and WebDAV deposits in ``serveur``, REST deposits in
  ``bureautique`` then the visa and the signature through the portal's API (the signer's own key, as the local
  helper would sign), REST deposits in ``otp`` then the OTP information, the link and the code (read from the
  development mail outbox), OSS ``signServerDoc``, downloads and deletes;
- meanwhile, every ``kill_every`` seconds a random running node or worker (never the last node serving) gets
  ``SIGKILL`` and is restarted after ``restart_after`` seconds; PostgreSQL is restarted ``pg_restarts`` times
  (``pg_ctlcluster``); S3 fails requests for ``s3_fault_seconds`` (at least, until one did fail) from 30 % of
  the run.

Then every process is up again, the outbox is left to drain, and :func:`check` counts, on the database and the
bucket: acknowledged ids without their row or blob (lost), signed documents whose signatures or « Signé »
entries are not one per signing step (duplicated / missing), documents stuck outside a final or waiting state,
orphan blobs older than the sweeper's grace period, and jobs left claimed by a dead worker. An acknowledged id is
one whose deposit answered success to the client; a deposit whose answer was lost with its node is not one.

moto is a development dependency: the command needs ``pip install -e .[dev]`` (or ``--s3-endpoint`` of a real
S3-compatible server, without fault injection).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from parafe.domain.states import FINISHED_VALUES

SIREN = "123456789"
AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
REST = "/parapheur-ws/rest/v1"
SOAP = "/parapheur-soap/soap/v1/Documents"
DAV = "/partage/webdav/clients"
OSS_WORKFLOW = "oss-demo"
BUCKET = "parafe-chaos"
PORTAL_SECRET = "chaos-portal-secret-0123456789abcdefghijkl"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SIGNING_STEPS = frozenset({"signature", "server_signature", "otp_signature"})
WAITING_STEPS = frozenset({"visa", "signature", "otp_signature", "metadata"})
WAITING_STATES = frozenset({"prepared", "otp_info_defined", "sent_for_visa", "sent_for_sign",
                            "ready_for_metadata", "metadata_defined", "otp_validated"})
FINAL_STATES = FINISHED_VALUES  # « Échec du traitement » is not final here: a document left in it is reported
SIGNED_STATES = ("signed", "otp_signed")


@dataclass
class ChaosOptions:
    duration: float = 60.0
    clients: int = 4
    nodes: int = 2
    workers: int = 2
    kill_every: float = 6.0
    restart_after: float = 2.0
    pg_restarts: int = 1
    s3_fault_seconds: float = 8.0
    s3_fault_rate: float = 0.7
    drain_timeout: float = 180.0
    postgres: str = DEFAULT_POSTGRES
    workdir: Path | None = None
    keep: bool = False
    seed: int | None = None
    pg_restart_command: list[str] | None = None
    say: Callable[[str], None] = field(default=lambda message: print(message, flush=True))


@dataclass
class Report:
    """What the run did and what the checks found; ``failures`` must be 0."""

    acked: Counter[str] = field(default_factory=Counter)
    deleted: int = 0
    requests: int = 0
    request_errors: int = 0
    kills: int = 0
    self_exits: int = 0
    pg_restarts: int = 0
    s3_failed_requests: int = 0
    signed_checked: int = 0
    visas: int = 0
    signatures_by_api: int = 0
    otp_signatures: int = 0
    otp_interrupted: Counter[str] = field(default_factory=Counter)
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    orphans_old: int = 0
    orphans_recent: int = 0
    jobs_claimed: list[str] = field(default_factory=list)
    jobs_recovered: int = 0
    deleted_still_there: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return (len(self.lost) + len(self.duplicated) + len(self.stuck) + self.orphans_old + len(self.jobs_claimed)
                + len(self.deleted_still_there))

    def lines(self) -> list[str]:
        acked = ", ".join(f"{k} {v}" for k, v in sorted(self.acked.items()))
        return [
            f"Dépôts acquittés : {sum(self.acked.values())} ({acked})",
            f"Visas et signatures par l'API : {self.visas} visas, {self.signatures_by_api} signatures ; "
            f"signatures OTP : {self.otp_signatures}",
            f"Parcours OTP interrompus (pannes) : {sum(self.otp_interrupted.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.otp_interrupted.items())) or 'aucun'})",
            f"Suppressions acquittées : {self.deleted}",
            f"Requêtes des clients : {self.requests} (dont {self.request_errors} en erreur pendant les pannes)",
            "  erreurs : " + (", ".join(f"{k} × {v}" for k, v in self.errors_by_kind.most_common(6)) or "aucune"),
            f"Arrêts brutaux (kill -9) : {self.kills} ; arrêts d'eux-mêmes (relancés) : {self.self_exits} ; "
            f"redémarrages de PostgreSQL : {self.pg_restarts} ; "
            f"requêtes S3 en échec injecté : {self.s3_failed_requests}",
            f"Tâches exécutées en plus d'une tentative (reprises) : {self.jobs_recovered}",
            f"Documents signés vérifiés : {self.signed_checked}",
            f"Documents acquittés perdus (ligne ou contenu manquant) : {len(self.lost)}",
            f"Documents supprimés encore présents : {len(self.deleted_still_there)}",
            f"Signatures ou entrées « Signé » en double ou manquantes : {len(self.duplicated)}",
            f"Documents bloqués hors d'un état final ou d'attente : {len(self.stuck)}",
            f"Blobs orphelins plus vieux que le délai de grâce : {self.orphans_old} "
            f"(orphelins récents, ramassés après le délai : {self.orphans_recent})",
            f"Tâches laissées à un processus mort : {len(self.jobs_claimed)}",
            f"Résultat : {'OK' if self.failures == 0 else f'{self.failures} ÉCART(S)'}",
        ]

    def details(self) -> list[str]:
        out: list[str] = []
        for title, items in (("perdus", self.lost), ("doublons", self.duplicated), ("bloqués", self.stuck),
                             ("tâches", self.jobs_claimed), ("supprimés présents", self.deleted_still_there)):
            if items:
                out.append(f"  {title} : " + "; ".join(items[:20]))
        return out


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """One process of the cluster (its own session, so ``kill -9`` reaches nothing else)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    url: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill9()


class Cluster:
    """The database, the S3 server, the homes and the processes of one run."""

    def __init__(self, options: ChaosOptions) -> None:
        self.options = options
        self.say = options.say
        self.own_workdir = options.workdir is None
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="parafe-chaos-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dbname = f"parafe_chaos_{uuid.uuid4().hex[:10]}"
        if options.postgres.startswith("postgresql://"):
            options.postgres = "postgresql+psycopg://" + options.postgres[len("postgresql://"):]
        base, _, _ = options.postgres.rpartition("/")
        self.db_url = f"{base}/{self.dbname}"
        self.fail_file = self.workdir / "s3-fail"
        self.s3_port = free_port()
        self.s3_url = f"http://127.0.0.1:{self.s3_port}"
        self.template = self.workdir / "template"
        self.s3: Proc | None = None
        self.nodes: list[Proc] = []
        self.workers: list[Proc] = []
        self.ctx: Any = None

    # environment
    def env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARAFE_", "AWS_"))}
        env.update(
            PARAFE_HOME=str(home), PARAFE_DATABASE_URL=self.db_url, PARAFE_STORAGE="s3",
            PARAFE_S3_ENDPOINT_URL=self.s3_url, PARAFE_S3_BUCKET=BUCKET, PARAFE_S3_ACCESS_KEY="testing",
            PARAFE_S3_SECRET_KEY="testing", PARAFE_QUEUE="postgres", PARAFE_WORKER_IN_PROCESS="false",
            PARAFE_WORKERS="1", PARAFE_JOB_LEASE_SECONDS="10", PARAFE_JOB_BACKOFF_SECONDS="1",
            PARAFE_JOB_BACKOFF_MAX_SECONDS="4", PARAFE_JOB_MAX_ATTEMPTS="40", PARAFE_DISPATCH_INTERVAL="0.3",
            PARAFE_PORTAL_SECRET=PORTAL_SECRET, PYTHONUNBUFFERED="1")
        return env

    def _admin_sql(self, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.options.postgres, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def setup(self) -> None:
        self.say(f"Chaos : répertoire {self.workdir}, base {self.dbname}")
        self._admin_sql(f'CREATE DATABASE "{self.dbname}"')
        self.s3 = Proc("s3", [sys.executable, "-m", "parafe.devtools.faulty_s3", "--port", str(self.s3_port),
                              "--fail-file", str(self.fail_file)], self.env(self.template), self.workdir / "s3.log")
        self.s3.start()
        self._wait_s3()
        import boto3

        boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        self.template.mkdir(parents=True)
        init = subprocess.run([sys.executable, "-m", "parafe", "init"], env=self.env(self.template),
                              capture_output=True, text=True)
        if init.returncode != 0:
            raise RuntimeError(f"parafe init a échoué : {init.stdout}{init.stderr}")
        self.ctx = self._context(self.template)
        from parafe.services.demo import ensure_oss_demo

        ensure_oss_demo(self.ctx)
        for index in range(self.options.nodes):
            home = self.workdir / f"node{index + 1}"
            shutil.copytree(self.template, home)
            port = free_port()
            self.nodes.append(Proc(f"serve-{index + 1}", [
                sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning"], self.env(home), self.workdir / f"serve-{index + 1}.log",
                url=f"https://127.0.0.1:{port}"))
        for index in range(self.options.workers):
            home = self.workdir / f"worker{index + 1}"
            shutil.copytree(self.template, home)
            self.workers.append(Proc(f"worker-{index + 1}", [sys.executable, "-m", "parafe", "worker"],
                                     self.env(home), self.workdir / f"worker-{index + 1}.log"))
        for proc in [*self.nodes, *self.workers]:
            proc.start()
        for node in self.nodes:
            self.wait_node(node)

    def _context(self, home: Path) -> Any:
        from parafe.config import Settings
        from parafe.context import AppContext

        return AppContext.from_settings(Settings(
            home=home, database_url=self.db_url, storage="s3", s3_endpoint_url=self.s3_url, s3_bucket=BUCKET,
            s3_access_key="testing", s3_secret_key="testing"))

    def _wait_s3(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.s3_port), timeout=1):
                return
            if self.s3 is not None and not self.s3.alive():
                raise RuntimeError((self.workdir / "s3.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        raise RuntimeError("le serveur S3 n'a pas démarré")

    @property
    def ca(self) -> str:
        return str(self.template / "pki" / "ca.pem")

    def wait_node(self, node: Proc, timeout: float = 120.0) -> bool:
        assert node.url is not None
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context(cafile=self.ca)
        while time.monotonic() < deadline:
            if not node.alive():
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{node.url}/healthz", verify=context, timeout=3).status_code == 200:
                    return True
            time.sleep(0.3)
        return False

    def restart_postgres(self) -> bool:
        command = self.options.pg_restart_command
        if command is None:
            versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
            if not versions:
                self.say("  PostgreSQL : pas de grappe locale (/etc/postgresql), redémarrage sauté")
                return False
            command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]
        self.say(f"  PostgreSQL : redémarrage ({' '.join(command)})")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            self.say(f"  PostgreSQL : le redémarrage a échoué : {done.stderr.strip()}")
        return self.wait_postgres() and done.returncode == 0

    def wait_postgres(self, timeout: float = 120.0) -> bool:
        import sqlalchemy as sa

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            engine = sa.create_engine(self.options.postgres)
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                return True
            except Exception:
                time.sleep(0.5)
            finally:
                engine.dispose()
        raise RuntimeError("PostgreSQL n'est pas revenu après son redémarrage")

    def s3_fault(self, on: bool) -> None:
        if on:
            self.fail_file.write_text(f"{self.options.s3_fault_rate}\n")
        else:
            self.fail_file.unlink(missing_ok=True)

    def s3_failures(self) -> int:
        count = self.fail_file.with_name(self.fail_file.name + ".count")
        return len(count.read_text().splitlines()) if count.exists() else 0

    def teardown(self) -> None:
        for proc in [*self.nodes, *self.workers]:
            proc.stop()
        if self.ctx is not None:
            self.ctx.close()
        if self.s3 is not None:
            self.s3.stop()
        with contextlib.suppress(Exception):
            self.wait_postgres(60)
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        if self.own_workdir and not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- the load ----------------------------------------------------------------------------------------------


def _pdf(seed: str) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 760, f"Parafe chaos {seed}")
    c.drawString(72, 740, "Arrêté municipal — document de test")
    c.showPage()
    c.save()
    return buf.getvalue()


def _otp_xml(email: str) -> bytes:
    items = "".join(f'<meta-data name="OTP_{k}_0" value="{v}"/>'
                    for k, v in (("firstname", "Jean"), ("lastname", "Chaos"), ("email", email)))
    return f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>{items}</meta-data-list>'.encode()


def _soap_upload(name: str, data: bytes) -> bytes:
    from parafe.connectors.soap.contract import NS, SOAP_ENV

    inner = (f"<label>chaos</label><comment/><subscriberId>{SIREN}</subscriberId><circuitId>serveur</circuitId>"
             f"<dataFileVO><dataHandler>{base64.b64encode(data).decode()}</dataHandler><filename>{name}</filename>"
             "</dataFileVO>")
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sei="{NS}"><soapenv:Header/><soapenv:Body>'
            f"<sei:upload>{inner}</sei:upload></soapenv:Body></soapenv:Envelope>").encode()


class Load:
    """The client threads and what they were told (acknowledged ids, deletes)."""

    def __init__(self, cluster: Any, report: Report, rng: random.Random) -> None:
        """``cluster``: a :class:`Cluster`, or anything with ``nodes`` (``url``), ``template`` (a home with the
        demo certificates), ``ctx`` (on the same database) and ``say`` (the soak bench's single node)."""
        self.cluster = cluster
        self.report = report
        self.rng = rng
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}  # "doc:<id>" or "oss:<id>" -> how
        self.deleted: set[str] = set()
        self.to_visa: list[int] = []
        self.to_sign: list[int] = []
        self.otp_docs: list[int] = []
        self.stop = threading.Event()
        self.latencies: list[tuple[float, float]] = []  # (start, seconds) of every answered request
        home = cluster.template
        self.contexts = {email: self._ssl(home, email) for email in (AGENT, VISA, SIGNER)}
        from parafe.signing.keys import load_signer

        self.signer_key = load_signer(home / "demo" / f"{SIGNER}.p12", "demo")
        from cryptography.hazmat.primitives.serialization import Encoding

        self.signer_pem = self.signer_key.certificate.public_bytes(Encoding.PEM).decode()
        self.csrf: dict[str, str] = {}

    def _ssl(self, home: Path, email: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(home / "pki" / "ca.pem"))
        context.load_cert_chain(str(home / "demo" / f"{email}.pem"), str(home / "demo" / f"{email}.key"))
        return context

    def _node_url(self) -> str:
        urls = [n.url for n in self.cluster.nodes if n.url]
        return self.rng.choice(urls)

    def request(self, email: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request to a random node (the other one if the first is down); None when both failed."""
        urls = [n.url for n in self.cluster.nodes if n.url]
        self.rng.shuffle(urls)
        with self.lock:
            self.report.requests += 1
        reason = "connexion refusée ou coupée"
        for url in urls:
            try:
                began = time.monotonic()
                with httpx.Client(base_url=url, verify=self.contexts[email], timeout=60) as client:
                    response = client.request(method, path, **kwargs)
                with self.lock:
                    self.latencies.append((began, time.monotonic() - began))
            except httpx.HTTPError as exc:
                reason = f"connexion : {exc.__class__.__name__}"
                continue
            if response.status_code >= 500 or response.status_code == 401:
                reason = f"HTTP {response.status_code} {path.split('/')[-1] or path}"
                break
            return response
        with self.lock:
            self.report.request_errors += 1
            self.report.errors_by_kind[reason] += 1
        time.sleep(0.2)  # as a client would, before its next try
        return None

    def _ack(self, key: str, how: str) -> None:
        with self.lock:
            self.acked[key] = how
            self.report.acked[how] += 1

    # operations
    def deposit_rest(self, circuit: str) -> int | None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", f"{REST}/documents/v2/{SIREN}/{circuit}/upload",
                         files={"content": (name, _pdf(name), "application/pdf")})
        if r is not None and r.status_code == 200 and r.text.strip().isdigit():
            self._ack(f"doc:{int(r.text)}", f"REST {circuit}")
            return int(r.text)
        return None

    def deposit_soap(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", SOAP, content=_soap_upload(name, _pdf(name)),
                         headers={"Content-Type": "text/xml; charset=utf-8"})
        if r is not None and r.status_code == 200:
            found = re.search(rb"<return>(\d+)</return>", r.content)
            if found:
                self._ack(f"doc:{int(found.group(1))}", "SOAP serveur")

    def deposit_webdav(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "PUT", f"{DAV}/{SIREN}/in/serveur/{name}", content=_pdf(name))
        if r is not None and r.status_code == 201 and r.headers.get("x-fast-docid", "").isdigit():
            self._ack(f"doc:{int(r.headers['x-fast-docid'])}", "WebDAV serveur")

    def oss_sign(self) -> None:
        name = f"chaos-{uuid.uuid4().hex[:12]}.pdf"
        r = self.request(AGENT, "POST", "/oss/signServerDoc", files={"dataFile": (name, _pdf(name), "application/pdf")},
                         data={"workflowId": OSS_WORKFLOW})
        if r is not None and r.status_code == 200 and r.content.startswith(b"%PDF"):
            self._ack(f"oss:{int(r.headers['X-FAST-document-id'])}", "OSS signServerDoc")

    def download(self) -> None:
        with self.lock:
            keys = [k for k in self.acked if k.startswith("doc:") and k not in self.deleted]
        if keys:
            doc = self.rng.choice(keys)[4:]
            self.request(AGENT, "GET", f"{REST}/documents/v2/{doc}/download")

    def deposit_and_delete(self) -> None:
        doc = self.deposit_rest("otp")
        if doc is None:
            return
        r = self.request(AGENT, "DELETE", f"{REST}/documents/v2/{doc}")
        if r is not None and 200 <= r.status_code < 300:
            with self.lock:
                self.deleted.add(f"doc:{doc}")
                self.report.deleted += 1

    def _csrf(self, email: str) -> str | None:
        if email not in self.csrf:
            r = self.request(email, "GET", "/tableau-de-bord")
            found = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text) if r is not None else None
            if not found:
                return None
            self.csrf[email] = found.group(1)
        return self.csrf[email]

    def visa(self) -> None:
        with self.lock:
            if not self.to_visa:
                return
            doc = self.to_visa.pop(0)
        token = self._csrf(VISA)
        r = self.request(VISA, "POST", f"/documents/{doc}/viser", data={"csrf": token or ""}) if token else None
        if r is not None and r.status_code == 303:
            with self.lock:
                self.to_sign.append(doc)
                self.report.visas += 1
        else:
            with self.lock:
                self.to_visa.append(doc)  # not at the visa yet, or the node went down: later

    def sign(self) -> None:
        with self.lock:
            if not self.to_sign:
                return
            doc = self.to_sign.pop(0)
        token = self._csrf(SIGNER)
        headers = {"X-CSRF-Token": token or ""}
        r = self.request(SIGNER, "POST", "/signature/preparer", json={"ids": [doc], "certificates": [self.signer_pem]},
                         headers=headers) if token else None
        ok = False
        if r is not None and r.status_code == 200:
            prepared = r.json()
            values = {str(d["id"]): [base64.b64encode(self.signer_key.sign_raw(base64.b64decode(q["data_to_sign"])))
                                     .decode() for q in d["requests"]] for d in prepared["documents"]}
            done = self.request(SIGNER, "POST", "/signature/finaliser",
                                json={"session": prepared["session"], "signatures": values}, headers=headers)
            ok = done is not None and done.status_code == 200 and all(x.get("ok") for x in done.json()["results"])
        if ok:
            with self.lock:
                self.report.signatures_by_api += 1
        else:
            with self.lock:
                self.to_sign.append(doc)

    def otp(self) -> None:
        doc = self.deposit_rest("otp")
        if doc is None:
            return
        email = f"otp-{doc}@chaos.parafe.test"
        r = self.request(AGENT, "PUT", f"{REST}/documents/v2/otp/{doc}/metadata/define",
                         files={"otpinformation": ("m.xml", _otp_xml(email))})
        if self._otp_stop("métadonnées", r):
            return
        r = self.request(AGENT, "GET", f"{REST}/documents/v2/otp/url", params={"id": str(doc)})
        if self._otp_stop("url", r):
            return
        assert r is not None
        token = parse_qs(urlsplit(r.json()["url"]).query).get("id", [""])[0]
        page = f"/boucle-sms/documentView?id={token}"
        r = self.request(AGENT, "GET", page)
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', r.text) if r is not None else None
        if found is None:
            self._otp_stop("page", r, force=True)
            return
        csrf = found.group(1)
        deadline = time.monotonic() + 30  # the document reaches its OTP step when the worker has started it
        while True:
            r = self.request(AGENT, "POST", page, data={"csrf": csrf, "action": "code"})
            if (r is not None and r.status_code == 200) or time.monotonic() > deadline or self.stop.is_set():
                break
            time.sleep(1.0)
        if self._otp_stop("envoi du code", r):
            return
        code = self._mailed_code(email)
        if code is None:
            self._otp_stop("courriel du code", None, force=True)
            return
        r = self.request(AGENT, "POST", page, data={"csrf": csrf, "action": "signer", "code": code})
        if not self._otp_stop("signature", r, ok=(200, 303)):
            with self.lock:
                self.report.otp_signatures += 1

    def _otp_stop(self, step: str, r: httpx.Response | None, *, ok: tuple[int, ...] = (200,),
                  force: bool = False) -> bool:
        """Whether the OTP journey stops at ``step`` (counted by step, with the first answers seen)."""
        if not force and r is not None and r.status_code in ok:
            return False
        with self.lock:
            self.report.otp_interrupted[step] += 1
            if self.report.otp_interrupted[step] <= 2:
                detail = f"{r.status_code} {r.text[:300]!r}" if r is not None else "pas de réponse"
                self.cluster.say(f"  OTP interrompu à l'étape « {step} » : {detail}")
        return True

    def _mailed_code(self, email: str) -> str | None:
        from sqlalchemy import select

        from parafe.db.models import DevMessage

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.stop.is_set():
            with contextlib.suppress(Exception), self.cluster.ctx.db.read() as session:
                bodies = session.scalars(select(DevMessage.body).where(DevMessage.recipient.contains(email))
                                         .order_by(DevMessage.id.desc())).all()
                for body in bodies:
                    found = re.search(r"code de signature est : (\d+)", body)
                    if found:
                        return found.group(1)
            time.sleep(0.5)
        return None

    def deposit_serveur(self) -> None:
        self.deposit_rest("serveur")

    def bureautique(self) -> None:
        doc = self.deposit_rest("bureautique")
        if doc is not None:
            with self.lock:
                self.to_visa.append(doc)

    def one(self) -> None:
        ops: list[tuple[Callable[[], None], int]] = [
            (self.deposit_serveur, 3), (self.deposit_soap, 2), (self.deposit_webdav, 2),
            (self.bureautique, 2), (self.visa, 2), (self.sign, 2), (self.otp, 1), (self.oss_sign, 2),
            (self.download, 3), (self.deposit_and_delete, 1)]
        choice = self.rng.choices([op for op, _ in ops], weights=[w for _, w in ops])[0]
        choice()

    def run_client(self) -> None:
        while not self.stop.is_set():
            try:
                self.one()
            except Exception as exc:  # a client bug must not stop the run silently
                with self.lock:
                    self.report.request_errors += 1
                self.cluster.say(f"  client : {exc.__class__.__name__}: {exc}")
                time.sleep(0.5)

    def finish_pending(self, timeout: float) -> None:
        """After the faults: give the visas and signatures in flight a chance (no node is killed any more)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.to_visa or self.to_sign):
            self.visa()
            self.sign()
            time.sleep(0.2)


# --- the run -----------------------------------------------------------------------------------------------


def _chaos(cluster: Cluster, report: Report, rng: random.Random, stop: threading.Event) -> None:
    options = cluster.options
    start = time.monotonic()
    procs = [*cluster.nodes, *cluster.workers]
    pg_at = [options.duration * (i + 1) / (options.pg_restarts + 1) for i in range(options.pg_restarts)]
    s3_at = options.duration * 0.3
    s3_done = False
    s3_started: float | None = None
    next_kill = start + options.kill_every
    lock = threading.Lock()
    restarting: set[str] = set()
    helpers: list[threading.Thread] = []

    def restart(proc: Proc, pause: float) -> None:
        time.sleep(pause)
        proc.start()
        if proc.url:
            cluster.wait_node(proc)
        else:
            time.sleep(3.0)  # a worker is up once it has connected to the queue
        with lock:
            restarting.discard(proc.name)
    while not stop.wait(0.2):
        elapsed = time.monotonic() - start
        if pg_at and elapsed >= pg_at[0]:
            pg_at.pop(0)
            if cluster.restart_postgres():
                report.pg_restarts += 1
        if s3_started is None and elapsed >= s3_at:
            s3_started = elapsed
            cluster.say(f"  S3 : pannes injectées pendant {options.s3_fault_seconds:.0f} s au moins "
                        f"({options.s3_fault_rate:.0%} des requêtes)")
            cluster.s3_fault(True)
        if s3_started is not None and not s3_done and elapsed >= s3_started + options.s3_fault_seconds and (
                cluster.s3_failures() > 0 or elapsed >= s3_started + 4 * options.s3_fault_seconds):
            s3_done = True  # the window lasts until a request did fail (all nodes may have been down meanwhile)
            cluster.s3_fault(False)
            cluster.say(f"  S3 : fin des pannes (t={elapsed:.0f} s, {cluster.s3_failures()} requêtes en échec)")
        with lock:  # a supervisor's job (systemd's Restart=always): a process that exited by itself (it could
            # not reach PostgreSQL while starting, say) is started again
            exited = [p for p in procs if not p.alive() and p.name not in restarting]
            restarting.update(p.name for p in exited)
        for proc in exited:
            cluster.say(f"  {proc.name} s'est arrêté de lui-même : relancé (t={elapsed:.0f} s)")
            report.self_exits += 1
            helpers.append(threading.Thread(target=restart, args=(proc, 1.0), daemon=True))
            helpers[-1].start()
        if time.monotonic() >= next_kill:
            # a running process, and never the last node serving (the load keeps going through the other one)
            with lock:
                up = [p for p in procs if p.alive() and p.name not in restarting]
                nodes_up = [p for p in up if p.url]
                candidates = [p for p in up if not p.url or len(nodes_up) > 1]
            if not candidates:
                continue
            victim = rng.choice(candidates)
            cluster.say(f"  kill -9 {victim.name} (t={elapsed:.0f} s)")
            with lock:
                restarting.add(victim.name)
            victim.kill9()
            report.kills += 1

            helpers.append(threading.Thread(target=restart, args=(victim, options.restart_after), daemon=True))
            helpers[-1].start()
            next_kill = time.monotonic() + options.kill_every
    for helper in helpers:  # every restart in flight is done before the run goes on
        helper.join()


def _drain(cluster: Cluster, timeout: float) -> None:
    """Wait until no outbox row is due or claimed (every process up), or the timeout."""
    from sqlalchemy import func, select

    from parafe.db.models import OutboxItem, utcnow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with cluster.ctx.db.read() as session:
            pending = session.scalar(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.done_at.is_(None), OutboxItem.available_at <= utcnow() + timedelta(seconds=15)))
        if not pending:
            return
        time.sleep(1.0)


def _pdf_signatures(data: bytes) -> int:
    import pikepdf

    count = 0
    with pikepdf.open(io.BytesIO(data)) as pdf:
        form: Any = pdf.Root.get("/AcroForm")
        fields: list[Any] = list(form.get("/Fields", [])) if form is not None else []
        while fields:
            f = fields.pop()
            fields.extend(f.get("/Kids", []))
            if f.get("/FT") == "/Sig" and "/V" in f:
                count += 1
    return count


def check(cluster: Cluster, load: Load, report: Report) -> None:
    """The invariants, counted into ``report`` (see the module docstring)."""
    from sqlalchemy import select

    from parafe.db.models import CircuitStep, Document, HistoryEntry, OssDocument, OutboxItem, utcnow
    from parafe.services.blob_sweep import MIN_GRACE, sweep_orphan_blobs

    ctx = cluster.ctx
    store = ctx.store
    with ctx.db.read() as session:
        docs = {d.id: d for d in session.scalars(select(Document))}
        steps: dict[int, list[str]] = {}
        for step in session.scalars(select(CircuitStep).order_by(CircuitStep.circuit_id, CircuitStep.position)):
            steps.setdefault(step.circuit_id, []).append(step.kind)
        history: dict[int, list[str | None]] = {}
        for doc_id, state in session.execute(select(HistoryEntry.document_id, HistoryEntry.state)
                                             .order_by(HistoryEntry.id)):
            history.setdefault(doc_id, []).append(state)
        oss_docs = {d.id: (d.status, d.blob_sha256, d.signed_blob_sha256) for d in session.scalars(select(OssDocument))}
        pending = session.execute(select(OutboxItem.id, OutboxItem.kind, OutboxItem.document_id, OutboxItem.attempts,
                                         OutboxItem.available_at).where(OutboxItem.done_at.is_(None))).all()
        report.jobs_recovered = len(session.scalars(select(OutboxItem.id).where(OutboxItem.attempts > 1)).all())
    now = utcnow()
    for key, how in sorted(load.acked.items()):
        kind, _, raw = key.partition(":")
        ident = int(raw)
        if key in load.deleted:
            doc = docs.get(ident)
            if doc is not None and doc.deleted_at is None:
                report.deleted_still_there.append(f"{ident} ({how})")
            continue
        if kind == "oss":
            found = oss_docs.get(ident)
            if found is None or not found[2] or not store.exists(found[2]):
                report.lost.append(f"OSS {ident}")
            elif _pdf_signatures(store.read_bytes(found[2])) != 1:
                report.duplicated.append(f"OSS {ident}: signatures")
            continue
        doc = docs.get(ident)
        if doc is None or doc.deleted_at is not None or not store.exists(doc.blob_sha256) or (
                doc.signed_blob_sha256 and not store.exists(doc.signed_blob_sha256)):
            report.lost.append(f"{ident} ({how})")
    for doc in docs.values():
        if doc.deleted_at is not None:
            continue
        kinds = steps.get(doc.circuit_id, [])
        states = history.get(doc.id, [])
        signing = sum(1 for k in kinds if k in SIGNING_STEPS)
        signed_entries = sum(1 for s in states if s in SIGNED_STATES)
        if signed_entries:
            report.signed_checked += 1
            done_steps = sum(1 for k in kinds[: (doc.current_step or 0) + 1] if k in SIGNING_STEPS) \
                if doc.state not in FINAL_STATES else signing
            if doc.kind == "pdf" and doc.signed_blob_sha256 and store.exists(doc.signed_blob_sha256):
                in_pdf = _pdf_signatures(store.read_bytes(doc.signed_blob_sha256))
                if in_pdf != done_steps:
                    report.duplicated.append(f"{doc.id}: {in_pdf} signature(s) PDF pour {done_steps} étape(s)")
            if signed_entries != done_steps:
                report.duplicated.append(f"{doc.id}: {signed_entries} entrée(s) « Signé » pour {done_steps} étape(s)")
        if doc.state in FINAL_STATES:
            continue
        step = kinds[doc.current_step] if doc.current_step is not None and doc.current_step < len(kinds) else (
            kinds[0] if kinds else None)
        if step in WAITING_STEPS and doc.state in WAITING_STATES:
            continue
        report.stuck.append(f"{doc.id} {doc.state} (étape {step})")
    for item_id, kind, doc_id, attempts, available_at in pending:
        due = available_at if available_at.tzinfo else available_at.replace(tzinfo=now.tzinfo)
        if due <= now:
            report.jobs_claimed.append(f"outbox {item_id} {kind} doc {doc_id} ({attempts} essais)")
    real = sweep_orphan_blobs(ctx, grace=MIN_GRACE, dry_run=True)
    report.orphans_old = real.deleted
    later = sweep_orphan_blobs(ctx, grace=MIN_GRACE, dry_run=True, now=now + MIN_GRACE + timedelta(minutes=1))
    report.orphans_recent = later.deleted


def run(options: ChaosOptions) -> Report:
    """Set up, load and break, recover, check; returns the report (the caller prints it)."""
    rng = random.Random(options.seed)
    report = Report()
    cluster = Cluster(options)
    try:
        cluster.setup()
        options.say(f"Chaos : {options.nodes} nœuds, {options.workers} workers, {options.clients} clients, "
                    f"{options.duration:.0f} s")
        load = Load(cluster, report, rng)
        stop_chaos = threading.Event()
        chaos = threading.Thread(target=_chaos, args=(cluster, report, rng, stop_chaos), daemon=True)
        clients = [threading.Thread(target=load.run_client, daemon=True) for _ in range(options.clients)]
        chaos.start()
        for thread in clients:
            thread.start()
        time.sleep(options.duration)
        stop_chaos.set()
        chaos.join()
        cluster.s3_fault(False)
        load.stop.set()
        for thread in clients:
            thread.join(timeout=120)
        options.say("Chaos : fin de la charge, tous les processus relancés, vidage de la boîte d'envoi…")
        time.sleep(options.restart_after + 1)
        for proc in [*cluster.nodes, *cluster.workers]:
            if not proc.alive():
                proc.start()
        for node in cluster.nodes:
            cluster.wait_node(node)
        load.stop.clear()
        load.finish_pending(60)
        _drain(cluster, options.drain_timeout)
        report.s3_failed_requests = cluster.s3_failures()
        check(cluster, load, report)
    finally:
        cluster.teardown()
    return report


def main_from_args(args: Any) -> int:
    """``parafe dev chaos`` (options in :mod:`parafe.workflow.cli`; ``--postgres`` defaults to
    ``$PARAFE_TEST_POSTGRES_URL``, else :data:`DEFAULT_POSTGRES`)."""
    postgres = args.postgres or os.environ.get("PARAFE_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    options = ChaosOptions(duration=args.duration, clients=args.clients, kill_every=args.kill_every,
                           restart_after=args.restart_after, pg_restarts=args.pg_restarts,
                           s3_fault_seconds=args.s3_fault_seconds, postgres=postgres,
                           workdir=Path(args.workdir) if args.workdir else None, keep=args.keep, seed=args.seed)
    try:
        import moto  # noqa: F401
    except ImportError:
        print("parafe dev chaos demande moto (pip install -e .[dev]) pour le serveur S3 de test", file=sys.stderr)
        return 2
    report = run(options)
    for line in report.lines() + report.details():
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"lines": report.lines(), "failures": report.failures,
                                               "acked": dict(report.acked)}, ensure_ascii=False, indent=2))
    return 0 if report.failures == 0 else 1


def iter_lines(report: Report) -> Iterator[str]:
    yield from report.lines()
