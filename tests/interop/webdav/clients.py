"""Shared pieces of the WebDAV interop tests: test files, client certificates in the forms each tool wants, and a
pseudo-terminal runner for cadaver (it asks its questions only on a terminal)."""

from __future__ import annotations

import os
import pty
import re
import select
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.api.webdav.davutil import Dav
from tests.conftest import TESTDATA

PES_PJ = (TESTDATA / "pes" / "samples" / "valid_PES_PJ.xml").read_bytes()


def pes_pj(nom_fic: str | None = None) -> bytes:
    """The PES-PJ sample with a fresh NomFic (unique across all subscribers, spec §1.2.7)."""
    value = (nom_fic or f"WEBDAV{uuid.uuid4().hex[:12]}").encode()
    return re.sub(rb'(<NomFic V=")[^"]*(")', rb"\g<1>" + value + rb"\2", PES_PJ, count=1)


def encrypted_pem(dav: Dav, email: str, password: str, dest: Path) -> Path:
    """Certificate + private key encrypted with ``password`` in one PEM file (``curl -E file.pem:password``)."""
    pem, key = dav.home.demo(email)
    private = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
    encrypted = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(password.encode()))
    dest.write_bytes(Path(pem).read_bytes() + encrypted)
    return dest


def run_in_pty(cmd: list[str], answers: list[tuple[bytes, bytes]], *, env: dict[str, str] | None = None,
               cwd: Path | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``cmd`` on a pseudo-terminal, answering each prompt once; returns (exit status, transcript)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        if cwd is not None:
            os.chdir(cwd)
        os.execvpe(cmd[0], cmd, {**os.environ, **(env or {})})
    transcript = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if fd not in ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            transcript += data
            for prompt, reply in list(pending):
                if prompt in transcript:
                    os.write(fd, reply)
                    pending.remove((prompt, reply))
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), transcript.decode("utf-8", "replace")
