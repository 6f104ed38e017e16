"""The demo set created on first start (operator contract of the Foundation issue).

Subscriber 123456789 « Commune de Démo » with circuits bureautique, pes, pes-pj, serveur, otp, xml; users agent,
visa, signataire and admin @demo.parafe.test; a second subscriber 987654321 with agent@autre.parafe.test for
isolation tests. Every demo user gets a client certificate from the dev PKI (``$PARAFE_HOME/demo/``) bound to
their account, and ``$PARAFE_HOME/demo/README.txt`` lists ids, circuits, users and passwords.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import (
    Circuit,
    CircuitRole,
    CircuitStep,
    OssWorkflow,
    StepMember,
    Subscriber,
    User,
    UserCertificate,
)
from parafe.domain.circuits import CircuitType, StepKind
from parafe.security import pki, pki_dev
from parafe.services.access.auth import hash_password
from parafe.services.oss.workflows import WorkflowSpec, configure_workflow

DEMO_SIREN = "123456789"
OTHER_SIREN = "987654321"
AGENT = "agent@demo.parafe.test"
VISA = "visa@demo.parafe.test"
SIGNER = "signataire@demo.parafe.test"
ADMIN = "admin@demo.parafe.test"
OTHER_AGENT = "agent@autre.parafe.test"
OSS_DEMO_WORKFLOW = "oss-demo"
OSS_DEMO_P12 = "pki/oss-demo-signing.p12"


@dataclass(frozen=True)
class DemoUser:
    email: str
    firstname: str
    lastname: str
    quality: str
    siren: str
    admin: bool = False


DEMO_USERS = (
    DemoUser(AGENT, "Alice", "Agent", "Agent administratif", DEMO_SIREN),
    DemoUser(VISA, "Victor", "Valideur", "Directeur général des services", DEMO_SIREN),
    DemoUser(SIGNER, "Sophie", "Signataire", "Maire", DEMO_SIREN),
    DemoUser(ADMIN, "Adèle", "Administratrice", "Administratrice", DEMO_SIREN, admin=True),
    DemoUser(OTHER_AGENT, "Omar", "Autre", "Agent", OTHER_SIREN),
)

# key, name, type, steps, pes_pj, settings
CircuitSpec = tuple[str, str, CircuitType, tuple[tuple[StepKind, str | None], ...], bool, dict[str, object]]
DEMO_CIRCUITS: tuple[CircuitSpec, ...] = (
    ("bureautique", "Bureautique (visa puis signature)", CircuitType.BUREAUTIQUE_PDF,
     ((StepKind.VISA, VISA), (StepKind.SIGNATURE, SIGNER), (StepKind.FILING, None)), False, {}),
    ("pes", "PES (signature puis Hélios)", CircuitType.HELIOS_AVEC_TELETRANSMISSION,
     ((StepKind.SIGNATURE, SIGNER), (StepKind.HELIOS, None), (StepKind.FILING, None)), False,
     {"pes_signature": "per_bordereau", "skip_signature_if_signed": True}),
    ("pes-pj", "PES-PJ (transmis sans signature)", CircuitType.HELIOS_AVEC_TELETRANSMISSION,
     ((StepKind.HELIOS, None), (StepKind.FILING, None)), True, {}),
    ("serveur", "Signature serveur", CircuitType.BUREAUTIQUE_PDF,
     ((StepKind.SERVER_SIGNATURE, None), (StepKind.FILING, None)), False, {}),
    ("otp", "Signature OTP", CircuitType.BUREAUTIQUE_PDF,
     ((StepKind.OTP_SIGNATURE, None), (StepKind.FILING, None)), False, {}),
    ("xml", "Bureautique XAdES détaché", CircuitType.BUREAUTIQUE_XML,
     ((StepKind.SIGNATURE, SIGNER), (StepKind.FILING, None)), False, {}),
)

OTHER_CIRCUITS: tuple[CircuitSpec, ...] = (("bureautique", "Bureautique", CircuitType.BUREAUTIQUE_PDF,
                   ((StepKind.SERVER_SIGNATURE, None), (StepKind.FILING, None)), False, {}),)


def _fingerprint(pem_path: Path) -> tuple[str, x509.Certificate]:
    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return pki.fingerprint_sha256(cert), cert


def _ensure_user(session: Session, sub: Subscriber, spec: DemoUser, home: Path, password: str | None) -> User:
    user = session.scalar(select(User).where(User.subscriber_id == sub.id, User.email == spec.email))
    if user is None:
        user = User(subscriber_id=sub.id, email=spec.email, firstname=spec.firstname, lastname=spec.lastname,
                    quality=spec.quality, is_admin=spec.admin,
                    authentication_type="BASIC" if spec.admin else "CERTIFICAT",
                    password_hash=hash_password(password) if (spec.admin and password) else None)
        session.add(user)
        session.flush()
    fp, cert = _fingerprint(home / "demo" / f"{spec.email}.pem")
    if not any(c.fingerprint == fp for c in user.certificates):
        user.certificates.append(UserCertificate(
            fingerprint=fp, subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc,
            pem=(home / "demo" / f"{spec.email}.pem").read_text()))
    return user


def _ensure_circuits(
    session: Session, sub: Subscriber, specs: tuple[CircuitSpec, ...], users: dict[str, User],
) -> None:
    for key, name, ctype, steps, pes_pj, settings in specs:
        circuit = session.scalar(select(Circuit).where(Circuit.subscriber_id == sub.id, Circuit.key == key))
        if circuit is not None:
            continue
        circuit = Circuit(subscriber_id=sub.id, key=key, name=name, type=ctype.value, pes_pj=pes_pj,
                          settings=dict(settings))
        session.add(circuit)
        session.flush()
        for position, (kind, member) in enumerate(steps):
            step = CircuitStep(circuit_id=circuit.id, position=position, kind=kind.value, config={})
            if member:
                step.members.append(StepMember(user_id=users[member].id))
            session.add(step)
        agent = users[AGENT if sub.siren == DEMO_SIREN else OTHER_AGENT]
        roles = {(agent.id, "agent")}
        for kind, member in steps:
            if member:
                roles.add((users[member].id, "valideur" if kind == StepKind.VISA else "signataire"))
        for user_id, role in sorted(roles):
            session.add(CircuitRole(circuit_id=circuit.id, user_id=user_id, role=role))


def ensure_demo(ctx: AppContext) -> Path:
    """Create the dev PKI and the demo set if missing (idempotent); returns the README path."""
    home = ctx.settings.resolved_home
    pki_dev.init_dev_pki(home, [(u.email, f"{u.firstname} {u.lastname}") for u in DEMO_USERS])
    password_file = home / "demo" / "admin-password.txt"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12) + "\n")
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    with ctx.db.write() as session:
        subs: dict[str, Subscriber] = {}
        for siren, label in ((DEMO_SIREN, "Commune de Démo"), (OTHER_SIREN, "Commune Autre")):
            sub = session.scalar(select(Subscriber).where(Subscriber.siren == siren))
            if sub is None:
                sub = Subscriber(siren=siren, name=label)
                session.add(sub)
                session.flush()
            subs[siren] = sub
        users = {u.email: _ensure_user(session, subs[u.siren], u, home, password) for u in DEMO_USERS}
        _ensure_circuits(session, subs[DEMO_SIREN], DEMO_CIRCUITS, users)
        _ensure_circuits(session, subs[OTHER_SIREN], OTHER_CIRCUITS, users)
    ensure_oss_demo(ctx)
    readme = home / "demo" / "README.txt"
    readme.write_text(_readme_text(home, password), encoding="utf-8")
    return readme


def _readme_text(home: Path, password: str) -> str:
    lines = [
        "Parafe — jeu de démonstration / demo set",
        "",
        f"Abonné (SIREN) {DEMO_SIREN} : Commune de Démo",
        "Circuits :",
    ]
    for key, name, ctype, steps, _pes_pj, _settings in DEMO_CIRCUITS:
        chain = " → ".join(kind.value for kind, _ in steps)
        lines.append(f"  - {key:12s} {ctype.value:30s} {name} ({chain})")
    lines += ["", "Utilisateurs :"]
    for user in DEMO_USERS:
        role = "administrateur (Basic)" if user.admin else ("agent" if "agent" in user.email else
                                                             user.email.split("@")[0])
        lines.append(f"  - {user.email:32s} SIREN {user.siren}  {role}")
    lines += [
        "",
        f"Mot de passe Basic de {ADMIN} : {password}",
        "",
        f"Certificats : {home / 'demo'}/<email>.pem / .key (non chiffrée) / .p12 (mot de passe « demo »)",
        f"AC de test  : {home / 'pki' / 'ca.pem'}",
        f"Abonné (SIREN) {OTHER_SIREN} : Commune Autre, circuit bureautique, agent {OTHER_AGENT}",
        f"OSS (signature serveur, /oss) : workflow « {OSS_DEMO_WORKFLOW} », agent {AGENT}",
        "",
        "Exemple :",
        f"  curl --cacert {home / 'pki/ca.pem'} --cert {home / 'demo' / (AGENT + '.pem')} \\",
        f"       --key {home / 'demo' / (AGENT + '.key')} \\",
        "       -F content=@document.pdf https://127.0.0.1:8443/parapheur-ws/rest/v1/documents/v2/"
        f"{DEMO_SIREN}/bureautique/upload",
        "",
    ]
    return "\n".join(lines)


# --- OSS demo workflow ----------------------------------------------------------------------------------------------
def _oss_demo_key(ctx: AppContext) -> tuple[str, str]:
    """The demo workflow's server certificate (from the dev CA) and its password, created once."""
    home = ctx.settings.resolved_home
    p12, secret = home / OSS_DEMO_P12, home / "pki" / "oss-demo-signing.password"
    if not (p12.exists() and secret.exists()):
        password = secrets.token_urlsafe(16)
        ca = pki.load_ca(ctx.settings.pki_dir, trusted=True)
        leaf = pki.issue_user_cert(ca, "signature-oss@demo.parafe.test", "Commune de Démo - signature serveur",
                                   organization="Commune de Démo")
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        pki.write_p12(leaf, p12, password.encode(), ca, overwrite=True)
    return OSS_DEMO_P12, secret.read_text().strip()


