"""Portal pages without a browser, against the module's real server: the PES summary of a deposited PES, the
fiche de circulation and annex downloads, the dashboard's categories and counts, errors shown in the page."""

from __future__ import annotations

import html
import re

from parafe.services.demo import AGENT, SIGNER
from tests.conftest import TESTDATA, LiveServer
from tests.fixtures.files import pdf_bytes, zip_bytes
from tests.portal.test_portal_security import csrf_of, wait_state


def test_pes_summary_and_downloads(portal_server: LiveServer) -> None:
    sample = (TESTDATA / "pes" / "samples" / "valid_unsigned_PES_ex.xml").read_bytes()
    with portal_server.client(AGENT) as agent:
        response = agent.post("/parapheur-ws/rest/v1/documents/v2/123456789/pes/upload",
                              files={"content": ("SICOVAL201512104.xml", sample, "application/xml")})
        assert response.status_code == 200, response.text
        pes_id = int(response.text)
        page = agent.get(f"/documents/{pes_id}").text
        assert f'hx-get="/documents/{pes_id}/resume"' in page
        summary = agent.get(f"/documents/{pes_id}/resume").text
        assert "SICOVAL201512104" in summary
        assert "Bordereau 2372" in summary
        assert "55,22 €" in summary
        assert "CELLULOSES DE BROCELIANDE" in summary
        fdc = agent.get(f"/documents/{pes_id}/fdc")
        assert fdc.headers["content-type"] == "application/pdf"
        assert fdc.content.startswith(b"%PDF")
        assert "attachment" in fdc.headers["content-disposition"]

        bundle = zip_bytes({"note.pdf": pdf_bytes(1, "Note"), "annexe-1.pdf": pdf_bytes(1, "Annexe")})
        response = agent.post("/parapheur-ws/rest/v1/documents/v2/123456789/bureautique/upload",
                              files={"content": ("note.pdf.zip", bundle, "application/zip")},
                              data={"label": "Annexes"})
        assert response.status_code == 200, response.text
        note_id = int(response.text)
        page = agent.get(f"/documents/{note_id}").text
        assert "annexe-1.pdf" in page
        annex = agent.get(f"/documents/{note_id}/annexes/0")
        assert annex.status_code == 200
        assert annex.content.startswith(b"%PDF")
        assert agent.get(f"/documents/{note_id}/annexes/7").status_code == 404
        wait_state(portal_server, note_id, "Envoyé pour visa")

        board = agent.get("/tableau-de-bord?vue=en-cours").text
        assert re.search(r"PES \(signature puis Hélios\)\s*<span class=\"count\"", board)
        assert "Annexes" in board  # the label appears under its circuit


def test_errors_are_shown_in_the_page(portal_server: LiveServer) -> None:
    with portal_server.client(AGENT) as agent:
        token = csrf_of(agent)
        empty = agent.post("/deposer", files={"fichier": ("vide.pdf", b"", "application/pdf")},
                           data={"csrf": token, "circuit": "123456789/bureautique"})
        assert empty.status_code == 422
        assert "Le fichier envoyé est vide." in empty.text
        wrong = agent.post("/deposer", files={"fichier": ("note.txt", b"texte", "text/plain")},
                           data={"csrf": token, "circuit": "123456789/bureautique"})
        assert wrong.status_code == 415
        assert "Extension du fichier non autorisée." in wrong.text
    with portal_server.client(SIGNER) as signer:
        token = csrf_of(signer)
        # nothing waits for this signer's action on an unknown document: same message as every connector
        response = signer.post("/documents/999999999/refuser", data={"csrf": token, "motif": "non"})
        assert response.status_code == 404
        assert "Le document n'existe pas" in html.unescape(response.text)


def test_accessibility_statement_is_public_and_non_compliant_without_audit(portal_server: LiveServer) -> None:
    """Without the operating body's settings, the statement says « non conforme » (RGAA: no audit yet); no
    certificate is needed, and every page's footer links it."""
    with portal_server.client() as anonymous:
        page = anonymous.get("/accessibilite")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Déclaration d'accessibilité" in text
    assert "<strong>non conforme</strong>" in text
    assert re.search(r"faute d'audit de\s+conformité réalisé à ce jour", text)
    assert "Défenseur des droits" in text
    with portal_server.client(AGENT) as agent:
        board = html.unescape(agent.get("/tableau-de-bord").text)
    assert re.search(r'<a href="/accessibilite"\s*>Accessibilité : non conforme</a>', board)
