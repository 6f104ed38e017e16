"""Shared test fixtures: a fresh Parafe home per test on SQLite or PostgreSQL, the demo set, a real server.

- ``backend`` is parametrised over ``sqlite`` and ``postgresql``. PostgreSQL comes from
  ``PARAFE_TEST_POSTGRES_URL`` (``./test.sh`` sets it to the local server); without it the PostgreSQL half is
  skipped with a reason locally, and FAILS in CI (``CI=true``), where PostgreSQL must be there.
- The dev PKI (RSA keys) is generated once per test session and copied into each home.
- ``live_server`` starts ``parafe serve`` as a real process over TLS on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec"  # interface document, reference, decisions, WSDL, research notes
TESTDATA = ROOT / "tests" / "data"  # PES / Chorus samples and the PES XSD checksums
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_admin_url() -> str | None:
    return os.environ.get("PARAFE_TEST_POSTGRES_URL")


def _require_postgres() -> str:
    url = postgres_admin_url()
    if not url:
        if IN_CI:
            pytest.fail("PARAFE_TEST_POSTGRES_URL is not set in CI: the PostgreSQL half of the suite must run")
        pytest.skip("PostgreSQL not configured (set PARAFE_TEST_POSTGRES_URL, as ./test.sh does)")
    return url


def _pg_url_for(admin_url: str, dbname: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{dbname}"


def create_postgres_database(prefix: str = "parafe_t") -> tuple[str, str]:
    """A new empty PostgreSQL database; returns (url, name)."""
    import sqlalchemy as sa

    admin = _require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # server down
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL unreachable: {exc.__class__.__name__}")
    finally:
        engine.dispose()
    return _pg_url_for(admin, name), name


def drop_postgres_database(name: str) -> None:
    import sqlalchemy as sa

    admin = postgres_admin_url()
    if not admin:
        return
    engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def job_kinds() -> None:
    """Parafe's outbox kinds, registered as the application and the worker do at start-up (issue 19)."""
    from parafe.composition import install_jobs

    install_jobs()


@pytest.fixture(scope="session")
def pki_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev PKI and demo certificates, generated once per test session (worker)."""
    from parafe.security import pki_dev
    from parafe.services.demo import DEMO_USERS

    home = tmp_path_factory.mktemp("pki-template")
    pki_dev.init_dev_pki(home, [(u.email, f"{u.firstname} {u.lastname}") for u in DEMO_USERS])
    return home


@dataclass
class Home:
    path: Path
    backend: str
    database_url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
        # one server process: tests that read the server's memory or signal it address that process (the
        # multi-process server has its own tests, tests/api/test_workers.py)
        env.update(PARAFE_HOME=str(self.path), PARAFE_DATABASE_URL=self.database_url, PARAFE_WORKERS="1")
        if postgres_admin_url():
            env["PARAFE_TEST_POSTGRES_URL"] = postgres_admin_url() or ""
        return env

    def demo(self, email: str) -> tuple[str, str]:
        return (str(self.path / "demo" / f"{email}.pem"), str(self.path / "demo" / f"{email}.key"))

    def bad(self, which: str) -> tuple[str, str]:
        return (str(self.path / "demo" / "bad" / f"{which}.pem"), str(self.path / "demo" / "bad" / f"{which}.key"))

    @property
    def ca(self) -> str:
        return str(self.path / "pki" / "ca.pem")

    def ssl_context(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the dev CA, presenting ``cert`` (PEM cert, key) when given."""
        context = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            context.load_cert_chain(cert[0], cert[1])
        return context


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Env:
    """Point the PARAFE_* environment at a home for the duration of a block (other PARAFE_* saved)."""

    def __init__(self, path: Path, url: str) -> None:
        self.path, self.url = path, url
        self.backup: dict[str, str] = {}

    def __enter__(self) -> None:
        from parafe.config import reset_settings

        self.backup = {k: v for k, v in os.environ.items()
                       if k.startswith("PARAFE_") and k != "PARAFE_TEST_POSTGRES_URL"}
        for key in self.backup:
            os.environ.pop(key)
        os.environ["PARAFE_HOME"] = str(self.path)
        os.environ["PARAFE_DATABASE_URL"] = self.url
        reset_settings()

    def __exit__(self, *exc: object) -> None:
        from parafe.config import reset_settings

        os.environ.pop("PARAFE_HOME", None)
        os.environ.pop("PARAFE_DATABASE_URL", None)
        os.environ.update(self.backup)
        reset_settings()


