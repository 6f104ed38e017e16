"""``parafe sign`` / ``parafe verify``: exit codes, output, results checked by independent tools.

Most calls run the command in-process (``parafe.signing.cli.main``); the last test runs real ``python -m parafe``
and ``python -m parafe.signing.cli`` processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import P12_PASSWORD, ROOT, Pki, make_pes, pdfsig, xmlsec1_verify_signatures


def run(*args: str, env: dict[str, str] | None = None, module: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command; in-process unless ``module`` names a module to run with ``python -m``."""
    full_env = {"PARAFE_SIGN_PASSWORD": P12_PASSWORD, **(env or {})}
    if module is not None:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **full_env},
                              capture_output=True, text=True, timeout=120)
    from parafe.signing.cli import main

    saved = {k: os.environ.get(k) for k in (*full_env, "PARAFE_TRUST_ROOTS")}
    os.environ.update(full_env)
    if "PARAFE_TRUST_ROOTS" not in full_env:
        os.environ.pop("PARAFE_TRUST_ROOTS", None)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse errors
                code = int(exc.code or 0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def test_sign_and_verify_pdf(tmp_path: Path, pki: Pki, pdf5: bytes) -> None:
    src = tmp_path / "arrete.pdf"
    src.write_bytes(pdf5)
    out = tmp_path / "arrete-signe.pdf"
    proc = run("sign", "pdf", str(src), str(out), "--p12", str(pki.signer.p12), "--stamp", "2,2,-1",
               "--quality", "Maire", "--line", "Arrêté n° 2026-42", "--reason", "Approbation")
    assert proc.returncode == 0, proc.stderr
    assert "Document signé" in proc.stdout
    _, sigs, text = pdfsig(out, pki)
    assert sigs, text
    assert sigs[0].valid, text
    assert sigs[0].trusted, text
    proc = run("verify", str(out), "--trust", str(pki.ca_pem), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is True
    assert report["signatures"][0]["level"] == "B-B"
    assert report["signatures"][0]["signer"] == "Jean Dupont"
    proc = run("verify", str(out))  # no trust anchor: integrity fine, chain unknown -> rejected
    assert proc.returncode == 1
    assert "NON VALIDE" in proc.stdout
    tampered = bytearray(out.read_bytes())
    tampered[100] ^= 1
    (tmp_path / "t.pdf").write_bytes(bytes(tampered))
    assert run("verify", str(tmp_path / "t.pdf"), "--trust", str(pki.ca_pem)).returncode == 1


def test_sign_and_verify_pes_per_bordereau(tmp_path: Path, pki: Pki) -> None:
    src = tmp_path / "flux.xml"
    src.write_bytes(make_pes(2))
    out = tmp_path / "flux-signe.xml"
    password_file = tmp_path / "pw"
    password_file.write_text(P12_PASSWORD + "\n")
    proc = run("sign", "pes", str(src), str(out), "--p12", str(pki.signer.p12), "--password-file",
               str(password_file), "--per-bordereau", "--role", "Maire", "--city", "Foix", env={
                   "PARAFE_SIGN_PASSWORD": "faux"})
    assert proc.returncode == 0, proc.stderr
    results = xmlsec1_verify_signatures(out, ["BORD1_SIG_1", "BORD2_SIG_1"], "Bordereau", trusted=pki.ca_pem)
    assert all(ok for ok, _ in results), results
    proc = run("verify", str(out), env={"PARAFE_TRUST_ROOTS": str(pki.ca_pem)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "per_bordereau" in proc.stdout
    assert "Maire" in proc.stdout


def test_sign_xades_zip_and_verify(tmp_path: Path, pki: Pki) -> None:
    src = tmp_path / "note.odt"
    src.write_bytes(b"PK\x03\x04" + os.urandom(500))
    sig, archive = tmp_path / "note.odt.xades.xml", tmp_path / "note.zip"
    proc = run("sign", "xades", str(src), str(sig), "--p12", str(pki.signer.p12), "--zip", str(archive))
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(pki.ca_pem), sig.name], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert run("verify", str(archive), "--trust", str(pki.ca_pem)).returncode == 0
    assert run("verify", str(sig), "--document", str(src), "--trust", str(pki.ca_pem)).returncode == 0
    assert run("verify", str(sig), "--trust", str(pki.ca_pem)).returncode == 2  # document missing
    src.write_bytes(b"autre contenu")
    assert run("verify", str(sig), "--document", str(src), "--trust", str(pki.ca_pem)).returncode == 1


def test_errors_and_exit_codes(tmp_path: Path, pki: Pki, pdf5: bytes) -> None:
    src = tmp_path / "a.pdf"
    src.write_bytes(pdf5)
    bad_pw = run("sign", "pdf", str(src), str(tmp_path / "b.pdf"), "--p12", str(pki.signer.p12),
                 env={"PARAFE_SIGN_PASSWORD": "faux"})
    assert bad_pw.returncode == 2
    assert "mot de passe" in bad_pw.stderr
    no_key = run("sign", "pdf", str(src), str(tmp_path / "b.pdf"))
    assert no_key.returncode == 2
    no_tsa = run("sign", "pdf", str(src), str(tmp_path / "b.pdf"), "--p12", str(pki.signer.p12), "--level", "B-T")
    assert no_tsa.returncode == 1
    assert "horodatage" in no_tsa.stderr
    garbage = tmp_path / "x.bin"
    garbage.write_bytes(b"\x00\x01 rien")
    assert run("verify", str(garbage)).returncode == 2


def test_real_processes(tmp_path: Path, pki: Pki, pdf5: bytes) -> None:
    """The lead's ``parafe`` command picks up ``sign`` and ``verify`` through ``add_commands``; standalone too."""
    src = tmp_path / "a.pdf"
    src.write_bytes(pdf5)
    out = tmp_path / "b.pdf"
    proc = run("sign", "pdf", str(src), str(out), "--p12", str(pki.signer.p12), module="parafe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run("verify", str(out), "--trust", str(pki.ca_pem), module="parafe.signing.cli")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VALIDE" in proc.stdout
