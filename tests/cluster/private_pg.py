"""A throw-away PostgreSQL server of its own for the chaos run (``initdb`` + ``pg_ctl`` in a temp dir, free port).

The chaos scenario restarts PostgreSQL on purpose; doing that to the machine's shared server would break every
other test running beside it (xdist workers, other suites). This starts a private cluster with the same
binaries, owned by the ``postgres`` system user when the tests run as root (``initdb`` refuses root), and gives
the scenario its URL and the command that restarts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port


@dataclass
class PrivatePostgres:
    url: str
    restart_command: list[str]


def _bindir() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name)) if root.is_dir() else []
    if versions:
        return versions[-1] / "bin"
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private cluster in its own temp dir (not under pytest's ``tmp_path``: that is 0700 root's, and the
    server runs as ``postgres``), stopped and removed afterwards."""
    bindir = _bindir()
    if bindir is None:
        if IN_CI:
            pytest.fail("initdb not found: the chaos run needs PostgreSQL's server binaries")
        pytest.skip("initdb not found (Debian package postgresql)")
    base = Path(tempfile.mkdtemp(prefix="parafe-pg-"))
    data = base / "pgdata"
    sockets = base / "pgsock"
    data.mkdir()
    sockets.mkdir()
    if os.geteuid() == 0:
        for path in (base, data, sockets):
            shutil.chown(path, "postgres", "postgres")
        base.chmod(0o755)
    port = free_port()
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                              "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "postgres.log"), "-w"]
    subprocess.run(_as_owner([*pg_ctl, "start"]), check=True, capture_output=True, timeout=120)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("private PostgreSQL did not start")
            time.sleep(0.2)
        yield PrivatePostgres(url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                              restart_command=_as_owner([*pg_ctl, "-m", "fast", "restart"]))
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
