"""Issue 20, points 3 and 4, in a real browser (Debian's chromium via Playwright, client certificates, a real
``parafe serve`` over TLS): the portal's rough edges found by users, and what users of a parapheur expect —
bulk visa, absence delegation, the daily digest mail (real SMTP server: aiosmtpd).

Each test of a bug failed on the portal as it was before its fix (see the report of issue 20).
"""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from parafe.domain.paris_time import PARIS
from parafe.services.demo import ADMIN, AGENT, SIGNER, VISA
from tests.conftest import ROOT, LiveServer, free_port
from tests.portal.conftest import DESKTOP, PHONE, Browsing, SignerHelper, both_widths, screenshot
from tests.portal.test_accessibility import rest_deposit, wait_history
from tests.portal.test_browser_otp_admin import rest_otp_upload

pytestmark = pytest.mark.slow

NARROW = {"width": 320, "height": 640}

# Every word of the page's main text that the browser laid out on more than one line (a word: letters and
# digits only, so an e-mail address may break after its « @ » or « . », never inside « parafe »).
SPLIT_WORDS = """() => {
  const split = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement || !node.parentElement.getClientRects().length) continue;
    if (node.parentElement.closest('.visually-hidden, thead')) continue;  // not shown (clipped to 1 px)
    for (const match of node.data.matchAll(/[\\p{L}\\p{N}]+/gu)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set(Array.from(range.getClientRects()).filter((r) => r.width > 0)
        .map((r) => Math.round(r.top)));
      if (tops.size > 1) split.push(match[0]);
    }
  }
  return split;
}"""

# Selects too narrow to show their longest option (text width, padding and the arrow).
NARROW_SELECTS = """() => {
  const canvas = document.createElement('canvas').getContext('2d');
  const narrow = [];
  for (const select of document.querySelectorAll('main select')) {
    if (!select.getClientRects().length) continue;
    const style = getComputedStyle(select);
    canvas.font = style.font;
    const text = Math.max(...Array.from(select.options).map((o) => canvas.measureText(o.text).width));
    const needed = text + parseFloat(style.paddingLeft) + parseFloat(style.paddingRight) + 24;
    if (select.clientWidth < needed) narrow.push(`${select.id || select.name}: ${select.clientWidth} < ${needed}`);
  }
  return narrow;
}"""


def admin_page(browsing: Browsing, viewport: dict[str, int]) -> Any:
    """The demo administrator, signed in (Basic) through « /connexion »."""
    password = (browsing.server.home.path / "demo" / "admin-password.txt").read_text().strip()
    page = browsing.page(basic=(ADMIN, password), viewport=viewport)
    page.goto(browsing.url("/connexion"))
    page.wait_for_url(re.compile(r"/admin/123456789/circuits$"))
    return page


def main_text(page: Any) -> str:
    return re.sub(r"\s+", " ", page.locator("main").inner_text())


def to_signature(browsing: Browsing, name: str) -> int:
    """A document deposited through REST and visaed in the portal: waiting for the signataire."""
    server = browsing.server
    doc_id = rest_deposit(server, name, f"Document {name}")
    wait_history(server, doc_id, "Envoyé pour visa")
    visa = browsing.page(VISA)
    visa.goto(browsing.url(f"/documents/{doc_id}"))
    visa.get_by_role("button", name="Viser", exact=True).click()
    visa.wait_for_url(re.compile(r"\?ok=vise$"))
    wait_history(server, doc_id, "Envoyé pour signature")
    visa.close()
    return doc_id


def rest_history(server: LiveServer, doc_id: int) -> list[dict[str, Any]]:
    with server.client(AGENT) as client:
        return list(client.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").json())


def give_role(server: LiveServer, email_: str, role: str, circuit: str = "bureautique") -> None:
    """Test set-up: ``email_`` also holds ``role`` on the demo circuit (what the admin's circuit form does)."""
    db = str(server.home.path / "parafe.db")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO circuit_roles (circuit_id, user_id, role) SELECT c.id, u.id, ? FROM circuits c "
                     "JOIN users u ON u.subscriber_id = c.subscriber_id WHERE c.key = ? AND u.email = ? "
                     "AND NOT EXISTS (SELECT 1 FROM circuit_roles r WHERE r.circuit_id = c.id AND r.user_id = u.id "
                     "AND r.role = ?)", (role, circuit, email_, role))


# --- the helper window: « Annuler » no longer leaves the signing page stuck; then the signature -------------

