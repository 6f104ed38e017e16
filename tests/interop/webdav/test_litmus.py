"""litmus (Debian ``litmus`` 0.13) against the part of the tree where ordinary WebDAV semantics apply, and the
list of litmus tests that do not apply to a drop folder, with the reason (also in ``docs/webdav.md``).

litmus needs to create its own collection (``MKCOL <base>/litmus/``) before any test, so it runs on
``in/<circuit>/`` (its collection becomes a label folder), as the subscriber's admin with Basic credentials over
TLS. Every litmus result must be a pass, or a test listed in :data:`NOT_APPLICABLE`. On ``out/`` litmus cannot
create its collection (read-only), so the litmus checks that do apply to out/ (OPTIONS, PROPFIND Depth 0/1 and
invalid bodies, GET with conditions and ranges, DELETE and DELETE of a missing resource) are run by
:func:`test_litmus_checks_on_out` with the same expectations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from parafe.domain.errors import E
from tests.api.webdav.davutil import (
    DAV,
    SIREN,
    Dav,
    assert_error,
    children,
    listing,
    propfind,
    put,
    require_tool,
    run,
    unique,
    url_path,
)
from tests.fixtures.files import pdf_bytes

# The litmus tests a drop folder passes.
EXPECTED_PASS: dict[str, set[str]] = {
    "basic": {"init", "begin", "options", "put_no_parent", "delete_null", "mkcol_no_parent", "mkcol_with_body",
              "finish"},
    "copymove": {"init", "begin", "copy_cleanup", "move_cleanup", "finish"},
    "props": {"init", "begin", "propfind_invalid", "propfind_invalid2", "propfind_d0", "propextended",
              "propwformed", "propcleanup", "finish"},
    "locks": {"init", "begin", "options"},
    "http": {"init", "begin", "finish"},
}

_PUT = ("a PUT into in/ is a deposit: litmus's files (plain text without an extension) are refused with 415 "
        "« Extension du fichier non autorisée. », and an accepted file is consumed, not stored for GET")
_NESTED = "litmus creates collections inside its own collection: label folders are one level deep (D6)"
_PUT_DEPENDENT = "needs the file of put_get (not applicable)"
_COPYMOVE = "COPY and MOVE are not offered (405): deposits are consumed and returns are read-only"
_PROPPATCH = ("PROPPATCH is not offered (405): a drop folder keeps no dead properties (files are consumed "
              "deposits or read-only returns)")
_LOCKS = ("no locking (DAV class 1): nothing to lock in a drop folder, and no in-memory lock state may exist "
          "with several server processes (docs/spec/DESIGN.md)")

# The litmus tests that do not apply to a drop folder, and why.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "basic": {"put_get": _PUT, "put_get_utf8_segment": _PUT, "mkcol_over_plain": _PUT_DEPENDENT,
              "delete": _PUT_DEPENDENT, "delete_fragment": _NESTED, "mkcol": _NESTED, "mkcol_again": _NESTED,
              "delete_coll": _NESTED},
    "copymove": {"copy_init": _COPYMOVE, "copy_simple": _COPYMOVE, "copy_overwrite": _COPYMOVE,
                 "copy_nodestcoll": _COPYMOVE, "copy_coll": _COPYMOVE, "copy_shallow": _COPYMOVE, "move": _COPYMOVE,
                 "move_coll": _COPYMOVE},
    "props": {name: _PROPPATCH for name in (
        "propinit", "propset", "propget", "propmove", "propdeletes", "propreplace", "propnullns",
        "prophighunicode", "propremoveset", "propsetremove", "propvalnspace", "propmanyns")},
    "locks": {"precond": _LOCKS},
    "http": {"expect100": "litmus skips it over TLS; curl -T (Expect: 100-continue) covers it in test_curl_seed"},
}

_RESULT = re.compile(r"(\d+)\. (\w+)\.+ (pass|FAIL|SKIPPED)")
_START = re.compile(r"(\d+)\. (\w+)\.+\s*(?:WARNING|$)")
_CONTINUED = re.compile(r"^\s*\.+ (pass|FAIL|SKIPPED)")
_SUITE = re.compile(r"-> running `(\w+)'")


def parse_litmus(output: str) -> dict[str, list[tuple[str, str]]]:
    """{suite: [(test, result), …]} from litmus's output (pass, FAIL or SKIPPED)."""
    results: dict[str, list[tuple[str, str]]] = {}
    suite = ""
    pending: str | None = None
    for piece in re.split(r"[\r\n]", output):
        if match := _SUITE.search(piece):
            suite = match.group(1)
            results[suite] = []
            continue
        if match := _RESULT.search(piece):
            results[suite].append((match.group(2), match.group(3)))
            pending = None
        elif match := _START.search(piece):
            pending = match.group(2)
        elif pending and (match := _CONTINUED.search(piece)):
            results[suite].append((pending, match.group(1)))
            pending = None
    return results


