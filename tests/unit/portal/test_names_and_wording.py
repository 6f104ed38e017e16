"""Issue 20: what the portal and the signing helper show in words — certificate names without ``CN=`` nor dotted
OIDs, long tokens with break points, signed and circulation-sheet file names, Paris times of report texts."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from parafe.portal.web import actor, breakable, paris
from parafe.services.documents.downloads import fdc_filename, signed_filename
from parafe.signing.names import readable_name, readable_rfc4514


def test_certificate_names_in_words() -> None:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Commune de Démo"),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "NTRFR-213100001"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "maire@demo.fr"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Sophie Signataire"),
    ])
    assert "1.2.840" in name.rfc4514_string() or "2.5.4.97" in name.rfc4514_string()  # what was shown before
    text = readable_name(name)
    assert text.startswith("Sophie Signataire, Commune de Démo (")
    for part in ("pays : FR", "courriel : maire@demo.fr", "identifiant de l'organisation : NTRFR-213100001"):
        assert part in text
    assert "CN=" not in text
    assert "2.5.4" not in text
    assert "1.2.840" not in text
    assert readable_rfc4514(name.rfc4514_string()) == text


def test_breakable_tokens_and_names() -> None:
    assert str(breakable("admin@demo.parafe.test")) == "admin@<wbr>demo.<wbr>parafe.<wbr>test"
    assert str(breakable("Préparé")) == "Préparé"  # a word: no break point
    assert str(breakable("<b>deliberation_du_conseil.pdf</b>")) == \
        "&lt;b&gt;deliberation_<wbr>du_<wbr>conseil.<wbr>pdf&lt;/<wbr>b&gt;"
    assert signed_filename("deliberation.pdf") == "deliberation-signe.pdf"
    assert signed_filename("bordereau.v2.xml") == "bordereau.v2-signe.xml"
    assert fdc_filename("deliberation.pdf") == "fiche-de-circulation-deliberation.pdf"
    assert actor("parapheur parapheur") == "Parafe (automatique)"
    assert actor("Victor Valideur") == "Victor Valideur"


def test_report_times_in_paris() -> None:
    assert paris("2026-12-07T01:40:36+00:00", "%d/%m/%Y %H:%M:%S") == "07/12/2026 02:40:36"
    assert paris("2026-07-07T01:40:36Z", "%d/%m/%Y %H:%M") == "07/07/2026 03:40"
    assert paris("inconnu") == "inconnu"
    assert paris(None) == ""
