"""WebDAV in/ against the real server over TLS (SQLite and PostgreSQL): PUT consumed synchronously by the deposit
service (201 + x-fast-docid), receipts (D6), MKCOL and label folders, zip bundles, UTF-8 names (NFC and NFD in,
NFC stored), the 200-character limit, and who sees what (client certificate, Basic for admins)."""

from __future__ import annotations

import unicodedata

import httpx
from sqlalchemy import select

from parafe.db.models import Annex, Document, Label, MetadataValue
from parafe.domain import deposit as rules
from parafe.domain.errors import E
from parafe.domain.states import State
from tests.api.webdav.davutil import (
    ADMIN,
    AGENT,
    DAV,
    OTHER,
    OTHER_SIREN,
    SIGNER,
    SIREN,
    VISA,
    Dav,
    assert_error,
    children,
    listing,
    propfind,
    put,
    unique,
    url_path,
)
from tests.fixtures.files import pdf_bytes, zip_bytes


def _docid(response: httpx.Response) -> int:
    assert response.status_code == 201, (response.status_code, response.text)
    doc_id = int(response.headers["x-fast-docid"])
    assert doc_id >= 100_000_000
    assert response.headers["etag"] == f'"{doc_id}"'
    assert response.content == b""
    return doc_id


def test_put_is_consumed_and_leaves_a_receipt(dav: Dav) -> None:
    name, data = unique(), pdf_bytes(text="dépôt WebDAV")
    with dav.client() as c:
        doc_id = _docid(put(c, url_path(SIREN, "in", "bureautique", name), data))
        doc = dav.document(doc_id)
        assert (doc.name, doc.source, doc.state, doc.size) == (name, "webdav", State.PREPARED.value, len(data))
        assert doc.label_id is not None
        # the same document through the web services (one core, several connectors)
        history = c.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history")
        assert [h["stateName"] for h in history.json()] == ["Préparé"]
        # the receipt: same name, size, ETag = docid, in the folder of the PUT
        folder = url_path(SIREN, "in", "bureautique", collection=True)
        receipt = children(propfind(c, folder), folder)[name]
        assert not receipt.collection
        assert receipt.size == len(data)
        assert receipt.props["getetag"] == f'"{doc_id}"'
        assert receipt.props["getcontenttype"] == "application/pdf"
        one = listing(propfind(c, url_path(SIREN, "in", "bureautique", name), depth="0"))
        assert [e.size for e in one.values()] == [len(data)]
        got = c.get(url_path(SIREN, "in", "bureautique", name))
        assert got.status_code == 200
        assert got.content == data
        # a label-less deposit gets the label of the day (D5) but no folder in in/ (spec §4.2 Note 1)
        today = rules.default_label()
        assert today not in children(propfind(c, folder), folder)
        # DELETE takes the receipt out of the folder, not the document
        assert c.delete(url_path(SIREN, "in", "bureautique", name)).status_code == 204
        assert name not in children(propfind(c, folder), folder)
        assert dav.document(doc_id).deleted_at is None
        assert c.request("PROPFIND", url_path(SIREN, "in", "bureautique", name),
                         headers={"Depth": "0"}).status_code == 404


def test_mkcol_labels_and_put_into_a_new_label_folder(dav: Dav) -> None:
    label = unique("", "libellé")
    circuit = url_path(SIREN, "in", "bureautique", collection=True)
    with dav.client() as c:
        assert c.request("MKCOL", url_path(SIREN, "in", "bureautique", label)).status_code == 201
        assert_error(c.request("MKCOL", url_path(SIREN, "in", "bureautique", label)), 405, E.METHOD_NOT_ALLOWED)
        listed = children(propfind(c, circuit), circuit)
        assert listed[label].collection
        assert listing(propfind(c, url_path(SIREN, "in", "bureautique", label, collection=True), depth="0"))
        # deposit into it
        name = unique()
        doc_id = _docid(put(c, url_path(SIREN, "in", "bureautique", label, name), pdf_bytes()))
        with dav.ctx.db.read() as session:
            assert session.scalar(select(Label.name).join(Document, Document.label_id == Label.id)
                                  .where(Document.id == doc_id)) == label
        inside = url_path(SIREN, "in", "bureautique", label, collection=True)
        assert name in children(propfind(c, inside), inside)
        # a PUT into a label folder that does not exist yet creates the label (D6)
        fresh, name2 = unique("", "nouveau"), unique()
        _docid(put(c, url_path(SIREN, "in", "bureautique", fresh, name2), pdf_bytes()))
        assert children(propfind(c, circuit), circuit)[fresh].collection
        # labels are one level deep; out/ is read-only; the parent must exist
        assert_error(c.request("MKCOL", url_path(SIREN, "in", "bureautique", label, "sous")), 403, E.NO_PERMISSION)
        assert_error(c.request("MKCOL", url_path(SIREN, "out", "bureautique", "x")), 403, E.NO_PERMISSION)
        assert c.request("MKCOL", url_path(SIREN, "in", "inconnu", "x")).status_code == 409
        # an empty label folder can be deleted, one that holds documents cannot
        empty = unique("", "vide")
        assert c.request("MKCOL", url_path(SIREN, "in", "bureautique", empty)).status_code == 201
        assert c.delete(url_path(SIREN, "in", "bureautique", empty, collection=True)).status_code == 204
        assert empty not in children(propfind(c, circuit), circuit)
        assert_error(c.delete(url_path(SIREN, "in", "bureautique", label, collection=True)), 403, E.NO_PERMISSION)
        # a label name follows the deposit rules (D5: at most 255 characters)
        assert_error(c.request("MKCOL", url_path(SIREN, "in", "bureautique", "L" * 256)), 400, E.LABEL_TOO_LONG)