def ensure_oss_demo(ctx: AppContext) -> int | None:
    """The demo OSS workflow ``oss-demo`` of subscriber 123456789 (idempotent): agent ``agent@demo.parafe.test``,
    admin ``admin@demo.parafe.test``, every mode, a server certificate from the dev PKI, a metadata model whose
    ``REFERENCE`` field is shown in the pictogram. Returns its id (None when the demo subscriber is missing)."""
    with ctx.db.read() as session:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.siren == DEMO_SIREN))
        existing = session.scalar(select(OssWorkflow.id).where(OssWorkflow.key == OSS_DEMO_WORKFLOW))
        if subscriber is None:
            return None
    if existing is not None and (ctx.settings.resolved_home / OSS_DEMO_P12).exists():
        return int(existing)
    path, password = _oss_demo_key(ctx)
    return configure_workflow(ctx, WorkflowSpec(
        key=OSS_DEMO_WORKFLOW, name="Démo OSS (signature serveur)", siren=DEMO_SIREN, agents=[AGENT],
        admins=[ADMIN], certificate_p12=path, certificate_password=password,
        metadata_model=[{"name": "REFERENCE", "label": "Réf.", "kind": "text", "pictogram": True},
                        {"name": "SERVICE", "kind": "text"}],
        retention_days=30, settings={"reason": "Signature serveur (OSS)", "location": "Commune de Démo"}))
