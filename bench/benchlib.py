"""Pieces shared by the bench scripts (each script imports it from its own folder): sample PDFs, a free port,
the CPU time of a server and its worker processes, throw-away PostgreSQL databases.

A PDF grown to a size is grown by page content (text drawn without compression), so that it stays a valid PDF
whose ``startxref`` is where readers look for it: padding it after ``startxref`` (inside a comment) makes every
PDF reader reconstruct the cross-reference table by scanning the whole file, which is not what a real 100 KB
PDF costs. Distinct copies differ by a comment appended after ``%%EOF`` (a few bytes, allowed).
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path


def pdf_of_size(size: int, seed: str) -> bytes:
    """A one-page valid PDF of about ``size`` bytes (at least the size of an empty page)."""
    from reportlab.pdfgen import canvas

    def build(lines: int) -> bytes:
        buf = io.BytesIO()
        c = canvas.Canvas(buf, pageCompression=0)
        c.drawString(72, 720, f"bench {seed}")
        for i in range(lines):
            c.drawString(72, 700 - (i % 60) * 10, f"{seed} ligne {i:06d} lorem ipsum dolor sit amet consectetur")
        c.showPage()
        c.save()
        return buf.getvalue()

    base = len(build(0))
    per_line = max(1, len(build(10)) - base) / 10
    return build(max(0, int((size - base) / per_line)))


def pdf_of_pages(pages: int = 5) -> bytes:
    """A PDF of ``pages`` text pages (an « arrêté »), for the signature benches."""
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        c.drawString(72, 760, f"Arrêté municipal — page {i + 1}")
        for j in range(40):
            c.drawString(72, 720 - 16 * j, f"Article {j + 1} : le présent arrêté est exécutoire.")
        c.showPage()
    c.save()
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(home: Path, env: dict[str, str], root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``parafe serve`` on a free port with ``env`` (its log in ``home/server.log``) and wait for
    ``/healthz``: the process and the base URL. The caller terminates the process."""
    import httpx

    port = free_port()
    url = f"https://127.0.0.1:{port}"
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "parafe", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--log-level", "warning"], cwd=str(root), env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    ca = str(home / "pki" / "ca.pem")
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", verify=ca, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.terminate()
            raise RuntimeError("the server did not start (see server.log)")
        time.sleep(0.2)


class MachineCpu:
    """Busy cores of the whole machine over time (``/proc/stat``, sampled every ``interval`` seconds in a thread):
    :meth:`busy` gives the mean number of busy cores between two ``time.time()`` moments. On a 2-core machine a
    configuration that already keeps 1.25 cores busy cannot be made more than 2 / 1.25 = 1.6 times faster by
    adding processes: the bench prints it next to the rates it compares."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (time, total jiffies, idle jiffies)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read() -> tuple[int, int]:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except OSError:
            return 0, 0
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait

    def _loop(self) -> None:
        while not self._stop.is_set():
            total, idle = self._read()
            self.samples.append((time.time(), total, idle))
            self._stop.wait(self.interval)

    def __enter__(self) -> MachineCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def busy(self, start: float, end: float) -> float:
        """Mean busy cores between ``start`` and ``end`` (0 when the window holds fewer than two samples)."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 2 or window[-1][1] == window[0][1]:
            return 0.0
        total = window[-1][1] - window[0][1]
        idle = window[-1][2] - window[0][2]
        return (os.cpu_count() or 1) * (total - idle) / total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (``parafe serve`` forks one server process
    per core), from Linux ``/proc``; 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            children = []
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


def _admin(admin_url: str, sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A new empty database next to ``admin_url``'s: (its URL, its name)."""
    name = f"parafe_bench_{uuid.uuid4().hex[:10]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name, name


def drop_pg_database(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def command_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a timed command: this one without ``PARAFE_*`` settings, with Python's bytecode cached in
    ``cache_dir`` (as in an installed package, whose ``.pyc`` files exist; ``PYTHONDONTWRITEBYTECODE`` would make
    every run recompile Parafe's modules). Run each command once untimed to fill the cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return env


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` to completion: its wall time and its CPU time (user + system, children included), in seconds.
    The CPU time hardly depends on what else the machine runs; the wall time does. A failure stops the bench."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, stdin=subprocess.DEVNULL, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def file_create_us(directory: Path | str | None = None, count: int = 100) -> float:
    """Microseconds of one file creation in a new folder of ``directory`` (the system's temporary folder by default),
    the median of ``count``. On an ext4 file system without a journal (these machines' root) it shows whether
    files deleted in the last minutes are still slowing creations down (the kernel skips such inodes one by one):
    ~15 µs on a quiet file system, up to ~800 µs after a bench deleted its home. Printed by the benches that
    create files on their hot path, so that a figure can be read with the state of the file system it met."""
    import statistics
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=directory, prefix="parafe-fs-probe-"))
    times = []
    try:
        for index in range(count):
            began = time.perf_counter()
            os.close(os.open(folder / f"f{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            times.append(time.perf_counter() - began)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 1e6 * statistics.median(times)


def settle_file_system(limit_us: float = 40.0, wait_seconds: float = 420.0) -> float:
    """Wait (at most ``wait_seconds``) until a file creation costs less than ``limit_us`` (:func:`file_create_us`),
    reporting on stderr while it waits; returns the last cost measured. A bench started right after another one
    (or after the test suite) would otherwise measure the kernel skipping the inodes that run deleted, not Parafe
    (ext4 without a journal: an inode freed less than 60 s ago, 360 s while its table block is dirty, is checked
    and skipped at every creation in its group)."""
    deadline = time.monotonic() + wait_seconds
    cost = file_create_us()
    while cost > limit_us and time.monotonic() < deadline:
        print(f"  file creation costs {cost:.0f} µs (files deleted recently): waiting for the file system to settle",
              file=sys.stderr, flush=True)
        time.sleep(15)
        cost = file_create_us()
    return cost


_TO_DELETE: list[Path] = []


def delete_at_exit(*paths: Path) -> None:
    """Delete these folders when the bench ends, not now: the files a run deletes slow every file creation down
    for minutes on these machines (:func:`settle_file_system`), and the next configuration of the same bench would
    pay for this one's clean-up."""
    if not _TO_DELETE:
        atexit.register(_delete_all)
    _TO_DELETE.extend(Path(path) for path in paths)


def _delete_all() -> None:
    for path in _TO_DELETE:
        shutil.rmtree(path, ignore_errors=True)