def test_cancel_in_the_helper_window_then_sign(browsing: Browsing, signer_helper: SignerHelper,
                                               tmp_path: Path) -> None:
    doc_id = to_signature(browsing, "convention-annulee-puis-signee.pdf")
    signer = browsing.page(SIGNER)
    signer.goto(browsing.url(f"/signature?ids={doc_id}"))
    assert signer.locator("#titre-lot").inner_text() == "1 document à signer"
    signer.get_by_label("Port de l'assistant sur ce poste").fill(str(signer_helper.port))
    with signer.expect_popup() as popup_info:
        signer.get_by_role("button", name="Signer 1 document", exact=True).click()
    helper_page = popup_info.value
    helper_page.wait_for_url(re.compile(rf"http://127\.0\.0\.1:{signer_helper.port}/confirmer/"))
    helper_page.get_by_role("button", name="Annuler").click()
    helper_page.get_by_text("Signature annulée : vous pouvez fermer cette fenêtre.").wait_for()
    # the helper's window stays open (another origin): the page tells the cancellation and can start again
    status = signer.locator("#signer-status")
    status.filter(has_text="Signature annulée par le signataire.").wait_for(timeout=20_000)
    assert signer.get_by_role("button", name="Signer 1 document", exact=True).is_enabled()

    with signer.expect_popup() as popup_info:  # a fresh window; the cancelled one is closed
        signer.get_by_role("button", name="Signer 1 document", exact=True).click()
    signer.wait_for_function("() => true")  # let the close settle
    for _ in range(100):
        if helper_page.is_closed():
            break
        signer.wait_for_timeout(100)
    assert helper_page.is_closed()
    helper_page = popup_info.value
    helper_page.wait_for_url(re.compile(r"/confirmer/"))
    # the helper window names the certificate in words, not « CN=…,O=…,C=FR » nor raw OIDs
    helper_text = helper_page.inner_text("main")
    assert "Sophie Signataire" in helper_text
    assert "CN=" not in helper_text, helper_text
    assert not re.search(r"\d+(\.\d+){3,}=", helper_text), helper_text
    helper_page.get_by_role("button", name="Signer 1 document(s)").click()
    signer.get_by_text("1 document(s) signé(s) sur 1.").wait_for(timeout=60_000)
    # the page no longer says « 1 document à signer »
    assert signer.locator("#titre-lot").inner_text() == "1 document signé"
    assert not signer.get_by_role("button", name="Signer 1 document", exact=True).is_visible()

    # the validation panel: the date in Europe/Paris as everywhere else, the level and issuer in words
    wait_history(browsing.server, doc_id, "Classé")
    signer.goto(browsing.url(f"/documents/{doc_id}"))
    panel = signer.locator("#verification")
    panel.locator(".verdict").wait_for()
    text = re.sub(r"\s+", " ", panel.inner_text())
    assert "(UTC)" not in text, text
    assert "B-B" not in text, text
    assert "CN=" not in text, text
    when = re.search(r"signé le (\d\d/\d\d/\d{4}) à (\d\d:\d\d:\d\d)", text)
    assert when is not None, text
    shown = datetime.strptime(" ".join(when.groups()), "%d/%m/%Y %H:%M:%S").replace(tzinfo=PARIS)
    assert abs(datetime.now(PARIS) - shown) < timedelta(hours=1)  # Paris time, not UTC (1 h behind in winter)
    # downloads: « <nom>-signe.pdf » for the signed version, no « .pdf.pdf » for the circulation sheet
    with signer.expect_download() as signed:
        signer.get_by_role("link", name="Document signé", exact=True).click()
    assert signed.value.suggested_filename == "convention-annulee-puis-signee-signe.pdf"
    with signer.expect_download() as original:
        signer.get_by_role("link", name="Document original (non signé)").click()
    assert original.value.suggested_filename == "convention-annulee-puis-signee.pdf"
    with signer.expect_download() as fdc:
        signer.get_by_role("link", name="Fiche de circulation (PDF)").click()
    assert fdc.value.suggested_filename == "fiche-de-circulation-convention-annulee-puis-signee.pdf"


# --- a refused document; automatic steps; the history's actors ---------------------------------------------------

