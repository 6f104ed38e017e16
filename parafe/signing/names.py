"""Certificate names in words for people (issue 20): « Sophie Signataire, Commune de Démo (FR) » instead of
``CN=Sophie Signataire,O=Commune de Démo,2.5.4.97=NTRFR-123456789,C=FR``.

:func:`readable_name` keeps every attribute but names them in French (``organizationIdentifier`` →
« identifiant de l'organisation »); unknown attributes keep cryptography's name, or their dotted OID as a
last resort. Used by the signing helper's confirmation window and the portal's validation panel.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

# the main attributes, shown first and without label
_MAIN = (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME)
LABELS = {
    NameOID.COUNTRY_NAME: "pays", NameOID.LOCALITY_NAME: "commune", NameOID.STATE_OR_PROVINCE_NAME: "région",
    NameOID.EMAIL_ADDRESS: "courriel", NameOID.ORGANIZATION_IDENTIFIER: "identifiant de l'organisation",
    NameOID.SERIAL_NUMBER: "numéro de série", NameOID.GIVEN_NAME: "prénom", NameOID.SURNAME: "nom",
    NameOID.TITLE: "fonction", NameOID.PSEUDONYM: "pseudonyme", NameOID.USER_ID: "identifiant",
    NameOID.DOMAIN_COMPONENT: "domaine", NameOID.STREET_ADDRESS: "adresse", NameOID.POSTAL_CODE: "code postal",
}


def _label(oid: x509.ObjectIdentifier) -> str:
    if oid in LABELS:
        return LABELS[oid]
    name = getattr(oid, "_name", "") or ""
    return name if name and not name.startswith("Unknown") else oid.dotted_string


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def readable_name(name: x509.Name) -> str:
    """The name's main parts (common name, organisation, unit), then the others as « label : value »."""
    main = [_text(a.value) for oid in _MAIN for a in name.get_attributes_for_oid(oid)]
    others = [f"{_label(a.oid)} : {_text(a.value)}" for a in name if a.oid not in _MAIN]
    text = ", ".join(main) or "—"
    return f"{text} ({' ; '.join(others)})" if others else text


def readable_rfc4514(text: str) -> str:
    """:func:`readable_name` of an RFC 4514 string (validation reports); the text itself if unparsable."""
    try:
        return readable_name(x509.Name.from_rfc4514_string(text))
    except ValueError:
        return text
