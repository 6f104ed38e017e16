"""The authorization matrix of the WebDAV tree: every method on every level of
``/partage/webdav/clients/<siren>/<in|out>/<circuit>/…``, against the real server over TLS, as in
``tests/api/rest/test_authorization_matrix.py``:

- no client certificate → 401 with ``x-fast-error: 161`` and the catalogue's message, on every level and method;
- a user of another subscriber → below ``<siren>``, exactly the answer of a SIREN that does not exist;
- a user of the subscriber without a role on the circuit (``visa@``: valideur of ``bureautique`` only) → below
  ``in|out/otp``, exactly the answer of a circuit that does not exist (and of a flow folder: it is no agent);
  a PUT gets the deposit service's « no permission »;
- the subscriber admin (certificate, no circuit role) → the answer of the level's owner (listing, file, 201, 204…).

The levels are the resource classes of :mod:`parafe.connectors.webdav.resources` and the methods those the
connector answers (``ALLOW_ANY``) plus those it refuses (``UNSUPPORTED``): a new level or method without its
line here fails :func:`test_every_level_and_method_has_an_entry`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from wsgidav.dav_provider import _DAVResource

from parafe.connectors.webdav import handlers, resources
from parafe.domain.errors import E, ErrorDef
from tests.api.webdav.davutil import ADMIN, AGENT, OTHER, SIREN, Dav, put, unique, url_path
from tests.fixtures.files import pdf_bytes

VISA = "visa@demo.parafe.test"
NONE = "none"
UNKNOWN_SIREN = "111111111"
CIRCUIT = "otp"
METHODS = [m.strip() for m in handlers.ALLOW_ANY.split(",")]
Answer = int | tuple[int, ErrorDef]  # a success status, or an error status with its catalogue entry


@dataclass
class Level:
    """One level of the tree: how to make it (returns the path segments below the mount), and the admin's
    answers by method (the owner's view)."""

    make: Callable[[Dav], list[str]]
    collection: bool
    owner: dict[str, Answer]
    hidden_for_other: bool = True  # below <siren>
    hidden_for_norole: bool = False  # below in|out/otp, or a flow folder


def _label(dav: Dav) -> str:
    name = unique("", "lbl")
    with dav.client(AGENT) as c:
        r = c.request("MKCOL", url_path(SIREN, "in", CIRCUIT, name, collection=True))
        assert r.status_code == 201, r.text
    return name


def _receipt(dav: Dav, label: str | None = None) -> tuple[str, int]:
    name = unique()
    segments = [SIREN, "in", CIRCUIT, *([label] if label else []), name]
    with dav.client(AGENT) as c:
        r = put(c, url_path(*segments), pdf_bytes(text=name))
        assert r.status_code == 201, r.text
    return name, int(r.headers["x-fast-docid"])


def _out_file(dav: Dav, label: str | None = None) -> str:
    name, doc = _receipt(dav, label)
    dav.sign(doc, pdf_bytes(text=f"signé {name}"))
    return name


def _out_label(dav: Dav) -> list[str]:
    label = _label(dav)
    _out_file(dav, label)
    return [SIREN, "out", CIRCUIT, label]


def _flow(dav: Dav) -> list[str]:
    from parafe.services.helios import returns

    returns.add_return(dav.ctx, kind="pes_retour", data=b"<flux/>", name=unique(".xml", "PES_Retour"), siren=SIREN)
    return [SIREN, "out", "PES_Retour"]


COLLECTION: dict[str, Answer] = {
    "OPTIONS": 200, "HEAD": (403, E.NO_PERMISSION), "GET": (403, E.NO_PERMISSION), "PROPFIND": 207,
    "DELETE": (403, E.NO_PERMISSION), "MKCOL": (405, E.METHOD_NOT_ALLOWED)}
NEEDS_NAME = (405, E.METHOD_NOT_ALLOWED)
READ_ONLY = (403, E.NO_PERMISSION)

LEVELS: dict[str, Level] = {
    "RootCollection": Level(lambda d: [], True, {**COLLECTION, "PUT": NEEDS_NAME}, hidden_for_other=False),
    "SubscriberCollection": Level(lambda d: [SIREN], True, {**COLLECTION, "PUT": NEEDS_NAME}),
    "InRoot": Level(lambda d: [SIREN, "in"], True, {**COLLECTION, "PUT": NEEDS_NAME}),
    "InCircuit": Level(lambda d: [SIREN, "in", CIRCUIT], True, {**COLLECTION, "PUT": NEEDS_NAME},
                       hidden_for_norole=True),
    "InLabel": Level(lambda d: [SIREN, "in", CIRCUIT, _label(d)], True,
                     {**COLLECTION, "PUT": NEEDS_NAME, "DELETE": 204}, hidden_for_norole=True),
    "Receipt": Level(lambda d: [SIREN, "in", CIRCUIT, _receipt(d)[0]], False,
                     {"OPTIONS": 200, "HEAD": 200, "GET": 200, "PROPFIND": 207, "PUT": (409, E.DUPLICATE_FILE),
                      "DELETE": 204, "MKCOL": (405, E.METHOD_NOT_ALLOWED)}, hidden_for_norole=True),
    "PendingUpload": Level(lambda d: [SIREN, "in", CIRCUIT, unique()], False,
                           {"OPTIONS": 200, "HEAD": (404, E.ROUTE_NOT_FOUND), "GET": (404, E.ROUTE_NOT_FOUND),
                            "PROPFIND": (404, E.ROUTE_NOT_FOUND), "PUT": 201, "DELETE": (404, E.ROUTE_NOT_FOUND),
                            "MKCOL": 201}, hidden_for_norole=True),
    "OutRoot": Level(lambda d: [SIREN, "out"], True, {**COLLECTION, "PUT": NEEDS_NAME}),
    "OutCircuit": Level(lambda d: [SIREN, "out", CIRCUIT], True, {**COLLECTION, "PUT": NEEDS_NAME},
                        hidden_for_norole=True),
    "OutLabel": Level(_out_label, True, {**COLLECTION, "PUT": NEEDS_NAME}, hidden_for_norole=True),
    "OutFile": Level(lambda d: [SIREN, "out", CIRCUIT, _out_file(d)], False,
                     {"OPTIONS": 200, "HEAD": 200, "GET": 200, "PROPFIND": 207, "PUT": READ_ONLY, "DELETE": 204,
                      "MKCOL": (405, E.METHOD_NOT_ALLOWED)}, hidden_for_norole=True),
    "FlowFolder": Level(_flow, True, {**COLLECTION, "PUT": NEEDS_NAME}, hidden_for_norole=True),
}


def _resource_classes() -> set[str]:
    """The concrete resource classes of the tree: its levels (not the bases ``Collection`` and ``File``)."""
    return {name for name, cls in inspect.getmembers(resources, inspect.isclass)
            if issubclass(cls, _DAVResource) and cls.__module__ == resources.__name__ and not name.startswith("_")
            and cls not in (resources.Collection, resources.File)}


def test_every_level_and_method_has_an_entry() -> None:
    assert set(LEVELS) == _resource_classes(), (set(LEVELS) ^ _resource_classes(), "a level without its line")
    for name, level in LEVELS.items():
        assert set(level.owner) == set(METHODS), (name, set(level.owner) ^ set(METHODS))
    assert not set(METHODS) & handlers.UNSUPPORTED


def _request(dav: Dav, identity: str, method: str, segments: list[str], collection: bool) -> httpx.Response:
    path = url_path(*segments, collection=collection) if segments else url_path("", collection=False)
    kwargs: dict[str, Any] = {}
    if method == "PROPFIND":
        kwargs["headers"] = {"Depth": "1"}
    if method == "PUT":
        kwargs["content"] = pdf_bytes(text=unique())
    with dav.client(None if identity == NONE else identity) as c:
        return c.request(method, path, **kwargs)


def _shape(response: httpx.Response) -> tuple[int, str | None, str | None, str | None]:
    """What a client sees of an answer (the Allow header of OPTIONS, the catalogue code of an error)."""
    return (response.status_code, response.headers.get("x-fast-error"), response.headers.get("x-fast-error-msg"),
            response.headers.get("allow"))


def _check(response: httpx.Response, expected: Answer, who: str) -> None:
    if isinstance(expected, int):
        assert response.status_code == expected, (who, response.status_code, response.text[:300])
        assert "x-fast-error" not in response.headers, who
        return
    status, entry = expected
    assert response.status_code == status, (who, response.status_code, response.text[:300])
    assert response.headers.get("x-fast-error") == str(entry.code), (who, response.headers)
    if "{" not in entry.message:
        assert unquote(response.headers["x-fast-error-msg"]) == entry.message, (who, response.headers)
    if response.request.method != "HEAD":
        assert response.json()["errorCode"] == entry.code, (who, response.text[:300])


def _hidden(method: str, segments: list[str], identity: str, collection: bool) -> Answer:
    """The answer of a path the caller cannot see: exactly an unknown one's."""
    if method == "OPTIONS":
        return 200
    if method == "MKCOL":  # under a visible parent that takes no folder, or under a hidden one
        return READ_ONLY if len(segments) == (1 if identity == OTHER else 3) else (409, E.BAD_REQUEST)
    if method == "PUT":
        if collection:
            return NEEDS_NAME
        if len(segments) >= 2 and segments[1] == "out":
            return READ_ONLY
        if len(segments) < 4:
            return NEEDS_NAME
        return (403, E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN) if identity == OTHER else (403, E.NO_PERMISSION)
    return (404, E.ROUTE_NOT_FOUND)


def _unknown_twin(segments: list[str], identity: str) -> list[str]:
    """The same path with what the caller cannot see replaced by a name that does not exist."""
    if identity == OTHER:
        return [UNKNOWN_SIREN, *segments[1:]]
    return [*segments[:2], "inconnu", *segments[3:]]


CELLS = [(level, method) for level in LEVELS for method in METHODS]


@pytest.mark.parametrize(("level", "method"), CELLS, ids=[f"{lv}-{m}" for lv, m in CELLS])
def test_authorization_matrix(dav: Dav, level: str, method: str) -> None:
    spec = LEVELS[level]
    segments = spec.make(dav)
    for identity in (NONE, OTHER, VISA, ADMIN):  # the admin last: PUT, DELETE and MKCOL change the tree
        response = _request(dav, identity, method, segments, spec.collection)
        if identity == NONE:
            _check(response, (401, E.CERT_MISSING), identity)
            continue
        hidden = spec.hidden_for_other if identity == OTHER else spec.hidden_for_norole if identity == VISA else False
        if not hidden:
            _check(response, spec.owner[method], identity)
            continue
        _check(response, _hidden(method, segments, identity, spec.collection), identity)
        if method == "PUT" and identity == VISA:
            continue  # the deposit service names the missing role (as REST's R2 does)
        twin = _request(dav, identity, method, _unknown_twin(segments, identity), spec.collection)
        assert _shape(twin) == _shape(response), (identity, _shape(twin), _shape(response))


# Methods the HTTP server's parser refuses before any application code runs (400, the same for everyone).
REFUSED_BY_HTTP_PARSER = frozenset({"VERSION-CONTROL"})


@pytest.mark.parametrize("method", sorted(handlers.UNSUPPORTED))
def test_unsupported_methods(dav: Dav, method: str) -> None:
    """Methods a drop folder does not offer: 401 without a certificate, else 405 with ``Allow``, for everyone."""
    segments = [SIREN, "in", CIRCUIT, _receipt(dav)[0]]
    for identity in (NONE, OTHER, VISA, ADMIN):
        response = _request(dav, identity, method, segments, False)
        if method in REFUSED_BY_HTTP_PARSER:
            assert response.status_code == 400, (identity, response.text)
            assert "x-fast-error" not in response.headers, (identity, response.text)
        elif identity == NONE:
            _check(response, (401, E.CERT_MISSING), identity)
        else:
            _check(response, (405, E.METHOD_NOT_ALLOWED), identity)
            assert response.headers["allow"] == handlers.ALLOW_ANY
