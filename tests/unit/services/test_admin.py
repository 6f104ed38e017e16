"""Administration service and ``parafe admin`` command line: subscribers, users, certificates, groups, circuits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from parafe.db.models import Circuit, CircuitRole, StepMember, User
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import principal_for_email
from parafe.services.admin import platform as admin
from parafe.services.documents.deposit import DepositRequest, Upload, deposit
from tests.conftest import ROOT, Home
from tests.fixtures.files import pdf_bytes

EXAMPLE = ROOT / "docs" / "examples" / "commune.toml"


def test_apply_documented_example_is_idempotent(ctx: Any, tmp_path: Path) -> None:
    data = admin.load_config_file(EXAMPLE)
    first = admin.apply_config(ctx, data)
    assert "abonné 213100001 créé" in first
    assert "circuit deliberations à jour" in first
    admin.apply_config(ctx, data)
    circuits = {c["key"]: c for c in admin.list_circuits(ctx, "213100001")}
    assert circuits["deliberations"]["steps"] == ["visa", "signature", "filing"]
    assert circuits["pes"]["type"] == "HELIOS_AVEC_TELETRANSMISSION"
    with ctx.db.read() as s:
        circuit = s.scalar(select(Circuit).where(Circuit.key == "deliberations"))
        assert circuit.metadata_model[0]["name"] == "NUM001"
        roles = {(s.get(User, r.user_id).email, r.role) for r in s.scalars(
            select(CircuitRole).where(CircuitRole.circuit_id == circuit.id))}
        assert roles == {("secretariat@exemple.fr", "agent"), ("dgs@exemple.fr", "valideur"),
                         ("maire@exemple.fr", "signataire")}
        members = s.scalars(select(StepMember).where(StepMember.step_id == circuit.steps[1].id)).all()
        assert len(members) == 1
        assert members[0].group_id is not None


def test_created_user_with_certificate_can_deposit(ctx: Any, home: Home, tmp_path: Path) -> None:
    from parafe.security import pki

    admin.apply_config(ctx, admin.load_config_file(EXAMPLE))
    ca = pki.load_ca(home.path / "pki")
    ck = pki.issue_user_cert(ca, "secretariat@exemple.fr", "Sandrine Secrétariat")
    fp = admin.add_certificate(ctx, "213100001", "secretariat@exemple.fr", ck.cert_pem())
    assert fp == pki.fingerprint_sha256(ck.cert)
    assert admin.list_users(ctx, "213100001")[-1]["certificates"] == [fp] or any(
        u["certificates"] == [fp] for u in admin.list_users(ctx, "213100001"))
    path = tmp_path / "d.pdf"
    data = pdf_bytes()
    path.write_bytes(data)
    import hashlib

    doc = deposit(ctx, principal_for_email(ctx, "secretariat@exemple.fr"), DepositRequest(
        siren="213100001", circuit="deliberations",
        upload=Upload(path, hashlib.sha256(data).hexdigest(), len(data), "délib.pdf")))
    assert doc.document_id >= 100_000_000


@pytest.mark.parametrize(("call", "expected"), [
    (lambda ctx: admin.create_subscriber(ctx, "12345", "x"), E.ADMIN_SIREN_INVALID),
    (lambda ctx: admin.create_subscriber(ctx, "123456789", "x"), E.ADMIN_SUBSCRIBER_EXISTS),
    (lambda ctx: admin.create_user(ctx, "111111111", admin.UserSpec("a@b.fr")), E.ADMIN_SUBSCRIBER_UNKNOWN),
    (lambda ctx: admin.create_user(ctx, "123456789", admin.UserSpec("pas-une-adresse")), E.ADMIN_EMAIL_INVALID),
    (lambda ctx: admin.create_user(ctx, "123456789", admin.UserSpec("agent@demo.parafe.test")), E.ADMIN_USER_EXISTS),
    (lambda ctx: admin.create_user(ctx, "123456789", admin.UserSpec("b@b.fr", authentication_type="BASIC",
                                                                      password="court")), E.ADMIN_PASSWORD_REQUIRED),
    (lambda ctx: admin.add_certificate(ctx, "123456789", "agent@demo.parafe.test", b"garbage"),
     E.ADMIN_CERTIFICATE_INVALID),
    (lambda ctx: admin.define_circuit(ctx, "123456789", {"key": "k", "type": "NOPE", "steps": [{"kind": "visa"}]}),
     E.ADMIN_CIRCUIT_SPEC_INVALID),
    (lambda ctx: admin.define_circuit(ctx, "123456789", {"key": "k", "type": "BUREAUTIQUE_PDF", "steps": []}),
     E.ADMIN_CIRCUIT_SPEC_INVALID),
    (lambda ctx: admin.define_circuit(ctx, "123456789", {"key": "k", "type": "BUREAUTIQUE_PDF",
                                                         "steps": [{"kind": "visa", "members": ["x@inconnu.fr"]}]}),
     E.ADMIN_USER_UNKNOWN),
    (lambda ctx: admin.define_circuit(ctx, "123456789", {"key": "k", "type": "BUREAUTIQUE_PDF",
                                                         "steps": [{"kind": "teleport"}]}),
     E.ADMIN_CIRCUIT_SPEC_INVALID),
    (lambda ctx: admin.delete_circuit(ctx, "123456789", "inconnu"), E.ADMIN_CIRCUIT_UNKNOWN),
    (lambda ctx: admin.set_metadata_model(ctx, "123456789", "bureautique", [{"name": "X", "kind": "couleur"}]),
     E.ADMIN_CIRCUIT_SPEC_INVALID),
])
def test_admin_errors(ctx: Any, call: Any, expected: Any) -> None:
    with pytest.raises(ParafeError) as info:
        call(ctx)
    assert info.value.error is expected


def test_otp_step_accepts_outside_emails(ctx: Any) -> None:
    admin.define_circuit(ctx, "123456789", {"key": "otp2", "type": "BUREAUTIQUE_PDF",
                                            "steps": [{"kind": "otp_signature", "members": ["citoyen@ailleurs.fr"]}]})
    with ctx.db.read() as s:
        member = s.scalars(select(StepMember).join(Circuit, Circuit.key == "otp2")).first()
        assert member is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli(home: Home, tmp_path: Path) -> None:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "parafe", "admin", *args], env=home.env(), cwd=ROOT,
                              capture_output=True, text=True, input=stdin, timeout=120)

    r = run("subscriber", "add", "222222222", "Commune CLI")
    assert r.returncode == 0
    assert "Abonné 222222222 créé." in r.stdout
    r = run("subscriber", "add", "222222222", "Commune CLI")
    assert r.returncode == 1
    assert "Erreur : L'abonné 222222222 existe déjà." in r.stderr
    r = run("user", "add", "222222222", "admin@cli.fr", "--admin", "--basic", "--password-stdin",
            stdin="un-mot-de-passe-long\n")
    assert r.returncode == 0, r.stderr
    r = run("user", "list", "222222222")
    user = json.loads(r.stdout.splitlines()[0])
    assert user["admin"] is True
    assert user["authenticationType"] == "BASIC"
    r = run("apply", str(EXAMPLE))
    assert r.returncode == 0
    assert "circuit pes à jour" in r.stdout
    r = run("circuit", "list", "213100001")
    assert "deliberations" in r.stdout
    assert "visa → signature → filing" in r.stdout
    r = run("circuit", "define", "213100001", "--file", str(tmp_path / "absent.toml"))
    assert r.returncode == 1
    assert "Fichier de configuration illisible" in r.stderr
    r = run("--help")
    assert "Administration" in r.stdout
