"""Pure pieces of the portal: CSRF tokens, Origin check, CSP, the portal secret, the PES summary, the OTP
redirect URL and the French formatting (Europe/Paris)."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.portal import security
from parafe.portal.web import paris, size
from parafe.services.otp.pages import redirect_url
from parafe.services.portal.pes_summary import summarise
from tests.conftest import TESTDATA

SECRET = b"k" * 48


def test_csrf_tokens_are_bound_to_the_subject_and_the_day() -> None:
    now = datetime(2026, 11, 28, 10, tzinfo=UTC)
    token = security.csrf_token(SECRET, "cert:abc", now)
    security.check_csrf(SECRET, "cert:abc", token, now)
    security.check_csrf(SECRET, "cert:abc", token, now + timedelta(days=1))  # a page left open overnight
    for subject, candidate, moment in (("cert:abd", token, now), ("cert:abc", token, now + timedelta(days=2)),
                                       ("cert:abc", token[:-1] + ("A" if token[-1] != "A" else "B"), now),
                                       ("cert:abc", None, now), ("cert:abc", "", now)):
        with pytest.raises(ParafeError) as err:
            security.check_csrf(SECRET, subject, candidate, moment)
        assert err.value.error is E.PORTAL_CSRF
    with pytest.raises(ParafeError):
        security.check_csrf(b"x" * 48, "cert:abc", token, now)


def test_origin_check() -> None:
    security.check_origin({"origin": "https://parafe.example:8443"}, "parafe.example:8443")
    security.check_origin({}, "parafe.example")
    security.check_origin({"referer": "https://parafe.example/documents/1"}, "parafe.example")
    for headers in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/x"},
                    {"origin": "https://parafe.example.evil.example"}):
        with pytest.raises(ParafeError):
            security.check_origin(headers, "parafe.example")


def test_content_security_policy() -> None:
    csp = security.content_security_policy()
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://logiciel.example" in security.content_security_policy(
        security.origin_of("https://logiciel.example/retour?x=1"))
    assert security.origin_of("javascript:alert(1)") is None
    assert security.origin_of("https://a.example;script-src *") is None


def test_portal_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARAFE_PORTAL_SECRET", raising=False)
    first = security.portal_secret(tmp_path)
    assert len(first) >= 32
    assert security.portal_secret(tmp_path) == first
    assert stat.S_IMODE(os.stat(tmp_path / "portal.secret").st_mode) == 0o600
    monkeypatch.setenv("PARAFE_PORTAL_SECRET", "z" * 40)
    assert security.portal_secret(tmp_path) == b"z" * 40
    monkeypatch.setenv("PARAFE_PORTAL_SECRET", "short")
    with pytest.raises(RuntimeError):
        security.portal_secret(tmp_path)


def _secret_of(home: Path, barrier: object, out: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    out.put(security.portal_secret(home))  # type: ignore[attr-defined]


def test_server_processes_creating_the_secret_together_agree(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``parafe serve`` runs one process per core: the first requests may create the file at the same time."""
    import multiprocessing

    monkeypatch.delenv("PARAFE_PORTAL_SECRET", raising=False)
    fork = multiprocessing.get_context("fork")
    barrier, out = fork.Barrier(8), fork.Queue()
    workers = [fork.Process(target=_secret_of, args=(tmp_path, barrier, out)) for _ in range(8)]
    for worker in workers:
        worker.start()
    values = {out.get(timeout=30) for _ in workers}
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert len(values) == 1
    assert len(values.pop()) >= 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portal.secret"]  # no temporary file left


def test_pes_summary_of_the_samples(tmp_path: Path) -> None:
    samples = TESTDATA / "pes" / "samples"
    summary = summarise(samples / "valid_unsigned_PES_ex.xml")
    assert (summary.nom_fic, summary.typ_fic, summary.collectivity) == ("SICOVAL201512104", "PESALR2",
                                                                         "24310063300011")
    [bordereau] = summary.bordereaux
    assert (bordereau.domain, bordereau.id, bordereau.year, bordereau.piece_count) == ("Dépense", "2372", "2015", 1)
    assert bordereau.total == bordereau.declared_amount == Decimal("55.22")
    assert bordereau.pieces[0].third_party == "CELLULOSES DE BROCELIANDE AGRO MOUSQUETAIRES"
    accents = summarise(samples / "valid_unsigned_iso8859_accents.xml")
    assert accents.error is None
    assert accents.bordereaux
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<?xml version='1.0'?><PES_Aller><Bordereau><BlocBordereau>")
    assert summarise(broken).error is not None
    broken.write_bytes(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'x'>]><PES_Aller/>")
    assert summarise(broken).error is not None


def test_otp_redirect_url() -> None:
    assert redirect_url("https://app.example/retour", "SIGNED") == "https://app.example/retour?return=SIGNED"
    assert redirect_url("https://app.example/r?dossier=4#x", "NONE") == "https://app.example/r?dossier=4&return=NONE#x"
    assert redirect_url(None, "SIGNED") is None
    assert redirect_url("javascript:alert(1)", "SIGNED") is None
    assert redirect_url("https://app.example/", "HACKED") is None


def test_french_formatting() -> None:
    assert paris(datetime(2026, 7, 14, 10, 0, tzinfo=UTC)) == "14/07/2026 12:00"
    assert paris(datetime(2026, 1, 14, 10, 0, tzinfo=UTC)) == "14/01/2026 11:00"
    assert size(512) == "512 octets"
    assert size(1536) == "1,5 Ko"
    assert size(3 * 1024 * 1024) == "3,0 Mo"


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_palette_contrast_meets_wcag_aa() -> None:
    """The text/background pairs of portal.css reach 4.5:1 (WCAG 2.1 AA, normal text)."""
    import re as _re

    css = (Path(__file__).resolve().parents[3] / "parafe" / "portal" / "static" / "portal.css").read_text()
    var = dict(_re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    pairs = [("text", "bg"), ("text", "white"), ("muted", "white"), ("muted", "bg"), ("blue", "white"),
             ("blue", "bg"), ("white", "blue"), ("ok", "ok-bg"), ("wait", "wait-bg"), ("blue", "blue-light"),
             ("text", "ko-bg"), ("text", "info-bg")]
    for fg, bg in pairs:
        assert _contrast(var[fg], var[bg]) >= 4.5, (fg, bg, round(_contrast(var[fg], var[bg]), 2))
    assert _contrast("#a60400", var["ko-bg"]) >= 4.5  # error text on the error background
