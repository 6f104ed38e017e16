"""Issue 20, point 4: absence delegation, bulk visa and the daily digest, at the service level, on SQLite and
PostgreSQL; the digest goes through a real SMTP server (aiosmtpd, the ``smtp`` fixture of test_mails.py).

The browser side (the « Absence » page, « Viser la sélection ») is in tests/portal/test_portal_issue20.py.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, CircuitRole, Delegation, HistoryEntry, User
from parafe.domain.errors import E, ParafeError
from parafe.domain.paris_time import PARIS, aware
from parafe.services import delegations, digest
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import ADMIN, AGENT, SIGNER, VISA
from parafe.services.documents.history import history
from parafe.services.portal import document_page, lists
from tests.conftest import ROOT
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, run_jobs
from tests.workflow.test_mails import Inbox, body, smtp  # noqa: F401 - the smtp fixture

TODAY = datetime.now(PARIS).date()


def _give_role(ctx: Any, email: str, role: str, circuit: str = "bureautique") -> None:
    with ctx.db.write() as session:
        user = session.scalar(select(User).where(User.email == email))
        cid = session.scalar(select(Circuit.id).where(Circuit.key == circuit,
                                                      Circuit.subscriber_id == user.subscriber_id))
        session.add(CircuitRole(circuit_id=cid, user_id=user.id, role=role))


def _states(ctx: Any, doc_id: int) -> list[str]:
    return [h["stateName"] for h in history(ctx, principal_for_email(ctx, AGENT), doc_id)]


def test_delegate_sees_and_visas_the_absent_valideurs_documents(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "deliberation-absence.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    signer = principal_for_email(ctx, SIGNER)
    # without a delegation, the signataire can neither see it as waiting nor visa it
    assert [r.id for r in lists.pending(ctx, signer)] == []
    with pytest.raises(ParafeError) as refused:
        wf.approve_visa(ctx, signer, doc_id)
    assert refused.value.error is E.STEP_NOT_ACTIONABLE
    # the signataire holds no valideur role: the delegation would give nothing, it is refused
    with pytest.raises(ParafeError) as no_role:
        delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, TODAY, TODAY + timedelta(days=3))
    assert no_role.value.error is E.DELEGATE_NO_SHARED_ROLE
    _give_role(ctx, SIGNER, "valideur")
    for bad, error in (((TODAY, TODAY - timedelta(days=1)), E.DELEGATION_PERIOD_INVALID),
                       ((TODAY - timedelta(days=9), TODAY - timedelta(days=2)), E.DELEGATION_PERIOD_INVALID)):
        with pytest.raises(ParafeError) as period:
            delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, *bad)
        assert period.value.error is error
    with pytest.raises(ParafeError) as self_:
        delegations.create(ctx, principal_for_email(ctx, VISA), VISA, TODAY, TODAY)
    assert self_.value.error is E.DELEGATION_SELF
    with pytest.raises(ParafeError) as unknown:
        delegations.create(ctx, principal_for_email(ctx, VISA), "personne@demo.parafe.test", TODAY, TODAY)
    assert unknown.value.error is E.DELEGATE_UNKNOWN
    # a delegation starting tomorrow gives nothing yet
    future = delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, TODAY + timedelta(days=1),
                                TODAY + timedelta(days=2))
    assert [r.id for r in lists.pending(ctx, signer)] == []
    delegations.end(ctx, principal_for_email(ctx, VISA), future)  # a future one is removed
    assert delegations.listing(ctx, principal_for_email(ctx, VISA)) == ([], [])

    delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, TODAY, TODAY + timedelta(days=3))
    assert [(r.id, r.action) for r in lists.pending(ctx, signer)] == [(doc_id, "visa")]
    assert lists.counts(ctx, signer).to_visa == 1
    assert "visa" in document_page.document_view(ctx, signer, doc_id).actions
    assert [p.id for p in wf.pending_for(ctx, signer)] == [doc_id]
    wf.approve_visa(ctx, signer, doc_id, "Vu pour Victor")
    run_jobs(ctx)
    with ctx.db.read() as session:
        entry = session.scalars(select(HistoryEntry).where(HistoryEntry.document_id == doc_id,
                                                           HistoryEntry.comment.like("Par délégation%"))).one()
        assert entry.user_fullname == "Sophie Signataire"  # the wire's userFullname: the actor
        assert entry.comment == "Par délégation de Victor Valideur — Vu pour Victor"
    states = _states(ctx, doc_id)
    assert "Visa approuvé" in states
    assert "Envoyé pour signature" in states  # the spec's state names, unchanged
    # the signature step: she acts as herself (no delegation note)
    given, received = delegations.listing(ctx, signer)
    assert given == []
    assert len(received) == 1
    assert received[0].active
    assert received[0].delegator == "Victor Valideur"


def test_delegation_ended_gives_nothing_and_admin_cli(ctx: Any, tmp_path: Path, home: Any) -> None:
    _give_role(ctx, SIGNER, "valideur")
    env = home.env()

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "parafe", "admin", "delegation", *args], cwd=str(ROOT),
                              env=env, capture_output=True, text=True)

    first, last = TODAY.strftime("%d/%m/%Y"), (TODAY + timedelta(days=6)).strftime("%d/%m/%Y")
    done = admin("add", "123456789", VISA, SIGNER, "--from", first, "--to", last)
    assert done.returncode == 0, done.stderr
    assert f"Victor Valideur <{VISA}> → Sophie Signataire <{SIGNER}>, du {first} au {last} (en cours)" in done.stdout
    listed = admin("list", "123456789")
    assert listed.returncode == 0
    assert "Délégation " in listed.stdout
    bad = admin("add", "123456789", VISA, AGENT, "--from", first, "--to", last)
    assert bad.returncode == 1
    assert "n'a le rôle de valideur ou de signataire sur aucun des circuits" in bad.stderr
    doc_id = deposit_file(ctx, tmp_path, "arrete-absence.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    signer = principal_for_email(ctx, SIGNER)
    assert [r.id for r in lists.pending(ctx, signer)] == [doc_id]
    number = int(done.stdout.split()[1])
    ended = admin("end", "123456789", str(number))
    assert ended.returncode == 0, ended.stderr
    assert [r.id for r in lists.pending(ctx, signer)] == []
    with pytest.raises(ParafeError):
        wf.approve_visa(ctx, signer, doc_id)
    assert admin("end", "987654321", str(number)).returncode == 1  # another subscriber's id: unknown


def test_bulk_visa(ctx: Any, tmp_path: Path) -> None:
    ids = [deposit_file(ctx, tmp_path, f"lot-{n}.pdf", pdf_bytes(1, f"lot {n}"), circuit="bureautique")
           for n in range(3)]
    run_jobs(ctx)
    visa = principal_for_email(ctx, VISA)
    wf.approve_visa(ctx, visa, ids[2])  # already visaed: reported, the others go through
    run_jobs(ctx)
    with pytest.raises(ParafeError) as empty:
        wf.approve_visas(ctx, principal_for_email(ctx, SIGNER), ids)
    assert empty.value.error is E.BULK_VISA_EMPTY
    outcomes = wf.approve_visas(ctx, visa, [ids[0], ids[1], ids[2], 99999999], "Lot du conseil")
    assert [(o.id, o.ok) for o in outcomes] == [(ids[0], True), (ids[1], True)]
    run_jobs(ctx)
    for doc_id in ids[:2]:
        assert "Visa approuvé" in _states(ctx, doc_id)
        assert "Envoyé pour signature" in _states(ctx, doc_id)


def test_daily_digest(ctx: Any, tmp_path: Path, smtp: Inbox) -> None:  # noqa: F811 - the fixture
    doc_id = deposit_file(ctx, tmp_path, "budget-2027.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    smtp.wait(1)
    before = len(smtp.messages)  # the alert of the next actor
    with ctx.db.write() as session:  # the agent opted out: never a digest (she has nothing waiting anyway)
        for user in session.scalars(select(User).where(User.email == AGENT)):
            user.digest_mail = False
    report = digest.send_digests(ctx)
    assert report.sent == 1
    smtp.wait(before + 1)
    digests = [m for m in smtp.messages[before:]]
    assert len(digests) == 1
    assert VISA in str(digests[0]["X-Envelope-To"])
    assert digests[0]["Subject"] == "Parafe : 1 document en attente de votre visa ou signature"
    text = body(digests[0])
    assert "Bonjour Victor Valideur" in text
    assert "À viser : budget-2027.pdf" in text
    assert f"/documents/{doc_id}" in text
    assert "/absence" in text
    assert digest.send_digests(ctx).sent == 0  # once a day
    assert len(smtp.messages) == before + 1
    # tomorrow, after opting out from the portal's preference: nothing
    digest.set_preference(ctx, principal_for_email(ctx, VISA).user_ids, False)
    assert digest.preference(ctx, principal_for_email(ctx, VISA).user_ids) is False
    assert digest.send_digests(ctx, TODAY + timedelta(days=1)).sent == 0
    digest.set_preference(ctx, principal_for_email(ctx, VISA).user_ids, True)
    assert digest.send_digests(ctx, TODAY + timedelta(days=1)).sent == 1
    # a delegate's digest lists the absent colleague's documents too
    _give_role(ctx, SIGNER, "valideur")
    delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, TODAY, TODAY + timedelta(days=1))
    assert digest.send_digests(ctx, TODAY + timedelta(days=2)).sent == 2
    smtp.wait(before + 4)
    to_signer = [m for m in smtp.messages if SIGNER in str(m["X-Envelope-To"]) and "Parafe :" in m["Subject"]]
    assert len(to_signer) == 1
    assert "À viser : budget-2027.pdf" in body(to_signer[0])
    assert ADMIN not in " ".join(str(m["X-Envelope-To"]) for m in smtp.messages[before:])


def test_the_replacing_colleague_gets_the_next_actor_mail(ctx: Any, tmp_path: Path, smtp: Inbox) -> None:  # noqa: F811
    _give_role(ctx, SIGNER, "valideur")
    delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, TODAY, TODAY)
    deposit_file(ctx, tmp_path, "arrete-mail-absence.pdf", pdf_bytes(), circuit="bureautique")
    run_jobs(ctx)
    smtp.wait(1)
    alerts = [m for m in smtp.messages if m["Subject"] == "Document à viser : arrete-mail-absence.pdf"]
    assert len(alerts) == 1
    assert VISA in str(alerts[0]["X-Envelope-To"])
    assert SIGNER in str(alerts[0]["X-Envelope-To"])


def test_a_delegation_starts_at_midnight_in_paris_on_every_backend(ctx: Any) -> None:
    """The period is stored as the instants of Paris midnights: read back (SQLite keeps no offset, naive = UTC),
    a delegation from D to D starts at D 00:00 Paris and ends at D+1 00:00 Paris. Stored as Paris-aware values,
    SQLite kept their wall-clock time and the delegation began at D 00:00 UTC (01:00 or 02:00 in Paris): between
    midnight and 1 a.m., an absence declared for today was not in force (seen in this suite, run at 23:50 UTC)."""
    _give_role(ctx, SIGNER, "valideur")
    day = TODAY + timedelta(days=30)  # in the future: the check "already over" never applies
    delegations.create(ctx, principal_for_email(ctx, VISA), SIGNER, day, day)
    with ctx.db.read() as session:
        row = session.scalar(select(Delegation).order_by(Delegation.id.desc()))
        starts, ends = aware(row.starts_at), aware(row.ends_at)
    assert starts == datetime(day.year, day.month, day.day, tzinfo=PARIS)
    assert ends == datetime(day.year, day.month, day.day, tzinfo=PARIS) + timedelta(days=1)
    assert starts.astimezone(PARIS).hour == 0
