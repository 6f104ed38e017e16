"""``parafe pki``: every sub-command, the refusal to overwrite, French error messages, help texts."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from parafe.security import pki, pki_dev
from parafe.security.pki_cli import add_commands


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="parafe")
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    assert run(["pki", "ca", "--out", str(tmp_path / "ca"), "--cn", "AC de test"]) == 0
    return tmp_path / "ca"


def test_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "new-ca"
    assert run(["pki", "ca", "--out", str(ca_dir), "--cn", "AC de test", "--days", "365"]) == 0
    for name in ("ca.pem", "ca.key", "crl.pem", "revoked.txt"):
        assert (ca_dir / name).is_file()
    assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    ca = pki.load_ca(ca_dir)
    assert ca.cert.subject.rfc4514_string().startswith("CN=AC de test")
    assert "AC créée" in capsys.readouterr().out


def test_existing_files_need_force(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (ca_dir / "ca.pem").read_bytes()
    assert run(["pki", "ca", "--out", str(ca_dir), "--cn", "Autre"]) == 1
    err = capsys.readouterr().err
    assert "ca.pem existe déjà ; utilisez --force" in err
    assert (ca_dir / "ca.pem").read_bytes() == before
    assert run(["pki", "ca", "--out", str(ca_dir), "--cn", "Autre", "--force"]) == 0
    assert (ca_dir / "ca.pem").read_bytes() != before


def test_server(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "srv" / "parapheur"
    assert run(["pki", "server", "--ca", str(ca_dir), "--host", "parapheur.example.fr", "10.0.0.5",
                "--host", "localhost", "--out", str(out)]) == 0
    cert = pki.load_cert(out.with_suffix(".pem"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["parapheur.example.fr", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert out.with_suffix(".key").stat().st_mode & 0o777 == 0o600
    assert run(["pki", "server", "--ca", str(ca_dir), "--host", "x", "--out", str(out)]) == 1


def test_user_with_p12(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "people" / "jean.dupont"
    assert run(["pki", "user", "--ca", str(ca_dir), "--email", "jean.dupont@mairie.fr", "--name", "Jean Dupont",
                "--out", str(out) + ".pem", "--p12-password", "secret", "--days", "30"]) == 0
    cert = pki.load_cert(tmp_path / "people" / "jean.dupont.pem")
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < dt.timedelta(days=31)
    key, p12_cert, cas = pkcs12.load_key_and_certificates((tmp_path / "people/jean.dupont.p12").read_bytes(),
                                                          b"secret")
    assert p12_cert == cert
    assert key is not None
    assert cas == [pki.load_cert(ca_dir / "ca.pem")]


def test_user_expired(ca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    assert run(["pki", "user", "--ca", str(ca_dir), "--email", "old@b.fr", "--name", "Old", "--out", str(out),
                "--expired"]) == 0
    assert pki.load_cert(tmp_path / "old.pem").not_valid_after_utc < dt.datetime.now(dt.UTC)
    assert not (tmp_path / "old.p12").exists()


def test_revoke_by_cert_and_by_serial(ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        run(["pki", "user", "--ca", str(ca_dir), "--email", f"{name}@b.fr", "--name", name.upper(),
             "--out", str(tmp_path / name)])
    a = pki.load_cert(tmp_path / "a.pem").serial_number
    b = pki.load_cert(tmp_path / "b.pem").serial_number
    assert run(["pki", "revoke", "--ca", str(ca_dir), "--cert", str(tmp_path / "a.pem")]) == 0
    assert run(["pki", "revoke", "--ca", str(ca_dir), "--serial", hex(b)]) == 0
    crl = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert {r.serial_number for r in crl} == {a, b}
    assert "révoqué" in capsys.readouterr().out
    assert run(["pki", "crl", "--ca", str(ca_dir), "--days", "7"]) == 0
    crl = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert {r.serial_number for r in crl} == {a, b}
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=7)  # type: ignore[operator]


def test_revoke_refuses_a_foreign_certificate(ca_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pki", "unknown-ca", "--out", str(tmp_path / "foreign")]) == 0
    assert (tmp_path / "foreign-root.pem").is_file()
    capsys.readouterr()
    assert run(["pki", "revoke", "--ca", str(ca_dir), "--cert", str(tmp_path / "foreign.pem")]) == 1
    assert "n'a pas été émis" in capsys.readouterr().err
    assert run(["pki", "revoke", "--ca", str(ca_dir), "--serial", "douze"]) == 1
    assert "numéro de série invalide" in capsys.readouterr().err


def test_missing_ca_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pki", "user", "--ca", str(tmp_path / "absent"), "--email", "a@b.fr", "--name", "A",
                "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "n'existe pas" in err
    assert not (tmp_path / "a.pem").exists()


def test_bad_email(ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pki", "user", "--ca", str(ca_dir), "--email", "pas-une-adresse", "--name", "A",
                "--out", str(tmp_path / "a")]) == 1
    assert "valeur invalide" in capsys.readouterr().err


def test_init_with_home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert run(["pki", "init", "--home", str(home), "--user", "x@demo.parafe.test=Xavier Démo"]) == 0
    out = capsys.readouterr().out
    assert "curl --cert" in out
    assert (home / "demo" / "x@demo.parafe.test.p12").is_file()
    assert (home / "demo" / "bad" / "unknown-ca.pem").is_file()
    assert run(["pki", "init", "--home", str(home), "--user", "x@demo.parafe.test=Xavier Démo"]) == 0
    assert "rien à faire" in capsys.readouterr().out


def test_init_uses_parafe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from parafe.config import reset_settings

    monkeypatch.setenv("PARAFE_HOME", str(tmp_path / "envhome"))
    reset_settings()
    try:
        assert run(["pki", "init"]) == 0
    finally:
        monkeypatch.undo()
        reset_settings()
    assert (tmp_path / "envhome" / "pki" / "ca.pem").is_file()
    for email, _name in pki_dev.DEFAULT_DEMO_USERS:
        assert (tmp_path / "envhome" / "demo" / f"{email}.pem").is_file()


def test_show(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["pki", "show", str(ca_dir / "ca.pem")]) == 0
    out = capsys.readouterr().out
    assert pki.fingerprint_sha256(pki.load_cert(ca_dir / "ca.pem")) in out
    assert run(["pki", "show", str(ca_dir / "nothing.pem")]) == 1


def test_help_is_bilingual(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["pki", "--help"])
    out = capsys.readouterr().out
    assert "Créer une AC / Create a CA" in out
    for command in ("init", "ca", "server", "user", "revoke", "crl", "unknown-ca", "show"):
        assert command in out


def test_registered_in_the_parafe_command(tmp_path: Path) -> None:
    from parafe.cli import main

    assert main(["pki", "ca", "--out", str(tmp_path / "viacli"), "--cn", "Via CLI"]) == 0
    assert (tmp_path / "viacli" / "ca.pem").is_file()
