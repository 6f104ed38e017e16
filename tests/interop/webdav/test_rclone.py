"""rclone (Debian ``rclone`` 1.60) with the agent's client certificate: ``copy`` deposits each file exactly once
(rclone re-checks the object after the upload and finds the receipt, D6; a second run transfers nothing), with
NFC and NFD names; then ``copy`` and ``delete`` fetch and remove returns from out/."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from sqlalchemy import func, select

from parafe.db.models import OutboxItem
from tests.api.webdav.davutil import (
    AGENT,
    DAV,
    SIREN,
    Dav,
    children,
    propfind,
    put,
    require_tool,
    run,
    unique,
    url_path,
)
from tests.fixtures.files import pdf_bytes


def _rclone(dav: Dav, tmp_path: Path, *args: str) -> tuple[int, str]:
    pem, key = dav.home.demo(AGENT)
    cmd = [require_tool("rclone"), *args, "--webdav-url", f"{dav.url}{DAV}", "--ca-cert", dav.home.ca,
           "--client-cert", pem, "--client-key", key, "--config", str(tmp_path / "rclone.conf"), "-v",
           "--retries", "3", "--low-level-retries", "3"]
    result = run(cmd, timeout=180)
    return result.returncode, result.stderr.decode("utf-8", "replace")


def _error_mails(dav: Dav) -> int:
    with dav.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxItem)
                                  .where(OutboxItem.kind == "mail.deposit_error")) or 0)


def test_rclone_uploads_exactly_once(dav: Dav, tmp_path: Path) -> None:
    require_tool("rclone")
    local = tmp_path / "depots"
    local.mkdir()
    names = [unicodedata.normalize("NFC", unique(" délibération.pdf", "rclone")),
             unicodedata.normalize("NFD", unique(" arrêté.pdf", "rclone"))]
    for i, name in enumerate(names):
        (local / name).write_bytes(pdf_bytes(text=f"rclone {i}"))
    label = unique("", "rclone")
    mails = _error_mails(dav)
    status, log = _rclone(dav, tmp_path, "copy", str(local), f":webdav:{SIREN}/in/bureautique/{label}")
    assert status == 0, log
    for name in names:
        docs = dav.documents_named(unicodedata.normalize("NFC", name))
        assert len(docs) == 1, (name, log)  # exactly once
        assert docs[0].source == "webdav"
    assert _error_mails(dav) == mails  # no second PUT was refused as a duplicate
    # a second run finds the receipts and transfers nothing
    status, log = _rclone(dav, tmp_path, "copy", str(local), f":webdav:{SIREN}/in/bureautique/{label}")
    assert status == 0, log
    assert "There was nothing to transfer" in log, log
    assert sum(len(dav.documents_named(unicodedata.normalize("NFC", n))) for n in names) == 2
    assert _error_mails(dav) == mails


def test_rclone_fetches_and_deletes_returns(dav: Dav, tmp_path: Path) -> None:
    require_tool("rclone")
    label = unique("", "retours")
    returned: dict[str, bytes] = {}
    with dav.client() as c:
        for i in range(3):
            name = unique(prefix=f"retour{i}")
            r = put(c, url_path(SIREN, "in", "bureautique", label, name), pdf_bytes())
            assert r.status_code == 201
            returned[name] = pdf_bytes(text=f"signé {i}", pad_to=3000 + i)
            dav.sign(int(r.headers["x-fast-docid"]), returned[name])
    fetched = tmp_path / "recus"
    remote = f":webdav:{SIREN}/out/bureautique/{label}"
    status, log = _rclone(dav, tmp_path, "copy", remote, str(fetched))
    assert status == 0, log
    assert {p.name: p.read_bytes() for p in fetched.iterdir()} == returned
    status, log = _rclone(dav, tmp_path, "delete", remote)
    assert status == 0, log
    with dav.client() as c:
        folder = url_path(SIREN, "out", "bureautique", label, collection=True)
        assert children(propfind(c, folder), folder) == {}
