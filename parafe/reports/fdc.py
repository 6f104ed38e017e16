"""Fiche de circulation (spec §2.5.6, §2.6.7): a PDF describing a document's journey.

Sections: the document (name, id, subscriber, circuit, label, depositor, dates, current state, size, annexes,
receivers), the circuit's steps with their members and where the document is, every history entry (date in
Europe/Paris, actor, state label of the configured label set, comment), the refusal or rejection message, and
the signatures found in the current version (signer, date, validity, from the Signature engine's verifier).
French text; drawn with reportlab (platypus). ``fdc_pdf(ctx, document_id)`` is what downloads call.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select
from sqlalchemy.orm import Session

from parafe.context import AppContext
from parafe.db.models import Circuit, CircuitStep, Document, StepMember, Subscriber, User
from parafe.domain.circuits import StepKind
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import State, label
from parafe.notify.mail import paris

STEP_NAMES = {
    StepKind.VISA.value: "Visa", StepKind.SIGNATURE.value: "Signature",
    StepKind.SERVER_SIGNATURE.value: "Signature serveur", StepKind.OTP_SIGNATURE.value: "Signature OTP",
    StepKind.SIGNATURE_VERIFICATION.value: "Vérification de signature",
    StepKind.METADATA.value: "Définition des métadonnées", StepKind.DIGIPOSTE.value: "Digiposte",
    StepKind.MAILEVA.value: "Maileva", StepKind.HELIOS.value: "Transmission à Hélios",
    StepKind.ARCHIVE.value: "Archivage (coffre-fort électronique)", StepKind.FILING.value: "Classement",
}


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _members(session: Session, step: CircuitStep) -> str:
    names = []
    for member in session.scalars(select(StepMember).where(StepMember.step_id == step.id)):
        user = session.get(User, member.user_id) if member.user_id else None
        if user is not None:
            names.append(f"{user.full_name} <{user.email}>")
        elif member.email:
            names.append(member.email)
        elif member.group_id:
            names.append(f"groupe n°{member.group_id}")
    return ", ".join(names) or ("automatique" if step.kind not in (StepKind.VISA.value, StepKind.SIGNATURE.value)
                                else "membres du circuit")


def signatures_found(ctx: AppContext, document: Document) -> list[tuple[str, str, str]]:
    """(signer, date, verdict) of each signature of the current version; empty when there is none."""
    sha = document.signed_blob_sha256 or document.blob_sha256
    out: list[tuple[str, str, str]] = []
    try:
        data = ctx.store.read_bytes(sha)
        from parafe.workflow.signatures import trust_roots

        if document.kind == "pdf":
            from parafe.signing.verify import verify_pdf

            report = verify_pdf(data, trust_roots(ctx))
            for sig in report.signatures:
                out.append((sig.signer, sig.signing_time or "", "valide" if sig.ok else "non valide"))
        elif document.kind == "pes":
            from parafe.signing.verify import verify_pes

            pes_report: Any = verify_pes(data, trust_roots(ctx), huge_tree=True)
            for sig in getattr(pes_report, "signatures", []):
                out.append((str(getattr(sig, "signer", "?")), str(getattr(sig, "signing_time", "") or ""),
                            "valide" if getattr(sig, "ok", False) else "non valide"))
    except Exception as exc:  # the FdC must still be produced
        out.append(("?", "", f"vérification impossible : {exc.__class__.__name__}"))
    if document.signature_blob_sha256:
        out.append(("signature XAdES détachée", "", "jointe au document"))
    return out


def render(ctx: AppContext, session: Session, document: Document) -> bytes:
    styles = getSampleStyleSheet()
    normal = ParagraphStyle("n", parent=styles["Normal"], fontSize=9, leading=11)
    small = ParagraphStyle("s", parent=normal, fontSize=8, leading=10)
    h1, h2 = styles["Title"], ParagraphStyle("h2", parent=styles["Heading2"], spaceBefore=8)
    subscriber = session.get(Subscriber, document.subscriber_id)
    circuit = session.get(Circuit, document.circuit_id)
    depositor = session.get(User, document.uploader_id) if document.uploader_id else None
    story: list[Any] = [_p("Fiche de circulation", h1)]
    facts = [
        ("Document", document.name), ("Identifiant", str(document.id)),
        ("Abonné", f"{subscriber.name} (SIREN {subscriber.siren})" if subscriber else ""),
        ("Circuit", f"{circuit.name} ({circuit.key}, {circuit.type})" if circuit else ""),
        ("Libellé", document.label.name if document.label else ""),
        ("Déposé par", f"{depositor.full_name} <{depositor.email}>" if depositor else ""),
        ("Déposé le", paris(document.created_at)), ("Dernière modification", paris(document.updated_at)),
        ("État", label(State(document.state), ctx.label_set)),
        ("Taille", f"{document.size} octets"),
    ]
    if document.comment:
        facts.append(("Commentaire du dépôt", document.comment))
    if document.annexes:
        facts.append(("Annexes", ", ".join(a.name for a in document.annexes)))
    if document.email_destinataire:
        facts.append(("Destinataires", document.email_destinataire))
    story.append(Table([[_p(k, normal), _p(v, normal)] for k, v in facts], colWidths=[45 * mm, 125 * mm],
                       style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                         ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey)])))
    story += [_p("Circuit", h2)]
    rows = [[_p("Étape", normal), _p("Type", normal), _p("Intervenants", normal), _p("", normal)]]
    for step in session.scalars(select(CircuitStep).where(CircuitStep.circuit_id == document.circuit_id)
                                .order_by(CircuitStep.position)):
        here = "◀ en cours" if document.current_step == step.position else ""
        rows.append([_p(str(step.position + 1), normal), _p(STEP_NAMES.get(step.kind, step.kind), normal),
                     _p(_members(session, step), small), _p(here, small)])
    story.append(_table(rows, [15 * mm, 50 * mm, 85 * mm, 20 * mm]))
    story += [_p("Historique", h2)]
    rows = [[_p(h, normal) for h in ("Date", "Acteur", "État", "Commentaire")]]
    for entry in document.history:
        state = label(State(entry.state), ctx.label_set) if entry.state else "—"
        rows.append([_p(paris(entry.created_at), small), _p(entry.user_fullname, small), _p(state, small),
                     _p(entry.comment or "", small)])
    story.append(_table(rows, [30 * mm, 40 * mm, 38 * mm, 62 * mm]))
    if document.refusal_message:
        title = "Motif du rejet" if document.state == State.DISAPPROVED.value else "Motif du refus"
        story += [_p(title, h2), _p(document.refusal_message, normal)]
    story += [_p("Signatures", h2)]
    found = signatures_found(ctx, document)
    if found:
        rows = [[_p(h, normal) for h in ("Signataire", "Date", "Vérification")]]
        rows += [[_p(a, small), _p(b, small), _p(c, small)] for a, b, c in found]
        story.append(_table(rows, [80 * mm, 50 * mm, 40 * mm]))
    else:
        story.append(_p("Aucune signature dans le document.", normal))
    story += [Spacer(1, 6 * mm), _p(f"Fiche produite par Parafe le {paris(_now())} (heure de Paris).", small)]
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=A4, title=f"Fiche de circulation — {document.name}", author="Parafe",
                      leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm, bottomMargin=18 * mm
                      ).build(story)
    return buf.getvalue()


def _now() -> Any:
    from parafe.db.models import utcnow

    return utcnow()


def _table(rows: list[list[Any]], widths: list[float]) -> Table:
    return Table(rows, colWidths=widths, repeatRows=1, style=TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]))


def fdc_pdf(ctx: AppContext, document_id: int) -> bytes:
    """The fiche de circulation of a document (no rights check: callers check visibility first)."""
    with ctx.db.read() as session:
        document = session.get(Document, int(document_id))
        if document is None:
            raise ParafeError(E.DOCUMENT_NOT_FOUND)
        return render(ctx, session, document)
