"""O5 ``downloadDoc`` and O6 ``docInformation``: content, every field of §3.5.6 with its exact name, first download
date, retention (``dateToPurge``) and purge, and who may read what (an agent of one OSS workflow cannot read the
documents of another; no existence oracle)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from parafe.domain.errors import E
from parafe.services import demo as demo_set
from parafe.services.oss import purge as oss_purge
from parafe.services.oss import workflows as oss_workflows
from tests.api.oss.helpers import (
    ADMIN,
    AGENT,
    DOCINFO_FIELDS,
    OTHER,
    VISA,
    Oss,
    error,
    meta_xml,
    post_doc,
    validate,
)
from tests.fixtures.files import pdf_bytes


def _iso(value: str) -> datetime:
    assert value.endswith("Z"), value
    assert len(value) == 24, value  # 2026-11-28T10:00:00.000Z
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_download_and_information(oss: Oss, tmp_path: Path) -> None:
    meta = meta_xml(REFERENCE="INFO-1")
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc", name="délibération.pdf", meta=meta)
        assert r.status_code == 200, r.text
        doc_id = int(r.headers["X-FAST-document-id"])
        info = agent.get(f"/oss/docInformation/{doc_id}")
        assert info.status_code == 200
        body = info.json()
        assert set(body) == DOCINFO_FIELDS
        assert body["id"] == doc_id
        assert body["filename"] == "délibération.pdf"
        created, signed_at, to_purge = (_iso(body[k]) for k in ("creationDate", "signatureDate", "dateToPurge"))
        assert created <= signed_at
        assert abs(to_purge - created - timedelta(days=30)) < timedelta(seconds=5)
        assert body["purgeDate"] is None
        assert body["downloadDate"] is None
        # archiveDate: the date the signed document was archived (kept for its retention period), i.e. stored
        # at the signature; null while the document is not signed (see test_unsigned_document_is_downloadable)
        assert body["archiveDate"] == body["signatureDate"]
        assert base64.b64decode(body["metadate"]) == meta
        assert body["filesize"] == len(r.content)
        assert body["logs"] == []
        assert body["redirectionURL"] is None
        assert body["Smsdate"] is None
        assert body["SMSRemainingTriesNb"] is None
        assert body["smsexpirationDate"] is None

        first = agent.get(f"/oss/downloadDoc/{doc_id}")
        assert first.status_code == 200
        assert first.content == r.content
        assert first.headers["content-type"] == "application/pdf"
        validate(first.content, tmp_path, oss.home.path)
        downloaded = agent.get(f"/oss/docInformation/{doc_id}").json()["downloadDate"]
        assert downloaded is not None
        assert agent.get(f"/oss/downloadDoc/{doc_id}").status_code == 200
        assert agent.get(f"/oss/docInformation/{doc_id}").json()["downloadDate"] == downloaded  # the first one


def test_unsigned_document_is_downloadable(oss: Oss) -> None:
    original = pdf_bytes(text="pas encore signé")
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "uploadSA", data=original, redirectionUrl="https://editeur.test/retour?x=1")
        assert r.status_code == 200, r.text
        doc_id = r.json()["docId"]
        got = agent.get(f"/oss/downloadDoc/{doc_id}")
        assert got.status_code == 200
        assert got.content == original  # "qu'il soit signé ou non"
        info = agent.get(f"/oss/docInformation/{doc_id}").json()
        assert info["signatureDate"] is None
        assert info["archiveDate"] is None
        assert info["filesize"] == len(original)
        assert info["redirectionURL"] == "https://editeur.test/retour?x=1"


def test_authorization_rules(oss: Oss) -> None:
    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc")
        assert r.status_code == 200
        mine = int(r.headers["X-FAST-document-id"])
    with oss.client(VISA) as visa:  # agent of oss-demo-2, same subscriber
        r = post_doc(visa, "signServerDoc", workflow="oss-demo-2")
        assert r.status_code == 200
        theirs = int(r.headers["X-FAST-document-id"])
        for path in (f"/oss/downloadDoc/{mine}", f"/oss/docInformation/{mine}"):
            foreign = error(visa.get(path), 404, E.DOCUMENT_NOT_FOUND)
            unknown = error(visa.get(path.replace(str(mine), "599999999")), 404, E.DOCUMENT_NOT_FOUND)
            foreign.pop("generation"), unknown.pop("generation")
            assert foreign == unknown  # no existence oracle
        assert visa.get(f"/oss/docInformation/{theirs}").status_code == 200
        error(visa.post("/oss/generateSAUrl", data={"ids": str(mine)}), 404, E.DOCUMENT_NOT_FOUND)
    with oss.client(AGENT) as agent:
        error(agent.get(f"/oss/downloadDoc/{theirs}"), 404, E.DOCUMENT_NOT_FOUND)
        error(agent.get(f"/oss/docInformation/{theirs}"), 404, E.DOCUMENT_NOT_FOUND)
        error(agent.get("/oss/docInformation/abc"), 404, E.DOCUMENT_NOT_FOUND)
    with oss.client(OTHER) as other:  # another subscriber
        error(other.get(f"/oss/downloadDoc/{mine}"), 404, E.DOCUMENT_NOT_FOUND)
    with oss.client(ADMIN) as admin:  # the subscriber's administrator (OSS admin profile) reads every workflow
        assert admin.get(f"/oss/docInformation/{mine}").status_code == 200
        assert admin.get(f"/oss/docInformation/{theirs}").status_code == 200
    with oss.client() as anonymous:
        error(anonymous.get(f"/oss/docInformation/{mine}"), 401, E.CERT_MISSING)


def test_retention_and_purge(oss: Oss) -> None:
    from parafe.db.models import OssDocument

    with oss.client(AGENT) as agent:
        r = post_doc(agent, "signServerDoc", meta=meta_xml(REFERENCE="PURGE"))
        doc_id = int(r.headers["X-FAST-document-id"])
        to_purge = _iso(agent.get(f"/oss/docInformation/{doc_id}").json()["dateToPurge"])
        with oss.ctx.db.read() as session:
            row = session.get(OssDocument, doc_id)
            assert row is not None
            blobs = {row.blob_sha256, row.signed_blob_sha256, row.meta_blob_sha256}
            assert None not in blobs
            assert blobs <= oss_purge.blob_references(session)
        oss_purge.purge(oss.ctx, now=to_purge - timedelta(seconds=30))
        assert agent.get(f"/oss/downloadDoc/{doc_id}").status_code == 200  # not yet
        assert oss_purge.purge(oss.ctx, now=to_purge + timedelta(seconds=1)) >= 1
        assert oss_purge.purge(oss.ctx, now=to_purge + timedelta(seconds=2)) == 0  # idempotent
        error(agent.get(f"/oss/downloadDoc/{doc_id}"), 410, E.OSS_DOCUMENT_PURGED)
        info = agent.get(f"/oss/docInformation/{doc_id}").json()
        assert _iso(info["purgeDate"]) == to_purge + timedelta(seconds=1)
        assert info["metadate"] is None
        with oss.ctx.db.read() as session:
            assert not blobs & oss_purge.blob_references(session)  # left to the orphan sweeper


def test_admin_statistics(oss: Oss) -> None:
    with oss.client(AGENT) as agent:
        assert post_doc(agent, "signServerDoc").status_code == 200
    with oss.client(ADMIN) as admin:  # the OSS admin profile: supervision of the account's workflows
        r = admin.get("/oss/admin/workflows/oss-demo")
        assert r.status_code == 200, r.text
        stats = r.json()
        assert stats["workflowId"] == "oss-demo"
        assert stats["total"] >= 1
        assert stats["documents"]["server"]["signed"] >= 1
        error(admin.get("/oss/admin/workflows/oss-autre"), 404, E.OSS_WORKFLOW_NOT_FOUND)
    with oss.client(AGENT) as agent:  # an agent is not an admin
        error(agent.get("/oss/admin/workflows/oss-demo"), 403, E.NO_PERMISSION)


def test_workflow_configuration_by_the_admin_profile(oss: Oss) -> None:
    from parafe.domain.errors import ParafeError
    from parafe.services.access.auth import principal_for_email

    spec = oss_workflows.WorkflowSpec(key="oss-config", name="Configuré", siren="123456789", agents=[AGENT],
                                    certificate_p12=demo_set.OSS_DEMO_P12, modes=("server",))
    for who, allowed in ((AGENT, False), (ADMIN, True), (OTHER, False)):
        principal = principal_for_email(oss.ctx, who)
        if allowed:
            oss_workflows.configure_workflow(oss.ctx, spec, principal)
            continue
        with pytest.raises(ParafeError) as refused:
            oss_workflows.configure_workflow(oss.ctx, spec, principal)
        assert refused.value.error is E.NO_PERMISSION, who
    for bad in ({"modes": ("fax",)}, {"signature_level": "B-LTA"}, {"signature_level": "B-T"},
                {"pictogram": {"x": -1}}, {"retention_days": 0}):
        with pytest.raises(ParafeError) as refused:
            oss_workflows.configure_workflow(oss.ctx, oss_workflows.WorkflowSpec(**{**spec.__dict__, **bad}))
        assert refused.value.error in (E.BAD_REQUEST, E.OSS_PICTOGRAM_INVALID), bad