def test_refused_document_and_automatic_steps(browsing: Browsing) -> None:
    doc_id = to_signature(browsing, "subvention-refusee.pdf")
    signer = browsing.page(SIGNER, viewport=PHONE)
    signer.goto(browsing.url(f"/documents/{doc_id}"))
    signer.get_by_text("Refuser de signer").click()
    signer.get_by_label("Motif du refus").fill("Montant erroné.")
    signer.get_by_role("button", name="Refuser", exact=True).click()
    signer.wait_for_url(re.compile(r"\?ok=refuse$"))
    steps = re.sub(r"\s+", " ", signer.locator("ol.steps").inner_text())
    assert "(en cours)" not in steps, steps
    assert "Signature — Sophie Signataire (refusé)" in steps, steps
    assert "Classement (n'aura pas lieu)" in steps, steps
    hidden = signer.locator("ol.steps .visually-hidden").all_inner_texts()
    assert "Étape en cours :" not in hidden
    assert "Étape refusée :" in hidden
    # automatic steps: « Parafe (automatique) » in the portal, « parapheur parapheur » kept on the wire
    history = signer.locator("table.history").inner_text()
    assert "Parafe (automatique)" in history
    assert "parapheur parapheur" not in history
    assert "parapheur parapheur" in {h["userFullname"] for h in rest_history(browsing.server, doc_id)}
    screenshot(signer, "document-refuse")


# --- error messages, navigation, wording ----------------------------------------------------------------------

def test_catalogue_errors_are_not_prefixed_twice(browsing: Browsing) -> None:
    page = browsing.page(basic=(ADMIN, "pas-le-bon-mot-de-passe"))
    response = page.goto(browsing.url("/connexion"))
    assert response is not None
    assert response.status == 401
    summary = re.sub(r"\s+", " ", page.locator("[data-error-summary]").inner_text())
    assert summary == "Erreur lors de l'authentification, identifiant ou mot de passe incorrect", summary
    assert page.title().startswith("Erreur : ")


def test_deposit_link_only_for_those_who_may_deposit(browsing: Browsing) -> None:
    navs = {}
    for who in (AGENT, VISA, SIGNER):
        page = browsing.page(who)
        page.goto(browsing.url("/tableau-de-bord"))
        navs[who] = page.get_by_role("navigation", name="Navigation principale")
    for who, shown in ((AGENT, True), (VISA, False), (SIGNER, False)):
        assert (navs[who].get_by_role("link", name="Déposer un document").count() == 1) is shown, who
    for nav in navs.values():  # the « Absence » page (delegation, daily digest) for everyone
        assert nav.get_by_role("link", name="Absence").count() == 1


def test_outside_signer_does_not_see_internal_states(browsing: Browsing) -> None:
    _, url = rest_otp_upload(browsing.server, "contrat-etat.pdf", None)
    page = browsing.page(viewport=PHONE)  # no certificate: the link is the access right
    page.goto(url)
    page.get_by_role("button", name="Recevoir un code").wait_for()
    text = main_text(page)
    assert "Informations OTP définies" not in text, text
    assert "OTP" not in text, text
    assert "contrat-etat.pdf" in text
    assert "à signer" in text


def test_words_do_not_break_inside(browsing: Browsing) -> None:
    admin = admin_page(browsing, NARROW)
    admin.goto(browsing.url("/admin/123456789/utilisateurs"))
    assert "admin@demo.parafe.test" in main_text(admin)
    assert admin.evaluate(SPLIT_WORDS) == []
    # a long e-mail address breaks at its separators, and the page does not scroll sideways
    assert admin.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]
    agent = browsing.page(AGENT, viewport=NARROW)
    rest_deposit(browsing.server, "budget-supplementaire-numero-2-de-l-exercice-2026.pdf", "Budget")
    for view in ("deposes", "tous"):
        agent.goto(browsing.url(f"/tableau-de-bord?vue={view}"))
        assert agent.evaluate(SPLIT_WORDS) == [], view
        assert agent.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]


