"""The cluster of the chaos scenario (:mod:`parafe.devtools.chaos`): one PostgreSQL database, an S3 server with
fault injection (:mod:`parafe.devtools.faulty_s3`), the homes copied from one initialised home, the ``parafe
serve`` nodes and ``parafe worker`` processes (each in its own session, so that ``kill -9`` reaches nothing else),
and the restarts of PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from parafe.devtools.chaos_report import ChaosOptions


BUCKET = "parafe-chaos"
PORTAL_SECRET = "chaos-portal-secret-0123456789abcdefghijkl"


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
