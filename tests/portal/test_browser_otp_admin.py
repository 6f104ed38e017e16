"""OTP pages and admin pages in a real browser (Debian's chromium via Playwright) against a real server.

OTP: a business application deposits through the REST API with its redirect URL; the signer opens the link
without any certificate, asks for a code, reads it in the SMS outbox and signs; the browser lands on the
business application with ``return=SIGNED`` (and ``NONE`` / ``REFUSED`` on the other paths). Three wrong codes
lock the code (even the right one is then refused); a new code signs two documents of one link at once.
Admin: a subscriber administrator (Basic credentials, no certificate) creates a circuit and a user, binds a
certificate to the user, who can then sign in.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from parafe.services.demo import ADMIN, AGENT
from tests.conftest import LiveServer
from tests.fixtures.files import pdf_bytes
from tests.portal.conftest import PHONE, Browsing, both_widths, screenshot

pytestmark = pytest.mark.slow

BUSINESS = "https://logiciel-metier.example"
PHONE_NUMBER = "06 12 34 56 78"


def otp_meta(phone: str = PHONE_NUMBER, email: str = "jeanne.martin@example.org") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><meta-data-list>'
            f'<meta-data name="OTP_firstname_0" value="Jeanne"/><meta-data name="OTP_lastname_0" value="Martin"/>'
            f'<meta-data name="OTP_phonenumber_0" value="{phone}"/>'
            f'<meta-data name="OTP_email_0" value="{email}"/></meta-data-list>').encode()


def rest_otp_upload(server: LiveServer, name: str, referer: str | None) -> tuple[int, str]:
    """What a business application does (spec §2.6.18): deposit + OTP information + redirect URL."""
    data = {"label": "Contrats"}
    if referer:
        data["referer"] = referer
    with server.client(AGENT) as client:
        response = client.post("/parapheur-ws/rest/v1/documents/v2/otp/123456789/otp/upload", data=data, files={
            "document": (name, pdf_bytes(1, f"Contrat {name}"), "application/pdf"),
            "meta": ("METAS_otp.xml", otp_meta(), "application/xml")})
    assert response.status_code == 200, response.text
    body = response.json()
    return int(body["id"]), str(body["url"])


def last_sms_code(server: LiveServer, after_id: int = 0) -> tuple[int, str]:
    """The latest SMS of the development outbox (``dev_messages``) and the 6-digit code in it."""
    engine = sa.create_engine(server.home.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with engine.connect() as conn:
                row = conn.execute(sa.text(
                    "SELECT id, recipient, body FROM dev_messages WHERE channel = 'sms' AND id > :after "
                    "ORDER BY id DESC LIMIT 1"), {"after": after_id}).first()
            if row is not None:
                assert row[1] == "+33612345678"
                match = re.search(r"\b(\d{6})\b", row[2])
                assert match, row[2]
                return int(row[0]), match.group(1)
            if time.monotonic() > deadline:
                raise AssertionError("no SMS in the outbox")
            time.sleep(0.2)
    finally:
        engine.dispose()


def business_site(page: Any) -> None:
    """The business application's return page (the test's stand-in for https://logiciel-metier.example)."""
    page.route(f"{BUSINESS}/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>Logiciel métier</title><p>Retour</p>"))


def state_of(server: LiveServer, doc_id: int) -> list[str]:
    with server.client(AGENT) as client:
        history = client.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").json()
    return [h["stateName"] for h in history]


def wait_states(server: LiveServer, doc_id: int, wanted: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = state_of(server, doc_id)
        if wanted in found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} not in {found}")
        time.sleep(0.3)


def test_otp_signature_with_the_sms_code_redirects_signed(browsing: Browsing) -> None:
    server = browsing.server
    doc_id, url = rest_otp_upload(server, "contrat-location.pdf", f"{BUSINESS}/retour?dossier=42")
    token = url.split("id=")[1]
    assert len(token) * 6 >= 128
    page = browsing.page()  # no certificate: the link and the code are the access rights
    business_site(page)
    page.goto(url)
    # the signer's name shows once the workflow has reached the OTP step (the page updates itself until then)
    page.locator(".lead").filter(has_text="Jeanne Martin").wait_for()
    page.wait_for_selector(".pdf-viewer[data-rendered]")
    def settle() -> None:
        page.wait_for_timeout(400)
        page.wait_for_selector(".pdf-viewer[data-rendered]")

    both_widths(page, "otp", prepare=settle)
    page.get_by_role("button", name="Recevoir un code").click()
    notice = page.get_by_role("status").first.inner_text()
    assert "par SMS au +336" in notice
    assert "78" in notice
    assert "12 34 56" not in notice
    _, code = last_sms_code(server)
    page.get_by_label("Code reçu").fill(code)
    page.get_by_role("button", name="Signer", exact=True).click()
    page.wait_for_url(f"{BUSINESS}/retour?dossier=42&return=SIGNED")
    states = wait_states(server, doc_id, "Classé")
    assert states.index("OTP validé") < states.index("OTP signé") < states.index("Classé")
    # the signed PDF carries a valid server signature with the signer's pictogram
    agent = browsing.page(AGENT)
    agent.goto(browsing.url(f"/documents/{doc_id}"))
    agent.locator("#verification .verdict").wait_for()
    assert agent.locator("#verification .verdict").inner_text() == "Signature validée"