def test_admin_circuit_form_and_wording(browsing: Browsing) -> None:
    admin = admin_page(browsing, DESKTOP)
    table = admin.locator("table.docs").inner_text()
    assert "Bureautique (PDF)" in table
    assert "BUREAUTIQUE_PDF" not in table
    assert "HELIOS_" not in table
    admin.goto(browsing.url("/admin/123456789/circuits/nouveau"))
    assert admin.evaluate(NARROW_SELECTS) == []
    # the PES options only for the PES (Hélios) types
    assert not admin.get_by_label("Signature des PES").is_visible()
    assert not admin.get_by_label("Circuit PES-PJ (pièces justificatives sans bordereau)").is_visible()
    admin.get_by_label("Type", exact=True).select_option("HELIOS_AVEC_TELETRANSMISSION")
    assert admin.get_by_label("Signature des PES").is_visible()
    admin.get_by_label("Type", exact=True).select_option("BUREAUTIQUE_XML")
    assert not admin.get_by_label("Signature des PES").is_visible()
    both_widths(admin, "admin-circuit-bureautique-xml")
    admin.goto(browsing.url("/admin/123456789/circuits/pes"))
    assert admin.get_by_label("Signature des PES").is_visible()
    assert admin.evaluate(NARROW_SELECTS) == []
    # « compte BASIC » is not shown to an administrator
    admin.goto(browsing.url("/admin/123456789/utilisateurs"))
    admin.get_by_label("Courriel").fill("court@demo.parafe.test")
    auth = admin.locator("#u-auth")
    if auth.count():
        auth.select_option("BASIC")
    admin.locator("#u-pass").fill("court")
    admin.get_by_role("button", name="Créer l'utilisateur").click()
    text = main_text(admin)
    assert "BASIC" not in text, text
    assert "compte à mot de passe" in text, text


# --- bulk visa --------------------------------------------------------------------------------------------------

def test_bulk_visa(browsing: Browsing) -> None:
    server = browsing.server
    ids = [rest_deposit(server, f"arrete-lot-{n}.pdf", f"Arrêté {n}") for n in (1, 2, 3)]
    for doc_id in ids:
        wait_history(server, doc_id, "Envoyé pour visa")
    visa = browsing.page(VISA)
    visa.goto(browsing.url("/tableau-de-bord?vue=a-traiter"))
    for n in (1, 2):
        visa.get_by_label(f"Sélectionner arrete-lot-{n}.pdf pour le visa groupé").check()
    visa.get_by_role("button", name="Viser la sélection").click()
    visa.wait_for_url(re.compile(r"/visa\?"))
    assert visa.get_by_role("heading", name="2 documents à viser").is_visible()
    assert "arrete-lot-3.pdf" not in main_text(visa)
    visa.get_by_label("Commentaire (facultatif, le même pour chaque document)").fill("Vu en lot.")
    both_widths(visa, "visa-groupe-avant")
    visa.get_by_role("button", name="Viser 2 documents").click()
    visa.get_by_text("2 documents visés sur 2.").wait_for()
    both_widths(visa, "visa-groupe")
    for doc_id in ids[:2]:
        wait_history(server, doc_id, "Envoyé pour signature")
        visa.goto(browsing.url(f"/documents/{doc_id}"))
        assert "Vu en lot." in visa.locator("table.history").inner_text()
    assert "Envoyé pour signature" not in [h["stateName"] for h in rest_history(server, ids[2])]


# --- absence delegation -----------------------------------------------------------------------------------------

def test_absence_delegation(browsing: Browsing) -> None:
    server = browsing.server
    doc_id = rest_deposit(server, "deliberation-pendant-absence.pdf", "Délibération")
    wait_history(server, doc_id, "Envoyé pour visa")
    signer = browsing.page(SIGNER)
    signer.goto(browsing.url("/tableau-de-bord?vue=a-traiter"))
    assert signer.get_by_role("link", name="deliberation-pendant-absence.pdf").count() == 0

    give_role(server, SIGNER, "valideur")  # Sophie is also a valideur of the circuit
    visa = browsing.page(VISA)
    visa.goto(browsing.url("/absence"))
    today = datetime.now(PARIS).date()
    visa.get_by_label("Collègue").select_option(SIGNER)
    visa.get_by_label("Premier jour d'absence").fill(today.strftime("%d/%m/%Y"))
    visa.get_by_label("Dernier jour d'absence").fill((today - timedelta(days=1)).strftime("%d/%m/%Y"))
    visa.get_by_role("button", name="Enregistrer l'absence").click()
    assert "la date de fin précède la date de début" in main_text(visa)
    assert visa.locator("#a-fin").get_attribute("aria-invalid") == "true"
    visa.get_by_label("Dernier jour d'absence").fill((today + timedelta(days=2)).strftime("%d/%m/%Y"))
    visa.get_by_role("button", name="Enregistrer l'absence").click()
    visa.wait_for_url(re.compile(r"/absence\?fait=absence$"))
    last = (today + timedelta(days=2)).strftime("%d/%m/%Y")
    assert f"À Sophie Signataire, du {today:%d/%m/%Y} au {last} (en cours)" in main_text(visa)
    both_widths(visa, "absence")

    signer.goto(browsing.url("/tableau-de-bord?vue=a-traiter"))
    signer.get_by_role("link", name="deliberation-pendant-absence.pdf").click()
    signer.get_by_role("button", name="Viser", exact=True).click()
    signer.wait_for_url(re.compile(r"\?ok=vise$"))
    history = signer.locator("table.history").inner_text()
    assert "Par délégation de Victor Valideur" in history
    wait_history(server, doc_id, "Envoyé pour signature")
    entries = rest_history(server, doc_id)
    approved = [h for h in entries if h["stateName"] == "Visa approuvé"]
    assert len(approved) == 1
    assert approved[0]["userFullname"] == "Sophie Signataire"  # the wire: the actor
    signer.goto(browsing.url("/absence"))
    assert "Victor Valideur, du" in main_text(signer)
    both_widths(signer, "absence-remplacant")

    # the absent valideur ends the delegation: Sophie no longer sees his documents
    visa.goto(browsing.url("/absence"))
    visa.get_by_role("button", name="Mettre fin à la délégation à Sophie Signataire").click()
    visa.wait_for_url(re.compile(r"fait=fin$"))
    other = rest_deposit(server, "deliberation-apres-absence.pdf", "Délibération")
    wait_history(server, other, "Envoyé pour visa")
    signer.goto(browsing.url("/tableau-de-bord?vue=a-traiter"))
    assert signer.get_by_role("link", name="deliberation-apres-absence.pdf").count() == 0


