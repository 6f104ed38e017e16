"""The portal in a real browser (Debian's chromium via Playwright) against a real ``parafe serve`` over TLS, with
the demo users' client certificates: deposit, visa, bulk signature through ``parafe-signer`` with a SoftHSM2
token, download of the signed PDF checked by ``pdfsig``; the refusal path. Screenshots go to docs/screens/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from parafe.services.demo import AGENT, SIGNER, VISA
from tests.fixtures.files import pdf_bytes
from tests.portal.conftest import PHONE, Browsing, SignerHelper, both_widths, screenshot

pytestmark = pytest.mark.slow


def write_pdf(tmp_path: Path, name: str, pages: int = 2, text: str = "Délibération du conseil municipal") -> Path:
    path = tmp_path / name
    path.write_bytes(pdf_bytes(pages, text))
    return path


def badge(page: Any) -> str:
    return str(page.locator(".doc-state .badge").inner_text()).strip()


def wait_state(page: Any, expected: str, timeout: float = 30) -> None:
    """Reload the document page until its state badge reads ``expected`` (steps run in the server's worker)."""
    deadline = time.monotonic() + timeout
    while badge(page) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"state is {badge(page)!r}, expected {expected!r}")
        time.sleep(0.3)
        page.reload()


def deposit(page: Any, browsing: Browsing, file: Path, *, circuit: str = "123456789/bureautique",
            label: str = "Conseil du 12", comment: str | None = None, annex: Path | None = None) -> int:
    page.goto(browsing.url("/deposer"))
    page.get_by_label("Circuit").select_option(circuit)
    page.get_by_label("Document", exact=False).first.set_input_files(str(file))
    page.get_by_label("Libellé").fill(label)
    if comment:
        page.get_by_label("Commentaire").fill(comment)
    if annex is not None:
        page.get_by_label("Annexes").set_input_files(str(annex))
    page.get_by_role("button", name="Déposer").click()
    page.wait_for_url(re.compile(r"/documents/\d+\?ok=depose$"))
    assert page.get_by_role("status").first.inner_text() == "Document déposé."
    return int(re.search(r"/documents/(\d+)", page.url).group(1))  # type: ignore[union-attr]


def wait_viewer(page: Any, *, settle: bool = False) -> None:
    """Wait until pdf.js has drawn the page (``settle``: after a resize, let the viewer start re-rendering)."""
    if settle:
        page.wait_for_timeout(400)
    page.wait_for_selector(".pdf-viewer[data-rendered]", timeout=30_000)


