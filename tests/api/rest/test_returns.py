"""REST returns against the real server: acknowledgement / PES Retour / Chorus downloads (R10–R12) and the
remaining lists (R13–R15); an id leaves its list once downloaded (D11). The returns are created with
``parafe.services.helios.returns.add_return``, what the Helios simulator and the Chorus poller call."""

from __future__ import annotations

from parafe.domain.errors import E
from parafe.services.helios import returns
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import ADMIN, AGENT, OTHER, OTHER_SIREN, SIGNER, SIREN, V1, VISA, deposit, error


def test_acknowledgements(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        doc = deposit(c)
        no_ack = deposit(c)
        before = c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining")
        assert before.status_code == 200
        assert doc not in before.json()
        ack = b'<?xml version="1.0"?><PES_ACQUIT><EtatAck V="1"/></PES_ACQUIT>'
        assert returns.add_return(rest.ctx, kind="ack", data=ack, name="ACQUIT_x.xml", document_id=doc) == doc
        assert doc in c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining").json()
        # Pastell's double slash
        assert doc in c.get(f"/parapheur-ws/rest/v1//documents/v2/{SIREN}/ack/remaining").json()
        r = c.get(f"{V1}/documents/v2/{doc}/ack/download")
        assert r.status_code == 200
        assert r.content == ack
        assert r.headers["content-type"].startswith("application/xml")
        assert doc not in c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining").json()
        assert c.get(f"{V1}/documents/v2/{doc}/ack/download").content == ack  # again: still served
        error(c.get(f"{V1}/documents/v2/{no_ack}/ack/download"), 404, E.ACK_BUILD_ERROR)
        error(c.get(f"{V1}/documents/v2/100999999/ack/download"), 404, E.DOCUMENT_NOT_FOUND)
        error(c.get(f"{V1}/documents/v2/111111111/ack/remaining"), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        error(c.get(f"{V1}/documents/v2/{OTHER_SIREN}/ack/remaining"), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
    # visibility: the admin sees every acknowledgement of the subscriber; the other subscriber nothing
    doc2 = 0
    with rest.client(AGENT) as c:
        doc2 = deposit(c)
    returns.add_return(rest.ctx, kind="ack", data=b"<a/>", name="ACQUIT_y.xml", document_id=doc2)
    with rest.client(ADMIN) as c:
        assert doc2 in c.get(f"{V1}/documents/v2/{SIREN}/ack/remaining").json()
    with rest.client(OTHER) as c:
        error(c.get(f"{V1}/documents/v2/{doc2}/ack/download"), 404, E.DOCUMENT_NOT_FOUND)


def test_pes_retour_and_chorus(rest: Rest) -> None:
    pes_id = returns.add_return(rest.ctx, kind="pes_retour", data=b"<PES_Retour/>", name="PES_Retour_1.xml",
                                siren=SIREN)
    chorus_id = returns.add_return(rest.ctx, kind="chorus", data=b"<CPPFacturePivot/>", name="facture.xml",
                                   siren=SIREN)
    assert pes_id >= returns.RETURN_ID_START
    assert chorus_id != pes_id
    with rest.client(AGENT) as c:
        assert pes_id in c.get(f"{V1}/documents/v2/{SIREN}/pes-retour/remaining").json()
        assert chorus_id in c.get(f"{V1}/documents/v2/{SIREN}/chorus/remaining").json()
        assert pes_id not in c.get(f"{V1}/documents/v2/{SIREN}/chorus/remaining").json()
        error(c.get(f"{V1}/documents/v2/{pes_id}/chorus/download"), 404, E.DOCUMENT_NOT_FOUND)
        r = c.get(f"{V1}/documents/v2/{pes_id}/pes-retour/download")
        assert r.status_code == 200
        assert r.content == b"<PES_Retour/>"
        assert "PES_Retour_1.xml" in r.headers["content-disposition"]
        assert pes_id not in c.get(f"{V1}/documents/v2/{SIREN}/pes-retour/remaining").json()
        r = c.get(f"{V1}/documents/v2/{chorus_id}/chorus/download")
        assert r.status_code == 200
        assert r.content == b"<CPPFacturePivot/>"
        assert chorus_id not in c.get(f"{V1}/documents/v2/{SIREN}/chorus/remaining").json()
        error(c.get(f"{V1}/documents/v2/abc/pes-retour/download"), 404, E.DOCUMENT_NOT_FOUND)
    other = returns.add_return(rest.ctx, kind="pes_retour", data=b"<autre/>", name="r.xml", siren=OTHER_SIREN)
    with rest.client(AGENT) as c:  # another subscriber's flow: like an unknown id
        error(c.get(f"{V1}/documents/v2/{other}/pes-retour/download"), 404, E.DOCUMENT_NOT_FOUND)
    with rest.client(VISA) as c:  # a valideur is neither agent nor admin of the subscriber
        error(c.get(f"{V1}/documents/v2/{SIREN}/pes-retour/remaining"), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
    with rest.client(OTHER) as c:
        assert c.get(f"{V1}/documents/v2/{OTHER_SIREN}/pes-retour/remaining").json() == [other]
    with rest.client(SIGNER) as c:
        error(c.get(f"{V1}/documents/v2/{other}/pes-retour/download"), 404, E.DOCUMENT_NOT_FOUND)


def test_missing_return_blob(rest: Rest) -> None:
    from sqlalchemy import select

    from parafe.db.models import ReturnItem

    rid = returns.add_return(rest.ctx, kind="chorus", data=b"<perdu/>", name="perdu.xml", siren=SIREN)
    with rest.ctx.db.write() as s:
        item = s.scalar(select(ReturnItem).where(ReturnItem.public_id == rid))
        assert item is not None
        item.blob_sha256 = "f" * 64
    with rest.client(AGENT) as c:
        error(c.get(f"{V1}/documents/v2/{rid}/chorus/download"), 500, E.CONTENT_RETRIEVAL)
        assert rid in c.get(f"{V1}/documents/v2/{SIREN}/chorus/remaining").json()  # not consumed
