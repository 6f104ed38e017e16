"""The compliance recorder and classification (issue 21), on the real database of a fresh home (both backends):
what each exchange counts as, additive batched counters, the capped ring of examples, pending duties."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from parafe.db.models import ComplianceCounter, ComplianceExample, CompliancePending
from parafe.services.compliance.classify import classify
from parafe.services.compliance.recorder import MAX_PENDING, ClientCert, Recorder

CERT = ClientCert("ab" * 32, "CN=Logiciel métier", "lm@example.fr", None)
SOAP = "/parapheur-soap/soap/v1/Documents"
REST = "/parapheur-ws/rest/v1"
DAV = "/partage/webdav/clients/123456789"


def test_classification() -> None:
    listing = classify("POST", SOAP, 200, None, "listRemainingAcknowledgements")
    assert listing is not None
    assert listing.listing_target == "soap:listRemainingAcknowledgements"
    fault = classify("POST", SOAP, 500, 137, "upload")
    assert fault is not None
    assert {"soap_fault", "refused:soap:137", "nomfic"} <= set(fault.kinds)
    unknown = classify("POST", SOAP, 400, 174, None)
    assert unknown is not None
    assert "unknown_operation" in unknown.kinds
    too_big = classify("POST", SOAP, 413, 147, None)
    assert too_big is not None
    assert "oversize" in too_big.kinds
    assert "unknown_operation" not in too_big.kinds
    route = classify("GET", f"{REST}/nowhere", 404, 179)
    assert route is not None
    assert "unknown_operation" in route.kinds
    duplicate = classify("POST", f"{REST}/documents/v2/123456789/bureautique/upload", 409, 144)
    assert duplicate is not None
    assert "duplicate" in duplicate.kinds
    missing = classify("GET", f"{REST}/documents/v2/400000001/ack/download", 404, 149)
    assert missing is not None
    assert "download_unknown" in missing.kinds
    expired = classify("GET", f"{REST}/documents/v2/123456789/ack/remaining", 401, 162)
    assert expired is not None
    assert expired.kinds == ["calls:rest", "tls:expired"]
    fetched = classify("GET", f"{DAV}/out/bureautique/a%20b.pdf", 200)
    assert fetched is not None
    assert fetched.opens == [("fetched", "123456789/out/bureautique/a b.pdf")]
    in_listing = classify("PROPFIND", f"{DAV}/in/bureautique/", 207)
    assert in_listing is not None
    assert in_listing.listing_target is None  # only out/ is polled for returns
    assert classify("GET", "/tableau-de-bord", 200) is None  # the portal is no connector
    deprecated = classify("POST", SOAP, 200, None, "getSmsUrl")  # §2.5.16
    assert deprecated is not None
    assert "deprecated_operation" in deprecated.kinds
    current = classify("POST", SOAP, 200, None, "getMultiIdsSmsUrl")
    assert current is not None
    assert "deprecated_operation" not in current.kinds


def test_recorder_batches_and_bounds(ctx: Any) -> None:
    recorder = Recorder(ctx)
    recorder._thread = object()  # type: ignore[assignment]  # flushed by hand
    t0 = 1_800_000_000.0  # one hour bucket
    for i in range(10):  # listings every second, same target: 9 too frequent
        obs = classify("GET", f"{REST}/documents/v2/123456789/ack/remaining", 200)
        assert obs is not None
        recorder.observe(CERT, obs, now=t0 + i)
        if i == 4:
            recorder.flush()  # counters of two flushes add up
    for i in range(MAX_PENDING + 20):
        obs = classify("PUT", f"{DAV}/in/bureautique/refus-{i}.exe", 415, 139)
        assert obs is not None
        recorder.observe(CERT, obs, now=t0 + 100 + i)
    cleared = classify("DELETE", f"{DAV}/in/bureautique/refus-{MAX_PENDING + 19}.exe", 404, 131)
    assert cleared is not None
    recorder.observe(CERT, cleared, now=t0 + 1000)
    recorder.flush()
    with ctx.db.read() as session:
        counts = dict(session.execute(select(ComplianceCounter.kind, ComplianceCounter.count)
                                      .where(ComplianceCounter.fingerprint == CERT.fingerprint)).all())
        gap = session.scalar(select(ComplianceCounter.min_gap).where(ComplianceCounter.kind == "listing"))
        examples = session.scalar(select(func.count()).select_from(ComplianceExample)
                                  .where(ComplianceExample.rule == "deposit_refusals"))
        pending = list(session.scalars(select(CompliancePending.key)))
    assert counts["listing"] == 10
    assert counts["listing_fast"] == 9
    assert gap == 1.0
    assert counts["refused:webdav:139"] == MAX_PENDING + 20
    assert examples == ctx.settings.compliance_examples  # a ring, not one row per call
    assert len(pending) == MAX_PENDING  # capped, the oldest dropped, the deleted one gone
    assert f"123456789/in/bureautique/refus-{MAX_PENDING + 19}.exe" not in pending
    assert f"123456789/in/bureautique/refus-{MAX_PENDING + 18}.exe" in pending
