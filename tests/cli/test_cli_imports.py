"""Start-up of the ``parafe`` command (issue 17): importing ``parafe.cli`` and building its parser (what
``parafe --help`` does) loads neither FastAPI, SQLAlchemy, pyHanko nor pydantic-settings, and ``parafe sign pes``
loads none of them either; a command group that cannot be imported stops the command with a clear error instead
of vanishing from ``--help`` (issue 19). Every check runs in a fresh interpreter."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PES = ROOT / "tests" / "data" / "pes" / "samples" / "valid_unsigned_PES_ex.xml"
HEAVY = ("fastapi", "sqlalchemy", "pyhanko", "pydantic_settings")
LOADED = f"import json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def _heavy_loaded(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _heavy_loaded(_python(f"import parafe.cli\n{LOADED}")) == []


def test_building_the_parser_loads_no_heavy_library() -> None:
    proc = _python(f"import parafe.cli\nparser = parafe.cli.build_parser()\nparser.format_help()\n{LOADED}")
    assert _heavy_loaded(proc) == []


def test_help_lists_every_command_group() -> None:
    proc = subprocess.run([sys.executable, "-m", "parafe", "--help"], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("serve", "init", "pki", "admin", "sign", "verify", "worker", "dev", "signer", "client"):
        assert f"    {command} " in proc.stdout or f"    {command}\n" in proc.stdout, (command, proc.stdout)


def test_each_command_group_registers_the_commands_listed_for_it() -> None:
    # parafe COMMAND … loads only the group _COMMAND_GROUPS names for COMMAND: the list must stay exact
    code = ("import argparse, importlib, json\nfrom parafe.cli import _COMMAND_GROUPS\nfound = {}\n"
            "for module, function, _ in _COMMAND_GROUPS:\n"
            "    sub = argparse.ArgumentParser().add_subparsers()\n"
            "    getattr(importlib.import_module(module), function)(sub)\n"
            "    found[module] = sorted(sub.choices)\n"
            "print(json.dumps([found, {m: sorted(c) for m, _, c in _COMMAND_GROUPS}]))")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    found, listed = json.loads(proc.stdout)
    assert found == listed


def test_a_command_loads_only_its_command_group() -> None:
    proc = _python("import sys\nfrom parafe.cli import build_parser\nbuild_parser(['sign', 'pes', '--help'])\n"
                   "print(sorted(m for m in sys.modules if m.endswith('cli') and m.startswith('parafe.')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['parafe.cli',", "'parafe.signing.cli']"]


def _p12(path: Path) -> Path:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ordonnateur de test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=9)).sign(key, hashes.SHA256()))
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"t", key, cert, None, serialization.NoEncryption()))
    return path


def test_sign_pes_loads_no_heavy_library(tmp_path: Path) -> None:
    out = tmp_path / "signe.xml"
    argv = ["sign", "pes", str(SAMPLE_PES), str(out), "--per-bordereau", "--p12", str(_p12(tmp_path / "k.p12"))]
    proc = _python(f"from parafe.cli import main\nassert main({argv!r}) == 0\n{LOADED}")
    assert _heavy_loaded(proc) == []
    assert out.read_bytes().count(b"<ds:SignatureValue") == 1


def test_a_command_group_that_cannot_be_imported_is_an_error() -> None:
    # None in sys.modules makes ``import parafe.client.cli`` raise ImportError, like a missing dependency would
    proc = _python("import sys\nsys.modules['parafe.client.cli'] = None\nfrom parafe.cli import main\n"
                   "raise SystemExit(main(['--help']))")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "parafe.client.cli" in proc.stderr
    assert "ne peut pas être chargé" in proc.stderr
    assert "usage" not in proc.stdout.lower()


def test_a_command_group_without_its_registration_function_is_an_error() -> None:
    proc = _python("import sys, types\nbroken = types.ModuleType('parafe.signer.cli')\n"
                   "sys.modules['parafe.signer.cli'] = broken  # no add_commands\n"
                   "from parafe.cli import main\nraise SystemExit(main(['signer', '--help']))")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "parafe.signer.cli" in proc.stderr