# --- the daily digest -------------------------------------------------------------------------------------------

class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def run_digest(server: LiveServer, smtp_port: int) -> str:
    """``parafe dev digest`` on the server's home (what the daily periodic task runs), mails to the test's SMTP
    server."""
    env = {**server.home.env(), "PARAFE_SMTP_HOST": "127.0.0.1", "PARAFE_SMTP_PORT": str(smtp_port),
           "PARAFE_MAIL_FROM": "Parafe <parapheur@demo.parafe.test>", "PARAFE_PUBLIC_URL": server.url}
    done = subprocess.run([sys.executable, "-m", "parafe", "dev", "digest"], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reset_digest_day(server: LiveServer) -> None:
    """Test set-up: as if the digests of today had not been sent (the next day comes)."""
    with sqlite3.connect(str(server.home.path / "parafe.db")) as conn:
        conn.execute("UPDATE users SET digest_sent_on = NULL")


def test_daily_digest_and_its_opt_out(browsing: Browsing, inbox: tuple[Inbox, int]) -> None:
    box, port = inbox
    server = browsing.server
    doc_id = rest_deposit(server, "budget-primitif-recapitulatif.pdf", "Budget primitif")
    wait_history(server, doc_id, "Envoyé pour visa")
    visa = browsing.page(VISA)
    visa.goto(browsing.url("/absence"))
    box_label = "Recevoir chaque matin la liste des documents qui attendent mon visa ou ma signature"
    assert visa.get_by_label(box_label).is_checked()
    visa.get_by_label(box_label).uncheck()
    visa.get_by_role("button", name="Enregistrer ma préférence").click()
    visa.wait_for_url(re.compile(r"fait=recapitulatif$"))
    assert not visa.get_by_label(box_label).is_checked()
    reset_digest_day(server)
    run_digest(server, port)
    assert [m for m in box.messages if VISA in str(m["X-Envelope-To"])] == []

    visa.get_by_label(box_label).check()
    visa.get_by_role("button", name="Enregistrer ma préférence").click()
    visa.wait_for_url(re.compile(r"fait=recapitulatif$"))
    reset_digest_day(server)
    run_digest(server, port)
    deadline = time.monotonic() + 10
    while not [m for m in box.messages if VISA in str(m["X-Envelope-To"])] and time.monotonic() < deadline:
        time.sleep(0.1)
    mails = [m for m in box.messages if VISA in str(m["X-Envelope-To"])]
    assert len(mails) == 1
    assert re.fullmatch(r"Parafe : \d+ documents? en attente de votre visa ou signature", str(mails[0]["Subject"]))
    part = mails[0].get_body(("plain",))
    assert part is not None
    text = str(part.get_content())
    assert "Bonjour Victor Valideur" in text
    assert "À viser : budget-primitif-recapitulatif.pdf" in text
    link = re.search(rf"{re.escape(server.url)}/documents/{doc_id}\b", text)
    assert link is not None, text
    visa.goto(link.group(0))  # the link leads to the document, with its « Viser » button
    assert visa.get_by_role("button", name="Viser", exact=True).is_visible()
    run_digest(server, port)  # once a day
    assert len([m for m in box.messages if VISA in str(m["X-Envelope-To"])]) == 1
