"""Crash safety of the S²LOW transport with real processes: ``parafe worker`` is SIGKILLed

- after S²LOW stored a posted PES and before the worker received (and stored) S²LOW's answer: the next worker
  re-posts, S²LOW answers with its duplicate refusal, exactly one transaction exists on S²LOW; the document waits
  for the operator, who names the transaction (``parafe admin s2low transaction``), then finishes;
- after S²LOW's answer was stored and before the document's commit: the next worker does not post again (the
  stored transaction number is used) and the document finishes by itself.

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
from parafe.services.helios import s2low
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
    """Two documents when the worker is killed: A's post reached S²LOW but its answer did not reach the worker;
    B's answer was received and its transaction number stored, the document's commit was not done yet."""
    cert_path, key_path = double.write_client_files(double.add_user(SIREN), "commune-de-demo")
    s2low.set_account(ctx, SIREN, url=double.url, cert=cert_path.read_bytes(), key=key_path.read_bytes(),
                      ca=double.ca_file().read_bytes())
    env = worker_env(home, PARAFE_HELIOS_TRANSPORT="s2low", PARAFE_S2LOW_STATUS_POLL_SECONDS="0.2",
                     PARAFE_S2LOW_STATUS_POLL_MAX_SECONDS="0.5", PARAFE_S2LOW_TIMEOUT="5")
    for key, value in env.items():
        if key.startswith("PARAFE_") and key not in ("PARAFE_HOME", "PARAFE_DATABASE_URL"):
            monkeypatch.setenv(key, value)
    double.hold_import, double.hold_only = threading.Event(), "perdu"  # S²LOW stores A, then holds its answer
    doc_a = deposit_file(ctx, tmp_path, "a-perdu.xml", with_nomfic(PES_PJ, "PARAFE_S2LOW_CRASH_A"), circuit="pes-pj")
    doc_b = deposit_file(ctx, tmp_path, "b-pause.xml", with_nomfic(PES_PJ, "PARAFE_S2LOW_CRASH_B"), circuit="pes-pj")
    log = home.path / "worker.log"
    faults = home.path / "faults"
    first = start_worker(home, log, {**env, "PARAFE_FAULT_PAUSE": "helios.send=60"}, 4)
    try:
        wait_for(lambda: double.import_received.is_set() and (faults / f"helios.send-{doc_b}").exists(), 60,
                 "A received by S²LOW, B's answer stored and its commit paused", log)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    double.hold_import.set()  # A's answer goes nowhere: its reader is dead
    # S²LOW has both transactions; Parafe has A's intent only, B's intent with its number
    assert len(double.transactions_of(SIREN)) == 2
    tid_a = next(t.id for t in double.transactions_of(SIREN) if t.filename == "a-perdu.xml")
    tid_b = next(t.id for t in double.transactions_of(SIREN) if t.filename == "b-pause.xml")
    assert state_of(ctx, doc_a) == state_of(ctx, doc_b) == State.SENDING.value
    with ctx.db.read() as session:
        intents = {i.document_id: i for i in session.scalars(select(S2lowTransaction))}
    assert intents[doc_a].transaction_id is None
    assert intents[doc_a].attempts == 1
    assert intents[doc_b].transaction_id == str(tid_b)
    assert intents[doc_b].attempts == 1

    second = start_worker(home, log, env, 2)
    try:
        wait_for(lambda: state_of(ctx, doc_b) == State.FILED.value
                 and state_of(ctx, doc_a) == State.SENT_TO_FAST.value, 90, "B filed, A's re-post answered", log)
        assert len(double.transactions_of(SIREN)) == 2  # the re-post of A created nothing
        assert double.posts.count("b-pause.xml") == 1  # B was not posted again: its number was stored
        comment = history(ctx, doc_a)[-1].comment or ""
        assert "doublon détecté" in comment
        assert "réponse a été perdue" in comment
        # the operator names A's transaction, with the command
        r = subprocess.run([sys.executable, "-m", "parafe", "admin", "s2low", "transaction", str(doc_a), str(tid_a)],
                           cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"transaction S²LOW n°{tid_a} enregistrée" in r.stdout
        wait_for(lambda: state_of(ctx, doc_a) == State.FILED.value, 60, "A filed", log)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert states(ctx, doc_b) == [State.PREPARED, State.SENDING, State.SENT_TO_FAST, State.SENT_TO_HELIOS,
                                  State.ACKNOWLEDGED, State.FILED]
    assert states(ctx, doc_a) == [State.PREPARED, State.SENDING, State.SENT_TO_FAST, None, State.SENT_TO_HELIOS,
                                  State.ACKNOWLEDGED, State.FILED]
    assert len(double.transactions) == 2
    with ctx.db.read() as session:
        intent = session.scalar(select(S2lowTransaction).where(S2lowTransaction.document_id == doc_a))
        assert intent is not None
        assert intent.transaction_id == str(tid_a)
        assert intent.attempts >= 2
        # every re-post of A (a job whose lease ran out runs again) met S²LOW's duplicate refusal
        assert double.posts.count("a-perdu.xml") == intent.attempts
        acks = list(session.scalars(select(ReturnItem.document_id).where(ReturnItem.kind == "ack")))
    assert sorted(acks) == sorted([doc_a, doc_b])
