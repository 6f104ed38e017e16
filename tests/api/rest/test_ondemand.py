"""REST on-demand deposit (R3, spec §2.6.3 / §5) against the real server: the created circuit, its members and
roles, annexes and e-mail lists, and every code of the §4.4 table (100, 102, 111, 117–122)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from parafe.db.models import Annex, Circuit, CircuitRole, CircuitStep, Document, StepMember, User
from parafe.domain.errors import E
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import ADMIN, AGENT, OTHER, SIGNER, SIREN, V1, VISA, error, unique
from tests.fixtures.files import pdf_bytes

PATH = f"{V1}/documents/ondemand/{SIREN}/upload"
CIRCUIT = {"type": "BUREAUTIQUE_PDF", "steps": [
    {"step": "visa", "members": [VISA]}, {"step": "signature", "members": [SIGNER]}]}


def _post(c: Any, circuit: Any = CIRCUIT, path: str = PATH, doc: bytes | None = None, **fields: Any) -> Any:
    files: list[tuple[str, tuple[str, bytes]]] = [("doc", (unique(), doc if doc is not None else pdf_bytes()))]
    for annex in fields.pop("annexes", []):
        files.append(("annexes", annex))
    data = {"circuit": circuit if isinstance(circuit, str) else json.dumps(circuit), **fields}
    return c.post(path, files=files, data=data)


def test_on_demand_success(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        r = _post(c, annexes=[("annexe1.pdf", pdf_bytes(text="a1")), ("tableau.csv", b"a;b\n1;2\n")],
                  agents=ADMIN, comment="Convention", email_destinataire="dest1@x.fr;dest2@y.fr",
                  email_CC="cc@z.fr", pictograms=b'<?xml version="1.0"?><pictogrammes/>')
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        doc_id = int(r.text)
        assert [e["stateName"] for e in c.get(f"{V1}/documents/v2/{doc_id}/history").json()] == ["Préparé"]
    with rest.ctx.db.read() as s:
        doc = s.get(Document, doc_id)
        assert doc is not None
        circuit = s.get(Circuit, doc.circuit_id)
        assert circuit is not None
        assert circuit.on_demand
        assert circuit.type == "BUREAUTIQUE_PDF"
        steps = s.scalars(select(CircuitStep).where(CircuitStep.circuit_id == circuit.id)
                          .order_by(CircuitStep.position)).all()
        assert [st.kind for st in steps] == ["visa", "signature", "filing"]
        members = {st.kind: [m.email for m in s.scalars(select(StepMember).where(StepMember.step_id == st.id))]
                   for st in steps}
        assert members == {"visa": [VISA], "signature": [SIGNER], "filing": []}
        roles = {(email, role) for email, role in s.execute(
            select(User.email, CircuitRole.role).join(User, User.id == CircuitRole.user_id)
            .where(CircuitRole.circuit_id == circuit.id))}
        assert roles == {(AGENT, "agent"), (ADMIN, "agent"), (VISA, "valideur"), (SIGNER, "signataire")}
        assert [a.name for a in s.scalars(select(Annex).where(Annex.document_id == doc_id)
                                          .order_by(Annex.position))] == ["annexe1.pdf", "tableau.csv"]
        assert doc.email_destinataire == "dest1@x.fr,dest2@y.fr"
        assert doc.email_cc == "cc@z.fr"
        assert doc.comment == "Convention"
        assert "pictogrammes" in doc.extra["pictograms_xml"]
    # the valideur of the on-demand circuit sees the document
    with rest.client(VISA) as c:
        assert c.get(f"{V1}/documents/v2/{doc_id}/history").status_code == 200


def test_on_demand_variants(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        # leading space in the type (G-12), any case for steps (G-11), OTP members as plain e-mails (D19),
        # members as a comma-separated string, Pastell's email_cc and double slash
        circuit = {"type": " HELIOS_SANS_TELETRANSMISSION", "steps": [
            {"step": "Visa", "members": f"{VISA}, {SIGNER}"}, {"step": "serverSignature"}]}
        r = _post(c, circuit, path=f"/parapheur-ws/rest/v1//documents/ondemand/{SIREN}/upload", doc=b"",
                  email_cc="a@b.fr")
        error(r, 422, E.EMPTY_FILE)  # the file checks still apply
        r = _post(c, {"type": "BUREAUTIQUE_PDF", "steps": [
            {"step": "OTPSignature", "members": ["externe@ailleurs.fr"]}, {"step": "OTPSignature"}]})
        assert r.status_code == 200, r.text
        r = _post(c, {"type": "BUREAUTIQUE_PDF", "steps": [
            {"step": "visa", "members": [VISA.upper()]}, {"step": "ServerSignature", "members": []}]})
        assert r.status_code == 200, r.text


def test_on_demand_errors(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        error(_post(c, "pas du json"), 400, E.CIRCUIT_DEF_ERROR)
        error(_post(c, {"type": "BUREAUTIQUE_PDF"}), 400, E.CIRCUIT_DEF_ERROR)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": []}), 400, E.CIRCUIT_DEF_ERROR)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa"}]}), 400, E.CIRCUIT_DEF_ERROR)
        error(_post(c, ["liste"]), 400, E.CIRCUIT_DEF_ERROR)
        error(c.post(PATH, files={"doc": (unique(), pdf_bytes())}), 400, E.CIRCUIT_DEF_ERROR)
        error(c.post(PATH, data={"circuit": json.dumps(CIRCUIT)}), 400, E.BAD_REQUEST)
        error(_post(c, {"type": "INCONNU", "steps": [{"step": "visa", "members": [VISA]}]}), 400,
              E.INVALID_CIRCUIT_TYPE)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "tamponner", "members": [VISA]}]}), 400,
              E.INVALID_STEP_TYPE)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": ["nobody@x.fr"]}]}),
              400, E.INVALID_STEP_MEMBER)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": [OTHER]}]}),
              400, E.INVALID_STEP_MEMBER)  # a user of another subscriber
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "OTPSignature", "members": ["pas-mail"]}]}),
              400, E.INVALID_STEP_MEMBER)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "visa", "members": [VISA, AGENT]}]}),
              400, E.INVALID_STEP_MEMBER_AGENT)
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "OTPSignature", "members": [AGENT]}]}),
              400, E.INVALID_STEP_MEMBER_AGENT)
        error(_post(c, agents="inconnu@x.fr"), 400, E.INVALID_STEP_MEMBER)
        error(_post(c, path=f"{V1}/documents/ondemand/111111111/upload"), 404, E.SUBSCRIBER_NOT_FOUND)
        error(_post(c, email_destinataire="pas-une-adresse"), 400, E.BAD_REQUEST)
    with rest.client(OTHER) as c:  # no account in this siren
        error(_post(c), 403, E.UNAUTHORIZED_ACTIONS)
    with rest.client(VISA) as c:  # an account, but not an agent: may not deposit
        error(_post(c, {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "signature", "members": [SIGNER]}]}),
              403, E.UNAUTHORIZED_DEPOSIT)
    with rest.ctx.db.read() as s:  # refused deposits leave no on-demand circuit behind
        used = set(s.scalars(select(Document.circuit_id)))
        orphans = [cid for cid in s.scalars(select(Circuit.id).where(Circuit.on_demand.is_(True)))
                   if cid not in used]
        assert orphans == []
