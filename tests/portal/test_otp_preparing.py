"""The OTP page of a document the workflow has not prepared yet: no automatic reload of the page (axe
``meta-refresh``, RGAA 13.1 / WCAG 2.2.1); the body is fetched again in place and shows the document once ready.

The module's server runs without its in-process worker, so the freshly deposited document stays « starting »
until the test starts a ``parafe worker`` itself.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, Home, LiveServer, start_server, stop_server
from tests.portal.test_browser_otp_admin import rest_otp_upload


@pytest.fixture(scope="module")
def portal_server(portal_home: Home) -> Iterator[LiveServer]:
    server = start_server(portal_home, {"PARAFE_PORTAL_SECRET": "s" * 48, "PARAFE_WORKER_IN_PROCESS": "false"})
    try:
        yield server
    finally:
        stop_server(server)


def test_preparing_document_is_polled_in_place(browsing: Any) -> None:
    server = browsing.server
    _, url = rest_otp_upload(server, "contrat-en-preparation.pdf", None)
    page = browsing.page()
    page.goto(url)
    status = page.get_by_role("status").filter(has_text="en cours de préparation")
    status.wait_for()
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    worker = subprocess.Popen([sys.executable, "-m", "parafe", "worker"], cwd=str(ROOT), env=server.home.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page.get_by_role("button", name="Recevoir un code").wait_for(timeout=90_000)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded instead of updated in place"
    assert page.get_by_text("en cours de préparation").count() == 0