def test_zip_bundle_with_annexes_and_metas(dav: Dav) -> None:
    main = unique()
    metas = (b'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>'
             b'<meta-data name="TEXT001" value="Jean"/></meta-data-list>')
    bundle = zip_bytes({main: pdf_bytes(text="principal"), "annexe.pdf": pdf_bytes(text="annexe"),
                        "notes.txt": b"annexe texte", f"METAS_{main}.xml": metas})
    with dav.client() as c:
        doc_id = _docid(put(c, url_path(SIREN, "in", "bureautique", main + ".zip"), bundle))
        with dav.ctx.db.read() as session:
            doc = session.get(Document, doc_id)
            assert doc is not None
            assert doc.name == main
            annexes = list(session.scalars(select(Annex.name).where(Annex.document_id == doc_id)
                                           .order_by(Annex.position)))
            metadata = list(session.execute(select(MetadataValue.name, MetadataValue.value)
                                            .where(MetadataValue.document_id == doc_id)))
        assert sorted(annexes) == ["annexe.pdf", "notes.txt"]
        assert [tuple(m) for m in metadata] == [("TEXT001", "Jean")]
        folder = url_path(SIREN, "in", "bureautique", collection=True)
        receipt = children(propfind(c, folder), folder)[main + ".zip"]
        assert receipt.size == len(bundle)
        assert receipt.props["getetag"] == f'"{doc_id}"'
        # the bundle's main document is now a duplicate, zipped or not
        assert_error(put(c, url_path(SIREN, "in", "bureautique", main), pdf_bytes()), 409, E.DUPLICATE_FILE)


def test_utf8_names_nfc_and_nfd_in_nfc_stored(dav: Dav) -> None:
    nfc_name = unicodedata.normalize("NFC", f"Délibération été {unique('')}.pdf")
    nfd_name = unicodedata.normalize("NFD", f"Arrêté n°2 {unique('')}.pdf")
    assert nfd_name != unicodedata.normalize("NFC", nfd_name)
    folder = url_path(SIREN, "in", "bureautique", collection=True)
    with dav.client() as c:
        a = _docid(put(c, url_path(SIREN, "in", "bureautique", nfc_name), pdf_bytes()))
        b = _docid(put(c, url_path(SIREN, "in", "bureautique", nfd_name), pdf_bytes()))
        assert dav.document(a).name == nfc_name
        assert dav.document(b).name == unicodedata.normalize("NFC", nfd_name)
        names = children(propfind(c, folder), folder)
        assert nfc_name in names
        assert unicodedata.normalize("NFC", nfd_name) in names
        # the receipt answers under both forms (a client re-checking with the form it sent finds it)
        assert listing(propfind(c, url_path(SIREN, "in", "bureautique", nfd_name), depth="0"))
        # the same name in the other form is the same name: « Doublon »
        assert_error(put(c, url_path(SIREN, "in", "bureautique", unicodedata.normalize("NFD", nfc_name)),
                         pdf_bytes()), 409, E.DUPLICATE_FILE)


def test_200_character_limit(dav: Dav) -> None:
    stem = unique("", "n")
    ok = stem + "x" * (200 - len(stem) - 4) + ".pdf"
    too_long = stem + "x" * (201 - len(stem) - 4) + ".pdf"
    assert (len(ok), len(too_long)) == (200, 201)
    with dav.client() as c:
        _docid(put(c, url_path(SIREN, "in", "bureautique", ok), pdf_bytes()))
        before = dav.count_documents()
        body = assert_error(put(c, url_path(SIREN, "in", "bureautique", too_long), pdf_bytes()), 400,
                            E.NAME_TOO_LONG)
        assert body["userFriendlyMessage"] == "Le nom du fichier ne doit pas excéder 200 caractères."
        assert dav.count_documents() == before


