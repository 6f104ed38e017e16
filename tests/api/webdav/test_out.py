"""WebDAV out/ against the real server (SQLite and PostgreSQL): signed documents, Helios acknowledgements
(``ACQUIT_<name>``), refusal envelopes (``<name>.refus.xml``), ``PES_Retour/`` and ``chorus-pivot/``; GET and
DELETE of returns (a deleted acknowledgement or flow leaves the web services' remaining lists, D11); name
collisions; the 15-day purge. The states the workflow would produce are written directly in the database."""

from __future__ import annotations

from datetime import timedelta

from lxml import etree
from sqlalchemy import select

from parafe.db.models import Document, Label, utcnow
from parafe.domain.errors import E
from parafe.domain.states import State
from parafe.services.access.auth import principal_for_email
from parafe.services.helios import returns
from parafe.services.webdav import out_folders
from tests.api.webdav.davutil import (
    AGENT,
    OTHER,
    SIREN,
    VISA,
    Dav,
    assert_error,
    children,
    propfind,
    put,
    unique,
    url_path,
)
from tests.conftest import TESTDATA
from tests.fixtures.files import pdf_bytes

ACQUIT = (TESTDATA / "pes" / "samples" / "acquit_ok.xml").read_bytes()
PES_RETOUR = (TESTDATA / "pes" / "samples" / "pes_retour_depense.xml").read_bytes()
CHORUS = (TESTDATA / "chorus" / "samples" / "facture-pivot.xml").read_bytes()


def _deposit(dav: Dav, name: str, *folders: str) -> int:
    with dav.client() as c:
        r = put(c, url_path(SIREN, "in", "bureautique", *folders, name), pdf_bytes(text=name))
    assert r.status_code == 201, r.text
    return int(r.headers["x-fast-docid"])


def test_returns_in_out_get_and_delete(dav: Dav) -> None:
    label = unique("", "lot")
    a, b, c_name = unique(prefix="signe"), unique(prefix="refuse"), unique(prefix="racine")
    doc_a, doc_b = _deposit(dav, a, label), _deposit(dav, b, label)
    doc_c = _deposit(dav, c_name)
    out_circuit = url_path(SIREN, "out", "bureautique", collection=True)
    out_label = url_path(SIREN, "out", "bureautique", label, collection=True)
    with dav.client() as c:
        # nothing returned yet: the label folder does not show in out/, but can be listed by name (empty)
        assert label not in children(propfind(c, out_circuit), out_circuit)
        assert children(propfind(c, out_label), out_label) == {}
        # signed document, once its circuit is over
        signed = pdf_bytes(text="signé")
        sha = dav.sign(doc_a, signed, state=State.SIGNED)
        assert a not in children(propfind(c, out_label), out_label)  # still in its circuit
        dav.sign(doc_a, signed, state=State.FILED)
        listed = children(propfind(c, out_label), out_label)
        assert listed[a].size == len(signed)
        assert listed[a].props["getetag"] == f'"{sha[:40]}"'
        assert children(propfind(c, out_circuit), out_circuit)[label].collection
        got = c.get(url_path(SIREN, "out", "bureautique", label, a))
        assert got.status_code == 200
        assert got.content == signed
        assert got.headers["content-type"] == "application/pdf"
        # refusal envelope
        dav.refuse(doc_b, "Montant erroné <à revoir>")
        envelope_name = b + ".refus.xml"
        listed = children(propfind(c, out_label), out_label)
        envelope = c.get(url_path(SIREN, "out", "bureautique", label, envelope_name))
        assert envelope.status_code == 200
        assert listed[envelope_name].size == len(envelope.content)
        xml = etree.fromstring(envelope.content)
        assert xml.tag == "refus"
        assert xml.findtext("docId") == str(doc_b)
        assert xml.findtext("nomFichier") == b
        assert xml.findtext("etat") == "Refusé"
        assert xml.findtext("acteur") == "Sophie Signataire"
        assert xml.findtext("message") == "Montant erroné <à revoir>"
        # Helios acknowledgement of a deposit made at the circuit's root, in out/<circuit>/
        returns.add_return(dav.ctx, kind="ack", data=ACQUIT, name="acquit.xml", document_id=doc_c)
        ack_name = "ACQUIT_" + c_name
        assert children(propfind(c, out_circuit), out_circuit)[ack_name].size == len(ACQUIT)
        assert c.get(url_path(SIREN, "out", "bureautique", ack_name)).content == ACQUIT
        agent = principal_for_email(dav.ctx, AGENT)
        assert doc_c in returns.remaining(dav.ctx, agent, SIREN, "ack")
        assert c.delete(url_path(SIREN, "out", "bureautique", ack_name)).status_code == 204
        assert ack_name not in children(propfind(c, out_circuit), out_circuit)
        assert doc_c not in returns.remaining(dav.ctx, agent, SIREN, "ack")  # D11
        # DELETE of the signed file and of the envelope: gone from out/, the documents stay
        assert c.delete(url_path(SIREN, "out", "bureautique", label, a)).status_code == 204
        assert c.delete(url_path(SIREN, "out", "bureautique", label, envelope_name)).status_code == 204
        assert children(propfind(c, out_label), out_label) == {}
        assert label not in children(propfind(c, out_circuit), out_circuit)  # empty out/ folders disappear
        assert dav.document(doc_a).deleted_at is None
        assert dav.history_states(doc_a)[-1] == State.FILED.value
        assert_error(c.get(url_path(SIREN, "out", "bureautique", label, a)), 404, E.ROUTE_NOT_FOUND)
        assert_error(c.delete(url_path(SIREN, "out", "bureautique", label, a)), 404, E.ROUTE_NOT_FOUND)
        # out/ is read-only
        assert_error(put(c, url_path(SIREN, "out", "bureautique", label, unique()), pdf_bytes()), 403,
                     E.NO_PERMISSION)