def init_home(path: Path, url: str) -> None:
    """Initialise a home (migrations, dev PKI, demo set) at ``path`` on database ``url`` (module-scoped servers)."""
    from parafe.cli import initialise

    with _Env(path, url):
        initialise(verbose=False)


@pytest.fixture(scope="session")
def home_templates(
    tmp_path_factory: pytest.TempPathFactory, pki_template: Path,
) -> Iterator[dict[str, tuple[Path, str]]]:
    """Initialised homes (migrated database + demo set), made once per test worker and backend, then copied.

    Copying a template (a directory, or ``CREATE DATABASE … TEMPLATE`` on PostgreSQL) instead of migrating and
    loading the demo set for every test keeps the suite fast; each test still gets its own database.
    """
    templates: dict[str, tuple[Path, str]] = {}
    yield templates
    for _path, dbname in templates.values():
        if dbname:
            drop_postgres_database(dbname)


def _template(templates: dict[str, tuple[Path, str]], backend: str, factory: pytest.TempPathFactory,
              pki_template: Path) -> tuple[Path, str]:
    if backend not in templates:
        path = factory.mktemp(f"template-{backend}") / "home"
        shutil.copytree(pki_template, path)
        if backend == "sqlite":
            url, dbname = f"sqlite:///{path / 'parafe.db'}", ""
        else:
            url, dbname = create_postgres_database("parafe_tpl")
        init_home(path, url)
        templates[backend] = (path, dbname)
    return templates[backend]


def _clone_postgres(template: str) -> tuple[str, str]:
    import sqlalchemy as sa

    admin = _require_postgres()
    name = f"parafe_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        engine.dispose()
    return _pg_url_for(admin, name), name


@pytest.fixture
def home(backend: str, tmp_path: Path, pki_template: Path, home_templates: dict[str, tuple[Path, str]],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A fresh, initialised Parafe home (migrated database + demo set) on the chosen backend."""
    if backend == "postgresql":
        _require_postgres()
    template_path, template_db = _template(home_templates, backend, tmp_path_factory, pki_template)
    path = tmp_path / "home"
    shutil.copytree(template_path, path)
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{path / 'parafe.db'}"
    else:
        url, dbname = _clone_postgres(template_db)
    try:
        with _Env(path, url):
            yield Home(path=path, backend=backend, database_url=url)
    finally:
        if dbname:
            drop_postgres_database(dbname)


@pytest.fixture
def ctx(home: Home) -> Iterator[object]:
    """An :class:`parafe.context.AppContext` on the fresh home."""
    from parafe.config import get_settings
    from parafe.context import AppContext

    context = AppContext.from_settings(get_settings())
    yield context
    context.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    home: Home
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, email: str | None = None, cert: tuple[str, str] | None = None, **kwargs: object) -> httpx.Client:
        if email is not None:
            cert = self.home.demo(email)
        return httpx.Client(base_url=self.url, verify=self.home.ssl_context(cert), timeout=60, **kwargs)  # type: ignore[arg-type]


@dataclass
class ServedHome:
    """A live server and an application context on its home, shared by a test module (REST, WebDAV, OSS)."""

    server: LiveServer
    ctx: Any

    @property
    def home(self) -> Home:
        return self.server.home

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_password(self) -> str:
        return (self.home.path / "demo" / "admin-password.txt").read_text().strip()

    def client(self, email: str | None = None, **kwargs: Any) -> httpx.Client:
        return self.server.client(email, **kwargs)

    def basic(self, login: str = "admin@demo.parafe.test", password: str | None = None) -> httpx.Client:
        """A client with Basic credentials and no certificate."""
        return httpx.Client(base_url=self.url, verify=self.home.ssl_context(), timeout=60,
                            auth=(login, self.admin_password if password is None else password))


def start_server(home: Home, extra_env: dict[str, str] | None = None, *, tls: bool = True) -> LiveServer:
    port = free_port()
    log = home.path / f"server-{port}.log"
    env = home.env()
    env.update(extra_env or {})
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", *([] if tls else ["--no-tls"])],
            cwd=str(ROOT), env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", verify=home.ssl_context(), timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return LiveServer(url=url, home=home, process=process, log=log)


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture
def live_server(home: Home) -> Iterator[LiveServer]:
    """``parafe serve`` over TLS on a free port, on the fresh home."""
    server = start_server(home)
    try:
        yield server
    finally:
        stop_server(server)
