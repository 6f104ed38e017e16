"""Fiche de circulation (document, circuit, every history entry, comments, signatures found) and the purge."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from parafe.db.models import Document, OutboxItem, ReturnItem, utcnow
from parafe.reports.fdc import fdc_pdf
from parafe.services import steps as wf
from parafe.services.access.auth import principal_for_email
from parafe.services.demo import SIGNER, VISA
from parafe.services.retention import purge
from parafe.signing.keys import load_signer
from tests.fixtures.files import pdf_bytes
from tests.workflow.conftest import deposit_file, run_jobs


def pdf_text(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "fdc.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_fdc_lists_history_comments_and_signatures(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "marché public.pdf", pdf_bytes(), circuit="bureautique",
                          comment="Marché n°2026-14")
    run_jobs(ctx)
    wf.approve_visa(ctx, principal_for_email(ctx, VISA), doc_id, comment="Conforme au budget")
    run_jobs(ctx)
    key = load_signer(ctx.settings.resolved_home / "demo" / f"{SIGNER}.p12", "demo")
    wf.sign_with_signer(ctx, principal_for_email(ctx, SIGNER), doc_id, key)
    run_jobs(ctx)
    text = pdf_text(tmp_path, fdc_pdf(ctx, doc_id))
    for expected in ("Fiche de circulation", "marché public.pdf", str(doc_id), "Commune de Démo",
                     "Bureautique (visa puis signature)", "Alice Agent", "Marché n°2026-14", "Préparé",
                     "Envoyé pour visa", "Visa approuvé", "Victor Valideur", "Conforme au budget",
                     "Envoyé pour signature", "Signé", "Classé", "parapheur parapheur", "Sophie Signataire",
                     "valide", "Classement"):
        assert expected in text, expected


def test_purge(ctx: Any, tmp_path: Path) -> None:
    doc_id = deposit_file(ctx, tmp_path, "vieux.pdf", pdf_bytes(), circuit="serveur")
    run_jobs(ctx)
    from parafe.services.helios.returns import add_return
    from parafe.transmission.helios import HeliosSimulator

    ret_id = add_return(ctx, kind="pes_retour", data=HeliosSimulator.pes_retour(), name="r.xml", siren="123456789")
    assert purge(ctx)["documents"] == 0
    old = utcnow() - timedelta(days=16)
    with ctx.db.write() as s:
        s.execute(update(ReturnItem).values(created_at=old))
        s.execute(update(Document).values(updated_at=old))
        s.execute(update(OutboxItem).values(done_at=old))
    report = purge(ctx)
    assert report["documents"] == 1
    assert report["outbox"] == 3
    assert purge(ctx)["documents"] == 0  # idempotent
    with ctx.db.read() as s:
        assert s.get(Document, doc_id).extra["out_purged"] is True
        # the 15-day WebDAV purge hides old files from out/ (by date) but never takes a return out of the web
        # services' remaining lists: only a download or a WebDAV DELETE does (DECISIONS D11)
        assert s.scalars(select(ReturnItem.webdav_deleted_at)).one() is None
    from parafe.services.access.auth import principal_for_email
    from parafe.services.helios import returns

    assert ret_id in returns.remaining(ctx, principal_for_email(ctx, "agent@demo.parafe.test"), "123456789",
                                       "pes_retour")