def test_otp_return_none_then_refusal(browsing: Browsing) -> None:
    server = browsing.server
    doc_id, url = rest_otp_upload(server, "avenant-a-refuser.pdf", f"{BUSINESS}/retour")
    page = browsing.page(viewport=PHONE)
    business_site(page)
    page.goto(url)
    page.get_by_role("link", name="Retourner sur le site sans signer").click()
    page.wait_for_url(f"{BUSINESS}/retour?return=NONE")
    page.goto(url)
    page.get_by_text("Refuser de signer").click()
    page.get_by_label("Motif du refus").fill("Je ne suis pas d'accord avec l'article 3.")
    page.get_by_role("button", name="Refuser", exact=True).click()
    page.wait_for_url(f"{BUSINESS}/retour?return=REFUSED")
    assert "Refusé" in state_of(server, doc_id)
    with server.client(AGENT) as client:
        refusal = client.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/comments/refusal").json()
    assert refusal["comment"] == "Je ne suis pas d'accord avec l'article 3."


def portal_otp_deposit(page: Any, browsing: Browsing, name: str, tmp_path: Path) -> int:
    file = tmp_path / name
    file.write_bytes(pdf_bytes(1, f"Bon de commande {name}"))
    page.goto(browsing.url("/deposer"))
    page.get_by_label("Circuit").select_option("123456789/otp")
    assert page.locator("#d-otp").is_visible()
    page.get_by_label("Document", exact=False).first.set_input_files(str(file))
    page.get_by_label("Prénom").fill("Jeanne")
    page.get_by_label("Nom", exact=True).fill("Martin")
    page.get_by_label("Téléphone mobile").fill(PHONE_NUMBER)
    page.get_by_role("button", name="Déposer").click()
    page.get_by_role("heading", name="Document déposé pour signature OTP").wait_for()
    assert "/boucle-sms/documentView?id=" in page.get_by_label("Lien de signature").input_value()
    return int(re.search(r"n° (\d+)", page.get_by_role("link", name=re.compile("Voir le document")).inner_text())
               .group(1))  # type: ignore[union-attr]


def test_otp_three_wrong_codes_lock_then_one_code_signs_two_documents(browsing: Browsing, tmp_path: Path) -> None:
    server = browsing.server
    agent = browsing.page(AGENT)
    first = portal_otp_deposit(agent, browsing, "bon-commande-1.pdf", tmp_path)
    second = portal_otp_deposit(agent, browsing, "bon-commande-2.pdf", tmp_path)
    for doc in (first, second):
        wait_states(server, doc, "Informations OTP définies")
    with server.client(AGENT) as client:
        response = client.get("/parapheur-ws/rest/v1/documents/v2/otp/url", params=[("id", first), ("id", second)])
    assert response.status_code == 200, response.text
    url = response.json()["url"]

    page = browsing.page()
    page.goto(url)
    assert "ces 2 documents" in page.locator(".lead").inner_text()
    page.get_by_role("button", name="Recevoir un code").click()
    sms_id, code = last_sms_code(server)
    wrong = "000000" if code != "000000" else "111111"
    for expected in ("Essais restants : 2.", "Essais restants : 1.", "Trop d'essais"):
        page.get_by_label("Code reçu").fill(wrong)
        page.get_by_role("button", name="Signer", exact=True).click()
        assert expected in page.get_by_role("alert").inner_text()
    screenshot(page, "otp-code-bloque")
    page.get_by_label("Code reçu").fill(code)  # the right code is refused too, once locked
    page.get_by_role("button", name="Signer", exact=True).click()
    assert "Trop d'essais" in page.get_by_role("alert").inner_text()
    assert "OTP validé" not in state_of(server, first)

    page.get_by_role("button", name="Recevoir un code").click()
    _, new_code = last_sms_code(server, sms_id)
    page.get_by_label("Code reçu").fill(new_code)
    page.get_by_role("button", name="Signer", exact=True).click()
    page.get_by_text("Signature effectuée. Merci.").wait_for()
    for doc in (first, second):
        assert "OTP signé" in wait_states(server, doc, "OTP signé")
    screenshot(page, "otp-signe")


