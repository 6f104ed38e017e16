"""The orphan-blob sweeper: unreferenced blobs older than the grace period go, everything else stays."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Document
from parafe.services.blob_sweep import sweep_orphan_blobs
from parafe.services.retention import purge
from tests.conftest import ROOT, Home
from tests.unit.services._helpers import deposit_pdf

DAY = 24 * 3600


def _age(ctx: Any, sha256: str, seconds: float) -> None:
    path = ctx.store.local_path(sha256)
    assert path is not None
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweeps_old_orphans_only(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_pdf(ctx, tmp_path)
    with ctx.db.read() as session:
        kept = session.scalar(select(Document.blob_sha256).where(Document.id == doc_id))
    old_orphan = ctx.store.put_bytes(b"orphan from a refused deposit").sha256
    young_orphan = ctx.store.put_bytes(b"orphan of a deposit about to commit").sha256
    json_ref = ctx.store.put_bytes(b"ACK helios").sha256
    with ctx.db.write() as session:
        document = session.get(Document, doc_id)
        document.extra = {**document.extra, "helios": {"ack_sha256": json_ref}}
    for sha in (kept, old_orphan, json_ref):
        _age(ctx, sha, 3 * DAY)
    _age(ctx, young_orphan, 1800)

    dry = sweep_orphan_blobs(ctx, dry_run=True)
    assert (dry.deleted, dry.recent, dry.referenced) == (1, 1, 2)
    assert ctx.store.exists(old_orphan)  # a dry run deletes nothing

    report = sweep_orphan_blobs(ctx)
    assert (report.blobs, report.referenced, report.recent, report.deleted) == (4, 2, 1, 1)
    assert report.freed_bytes == len(b"orphan from a refused deposit")
    assert not ctx.store.exists(old_orphan)
    for sha in (kept, young_orphan, json_ref):
        assert ctx.store.exists(sha)

    # a shorter grace period takes the young orphan once it is older than that; referenced blobs never go
    assert sweep_orphan_blobs(ctx, grace=timedelta(hours=1)).deleted == 0
    _age(ctx, young_orphan, 2 * 3600)
    assert sweep_orphan_blobs(ctx, grace=timedelta(hours=1)).deleted == 1
    assert ctx.store.exists(kept)
    assert ctx.store.exists(json_ref)


def test_a_grace_period_under_an_hour_is_refused(ctx: Any) -> None:
    with pytest.raises(ValueError, match="délai de grâce"):
        sweep_orphan_blobs(ctx, grace=timedelta(minutes=5))


def test_the_daily_purge_sweeps(ctx: Any) -> None:
    orphan = ctx.store.put_bytes(b"left by a crash").sha256
    _age(ctx, orphan, 2 * DAY)
    assert purge(ctx)["orphan_blobs"] == 1
    assert not ctx.store.exists(orphan)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_admin_command(home: Home, ctx: Any) -> None:
    orphan = ctx.store.put_bytes(b"orphan for the command").sha256
    _age(ctx, orphan, 2 * DAY)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "parafe", "admin", "blobs", "sweep", *args], env=home.env(),
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    dry = run("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 orphelins à supprimer (simulation)" in dry.stdout
    assert ctx.store.exists(orphan)
    bad = run("--grace-hours", "0.5")
    assert bad.returncode == 1
    assert "le délai de grâce doit être d'au moins une heure" in bad.stderr
    done = run()
    assert done.returncode == 0, done.stderr
    assert "1 orphelins supprimés" in done.stdout
    assert not ctx.store.exists(orphan)
