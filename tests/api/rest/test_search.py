"""REST search (R20, spec §2.6.20, DECISIONS D9) against the real server: every criterion, the three ways of
passing them (query, JSON body on GET, JSON body on POST), date bounds (inclusive, Europe/Paris days) and who
sees what."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from parafe.domain.errors import E
from parafe.domain.paris_time import PARIS
from parafe.domain.states import State
from tests.api.rest.conftest import Rest
from tests.api.rest.helpers import (
    ADMIN,
    AGENT,
    OTHER,
    OTHER_SIREN,
    SIGNER,
    SIREN,
    V1,
    VISA,
    deposit,
    error,
    history_by,
    set_state,
    unique,
)
from tests.fixtures.files import pdf_bytes, zip_bytes

SEARCH = f"{V1}/documents/search"


def _with_metas(c: object, label: str, **metas: str) -> int:
    name = unique()
    items = "".join(f'<meta-data name="{k}" value="{v}"/>' for k, v in metas.items())
    bundle = zip_bytes({name: pdf_bytes(), f"METAS_{name}.xml": f"<meta-data-list>{items}</meta-data-list>".encode()})
    r = c.post(f"{V1}/documents/v2/{SIREN}/bureautique/upload",  # type: ignore[attr-defined]
               files={"content": (f"{name}.zip", bundle)}, data={"label": label})
    assert r.status_code == 200, r.text
    return int(r.text)


def _post(c: object, **criteria: object) -> list[int]:
    r = c.post(SEARCH, json={"siren": SIREN, **criteria})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return list(r.json())


def test_search_criteria(rest: Rest) -> None:
    label = f"lot-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).astimezone(PARIS).strftime("%d/%m/%Y")
    yesterday = (datetime.now(UTC).astimezone(PARIS) - timedelta(days=1)).strftime("%d/%m/%Y")
    with rest.client(AGENT) as c:
        a = _with_metas(c, label, email="search@gmail.com", montant="451200")
        b = _with_metas(c, label, email="autre@gmail.com", montant="451200")
        name = unique()
        d = deposit(c, name=name, label=label)
        set_state(rest.ctx, a, State.SIGNED)
        # the visa of Victor, on 15/03/2026 at 23:30 UTC = 16/03/2026 00:30 in Paris
        history_by(rest.ctx, a, State.APPROVED, VISA, when=datetime(2026, 3, 15, 23, 30, tzinfo=UTC))
        history_by(rest.ctx, b, State.SIGNED, SIGNER)
        assert sorted(_post(c, label=label)) == sorted([a, b, d])
        assert _post(c, label=label, circuit="bureautique", filename=name) == [d]
        # state: current state, any case (G-15)
        assert _post(c, label=label, state="signed") == [a]
        assert _post(c, label=label, state="PREPARED") == sorted([b, d])
        # meta: every key/value exactly
        assert _post(c, label=label, meta={"email": "search@gmail.com", "montant": "451200"}) == [a]
        assert _post(c, label=label, meta={"montant": 451200}) == sorted([a, b])  # numbers in JSON bodies
        assert _post(c, label=label, meta={"email": "SEARCH@gmail.com"}) == []
        # upload dates, inclusive bounds
        assert sorted(_post(c, label=label, uploadAfter=today, uploadBefore=today)) == sorted([a, b, d])
        assert _post(c, label=label, uploadBefore=yesterday) == []
        assert sorted(_post(c, label=label, uploadBy=AGENT.upper())) == sorted([a, b, d])
        assert _post(c, label=label, uploadBy=VISA) == []
        # validation / signature by and dates (Paris calendar days)
        assert _post(c, label=label, validateBy=VISA) == [a]
        assert _post(c, label=label, validateAfter="16/03/2026", validateBefore="16/03/2026") == [a]
        assert _post(c, label=label, validateBefore="15/03/2026") == []
        # the spec example's typo "validateBeforex" is read as validateBefore
        assert _post(c, label=label, validateBeforex="15/03/2026") == []
        assert _post(c, label=label, signBy=SIGNER, signAfter=today) == [b]
        # GET with query parameters, GET with a JSON body (the document's form), numbers for the siren
        r = c.get(SEARCH, params={"siren": SIREN, "label": label, "state": "Signed"})
        assert r.status_code == 200
        assert r.json() == [a]
        r = c.request("GET", SEARCH, content=json.dumps({"siren": int(SIREN), "label": label, "state": "Signed"}),
                      headers={"content-type": "application/json"})
        assert r.status_code == 200
        assert r.json() == [a]
        # errors
        error(c.post(SEARCH, json={"label": label}), 400, E.BAD_REQUEST)
        error(c.post(SEARCH, json={"siren": SIREN, "state": "Inconnu"}), 400, E.BAD_REQUEST)
        error(c.post(SEARCH, json={"siren": SIREN, "uploadAfter": "2026-01-01"}), 400, E.BAD_REQUEST)
        error(c.post(SEARCH, json={"siren": SIREN, "meta": "x"}), 400, E.BAD_REQUEST)
        error(c.post(SEARCH, content=b"[1", headers={"content-type": "application/json"}), 400, E.BAD_REQUEST)
        error(c.post(SEARCH, json={"siren": SIREN, "circuit": "inconnu"}), 404, E.CIRCUIT_NOT_FOUND)
        error(c.post(SEARCH, json={"siren": OTHER_SIREN}), 403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN)
        error(c.post(SEARCH, json={"siren": SIREN, "label": "\u0000"}), 400, E.BAD_REQUEST)
    # who sees what
    with rest.client(AGENT) as c:
        serveur = deposit(c, "serveur", label=label)
    with rest.client(VISA) as c:  # role on bureautique only
        assert serveur not in _post(c, label=label)
        assert sorted(_post(c, label=label)) == sorted([a, b, d])
        error(c.post(SEARCH, json={"siren": SIREN, "circuit": "serveur"}), 403, E.NO_PERMISSION)
    with rest.client(ADMIN) as c:
        assert serveur in _post(c, label=label, circuit="serveur")
    with rest.basic() as c:
        assert sorted(_post(c, label=label)) == sorted([a, b, d, serveur])
    with rest.client(OTHER) as c:
        r = c.post(SEARCH, json={"siren": OTHER_SIREN, "label": label})
        assert r.status_code == 200
        assert r.json() == []


def test_search_on_demand_circuits(rest: Rest) -> None:
    label = f"volee-{uuid.uuid4().hex[:8]}"
    with rest.client(AGENT) as c:
        r = c.post(f"{V1}/documents/ondemand/{SIREN}/upload",
                   files={"doc": (unique(), pdf_bytes())},
                   data={"label": label, "circuit": json.dumps(
                       {"type": "BUREAUTIQUE_PDF", "steps": [{"step": "signature", "members": [SIGNER]}]})})
        assert r.status_code == 200, r.text
        doc = int(r.text)
        deposit(c, label=label)
        # Maarch searches on-demand documents with "circuit": "circuit-a-la-volee"
        assert _post(c, circuit="circuit-a-la-volee", label=label, state="Prepared") == [doc]
