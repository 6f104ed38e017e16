"""The portal against RGAA 4.1 / WCAG 2.1 AA in a real browser (Debian's chromium via Playwright, client
certificates), on every page state of every role: public pages, OTP outside signer, agent, valideur,
signataire, administrator.

For each page state, at 390 px (phone) and 1366 px (laptop):

- axe-core (vendored from npm, ``tests/portal/vendor/``; injected in browser contexts opened with
  ``bypass_csp=True``, the portal's CSP forbidding inline scripts) reports no violation tagged ``wcag2a``,
  ``wcag2aa``, ``wcag21a`` or ``wcag21aa``;
- the Tab order follows the visual order: pressing Tab from the top of the page, each focused element's box must
  come after the previous one in reading order (below it, or on the same line to its right; at desktop width a
  column break — an element wholly to the right of the previous one — is allowed);

and at 320 px the page does not scroll sideways (``document.documentElement.scrollWidth <= 320``, WCAG 1.4.10)
and its footer links the accessibility statement. Screenshots at 320 px go to ``docs/screens/*-320.png``.
Besides: form errors tied to their fields (summary focused, links to the fields, ``aria-invalid``,
``aria-describedby``, « Erreur : » title), the live result count of the htmx search, the PDF viewer's named
focusable region and text layer, « Viser » in the first screen of a phone, the statement's configurable data.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parafe.services.demo import ADMIN, AGENT, SIGNER, VISA
from tests.conftest import ROOT, TESTDATA, Home, LiveServer, start_server, stop_server
from tests.fixtures.files import pdf_bytes
from tests.portal.conftest import SCREENS, Browsing, _same_picture
from tests.portal.test_browser_otp_admin import BUSINESS, business_site, last_sms_code, rest_otp_upload

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.14.1"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 768}
NARROW = {"width": 320, "height": 640}
STATEMENT = {
    "PARAFE_ACCESSIBILITY_ORGANISATION": "Commune de Démo-sur-Loire",
    "PARAFE_ACCESSIBILITY_CONTACT_EMAIL": "accessibilite@demo-sur-loire.example",
    "PARAFE_ACCESSIBILITY_CONTACT_URL": "https://demo-sur-loire.example/contact",
    "PARAFE_ACCESSIBILITY_AUDIT_DATE": "2026-11-30",
    "PARAFE_ACCESSIBILITY_AUDIT_RATE": "74",
    "PARAFE_ACCESSIBILITY_STATUS": "partiellement",
}
FOOTER = "Accessibilité : partiellement conforme"


@pytest.fixture(scope="module")
def portal_server(portal_home: Home) -> Iterator[LiveServer]:
    """The module's server, with the operating body's accessibility-statement settings."""
    server = start_server(portal_home, {"PARAFE_PORTAL_SECRET": "s" * 48, **STATEMENT})
    try:
        yield server
    finally:
        stop_server(server)


def test_axe_is_the_vendored_release() -> None:
    head = AXE.read_text(encoding="utf-8")[:200]
    assert f"axe v{AXE_VERSION}" in head
    assert (AXE.parent / "LICENSE").is_file()


# --- the checks run on every page state ------------------------------------------------------------------------

AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — `
    + v.nodes.slice(0, 6).map((n) => n.target.join(' ')).join(' | '));
}"""

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  if (!el.dataset.tabKey) el.dataset.tabKey = String(Math.random()).slice(2);
  const rects = Array.from(el.getClientRects()).filter((r) => r.width > 0 && r.height > 0);
  const box = (r) => ({left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX,
                       bottom: r.bottom + scrollY});
  const text = (el.getAttribute('aria-label') || el.textContent || el.value || '').replace(/\\s+/g, ' ').trim();
  return {key: el.dataset.tabKey, skip: el.classList.contains('skip-link'),
          desc: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' «' + text.slice(0, 40) + '»',
          first: rects.length ? box(rects[0]) : null, last: rects.length ? box(rects[rects.length - 1]) : null};
}"""

FROM_TOP = """() => {
  const body = document.body;
  body.setAttribute('tabindex', '-1');
  body.focus();
  body.removeAttribute('tabindex');
  window.scrollTo(0, 0);
}"""


def axe_violations(page: Any) -> list[str]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return list(page.evaluate(AXE_RUN, WCAG_TAGS))


def tab_stops(page: Any, limit: int = 300) -> list[dict[str, Any]]:
    """The focused elements, pressing Tab from the top of the page until the focus leaves or wraps around."""
    page.evaluate(FROM_TOP)
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = page.evaluate(FOCUSED)
        if info is None or (stops and info["key"] == stops[0]["key"]):
            break
        stops.append(info)
    return stops


def order_problems(stops: list[dict[str, Any]], *, columns: bool) -> list[str]:
    """Where the Tab order goes against the reading order: the next stop must start below the end of the
    previous one, or on the same line to its right; with ``columns`` (desktop widths), wholly to its right (a
    column break). The skip link, drawn over the header when focused, is left out."""
    problems = [f"{s['desc']} has no visible box when focused" for s in stops if s["first"] is None]
    seq = [s for s in stops if not s["skip"] and s["first"] is not None]
    for a, b in zip(seq, seq[1:], strict=False):
        end, start = a["last"], b["first"]
        below = start["top"] >= end["bottom"] - 2
        same_line = start["top"] < end["bottom"] and start["bottom"] > end["top"]
        right = start["left"] >= end["right"] - 2
        if not (below or (right and (same_line or columns))):
            where = f"({end['left']:.0f},{end['top']:.0f} → {start['left']:.0f},{start['top']:.0f})"
            problems.append(f"{a['desc']} → {b['desc']}: next stop above or to the left {where}")
    return problems


def save_320(page: Any, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    target = SCREENS / f"{name}-320.png"
    data = page.screenshot(full_page=True)
    if not _same_picture(target, data):
        target.write_bytes(data)


def examine(page: Any, name: str, *, ready: Callable[[], None] | None = None, shot: str | None = None) -> list[str]:
    """axe and the Tab order at 390 and 1366 px, no sideways scrolling at 320 px, the footer's statement link;
    returns the problems found (empty: the state passes)."""
    problems: list[str] = []
    for viewport in (PHONE, WIDE):
        page.set_viewport_size(viewport)
        if ready:
            ready()
        width = viewport["width"]
        problems += [f"{name} @{width}px axe {v}" for v in axe_violations(page)]
        stops = tab_stops(page)
        if len(stops) < 2:
            problems.append(f"{name} @{width}px: only {len(stops)} Tab stop(s)")
        problems += [f"{name} @{width}px Tab order: {p}" for p in order_problems(stops, columns=width >= 960)]
    page.set_viewport_size(NARROW)
    if ready:
        ready()
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    if scroll > NARROW["width"]:
        problems.append(f"{name} @320px: the page is {scroll}px wide (horizontal scrolling)")
    footer = page.locator("footer a[href='/accessibilite']")
    if footer.count() != 1 or footer.inner_text().strip() != FOOTER:
        problems.append(f"{name}: no « {FOOTER} » link in the footer")
    if shot:
        save_320(page, shot)
    page.set_viewport_size(WIDE)
    print(f"examined: {name}")
    return problems


def viewer_ready(page: Any) -> Callable[[], None]:
    def ready() -> None:
        page.wait_for_timeout(400)  # the viewer re-renders after a resize (150 ms debounce)
        page.wait_for_selector(".pdf-viewer[data-rendered][data-text]", timeout=30_000)
    return ready


def error_semantics(page: Any, field: str, label: str) -> None:
    """A form error tied to its field: « Erreur : » title, focus on the summary, its link names the field and
    moves the focus to it, the field is aria-invalid and described by its message."""
    assert page.title().startswith("Erreur : "), page.title()
    summary = page.locator("[data-error-summary]")
    page.wait_for_load_state()
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'erreurs'")
    link = summary.locator(f"a[href='#{field}']")
    assert link.inner_text().startswith(f"{label} : "), link.inner_text()
    control = page.locator(f"#{field}")
    assert control.get_attribute("aria-invalid") == "true"
    described = (control.get_attribute("aria-describedby") or "").split()
    assert f"{field}-erreur" in described
    message = re.sub(r"\s+", " ", page.locator(f"#{field}-erreur").text_content() or "").strip()
    assert message.startswith("Erreur : "), message
    assert message[len("Erreur : "):] in link.inner_text(), message
    link.click()
    assert page.evaluate("() => document.activeElement.id") == field


def wait_history(server: LiveServer, doc_id: int, wanted: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with server.client(AGENT) as client:
            states = [h["stateName"] for h in client.get(
                f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").json()]
        if wanted in states:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} not in {states}")
        time.sleep(0.3)


def rest_deposit(server: LiveServer, name: str, text: str) -> int:
    with server.client(AGENT) as client:
        response = client.post("/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload",
                               files={"content": (name, pdf_bytes(2, text), "application/pdf")},
                               data={"label": "Conseil du 12"})
    assert response.status_code == 200, response.text
    return int(response.text)


# --- public pages ----------------------------------------------------------------------------------------------

def test_public_pages_and_the_statement(browsing: Browsing) -> None:
    page = browsing.page(bypass_csp=True, viewport=WIDE)  # no certificate
    problems: list[str] = []
    response = page.goto(browsing.url("/accessibilite"))
    assert response is not None
    assert response.status == 200
    assert page.title().startswith("Déclaration d'accessibilité")
    text = page.locator("main").inner_text()
    for expected in ("Commune de Démo-sur-Loire", "partiellement conforme", "30/11/2026", "74 %",
                     "accessibilite@demo-sur-loire.example", "Défenseur des droits", "09 69 39 00 00"):
        assert expected in text, expected
    headings = page.locator("main h2").all_inner_texts()
    assert headings == ["État de conformité", "Résultats des tests", "Contenus non accessibles",
                        "Établissement de cette déclaration d'accessibilité", "Retour d'information et contact",
                        "Voies de recours"]
    problems += examine(page, "public: déclaration d'accessibilité", shot="accessibilite")
    response = page.goto(browsing.url("/tableau-de-bord"))
    assert response is not None
    assert response.status == 401
    problems += examine(page, "public: authentification requise (401)")
    response = page.goto(browsing.url("/n-existe-pas"))
    assert response is not None
    assert response.status == 404
    assert page.title().startswith("Erreur : ")
    problems += examine(page, "public: page introuvable (404)")
    assert problems == []


# --- the outside signer (OTP) ----------------------------------------------------------------------------------

def test_outside_signer_pages(browsing: Browsing) -> None:
    server = browsing.server
    problems: list[str] = []
    _, url = rest_otp_upload(server, "contrat-entretien.pdf", f"{BUSINESS}/retour")
    page = browsing.page(bypass_csp=True, viewport=WIDE)
    business_site(page)
    page.goto(url)
    ready = viewer_ready(page)
    ready()
    problems += examine(page, "OTP: document à signer", ready=ready, shot="otp")
    page.get_by_role("button", name="Recevoir un code").click()
    assert "code de vérification a été envoyé" in page.get_by_role("status").first.inner_text()
    problems += examine(page, "OTP: code envoyé", ready=ready)
    sms_id, code = last_sms_code(server)
    page.get_by_label("Code reçu").fill("000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Signer", exact=True).click()
    error_semantics(page, "otp-code", "Code reçu")
    problems += examine(page, "OTP: code erroné", ready=ready, shot="otp-erreur")
    page.get_by_text("Refuser de signer").click()
    page.get_by_label("Motif du refus").fill("   ")  # not empty for the browser, blank for the server
    page.get_by_role("button", name="Refuser", exact=True).click()
    error_semantics(page, "otp-motif", "Motif du refus")
    problems += examine(page, "OTP: motif de refus manquant", ready=ready)

    signed_id, plain = rest_otp_upload(server, "contrat-sans-retour.pdf", None)  # no business site: page stays
    page.goto(plain)
    page.get_by_role("button", name="Recevoir un code").click()
    _, code = last_sms_code(server, sms_id)
    page.get_by_label("Code reçu").fill(code)
    page.get_by_role("button", name="Signer", exact=True).click()
    page.get_by_text("Signature effectuée. Merci.").wait_for()
    problems += examine(page, "OTP: signé", ready=ready)

    # the depositor then sees the signed document with its validation report (loaded by htmx)
    wait_history(server, signed_id, "Classé")
    agent = browsing.page(AGENT, bypass_csp=True, viewport=WIDE)
    agent.goto(browsing.url(f"/documents/{signed_id}"))
    agent.locator("#verification .verdict").wait_for()
    problems += examine(agent, "agent: document signé avec son rapport de validation", ready=viewer_ready(agent))
    assert problems == []


# --- agent -----------------------------------------------------------------------------------------------------

def test_agent_pages(browsing: Browsing, tmp_path: Path) -> None:
    server = browsing.server
    problems: list[str] = []
    page = browsing.page(AGENT, bypass_csp=True, viewport=WIDE)
    page.goto(browsing.url("/deposer"))
    assert page.locator(".required-note").count() == 1
    problems += examine(page, "agent: dépôt")
    note = tmp_path / "note.txt"
    note.write_text("texte")
    page.get_by_label("Document", exact=False).first.set_input_files(str(note))
    page.get_by_role("button", name="Déposer").click()
    error_semantics(page, "d-fichier", "Document")
    assert "Extension du fichier non autorisée." in page.locator("#d-fichier-erreur").inner_text()
    problems += examine(page, "agent: dépôt refusé (erreur sur le fichier)", shot="depot-erreur")

    pdf = tmp_path / "budget-primitif-2027.pdf"
    pdf.write_bytes(pdf_bytes(2, "Budget primitif 2027"))
    page.goto(browsing.url("/deposer"))
    page.get_by_label("Document", exact=False).first.set_input_files(str(pdf))
    page.get_by_role("button", name="Déposer").click()
    page.wait_for_url(re.compile(r"/documents/\d+\?ok=depose$"))
    doc_id = int(re.search(r"/documents/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    wait_history(server, doc_id, "Envoyé pour visa")
    page.goto(browsing.url(f"/documents/{doc_id}"))
    problems += examine(page, "agent: document déposé", ready=viewer_ready(page))
    rest_deposit(server, "arrete-stationnement.pdf", "Arrêté de stationnement")

    titles = set()
    for view in ("en-cours", "deposes", "classes", "tous"):
        page.goto(browsing.url(f"/tableau-de-bord?vue={view}"))
        titles.add(page.title())
        problems += examine(page, f"agent: tableau de bord ({view})",
                            shot="tableau-de-bord-agent" if view == "deposes" else None)
    assert len(titles) == 4, titles  # one title per view
    # the htmx search: the count is a live region outside the swapped list, kept across swaps
    page.goto(browsing.url("/tableau-de-bord?vue=deposes"))
    count = page.locator("#result-count")
    assert count.get_attribute("role") == "status"
    handle = count.element_handle()
    page.get_by_label("Rechercher (nom, libellé ou n°)").fill("stationnement")
    page.wait_for_url(re.compile(r"q=stationnement"))
    page.locator("#result-count", has_text=re.compile(r"^1 document$")).wait_for()
    assert handle is not None
    assert handle.evaluate("e => e.isConnected")  # same live region, updated
    assert "stationnement" in page.title()
    problems += examine(page, "agent: tableau de bord après une recherche")

    # a PES: its readable summary (bordereaux, pieces) is loaded by htmx
    sample = (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes()
    with server.client(AGENT) as client:
        response = client.post("/parapheur-ws/rest/v1/documents/v2/123456789/pes/upload",
                               files={"content": ("SICOVAL201512104.xml", sample, "application/xml")})
    assert response.status_code == 200, response.text
    page.goto(browsing.url(f"/documents/{int(response.text)}"))
    page.locator("summary", has_text="Bordereau 2372").wait_for()
    problems += examine(page, "agent: PES et son résumé")

    response = page.goto(browsing.url("/documents/999999999"))
    assert response is not None
    assert response.status == 404
    problems += examine(page, "agent: document inconnu (404)")
    assert problems == []


# --- valideur and signataire -----------------------------------------------------------------------------------

def test_valideur_and_signataire_pages(browsing: Browsing) -> None:
    server = browsing.server
    problems: list[str] = []
    doc_id = rest_deposit(server, "deliberation-2026-088.pdf", "Deliberation du conseil municipal")
    wait_history(server, doc_id, "Envoyé pour visa")

    visa = browsing.page(VISA, bypass_csp=True, viewport=PHONE)
    visa.goto(browsing.url(f"/documents/{doc_id}"))
    ready = viewer_ready(visa)
    ready()
    # on a phone the actions come first, « Viser » in the first screen, then the information
    button = visa.get_by_role("button", name="Viser", exact=True).bounding_box()
    assert button is not None
    assert button["y"] + button["height"] <= PHONE["height"]
    actions = visa.locator("#actions").bounding_box()
    infos = visa.locator("section[aria-labelledby='titre-infos']").bounding_box()
    assert actions is not None
    assert infos is not None
    assert actions["y"] < infos["y"]
    # the viewer: a named, focusable scrolling region; the page's text is in the DOM; downloads stay
    region = visa.locator(".pdf-canvas-wrap")
    assert region.get_attribute("tabindex") == "0"
    assert region.get_attribute("role") == "region"
    assert (region.get_attribute("aria-label") or "").startswith("Aperçu de deliberation-2026-088.pdf")
    assert visa.get_by_role("region", name=re.compile("Aperçu de deliberation")).count() == 1
    text = re.sub(r"\s+", " ", visa.locator(".pdf-viewer .textLayer").text_content() or "")
    assert "Deliberation du conseil municipal" in text, text
    assert "page 1" in text, text
    visa.get_by_role("button", name="Page suivante").click()
    visa.wait_for_selector(".pdf-viewer[data-text='2']")
    assert "page 2" in (visa.locator(".pdf-viewer .textLayer").text_content() or "")
    assert visa.get_by_role("link", name="Document", exact=True).count() == 1
    # the keyboard scrolls the focused region (zoomed in, the page is larger than the region)
    for _ in range(3):
        visa.get_by_role("button", name="Agrandir").click()
    visa.wait_for_function("() => { const r = document.querySelector('.pdf-canvas-wrap');"
                           " return r.scrollHeight > r.clientHeight && r.scrollWidth > r.clientWidth; }")
    region.focus()
    for key in ("ArrowDown", "ArrowDown", "ArrowRight", "ArrowRight"):
        visa.keyboard.press(key)
    visa.wait_for_function("() => { const r = document.querySelector('.pdf-canvas-wrap');"
                           " return r.scrollTop > 0 && r.scrollLeft > 0; }")
    visa.reload()
    problems += examine(visa, "valideur: document à viser", ready=ready, shot="document-visa")
    visa.goto(browsing.url("/tableau-de-bord"))
    assert "À traiter" in visa.title()
    problems += examine(visa, "valideur: tableau de bord (à traiter)")
    visa.goto(browsing.url(f"/documents/{doc_id}"))
    visa.get_by_text("Rejeter le document").click()
    visa.get_by_label("Motif du rejet").fill("   ")
    visa.get_by_role("button", name="Rejeter", exact=True).click()
    error_semantics(visa, "rejet-motif", "Motif du rejet")
    problems += examine(visa, "valideur: motif de rejet manquant", ready=ready)
    visa.get_by_role("button", name="Viser", exact=True).click()
    visa.wait_for_url(re.compile(r"\?ok=vise$"))
    wait_history(server, doc_id, "Envoyé pour signature")

    signer = browsing.page(SIGNER, bypass_csp=True, viewport=WIDE)
    signer.goto(browsing.url("/tableau-de-bord"))
    problems += examine(signer, "signataire: tableau de bord (à signer)", shot="tableau-de-bord-signataire")
    signer.goto(browsing.url(f"/documents/{doc_id}"))
    sready = viewer_ready(signer)
    sready()
    problems += examine(signer, "signataire: document à signer", ready=sready)
    signer.get_by_text("Refuser de signer").click()
    signer.get_by_label("Motif du refus").fill("   ")
    signer.get_by_role("button", name="Refuser", exact=True).click()
    error_semantics(signer, "refus-motif", "Motif du refus")
    problems += examine(signer, "signataire: motif de refus manquant", ready=sready)
    signer.goto(browsing.url(f"/signature?ids={doc_id}"))
    problems += examine(signer, "signataire: signature avec son certificat")
    # passkeys (issue 20): « Mes clés d'accès », then the signing page once a server-held key exists
    signer.goto(browsing.url("/cles-d-acces"))
    problems += examine(signer, "signataire: mes clés d'accès")
    made = subprocess.run([sys.executable, "-m", "parafe", "admin", "server-key", "add", "--email", SIGNER],
                          cwd=str(ROOT), env=server.home.env(), capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    signer.goto(browsing.url(f"/signature?ids={doc_id}"))
    assert signer.get_by_role("heading", name="Signer avec ma clé d'accès (sans installation)").count() == 1
    problems += examine(signer, "signataire: signature par clé d'accès (aucune clé enregistrée)")
    assert problems == []


# --- administrator ---------------------------------------------------------------------------------------------

def test_admin_pages(browsing: Browsing) -> None:
    server = browsing.server
    password = (server.home.path / "demo" / "admin-password.txt").read_text().strip()
    problems: list[str] = []
    admin = browsing.page(basic=(ADMIN, password), bypass_csp=True, viewport=WIDE)
    admin.goto(browsing.url("/connexion"))
    admin.wait_for_url(re.compile(r"/admin/123456789/circuits$"))
    problems += examine(admin, "admin: circuits", shot="admin-circuits")
    admin.goto(browsing.url("/admin/123456789/circuits/nouveau"))
    problems += examine(admin, "admin: nouveau circuit")
    admin.get_by_label("Identifiant (circuitId des web services)").fill("essai-a11y")
    admin.get_by_label("Agents (déposants) : courriels séparés par des virgules").fill("pas-un-courriel")
    admin.get_by_role("button", name="Enregistrer le circuit").click()
    error_semantics(admin, "c-agents", "Agents")
    problems += examine(admin, "admin: circuit refusé")
    admin.goto(browsing.url("/admin/123456789/circuits/bureautique"))
    problems += examine(admin, "admin: circuit existant")
    admin.goto(browsing.url("/admin/123456789/circuits/bureautique/metadonnees"))
    problems += examine(admin, "admin: modèle de métadonnées")
    admin.goto(browsing.url("/admin/123456789/utilisateurs"))
    problems += examine(admin, "admin: utilisateurs")
    admin.get_by_label("Courriel").fill(AGENT)  # already a user
    admin.get_by_role("button", name="Créer l'utilisateur").click()
    error_semantics(admin, "u-email", "Courriel")
    problems += examine(admin, "admin: utilisateur refusé", shot="admin-utilisateurs-erreur")
    admin.goto(browsing.url(f"/admin/123456789/utilisateurs/{AGENT}"))
    problems += examine(admin, "admin: fiche utilisateur")
    admin.goto(browsing.url("/admin/123456789/groupes"))
    problems += examine(admin, "admin: groupes")
    admin.goto(browsing.url("/admin/123456789/sms"))
    problems += examine(admin, "admin: historique des SMS")
    admin.goto(browsing.url("/admin/123456789/sms?mois=2026-13"))
    error_semantics(admin, "s-mois", "Mois")
    problems += examine(admin, "admin: historique des SMS, mois invalide")
    # the compliance report of a client (issue 21): the agent's software polls its acknowledgements too often
    with server.client(AGENT) as c:
        for _ in range(3):
            c.get("/parapheur-ws/rest/v1/documents/v2/123456789/ack/remaining")
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(Path(server.home.demo(AGENT)[0]).read_text())).hexdigest()
    admin.goto(browsing.url("/admin/123456789/clients"))
    problems += examine(admin, "admin: conformité des clients")
    admin.get_by_role("link", name=re.compile("Alice Agent")).first.click()
    admin.wait_for_url(re.compile(f"/admin/123456789/clients/{fingerprint}$"))
    assert "non conforme" in admin.locator("main").inner_text()
    problems += examine(admin, "admin: conformité d'un client", shot="admin-conformite-client")
    admin.screenshot(path=str(SCREENS / "admin-conformite-client.png"), full_page=True)
    assert problems == []


# --- issue 20: bulk visa and the « Absence et récapitulatif » page ---------------------------------------------

def test_bulk_visa_and_absence_pages(browsing: Browsing) -> None:
    from datetime import datetime, timedelta

    from parafe.domain.paris_time import PARIS
    from tests.portal.test_portal_rough_edges import give_role

    server = browsing.server
    problems: list[str] = []
    ids = [rest_deposit(server, f"arrete-a11y-{n}.pdf", f"Arrêté {n}") for n in (1, 2)]
    for doc_id in ids:
        wait_history(server, doc_id, "Envoyé pour visa")
    visa = browsing.page(VISA, bypass_csp=True, viewport=WIDE)
    visa.goto(browsing.url("/tableau-de-bord?vue=a-traiter"))
    for n in (1, 2):
        visa.get_by_label(f"Sélectionner arrete-a11y-{n}.pdf pour le visa groupé").check()
    problems += examine(visa, "valideur: tableau de bord avec sélection pour le visa groupé")
    visa.get_by_role("button", name="Viser la sélection").click()
    visa.wait_for_url(re.compile(r"/visa\?"))
    problems += examine(visa, "valideur: visa groupé (confirmation)", shot="visa-groupe")
    visa.get_by_role("button", name="Viser 2 documents").click()
    visa.get_by_text("2 documents visés sur 2.").wait_for()
    problems += examine(visa, "valideur: visa groupé (résultat)")

    give_role(server, SIGNER, "valideur")
    visa.goto(browsing.url("/absence"))
    problems += examine(visa, "valideur: absence et récapitulatif", shot="absence")
    today = datetime.now(PARIS).date()
    visa.get_by_label("Collègue").select_option(SIGNER)
    visa.get_by_label("Premier jour d'absence").fill(today.strftime("%d/%m/%Y"))
    visa.get_by_label("Dernier jour d'absence").fill((today - timedelta(days=3)).strftime("%d/%m/%Y"))
    visa.get_by_role("button", name="Enregistrer l'absence").click()
    error_semantics(visa, "a-fin", "Dernier jour d'absence")
    problems += examine(visa, "valideur: absence refusée (dates)")
    visa.get_by_label("Dernier jour d'absence").fill((today + timedelta(days=1)).strftime("%d/%m/%Y"))
    visa.get_by_role("button", name="Enregistrer l'absence").click()
    visa.wait_for_url(re.compile(r"fait=absence$"))
    problems += examine(visa, "valideur: absence enregistrée")
    signer = browsing.page(SIGNER, bypass_csp=True, viewport=WIDE)
    signer.goto(browsing.url("/absence"))
    problems += examine(signer, "signataire: remplaçant d'un valideur absent")
    assert problems == [], "\n".join(problems)


def test_no_csp_bypass_outside_these_contexts(browsing: Browsing) -> None:
    """The relaxed CSP is a property of the test context only: the portal still sends its strict policy."""
    with browsing.server.client(AGENT) as client:
        page = client.get("/tableau-de-bord")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "unsafe-inline" not in policy
