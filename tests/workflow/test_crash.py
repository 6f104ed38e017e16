"""Crash safety with real processes: ``parafe worker`` is SIGKILLed while server signatures and Helios
transmissions are between their effect (signed blob written, file handed to the Helios simulator) and their
commit; a second worker finishes the work. Every document ends in the right state exactly once: one signature,
one transmission received by Helios, one history entry per transition, nothing lost. SQLite (SqliteHuey) and
PostgreSQL (PostgresHuey)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import OutboxItem, ReturnItem
from parafe.domain.states import State
from parafe.transmission.helios import HeliosSimulator
from tests.conftest import ROOT, TESTDATA, Home
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, document, state_of, states

PES_PJ = (TESTDATA / "pes" / "samples" / "valid_PES_PJ.xml").read_bytes()


def with_nomfic(data: bytes, nom_fic: str) -> bytes:
    return re.sub(rb'<NomFic V="[^"]*"/>', f'<NomFic V="{nom_fic}"/>'.encode(), data, count=1)


def worker_env(home: Home, **extra: str) -> dict[str, str]:
    env = home.env()
    env.update(PARAFE_QUEUE="postgres" if home.backend == "postgresql" else "sqlite",
               PARAFE_JOB_LEASE_SECONDS="3", PARAFE_DISPATCH_INTERVAL="0.2", PARAFE_HELIOS_SIM_DELAY="0.5",
               PARAFE_HELIOS_POLL_SECONDS="0.3", PARAFE_JOB_BACKOFF_SECONDS="0.5", **extra)
    return env


def start_worker(home: Home, log: Path, env: dict[str, str], threads: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "parafe", "worker", "--threads", str(threads)],
                                cwd=str(ROOT), env=env, stdout=fh, stderr=subprocess.STDOUT)


def wait_for(predicate: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timeout waiting for {what}; worker log:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def pdf_signature_count(tmp_path: Path, data: bytes) -> int:
    path = tmp_path / "check.pdf"
    path.write_bytes(data)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout
    assert out.count("Signature is Valid") == out.count("Signature #"), out
    return out.count("Signature #")


SERVER_OK = [State.PREPARED, State.SENT_FOR_SIGN, State.SIGNED, State.FILED]
HELIOS_OK = [State.PREPARED, State.SENDING, State.SENT_TO_FAST, State.SENT_TO_HELIOS, State.ACKNOWLEDGED,
             State.FILED]


def test_sigkill_during_server_signature_and_helios(home: Home, ctx: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in worker_env(home).items():
        if key.startswith("PARAFE_") and key not in ("PARAFE_HOME", "PARAFE_DATABASE_URL"):
            monkeypatch.setenv(key, value)
    signed_docs = [deposit_file(ctx, tmp_path, f"arrêté-{i}.pdf", pdf_bytes(text=f"crash {i}"), circuit="serveur")
                   for i in range(3)]
    pes_docs = [deposit_file(ctx, tmp_path, f"pj-{i}.xml", with_nomfic(PES_PJ, f"PARAFE_CRASH_{i}"),
                             circuit="pes-pj") for i in range(2)]
    log = home.path / "worker.log"
    faults = home.path / "faults"
    first = start_worker(home, log, worker_env(home, PARAFE_FAULT_PAUSE="sign.server=60,helios.send=60"), 8)
    try:
        wait_for(lambda: faults.exists() and any(p.name.startswith("sign.server-") for p in faults.iterdir())
                 and any(p.name.startswith("helios.send-") for p in faults.iterdir()), 60,
                 "a paused server signature and a paused Helios send", log)
        time.sleep(0.5)
        paused = sorted(p.name for p in faults.iterdir())
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    # killed between effect and commit: nothing of those transitions is in the database
    for name in paused:
        kind, _, paused_id = name.partition("-")
        expected = State.SENT_FOR_SIGN if kind == "sign.server" else State.SENDING
        assert state_of(ctx, int(paused_id)) == expected.value, name
    sim = HeliosSimulator.for_context(ctx)
    sent_before = {t["key"] for t in sim.transmissions()}
    assert any(name.startswith("helios.send-") for name in paused)
    assert sent_before

    second = start_worker(home, log, worker_env(home), 2)
    try:
        wait_for(lambda: all(state_of(ctx, d) == State.FILED.value for d in signed_docs + pes_docs), 90,
                 "every document filed", log)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    for doc_id in signed_docs:
        assert states(ctx, doc_id) == SERVER_OK
        doc = document(ctx, doc_id)
        assert pdf_signature_count(tmp_path, ctx.store.read_bytes(doc.signed_blob_sha256 or "")) == 1
    transmissions = sim.transmissions()
    for doc_id in pes_docs:
        assert states(ctx, doc_id) == HELIOS_OK
        mine = [t for t in transmissions if str(t["key"]).startswith(f"doc-{doc_id}-")]
        assert len(mine) == 1  # Helios received the file once
    resent = [t for t in transmissions if int(str(t["duplicates"])) > 0]
    paused_helios = {int(n.partition("-")[2]) for n in paused if n.startswith("helios.send-")}
    assert {int(str(t["key"]).split("-")[1]) for t in resent} == paused_helios  # re-sends were deduplicated
    with ctx.db.read() as s:
        assert s.scalars(select(OutboxItem).where(OutboxItem.done_at.is_(None))).all() == []
        acks = list(s.scalars(select(ReturnItem.document_id).where(ReturnItem.kind == "ack")))
        assert sorted(acks) == sorted(pes_docs)
