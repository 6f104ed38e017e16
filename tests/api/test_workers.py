"""``parafe serve --workers 2``: the parent accepts and spreads keep-alive connections evenly over the server
processes (parafe.server.dispatch); a dead server process is skipped; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _established_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED, server side
                inodes.add(fields[9])
    return inodes


def _connections_of(pid: int, port: int) -> int:
    wanted = _established_inodes(port)
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in wanted:
            count += 1
    return count


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _clients(home: Home, n: int) -> list[httpx.Client]:
    ctx: ssl.SSLContext = home.ssl_context(home.demo("agent@demo.parafe.test"))
    return [httpx.Client(verify=ctx, limits=httpx.Limits(max_connections=1), timeout=10) for _ in range(n)]


def test_connections_are_spread_over_the_workers_and_a_dead_worker_is_skipped(home: Home) -> None:
    server = start_server(home, {"PARAFE_WORKERS": "2", "PARAFE_WORKER_IN_PROCESS": "false"})
    clients: list[httpx.Client] = []
    children: list[int] = []
    try:
        clients += _clients(home, 8)
        children = _children(server.process.pid)
        assert len(children) == 2
        port = int(server.url.rsplit(":", 1)[1])
        for client in clients:  # 8 keep-alive connections, opened one after the other
            assert client.get(f"{server.url}/healthz").status_code == 200
        counts = sorted(_connections_of(pid, port) for pid in children)
        assert counts == [4, 4], counts
        # the parent holds none of them: it only accepts and hands over
        assert _connections_of(server.process.pid, port) == 0

        for client in clients[:4]:  # closed connections are counted down: new ones still balance
            client.close()
        assert _eventually(lambda: sorted(_connections_of(pid, port) for pid in children) == [2, 2])
        fresh = _clients(home, 2)
        clients += fresh
        for client in fresh:
            assert client.get(f"{server.url}/healthz").status_code == 200
        assert _eventually(lambda: sorted(_connections_of(pid, port) for pid in children) == [3, 3])

        os.kill(children[0], signal.SIGKILL)  # a server process dies: the other one takes every new connection
        time.sleep(0.6)
        for _ in range(6):
            with _clients(home, 1)[0] as client:
                assert client.get(f"{server.url}/healthz").status_code == 200
    finally:
        for client in clients:
            client.close()
        stop_server(server)
    assert _children_gone(children) == []


def _children_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 10
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()
                 and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
        time.sleep(0.1)
    return alive


def test_sigterm_stops_every_worker(home: Home) -> None:
    server = start_server(home, {"PARAFE_WORKERS": "2", "PARAFE_WORKER_IN_PROCESS": "false"})
    try:
        children = _children(server.process.pid)
        with _clients(home, 1)[0] as client:
            assert client.get(f"{server.url}/healthz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        assert _children_gone(children) == []
    finally:
        stop_server(server)


def test_the_workers_exit_when_the_parent_dies(home: Home) -> None:
    """A killed parent (no signal forwarding possible) closes the hand-over channels: the servers stop; the job
    process, which has no channel, follows its parent too (``PR_SET_PDEATHSIG``)."""
    server = start_server(home, {"PARAFE_WORKERS": "2"})
    try:
        children = _children(server.process.pid)
        assert len(children) == 3
        server.process.kill()
        server.process.wait(timeout=15)
        assert _children_gone(children) == []
    finally:
        stop_server(server)


def test_one_server_process_per_core_by_default(home: Home) -> None:
    from parafe.config import Settings

    assert Settings.model_fields["workers"].default == 0  # 0: one per available core
    server = start_server(home, {"PARAFE_WORKERS": "0", "PARAFE_WORKER_IN_PROCESS": "false"})
    try:
        cores = len(os.sched_getaffinity(0))
        assert len(_children(server.process.pid)) == (cores if cores > 1 else 0)
        assert f"({cores} processus" in server.log.read_text(encoding="utf-8")
    finally:
        stop_server(server)


def test_the_parent_fails_when_every_worker_died(home: Home) -> None:
    server = start_server(home, {"PARAFE_WORKERS": "2", "PARAFE_WORKER_IN_PROCESS": "false"})
    try:
        for pid in _children(server.process.pid):
            os.kill(pid, signal.SIGKILL)
        assert server.process.wait(timeout=15) == 1
        assert "un processus serveur s'est arrêté en erreur" in server.log.read_text(encoding="utf-8")
    finally:
        stop_server(server)


def _wake_pids(home: Home) -> set[int]:
    """Processes whose wake socket is registered in ``$PARAFE_HOME/run/wake/`` (a worker's executors)."""
    wake = home.path / "run" / "wake"
    return {int(p.name.split("-", 1)[0]) for p in wake.iterdir()} if wake.is_dir() else set()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and \
        "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _signed(server: LiveServer, name: str) -> None:
    with server.client("agent@demo.parafe.test") as agent:
        r = agent.post("/parapheur-ws/rest/v1/documents/v2/123456789/serveur/upload",
                       files={"content": (name, pdf_bytes(), "application/pdf")})
        assert r.status_code == 200, r.text
        assert _eventually(lambda: "Signé" in agent.get(
            f"/parapheur-ws/rest/v1/documents/v2/{r.text}/history").text, 60), "the server signature did not happen"


def test_the_jobs_run_in_a_process_of_their_own(home: Home) -> None:
    """With several server processes the workflow runs in one job process beside them (executors and periodic
    tasks, as ``parafe worker``), not in the processes that answer requests: only it registers a wake socket,
    and a deposit in a server-signature circuit is signed."""
    server = start_server(home, {"PARAFE_WORKERS": "2"})
    try:
        children = _children(server.process.pid)
        assert len(children) == 3  # two server processes and the job process
        assert _eventually(lambda: len(_wake_pids(home)) == 1), _wake_pids(home)
        (job,) = _wake_pids(home)
        assert job in children
        port = int(server.url.rsplit(":", 1)[1])
        clients = _clients(home, 4)
        try:
            for client in clients:
                assert client.get(f"{server.url}/healthz").status_code == 200
            assert _connections_of(job, port) == 0  # it is given no connection
        finally:
            for client in clients:
                client.close()
        _signed(server, "processus-des-taches.pdf")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert _children_gone(children) == []
    finally:
        stop_server(server)


def test_a_killed_job_process_is_restarted(home: Home) -> None:
    server = start_server(home, {"PARAFE_WORKERS": "2"})
    try:
        assert _eventually(lambda: len(_wake_pids(home)) == 1), _wake_pids(home)
        (job,) = _wake_pids(home)
        os.kill(job, signal.SIGKILL)
        assert _eventually(lambda: any(pid != job and _alive(pid) for pid in _wake_pids(home)), 20), \
            _wake_pids(home)
        assert job not in _children(server.process.pid)
        assert len(_children(server.process.pid)) == 3
        _signed(server, "apres-relance.pdf")  # the new job process runs the workflow
        assert "le processus des tâches" in server.log.read_text(encoding="utf-8")
    finally:
        stop_server(server)
