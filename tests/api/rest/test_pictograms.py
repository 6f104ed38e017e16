"""REST on-demand deposit with a ``pictograms`` part (issue 15 point 5): the positions reach the document's
signature steps (index = step number: visa 1, signature 2); an invalid file answers 400 with error 240 in the
REST error shape and stores nothing. The signatures drawn there are checked in
``tests/workflow/test_pictograms.py``."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from parafe.db.models import Document
from parafe.domain.errors import E
from parafe.formats.pictograms import signature_position
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import AGENT, SIGNER, SIREN, V1, VISA, error, unique
from tests.fixtures.files import pdf_bytes

PATH = f"{V1}/documents/ondemand/{SIREN}/upload"
CIRCUIT = json.dumps({"type": "BUREAUTIQUE_PDF", "steps": [
    {"step": "visa", "members": [VISA]}, {"step": "signature", "members": [SIGNER]}]})
PICTOS = (b'<pictogrammes><pictogramme-signature><pictogramme index="2"><position x="40" y="50" width="60" '
          b'height="25" page="1"/></pictogramme></pictogramme-signature></pictogrammes>')


def _count(rest: Rest) -> int:
    with rest.ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Document)) or 0)


def test_on_demand_pictograms_reach_the_signature_step(rest: Rest) -> None:
    with rest.client(AGENT) as c:
        r = c.post(PATH, data={"circuit": CIRCUIT},
                   files=[("doc", (unique(), pdf_bytes(2))), ("pictograms", ("pictograms.xml", PICTOS))])
    assert r.status_code == 200, r.text
    with rest.ctx.db.read() as s:
        document = s.get(Document, int(r.text))
        assert document is not None
        xml = document.extra.get("pictograms_xml")
    assert signature_position(xml, 0) is None  # the visa step has none
    position = signature_position(xml, 1)
    assert position is not None
    assert (position.x_mm, position.y_mm, position.width_mm, position.page) == (40, 50, 60, 1)


def test_on_demand_invalid_pictograms_refused(rest: Rest) -> None:
    before = _count(rest)
    with rest.client(AGENT) as c:
        r = c.post(PATH, data={"circuit": CIRCUIT},
                   files=[("doc", (unique(), pdf_bytes(2))),
                          ("pictograms", ("pictograms.xml", PICTOS.replace(b'x="40"', b'x="quarante"')))])
    body = error(r, 400, E.PICTOGRAMS_INVALID)
    assert body["userFriendlyMessage"] == ("Fichier de pictogrammes invalide : « x » doit être un nombre "
                                           "(millimètres), pas « quarante ».")
    assert _count(rest) == before
