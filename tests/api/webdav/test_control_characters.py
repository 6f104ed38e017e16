"""A control character in a WebDAV path (``%00``, ``%0A``, ``%1F``, ``%7F``) is refused before any route sees
it, in the WebDAV shape (issue 18): status 400, ``x-fast-error`` / ``x-fast-error-msg`` headers and the JSON
body, whatever the method; nothing is stored."""

from __future__ import annotations

import pytest

from parafe.domain.errors import E
from tests.api.webdav.davutil import DAV, Dav, unique
from tests.api.webdav.test_bad_input import Snapshot, _check_raw_error, raw_request
from tests.fixtures.files import pdf_bytes


@pytest.mark.parametrize("char", ["%00", "%0A", "%0d", "%1F", "%7F"])
def test_control_character_in_the_path_answers_in_the_webdav_shape(dav: Dav, char: str) -> None:
    before = Snapshot(dav)
    path = f"{DAV}/123456789/in/bureautique/{unique(suffix=char + '.pdf')}"
    for method, body in (("PUT", pdf_bytes()), ("GET", b""), ("PROPFIND", b""), ("DELETE", b"")):
        status, headers, content = raw_request(dav, method, path, body, headers={"Depth": "0"})
        _check_raw_error(status, headers, content, 400, E.BAD_CHARACTERS)
    before.assert_nothing_stored()
