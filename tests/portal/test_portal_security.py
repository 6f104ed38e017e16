"""Portal security against a real server (HTTP clients with the demo certificates, no browser): CSRF on every
state-changing route, no document of another subscriber reachable by URL, OTP link tokens, the Content-Security-
Policy and the other headers; and a scan of the templates (every POST form carries the token; no inline script,
no inline event handler, no inline style).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from parafe.services.demo import ADMIN, AGENT, OTHER_AGENT, SIGNER, VISA
from tests.conftest import ROOT, LiveServer
from tests.fixtures.files import pdf_bytes

TEMPLATES = ROOT / "parafe" / "portal" / "templates"
CSRF_MESSAGE = "Le formulaire a expiré ou ne provient pas du parapheur"


def csrf_of(client: httpx.Client, path: str = "/tableau-de-bord") -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get(path).text)
    assert match, f"no CSRF token in {path}"
    return match.group(1)


def deposit(server: LiveServer, name: str) -> int:
    with server.client(AGENT) as client:
        response = client.post("/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload",
                               files={"content": (name, pdf_bytes(1, name), "application/pdf")},
                               data={"label": "Sécurité"})
    assert response.status_code == 200, response.text
    return int(response.text)


def state(server: LiveServer, doc_id: int) -> str:
    with server.client(AGENT) as client:
        return str(client.get(f"/parapheur-ws/rest/v1/documents/v2/{doc_id}/history").json()[-1]["stateName"])


def wait_state(server: LiveServer, doc_id: int, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while state(server, doc_id) != wanted:
        assert time.monotonic() < deadline, f"{doc_id} never reached {wanted}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def at_visa(portal_server: LiveServer) -> int:
    doc_id = deposit(portal_server, "securite-visa.pdf")
    wait_state(portal_server, doc_id, "Envoyé pour visa")
    return doc_id


def test_templates_post_forms_carry_csrf_and_no_inline_code() -> None:
    files = sorted(TEMPLATES.rglob("*.html"))
    assert len(files) > 15
    forms = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.S):
            if re.search(r'method="post"', form, flags=re.I):
                forms += 1
                assert 'name="csrf"' in form, f"{path.name}: POST form without CSRF token"
        for script in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in script, f"{path.name}: inline script"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path.name}: inline event handler"
        assert not re.search(r"\sstyle\s*=", text), f"{path.name}: inline style attribute"
        assert "javascript:" not in text.lower(), f"{path.name}: javascript: URL"
        assert "hx-on" not in text, f"{path.name}: hx-on needs eval"
    assert forms >= 15


def test_post_routes_refuse_missing_foreign_or_stale_tokens(portal_server: LiveServer, at_visa: int) -> None:
    server = portal_server
    with server.client(VISA) as visa, server.client(AGENT) as agent, server.client(SIGNER) as signer:
        visa_token, agent_token = csrf_of(visa), csrf_of(agent)
        for path in ("viser", "rejeter", "refuser", "supprimer"):
            for data, headers in (({}, {}), ({"csrf": agent_token}, {}), ({"csrf": "20200101.forged"}, {}),
                                  ({"csrf": visa_token}, {"Origin": "https://attaquant.example"})):
                response = visa.post(f"/documents/{at_visa}/{path}", data={**data, "motif": "x"}, headers=headers)
                assert response.status_code == 403, (path, data, headers)
                assert CSRF_MESSAGE in response.text
        assert state(server, at_visa) == "Envoyé pour visa"
        response = agent.post("/deposer", files={"fichier": ("x.pdf", pdf_bytes(), "application/pdf")},
                              data={"circuit": "123456789/bureautique", "csrf": visa_token})
        assert response.status_code == 403
        for path, body in (("/signature/preparer", {"ids": [at_visa], "certificates": ["x"]}),
                           ("/signature/finaliser", {"session": "0" * 64, "signatures": {}})):
            assert signer.post(path, json=body).status_code == 403
            assert signer.post(path, json=body, headers={"X-CSRF-Token": agent_token}).status_code == 403
        # the right token, from the right page, works
        ok = visa.post(f"/documents/{at_visa}/viser", data={"csrf": visa_token}, follow_redirects=False)
        assert ok.status_code == 303
    password = (server.home.path / "demo" / "admin-password.txt").read_text().strip()
    with server.client(auth=(ADMIN, password)) as admin:
        token = csrf_of(admin, "/admin/123456789/utilisateurs")
        for path, data in (("/admin/123456789/utilisateurs", {"email": "pirate@demo.parafe.test"}),
                           ("/admin/123456789/groupes", {"name": "pirates"}),
                           ("/admin/123456789/circuits/nouveau", {"key": "pirate", "type": "BUREAUTIQUE_PDF"}),
                           ("/admin/123456789/circuits/bureautique/supprimer", {})):
            assert admin.post(path, data=data).status_code == 403, path
            assert admin.post(path, data={**data, "csrf": token},
                              headers={"Origin": "https://attaquant.example"}).status_code == 403, path
        assert "pirate@demo.parafe.test" not in admin.get("/admin/123456789/utilisateurs").text


def test_other_subscriber_cannot_reach_documents(portal_server: LiveServer, at_visa: int) -> None:
    server = portal_server
    with server.client(OTHER_AGENT) as other:
        token = csrf_of(other)
        for suffix in ("", "/contenu", "/telecharger", "/original", "/fdc", "/annexes/0", "/verification",
                       "/resume", "/signature-detachee"):
            response = other.get(f"/documents/{at_visa}{suffix}")
            assert response.status_code == 404, suffix
            assert "securite-visa" not in response.text
        for action in ("viser", "rejeter", "refuser", "supprimer"):
            response = other.post(f"/documents/{at_visa}/{action}", data={"csrf": token, "motif": "x"})
            assert response.status_code == 404, action
        board = other.get("/tableau-de-bord?vue=tous&q=securite").text
        assert "securite-visa" not in board
        response = other.post("/signature/preparer", json={"ids": [at_visa], "certificates": ["x"]},
                              headers={"X-CSRF-Token": token})
        assert response.status_code in (403, 404)
        assert "securite-visa" not in response.text
        assert other.get("/admin/123456789/circuits").status_code == 403
    # an unknown id answers exactly like a foreign one
    with server.client(AGENT) as agent:
        unknown = agent.get("/documents/999999999")
        assert unknown.status_code == 404


def test_otp_links_are_long_random_and_scoped(portal_server: LiveServer) -> None:
    server = portal_server
    meta = (b'<?xml version="1.0"?><meta-data-list><meta-data name="OTP_phonenumber_0" value="0611223344"/>'
            b'</meta-data-list>')
    urls, ids = [], []
    with server.client(AGENT) as agent:
        for name in ("otp-a.pdf", "otp-b.pdf"):
            response = agent.post("/parapheur-ws/rest/v1/documents/v2/otp/123456789/otp/upload", files={
                "document": (name, pdf_bytes(), "application/pdf"), "meta": ("METAS_x.xml", meta, "text/xml")})
            assert response.status_code == 200, response.text
            urls.append(response.json()["url"])
            ids.append(response.json()["id"])
    tokens = [u.split("id=")[1] for u in urls]
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
        assert len(token) * 6 >= 128
    assert tokens[0] != tokens[1]
    with httpx.Client(base_url=server.url, verify=server.home.ssl_context()) as anonymous:
        page = anonymous.get(f"/boucle-sms/documentView?id={tokens[0]}")
        assert page.status_code == 200
        assert "otp-a.pdf" in page.text
        assert "otp-b.pdf" not in page.text
        assert page.headers["referrer-policy"] == "same-origin"
        assert anonymous.get(f"/boucle-sms/document?id={tokens[0]}&doc={ids[0]}").status_code == 200
        assert anonymous.get(f"/boucle-sms/document?id={tokens[0]}&doc={ids[1]}").status_code == 404
        forged = tokens[0][:-4] + ("AAAA" if not tokens[0].endswith("AAAA") else "BBBB")
        assert anonymous.get(f"/boucle-sms/documentView?id={forged}").status_code == 404
        assert anonymous.get("/boucle-sms/documentView?id=x").status_code == 404
        # the OTP page's form is CSRF-protected too
        refused = anonymous.post(f"/boucle-sms/documentView?id={tokens[0]}", data={"action": "code"})
        assert refused.status_code == 403
        # and no portal page is reachable without a certificate
        assert anonymous.get(f"/documents/{ids[0]}").status_code == 401


def test_content_security_policy_and_headers(portal_server: LiveServer, at_visa: int) -> None:
    with portal_server.client(AGENT) as agent:
        for path in ("/tableau-de-bord", f"/documents/{at_visa}", "/deposer", "/static/portal.js"):
            response = agent.get(path)
            assert response.status_code == 200, path
            csp = response.headers["content-security-policy"]
            directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
            assert directives["default-src"] == ["'none'"]
            assert "'unsafe-inline'" not in directives["script-src"]
            assert "'unsafe-eval'" not in directives["script-src"]
            assert directives["frame-ancestors"] == ["'none'"]
            assert directives["object-src"] == ["'none'"]
            assert "'unsafe-inline'" not in directives["style-src"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            if path != "/static/portal.js":
                assert response.headers["cache-control"] == "no-store"
                assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
        js = agent.get("/static/vendor/pdfjs/pdf.min.mjs?v=0123456789ab")  # as web.static_url writes it
        assert js.headers["content-type"].startswith("text/javascript")
        assert "immutable" in js.headers["cache-control"]
        # without a content hash (a module imported by another one): revalidated, never stale after an upgrade
        assert agent.get("/static/results.js").headers["cache-control"] == "no-cache"


def test_connectors_keep_precedence_over_the_portal(portal_server: LiveServer) -> None:
    with portal_server.client(AGENT) as agent:
        assert agent.get("/parapheur-ws/rest/v1/nothing-here").headers["content-type"].startswith("application/json")
        assert "wsdl" in agent.get("/parapheur-soap/soap/v1/Documents?wsdl").text.lower()
        page = agent.get("/page-inconnue")
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]


def test_no_template_left_unrendered() -> None:
    """Every template parses (a syntax error would only show on the page that uses it)."""
    from parafe.portal.web import ENV

    for path in sorted(TEMPLATES.rglob("*.html")):
        ENV.get_template(str(path.relative_to(TEMPLATES)))


def test_vendored_files_are_pinned() -> None:
    vendor = ROOT / "parafe" / "portal" / "static" / "vendor"
    assert b"htmx" in (vendor / "htmx" / "htmx.min.js").read_bytes()[:2000] or (vendor / "htmx" / "htmx.min.js").stat(
    ).st_size > 30_000
    assert b"6.5.438" in (vendor / "pdfjs" / "pdf.min.mjs").read_bytes()
    assert Path(vendor / "pdfjs" / "standard_fonts" / "FoxitSans.pfb").exists() or any(
        (vendor / "pdfjs" / "standard_fonts").glob("*.pfb"))
