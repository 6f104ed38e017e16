"""Crash safety of the S²LOW transport with real processes: ``parafe worker`` is SIGKILLed after S²LOW stored the
posted PES and before the worker received (and stored) S²LOW's answer. The next worker re-posts, S²LOW answers
with its duplicate refusal: exactly one transaction exists on S²LOW; the document waits for the operator, who
names the transaction (``parafe admin s2low transaction``); the circuit then finishes with its acknowledgement.
SQLite (SqliteHuey) and PostgreSQL (PostgresHuey)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import ReturnItem, S2lowTransaction
from parafe.domain.states import State
from parafe.services import s2low
from tests.conftest import ROOT, TESTDATA, Home
from tests.doubles.s2low import S2lowDouble
from tests.workflow.conftest import deposit_file, history, state_of, states
from tests.workflow.test_crash import start_worker, wait_for, with_nomfic, worker_env

SIREN = "123456789"
PES_PJ = (TESTDATA / "pes" / "samples" / "valid_PES_PJ.xml").read_bytes()


@pytest.fixture
def double(tmp_path: Path) -> Iterator[S2lowDouble]:
    d = S2lowDouble(tmp_path / "s2low").start()
    yield d
    d.stop()


def test_sigkill_between_s2low_post_and_its_answer(home: Home, ctx: Any, tmp_path: Path, double: S2lowDouble,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cert_path, key_path = double.write_client_files(double.add_user(SIREN), "commune-de-demo")
    s2low.set_account(ctx, SIREN, url=double.url, cert=cert_path.read_bytes(), key=key_path.read_bytes(),
                      ca=double.ca_file().read_bytes())
    env = worker_env(home, PARAFE_HELIOS_TRANSPORT="s2low", PARAFE_S2LOW_STATUS_POLL_SECONDS="0.2",
                     PARAFE_S2LOW_STATUS_POLL_MAX_SECONDS="0.5", PARAFE_S2LOW_TIMEOUT="5")
    for key, value in env.items():
        if key.startswith("PARAFE_") and key not in ("PARAFE_HOME", "PARAFE_DATABASE_URL"):
            monkeypatch.setenv(key, value)
    double.hold_import = threading.Event()  # S²LOW stores the file, then holds its answer
    doc_id = deposit_file(ctx, tmp_path, "pj.xml", with_nomfic(PES_PJ, "PARAFE_S2LOW_CRASH"), circuit="pes-pj")
    log = home.path / "worker.log"
    first = start_worker(home, log, env, 2)
    try:
        wait_for(double.import_received.is_set, 60, "the PES received by S²LOW", log)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    double.hold_import.set()  # the answer goes nowhere: its reader is dead
    # S²LOW has the transaction; Parafe has only the intent
    assert len(double.transactions_of(SIREN)) == 1
    tid = double.transactions_of(SIREN)[0].id
    assert state_of(ctx, doc_id) == State.SENDING.value
    with ctx.db.read() as session:
        intent = session.scalar(select(S2lowTransaction).where(S2lowTransaction.document_id == doc_id))
        assert intent is not None and intent.transaction_id is None and intent.attempts == 1

    second = start_worker(home, log, env, 2)
    try:
        wait_for(lambda: state_of(ctx, doc_id) == State.SENT_TO_FAST.value, 60, "the re-post's answer", log)
        assert len(double.transactions_of(SIREN)) == 1  # the re-post created nothing
        comment = history(ctx, doc_id)[-1].comment or ""
        assert "doublon détecté" in comment and "réponse a été perdue" in comment
        # the operator names the transaction, with the command
        r = subprocess.run([sys.executable, "-m", "parafe", "admin", "s2low", "transaction", str(doc_id), str(tid)],
                           cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"transaction S²LOW n°{tid} enregistrée" in r.stdout
        wait_for(lambda: state_of(ctx, doc_id) == State.FILED.value, 60, "the document filed", log)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert states(ctx, doc_id) == [State.PREPARED, State.SENDING, State.SENT_TO_FAST, None, State.SENT_TO_HELIOS,
                                   State.ACKNOWLEDGED, State.FILED]
    assert len(double.transactions) == 1
    with ctx.db.read() as session:
        intent = session.scalar(select(S2lowTransaction).where(S2lowTransaction.document_id == doc_id))
        assert intent is not None and intent.transaction_id == str(tid) and intent.attempts >= 2
        # every re-post (a job whose lease ran out runs again) met S²LOW's duplicate refusal
        assert sum(1 for method, _path in double.requests if method == "POST") == intent.attempts
        assert list(session.scalars(select(ReturnItem.document_id).where(ReturnItem.kind == "ack"))) == [doc_id]