def test_deposit_visa_bulk_signature_download(browsing: Browsing, signer_helper: SignerHelper,
                                              tmp_path: Path) -> None:
    # --- the agent deposits two documents (one with an annex) ---
    agent = browsing.page(AGENT)
    agent.goto(browsing.url("/deposer"))
    both_widths(agent, "depot")
    annex = tmp_path / "annexe-budget.pdf"
    annex.write_bytes(pdf_bytes(1, "Annexe budgétaire"))
    first = deposit(agent, browsing, write_pdf(tmp_path, "deliberation-2026-041.pdf", 3), comment="Pour signature",
                    annex=annex)
    wait_state(agent, "Envoyé pour visa")
    assert agent.get_by_role("link", name="annexe-budget.pdf", exact=True).is_visible()
    second = deposit(agent, browsing, write_pdf(tmp_path, "arrete-voirie-2026-17.pdf", 1, "Arrêté de voirie"))
    wait_state(agent, "Envoyé pour visa")
    agent.goto(browsing.url("/tableau-de-bord?vue=deposes"))
    assert agent.get_by_role("link", name="deliberation-2026-041.pdf", exact=True).is_visible()
    both_widths(agent, "tableau-de-bord-agent")
    # the search filters the list in place (htmx swaps #liste and pushes the URL)
    marker = agent.locator("h1").element_handle()
    agent.get_by_label("Rechercher (nom, libellé ou n°)").fill("voirie")
    agent.wait_for_url(re.compile(r"q=voirie"))
    agent.locator("#result-count", has_text="1 document").wait_for()
    assert agent.get_by_role("link", name="arrete-voirie-2026-17.pdf", exact=True).is_visible()
    assert agent.get_by_role("link", name="deliberation-2026-041.pdf", exact=True).count() == 0
    assert marker is not None
    assert marker.evaluate("e => e.isConnected")  # same page: no full reload

    # --- the validator sees them to visa, opens one (pdf.js renders it) and approves both ---
    visa = browsing.page(VISA)
    visa.goto(browsing.url("/tableau-de-bord"))
    assert "À viser : 2" in visa.locator(".summary-counts").inner_text()
    visa.get_by_role("link", name="deliberation-2026-041.pdf", exact=True).click()
    wait_viewer(visa)
    assert visa.locator("[data-pdf-status]").inner_text() == "Page 1 sur 3"
    visa.get_by_role("button", name="Page suivante").click()
    visa.wait_for_selector(".pdf-viewer[data-rendered='2']")
    both_widths(visa, "document-visa", prepare=lambda: wait_viewer(visa, settle=True))
    visa.get_by_label("Commentaire (facultatif)").fill("Vu, conforme.")
    visa.get_by_role("button", name="Viser", exact=True).click()
    visa.wait_for_url(re.compile(r"\?ok=vise$"))
    wait_state(visa, "Envoyé pour signature")
    visa.goto(browsing.url(f"/documents/{second}"))
    visa.get_by_role("button", name="Viser", exact=True).click()
    wait_state(visa, "Envoyé pour signature")

    # --- the signer selects both and signs them at once through parafe-signer (one confirmation) ---
    signer = browsing.page(SIGNER)
    signer.goto(browsing.url("/tableau-de-bord"))
    assert "À signer : 2" in signer.locator(".summary-counts").inner_text()
    both_widths(signer, "tableau-de-bord-signataire")
    signer.get_by_label("Sélectionner deliberation-2026-041.pdf pour la signature groupée").check()
    signer.get_by_label("Sélectionner arrete-voirie-2026-17.pdf pour la signature groupée").check()
    signer.get_by_role("button", name="Signer la sélection").click()
    signer.wait_for_url(re.compile(r"/signature\?"))
    signer.get_by_label("Port de l'assistant sur ce poste").fill(str(signer_helper.port))
    screenshot(signer, "signature-avant")
    with signer.expect_popup() as popup_info:
        signer.get_by_role("button", name="Signer 2 documents").click()
    helper_page = popup_info.value
    helper_page.wait_for_url(re.compile(rf"http://127\.0\.0\.1:{signer_helper.port}/confirmer/"))
    checks = helper_page.locator(".ok").all_inner_texts()
    assert checks.count("Vérifié : ce document est exactement celui qui sera signé") == 2
    assert "Sophie Signataire" in helper_page.inner_text("main")
    helper_page.set_viewport_size({"width": 760, "height": 820})
    screenshot(helper_page, "assistant-signature")
    helper_page.get_by_role("button", name="Signer 2 document(s)").click()
    helper_page.get_by_text("Signature effectuée : vous pouvez fermer cette fenêtre.").wait_for()
    signer.get_by_text("2 document(s) signé(s) sur 2.").wait_for(timeout=60_000)
    screenshot(signer, "signature")
    assert "Demande de signature de" in signer_helper.log.read_text()

    # --- the agent finds the filed document, sees the validation report and downloads the signed PDF ---
    agent.goto(browsing.url(f"/documents/{first}"))
    wait_state(agent, "Classé")
    agent.locator("#verification .verdict").wait_for()
    assert agent.locator("#verification .verdict").inner_text() == "Signature validée"
    assert "Sophie Signataire" in agent.locator("#verification").inner_text()
    wait_viewer(agent)
    both_widths(agent, "document-signe", prepare=lambda: wait_viewer(agent, settle=True))
    with agent.expect_download() as download_info:
        agent.get_by_role("link", name="Document signé", exact=True).click()
    signed = tmp_path / "signed.pdf"
    download_info.value.save_as(str(signed))
    assert signed.read_bytes().startswith(b"%PDF")
    if shutil.which("pdfsig") is None:
        pytest.fail("pdfsig (poppler-utils) is required to check the signed PDF")
    out = subprocess.run(["pdfsig", "-nocert", str(signed)], capture_output=True, text=True, check=False).stdout
    assert "Signature Validation: Signature is Valid." in out, out
    assert "Sophie Signataire" in out
    assert "Total document signed" in out
    # the classé documents left the dashboard, the search (Classés view) finds them
    agent.goto(browsing.url("/tableau-de-bord?vue=en-cours"))
    assert agent.get_by_role("link", name="deliberation-2026-041.pdf", exact=True).count() == 0
    agent.goto(browsing.url("/tableau-de-bord?vue=classes&q=deliberation"))
    assert agent.get_by_role("link", name="deliberation-2026-041.pdf", exact=True).is_visible()


def test_refusal_then_delete(browsing: Browsing, tmp_path: Path) -> None:
    agent = browsing.page(AGENT)
    doc = deposit(agent, browsing, write_pdf(tmp_path, "convention-a-refuser.pdf", 1, "Convention"))
    wait_state(agent, "Envoyé pour visa")
    visa = browsing.page(VISA)
    visa.goto(browsing.url(f"/documents/{doc}"))
    visa.get_by_role("button", name="Viser", exact=True).click()
    wait_state(visa, "Envoyé pour signature")

    signer = browsing.page(SIGNER, viewport=PHONE)
    signer.goto(browsing.url(f"/documents/{doc}"))
    # keyboard: the first Tab reaches the skip link, which moves the focus to the content
    signer.keyboard.press("Tab")
    assert signer.evaluate("() => document.activeElement.textContent") == "Aller au contenu"
    signer.keyboard.press("Enter")
    assert signer.evaluate("() => document.activeElement.id") == "contenu"
    signer.get_by_text("Refuser de signer").focus()
    signer.keyboard.press("Enter")  # opens the disclosure
    assert signer.get_by_label("Motif du refus").is_visible()
    signer.get_by_role("button", name="Refuser", exact=True).click()  # no reason: the browser asks for one
    assert signer.get_by_label("Motif du refus").evaluate("e => !e.validity.valid")
    signer.get_by_label("Motif du refus").fill("Le montant de la subvention est erroné.")
    screenshot(signer, "refus")
    signer.get_by_role("button", name="Refuser", exact=True).click()
    signer.wait_for_url(re.compile(r"\?ok=refuse$"))
    assert badge(signer) == "Refusé"
    # the signer can no longer act; the refusal is in the history with its reason
    assert signer.locator("#actions").count() == 0

    agent.goto(browsing.url(f"/documents/{doc}"))
    assert badge(agent) == "Refusé"
    assert agent.locator(".refusal").inner_text() == "Le montant de la subvention est erroné."
    assert "Le montant de la subvention est erroné." in agent.locator(".history").inner_text()
    agent.get_by_text("Supprimer le document").click()
    agent.get_by_role("button", name="Supprimer définitivement").click()
    agent.wait_for_url(re.compile(r"/tableau-de-bord\?ok=supprime$"))
    assert agent.get_by_role("status").first.inner_text() == "Document supprimé."
    response = agent.goto(browsing.url(f"/documents/{doc}"))
    assert response is not None
    assert response.status == 404