def test_admin_creates_a_circuit_and_a_user(browsing: Browsing, tmp_path: Path) -> None:
    server = browsing.server
    password = (server.home.path / "demo" / "admin-password.txt").read_text().strip()
    admin = browsing.page(basic=(ADMIN, password))
    admin.goto(browsing.url("/connexion"))
    admin.wait_for_url(re.compile(r"/admin/123456789/circuits$"))
    both_widths(admin, "admin-circuits")

    admin.get_by_role("link", name="Nouveau circuit").click()
    admin.get_by_label("Identifiant (circuitId des web services)").fill("deliberations")
    admin.get_by_label("Nom", exact=True).fill("Délibérations du conseil")
    admin.get_by_label("Agents (déposants) : courriels séparés par des virgules").fill(AGENT)
    rows = admin.locator(".step-row")
    assert rows.count() == 3
    rows.nth(0).get_by_label("Membres").fill("visa@demo.parafe.test")
    rows.nth(1).get_by_label("Membres").fill("signataire@demo.parafe.test")
    admin.get_by_role("button", name="Ajouter une étape").click()  # htmx: one more row from the server
    rows.nth(3).wait_for()
    both_widths(admin, "admin-nouveau-circuit")
    admin.get_by_role("button", name="Enregistrer le circuit").click()
    admin.wait_for_url(re.compile(r"/admin/123456789/circuits/deliberations\?ok=enregistre$"))
    admin.get_by_role("link", name="Circuits").click()
    row = admin.locator("tr", has_text="deliberations")
    assert "Visa → Signature → Classement" in row.inner_text()
    row.get_by_role("link", name="Métadonnées de deliberations").click()
    admin.get_by_label("Nom de la métadonnée 1").fill("NUMERO_DELIBERATION")
    admin.get_by_label("Format de la métadonnée 1").select_option("regex")
    admin.get_by_label("Expression de la métadonnée 1").fill("[0-9]{4}-[0-9]{3}")
    admin.get_by_label("Métadonnée 1 obligatoire").select_option("oui")
    admin.get_by_role("button", name="Enregistrer le modèle").click()
    admin.wait_for_url(re.compile(r"/metadonnees\?ok=enregistre$"))
    assert admin.get_by_label("Nom de la métadonnée 1").input_value() == "NUMERO_DELIBERATION"
    assert admin.get_by_label("Métadonnée 1 obligatoire").input_value() == "oui"
    admin.get_by_role("link", name="Circuits").click()

    admin.get_by_role("link", name="Utilisateurs").click()
    admin.get_by_label("Courriel").fill("noe.nouveau@demo.parafe.test")
    admin.get_by_label("Prénom").fill("Noé")
    admin.get_by_label("Nom", exact=True).fill("Nouveau")
    admin.get_by_role("button", name="Créer l'utilisateur").click()
    admin.wait_for_url(re.compile(r"/utilisateurs/noe\.nouveau@demo\.parafe\.test\?ok=cree$"))
    from parafe.security import pki

    ca = pki.load_ca(server.home.path / "pki")
    issued = pki.issue_user_cert(ca, "noe.nouveau@demo.parafe.test", "Noé Nouveau")
    cert, key = tmp_path / "noe.pem", tmp_path / "noe.key"
    pki.write_pem(issued, cert, key)
    admin.get_by_label("Ajouter un certificat (PEM ou DER)").set_input_files(str(cert))
    admin.get_by_role("button", name="Rattacher le certificat").click()
    admin.wait_for_url(re.compile(r"\?ok=certificat$"))
    assert "Noé Nouveau (pays : FR ; courriel : noe.nouveau@demo.parafe.test)" in admin.locator(".certs").inner_text()
    both_widths(admin, "admin-utilisateur")
    admin.get_by_role("link", name="Historique des SMS").click()
    assert admin.get_by_role("heading", name="Historique des SMS").is_visible()

    newcomer = browsing.page(cert=(str(cert), str(key)))
    newcomer.goto(browsing.url("/tableau-de-bord"))
    assert newcomer.locator(".who").inner_text().endswith("Noé Nouveau")
    agent = browsing.page(AGENT)
    agent.goto(browsing.url("/deposer"))
    assert agent.locator("option[value='123456789/deliberations']").count() == 1


def test_admin_pages_refuse_non_admins(browsing: Browsing) -> None:
    page = browsing.page(AGENT)
    response = page.goto(browsing.url("/admin/123456789/circuits"))
    assert response is not None
    assert response.status == 403
    assert "accès refusé" in page.get_by_role("alert").inner_text()
    anonymous = httpx.get(browsing.url("/tableau-de-bord"), verify=False)
    assert anonymous.status_code == 401
    assert "certificat client absent" in anonymous.text
