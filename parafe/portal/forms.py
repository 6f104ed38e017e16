"""Form errors tied to their fields (WCAG 3.3.1 / RGAA 11.10): which field a catalogue error is about.

A route that re-renders a form after a :class:`ParafeError` passes ``error_field`` (the id of the field) to
:func:`parafe.portal.web.render`; the page then gets an error summary (focused on load, title « Erreur : … »)
whose link leads to the field, and the field gets ``aria-invalid`` and ``aria-describedby`` pointing at its
message (macros of ``templates/_forms.html``). The message is the catalogue's, prefixed with the field's label
so that it names the field. Errors about no particular field keep the plain summary.
"""

from __future__ import annotations

from parafe.domain.errors import E, ErrorDef, ParafeError

# id of the field -> its label, as shown next to the field
LABELS: dict[str, str] = {
    "d-circuit": "Circuit", "d-fichier": "Document", "d-libelle": "Libellé", "d-commentaire": "Commentaire",
    "d-annexes": "Annexes", "d-dest": "Destinataires à prévenir", "o-tel": "Téléphone mobile du signataire OTP",
    "visa-commentaire": "Commentaire", "rejet-motif": "Motif du rejet", "refus-motif": "Motif du refus",
    "otp-code": "Code reçu", "otp-motif": "Motif du refus",
    "c-key": "Identifiant", "c-agents": "Agents", "u-email": "Courriel", "u-pass": "Mot de passe",
    "u-groups": "Groupes", "p-pass": "Nouveau mot de passe", "p-groups": "Groupes", "p-cert": "Certificat",
    "g-name": "Nom du groupe", "g-members": "Membres", "s-mois": "Mois", "s-circuit": "Circuit",
    "a-delegue": "Collègue", "a-debut": "Premier jour d'absence", "a-fin": "Dernier jour d'absence",
}

_FILE_ERRORS = frozenset({
    E.EMPTY_FILE, E.EXTENSION_NOT_ALLOWED, E.NOT_PES, E.PDF_PROTECTED, E.PES_PJ_INVALID, E.DUPLICATE_FILE,
    E.BAD_CHARACTERS, E.READ_FAILED, E.FILE_TOO_LARGE, E.NAME_TOO_LONG, E.NAME_MISSING, E.BUNDLE_INVALID,
    E.BUNDLE_MAIN_MISSING, E.XML_UNSAFE, E.XML_MALFORMED, E.PDF_INVALID, E.PES_DUPLICATE_NOMFIC,
    E.PES_NO_BORDEREAU, E.PES_PROCESSING, E.UPLOAD_DOC_ERROR, E.PES_SIGNATURE_INVALID,
})

# form -> {catalogue error -> field id}
_FIELDS: dict[str, dict[ErrorDef, str]] = {
    "deposit": {
        **{error: "d-fichier" for error in _FILE_ERRORS},
        E.LABEL_TOO_LONG: "d-libelle", E.CIRCUIT_NOT_FOUND: "d-circuit", E.UNAUTHORIZED_DEPOSIT: "d-circuit",
        E.SUBSCRIBER_UNKNOWN_OR_FORBIDDEN: "d-circuit", E.OTP_INFO_MISSING: "o-tel",
        E.BSMS_METADATA_MISSING: "o-tel", E.OTP_IDENTITY_MISMATCH: "o-tel", E.ADMIN_EMAIL_INVALID: "d-dest",
    },
    "rejeter": {E.REASON_REQUIRED: "rejet-motif"},
    "refuser": {E.REASON_REQUIRED: "refus-motif"},
    "otp-code": {E.OTP_CODE_INVALID: "otp-code", E.OTP_CODE_EXPIRED: "otp-code", E.OTP_LOCKED: "otp-code",
                 E.BAD_REQUEST: "otp-code"},
    "otp-refus": {E.REASON_REQUIRED: "otp-motif", E.BAD_REQUEST: "otp-motif"},
    "user-create": {E.ADMIN_USER_EXISTS: "u-email", E.ADMIN_EMAIL_INVALID: "u-email",
                    E.ADMIN_PASSWORD_REQUIRED: "u-pass", E.ADMIN_GROUP_UNKNOWN: "u-groups"},
    "user-update": {E.ADMIN_PASSWORD_REQUIRED: "p-pass", E.ADMIN_GROUP_UNKNOWN: "p-groups",
                    E.ADMIN_CERTIFICATE_INVALID: "p-cert", E.ADMIN_FILE_UNREADABLE: "p-cert"},
    "group": {E.ADMIN_EMAIL_INVALID: "g-members", E.ADMIN_USER_UNKNOWN: "g-members",
              E.BAD_REQUEST: "g-name"},
    "sms": {E.BAD_REQUEST: "s-mois", E.CIRCUIT_NOT_FOUND: "s-circuit"},
    "absence": {E.DELEGATE_UNKNOWN: "a-delegue", E.DELEGATE_NO_SHARED_ROLE: "a-delegue",
                E.DELEGATION_SELF: "a-delegue", E.DELEGATION_PERIOD_INVALID: "a-fin"},
}


def field_of(form: str, error: ParafeError) -> str | None:
    """The id of the field of ``form`` that ``error`` is about, or None."""
    return _FIELDS.get(form, {}).get(error.error)


def field_errors(error: str | None, field: str | None) -> dict[str, dict[str, str]]:
    """``{field id: {"label", "message"}}`` for the templates (empty without a field)."""
    if not error or not field:
        return {}
    return {field: {"label": LABELS.get(field, field), "message": error}}