def test_who_sees_what(dav: Dav) -> None:
    root = url_path(collection=True).rstrip("/") + "/"
    with dav.client(AGENT) as agent, dav.client(OTHER) as other:
        assert sorted(children(propfind(agent, root), root)) == [SIREN]
        assert sorted(children(propfind(agent, DAV), root)) == [SIREN]  # the root without its trailing slash
        assert sorted(children(propfind(other, root), root)) == [OTHER_SIREN]
        sub = url_path(SIREN, collection=True)
        assert sorted(children(propfind(agent, sub), sub)) == ["in", "out"]
        in_ = url_path(SIREN, "in", collection=True)
        assert sorted(children(propfind(agent, in_), in_)) == ["bureautique", "otp", "pes", "pes-pj", "serveur", "xml"]
        # a foreign subscriber is not found, exactly like an unknown one
        foreign = propfind(other, url_path(SIREN, collection=True), depth="0")
        unknown = propfind(other, url_path("111111111", collection=True), depth="0")
        a, b = assert_error(foreign, 404, E.ROUTE_NOT_FOUND), assert_error(unknown, 404, E.ROUTE_NOT_FOUND)
        assert a["userFriendlyMessage"] == b["userFriendlyMessage"]
    # a user sees the circuits it has a role on
    with dav.client(VISA) as visa, dav.client(SIGNER) as signer:
        in_ = url_path(SIREN, "in", collection=True)
        assert sorted(children(propfind(visa, in_), in_)) == ["bureautique"]
        assert sorted(children(propfind(signer, in_), in_)) == ["bureautique", "pes", "xml"]
        assert propfind(visa, url_path(SIREN, "in", "pes", collection=True), depth="0").status_code == 404
        # a valideur is not an agent: it cannot deposit
        assert_error(put(visa, url_path(SIREN, "in", "bureautique", unique()), pdf_bytes()), 403, E.NO_PERMISSION)
    # Basic for admins (the subscriber's admin sees every circuit and may deposit)
    with dav.basic() as admin:
        in_ = url_path(SIREN, "in", collection=True)
        assert "bureautique" in children(propfind(admin, in_), in_)
        _docid(put(admin, url_path(SIREN, "in", "bureautique", unique()), pdf_bytes()))
    with dav.basic(password="mauvais") as wrong:
        assert_error(propfind(wrong, in_), 401, E.BAD_CREDENTIALS)
    with dav.basic(login=AGENT, password="x") as not_basic:
        assert_error(propfind(not_basic, in_), 401, E.BAD_CREDENTIALS)
    assert ADMIN


def test_certificate_errors_are_explicit(dav: Dav) -> None:
    path = url_path(SIREN, "in", collection=True)
    with dav.server.client() as anonymous:
        response = propfind(anonymous, path)
        assert_error(response, 401, E.CERT_MISSING)
        assert response.headers["www-authenticate"].startswith("Basic")
    for which, error in (("expired", E.CERT_EXPIRED), ("revoked", E.CERT_REVOKED), ("unknown-ca", E.CERT_UNKNOWN_CA)):
        with dav.server.client(cert=dav.home.bad(which)) as bad:
            assert_error(put(bad, url_path(SIREN, "in", "bureautique", unique()), pdf_bytes()), 401, error)


def test_options_and_unsupported_methods(dav: Dav) -> None:
    with dav.client() as c:
        r = c.request("OPTIONS", url_path(SIREN, "in", "bureautique", collection=True))
        assert r.status_code == 200
        assert r.headers["dav"] == "1"
        assert "PUT" in r.headers["allow"]
        assert "MKCOL" in r.headers["allow"]
        assert "LOCK" not in r.headers["allow"]
        for method in ("COPY", "MOVE", "PROPPATCH", "LOCK"):
            response = c.request(method, url_path(SIREN, "in", "bureautique", collection=True),
                                 headers={"Destination": dav.url + url_path(SIREN, "in", "pes", "x")})
            assert_error(response, 405, E.METHOD_NOT_ALLOWED)
            assert "PROPFIND" in response.headers["allow"]
        # Depth: infinity is refused on a collection (RFC 4918 §9.1)
        r = propfind(c, url_path(SIREN, collection=True), depth="infinity")
        assert r.status_code == 403
        assert b"propfind-finite-depth" in r.content
