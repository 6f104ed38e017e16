"""End to end with the real workflow engine (in-process worker on): a PDF dropped in ``in/serveur/<label>/`` is
signed by the server and comes back signed in ``out/serveur/<label>/``; a PES-PJ dropped in ``in/pes-pj/`` goes
to the Helios simulator and its acknowledgement comes back as ``out/pes-pj/ACQUIT_<name>``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.webdav.davutil import SIREN, Dav, children, dav_server, propfind, put, unique, url_path
from tests.fixtures.files import pdf_bytes
from tests.interop.webdav.clients import pes_pj


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, pki_template: Path) -> Iterator[Dav]:
    env = {"PARAFE_WORKER_IN_PROCESS": "true", "PARAFE_HELIOS_SIM_DELAY": "0.2"}
    with dav_server(tmp_path_factory, pki_template, "sqlite", env) as server:
        yield server


def _wait_for(dav: Dav, folder: str, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    with dav.client() as c:
        while time.monotonic() < deadline:
            if name in children(propfind(c, folder), folder):
                return
            time.sleep(0.5)
    raise AssertionError(f"{name} did not appear in {folder} within {timeout}s")


def test_server_signature_comes_back_in_out(live: Dav) -> None:
    label, name = unique("", "serveur"), unique()
    original = pdf_bytes(text="à signer par le serveur")
    with live.client() as c:
        r = put(c, url_path(SIREN, "in", "serveur", label, name), original)
        assert r.status_code == 201, r.text
    folder = url_path(SIREN, "out", "serveur", label, collection=True)
    _wait_for(live, folder, name)
    with live.client() as c:
        signed = c.get(url_path(SIREN, "out", "serveur", label, name)).content
    assert signed.startswith(b"%PDF")
    assert signed != original
    assert b"/ByteRange" in signed  # a PDF signature was appended


def test_helios_acknowledgement_comes_back_in_out(live: Dav) -> None:
    name = unique(".xml", "pj")
    with live.client() as c:
        r = put(c, url_path(SIREN, "in", "pes-pj", name), pes_pj())
        assert r.status_code == 201, r.text
    folder = url_path(SIREN, "out", "pes-pj", collection=True)
    _wait_for(live, folder, "ACQUIT_" + name)
    with live.client() as c:
        ack = c.get(url_path(SIREN, "out", "pes-pj", "ACQUIT_" + name))
    assert ack.status_code == 200
    assert b"PES_ACQUIT" in ack.content