def test_litmus_on_label_folders(dav: Dav, tmp_path: Path) -> None:
    litmus = require_tool("litmus")
    base = f"{dav.url}{DAV}/{SIREN}/in/bureautique/"
    result = run([litmus, "-k", base, "admin@demo.parafe.test", dav.admin_password], cwd=tmp_path, timeout=300,
                 env={**os.environ, "TESTS": "basic copymove props locks http"})
    output = result.stdout.decode("utf-8", "replace")
    results = parse_litmus(output)
    assert sorted(results) == sorted(EXPECTED_PASS), output
    unexpected = []
    for suite, tests in results.items():
        passed = {name for name, outcome in tests if outcome == "pass"}
        missing = EXPECTED_PASS[suite] - passed
        assert not missing, (suite, missing, output)
        for name, outcome in tests:
            if outcome != "pass" and name not in NOT_APPLICABLE[suite]:
                unexpected.append((suite, name, outcome))
    assert unexpected == [], output
    # the not-applicable tests really are not passing here (the list is not stale)
    for suite, tests in results.items():
        for name, outcome in tests:
            if name in NOT_APPLICABLE[suite] and name not in EXPECTED_PASS[suite]:
                assert outcome != "pass", (suite, name, "passes now: move it to EXPECTED_PASS")


def test_litmus_checks_on_out(dav: Dav) -> None:
    """What litmus checks for GET, DELETE and PROPFIND, on out/ (where litmus cannot create its collection)."""
    label, name = unique("", "litmus-out"), unique()
    with dav.client() as c:
        r = put(c, url_path(SIREN, "in", "bureautique", label, name), pdf_bytes())
        assert r.status_code == 201
        content = pdf_bytes(text="retour", pad_to=5000)
        dav.sign(int(r.headers["x-fast-docid"]), content)
        folder = url_path(SIREN, "out", "bureautique", label, collection=True)
        file = url_path(SIREN, "out", "bureautique", label, name)
        # options
        options = c.request("OPTIONS", file)
        assert options.headers["dav"] == "1"
        assert {"GET", "DELETE", "PROPFIND"} <= {
            m.strip() for m in options.headers["allow"].split(",")}
        # propfind_invalid / propfind_invalid2: malformed bodies are 400
        assert propfind(c, folder, body=b"<foo>").status_code == 400
        invalid2 = (b'<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop>'
                    b'<bar:foo xmlns:bar=""/></prop></propfind>')
        assert propfind(c, folder, body=invalid2).status_code == 400
        # propfind_d0: the folder itself, a collection
        [itself] = listing(propfind(c, folder, depth="0")).values()
        assert itself.collection
        # named properties: known ones in a 200 propstat, unknown ones in a 404 propstat
        named = propfind(c, file, depth="0", body=(
            b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x"><D:prop><D:getcontentlength/>'
            b"<Z:absent/></D:prop></D:propfind>"))
        assert named.status_code == 207
        assert b"404 Not Found" in named.content
        assert [e.size for e in listing(named).values()] == [len(content)]
        # GET: content, conditional and range requests
        got = c.get(file)
        assert got.content == content
        assert int(got.headers["content-length"]) == len(content)
        assert c.get(file, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
        ranged = c.get(file, headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206
        assert ranged.content == content[:10]
        # delete, then delete_null
        assert c.delete(file).status_code == 204
        assert_error(c.get(file), 404, E.ROUTE_NOT_FOUND)
        assert_error(c.delete(file), 404, E.ROUTE_NOT_FOUND)
        assert name not in children(propfind(c, folder), folder)
        # read-only: no PUT, no MKCOL
        assert_error(put(c, file, pdf_bytes()), 403, E.NO_PERMISSION)
        assert_error(c.request("MKCOL", folder + "sous"), 403, E.NO_PERMISSION)