def test_pes_retour_and_chorus_folders(dav: Dav) -> None:
    pes_name, chorus_name = unique(".xml", "PES_Retour"), unique(".xml", "pivot")
    pes_id = returns.add_return(dav.ctx, kind="pes_retour", data=PES_RETOUR, name=pes_name, siren=SIREN)
    chorus_id = returns.add_return(dav.ctx, kind="chorus", data=CHORUS, name=chorus_name, siren=SIREN)
    out = url_path(SIREN, "out", collection=True)
    agent = principal_for_email(dav.ctx, AGENT)
    with dav.client() as c:
        names = children(propfind(c, out), out)
        assert names["PES_Retour"].collection
        assert names["chorus-pivot"].collection
        pes_folder = url_path(SIREN, "out", "PES_Retour", collection=True)
        assert children(propfind(c, pes_folder), pes_folder)[pes_name].size == len(PES_RETOUR)
        assert c.get(url_path(SIREN, "out", "PES_Retour", pes_name)).content == PES_RETOUR
        # the spelling varies in the spec (G-37): aliases find the same folder
        assert c.get(url_path(SIREN, "out", "Chorus-Pivot", chorus_name)).content == CHORUS
        assert c.get(url_path(SIREN, "out", "pes-retour", pes_name)).content == PES_RETOUR
        assert pes_id in returns.remaining(dav.ctx, agent, SIREN, "pes_retour")
        assert c.delete(url_path(SIREN, "out", "PES_Retour", pes_name)).status_code == 204
        assert c.delete(url_path(SIREN, "out", "chorus-pivot", chorus_name)).status_code == 204
        assert pes_id not in returns.remaining(dav.ctx, agent, SIREN, "pes_retour")
        assert chorus_id not in returns.remaining(dav.ctx, agent, SIREN, "chorus")
        assert pes_name not in children(propfind(c, pes_folder), pes_folder)
    # PES_Retour and Chorus flows are for the subscriber's agents and admins; nothing for other subscribers
    with dav.client(VISA) as visa, dav.client(OTHER) as other:
        assert sorted(children(propfind(visa, out), out)) == ["bureautique"]
        assert propfind(visa, url_path(SIREN, "out", "PES_Retour", collection=True)).status_code == 404
        assert propfind(other, url_path(SIREN, "out", "PES_Retour", collection=True)).status_code == 404


def test_same_name_in_one_out_folder(dav: Dav) -> None:
    """Two deposits of one name at the circuit's root on different days share out/<circuit>/: the first keeps
    the name, the second is suffixed with its document id, and both can be fetched."""
    name = unique()
    first = _deposit(dav, name)
    with dav.ctx.db.write() as session:  # make the first one yesterday's deposit (another label of the day)
        doc = session.get(Document, first)
        assert doc is not None
        old = Label(circuit_id=doc.circuit_id, name=unique("", "hier"))
        session.add(old)
        session.flush()
        doc.label_id = old.id
    second = _deposit(dav, name)
    one, two = pdf_bytes(text="premier", pad_to=3000), pdf_bytes(text="second", pad_to=3100)
    dav.sign(first, one)
    dav.sign(second, two)
    out_circuit = url_path(SIREN, "out", "bureautique", collection=True)
    stem = name[: -len(".pdf")]
    with dav.client() as c:
        listed = children(propfind(c, out_circuit), out_circuit)
        assert name in listed
        assert f"{stem}_{second}.pdf" in listed
        assert c.get(url_path(SIREN, "out", "bureautique", name)).content == one
        assert c.get(url_path(SIREN, "out", "bureautique", f"{stem}_{second}.pdf")).content == two


def test_purge_after_15_days(dav: Dav) -> None:
    label = unique("", "ancien")
    old_doc, new_doc = _deposit(dav, unique(), label), _deposit(dav, unique(), label)
    ack_doc = _deposit(dav, unique(), label)
    long_ago = utcnow() - timedelta(days=16)
    dav.sign(old_doc, pdf_bytes(text="vieux"), when=long_ago)
    dav.sign(new_doc, pdf_bytes(text="récent"))
    returns.add_return(dav.ctx, kind="ack", data=ACQUIT, name="a.xml", document_id=ack_doc)
    ack = dav.return_row(ack_doc, "ack")
    dav.age_returns(return_id=ack.id, when=long_ago)
    out_label = url_path(SIREN, "out", "bureautique", label, collection=True)
    with dav.client() as c:
        listed = children(propfind(c, out_label), out_label)
        assert sorted(listed) == [dav.document(new_doc).name]
        # the daily purge makes it durable: a later change of the document does not bring it back
        report = out_folders.purge_webdav(dav.ctx)
        assert report.signed >= 1
        dav.age_returns(document_id=old_doc, when=utcnow())
        assert sorted(children(propfind(c, out_label), out_label)) == [dav.document(new_doc).name]
        # receipts last 15 minutes
        in_label = url_path(SIREN, "in", "bureautique", label, collection=True)
        assert dav.document(new_doc).name in children(propfind(c, in_label), in_label)
        dav.age_receipt(new_doc, utcnow() - timedelta(minutes=16))
        assert dav.document(new_doc).name not in children(propfind(c, in_label), in_label)
        # a folder whose returns are all purged disappears from out/<circuit>
        dav.age_returns(document_id=new_doc, when=long_ago)
        out_circuit = url_path(SIREN, "out", "bureautique", collection=True)
        assert label not in children(propfind(c, out_circuit), out_circuit)
    with dav.ctx.db.read() as session:  # purged from the connector, not from the documents
        assert session.scalar(select(Document.deleted_at).where(Document.id == old_doc)) is None
