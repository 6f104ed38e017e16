"""The one error catalogue of Parafe (DECISIONS D2).

Every connector (SOAP, REST, WebDAV, OSS, portal) answers errors from this catalogue and only chooses the wire
shape. Each entry has a stable numeric code, the French message copied verbatim from the interface document
where one exists (`docs/spec/API-REFERENCE.md` §3.2, §4.4, §9.5), an English developer message and an HTTP status.

Codes 100, 102, 111, 117-122 keep the document's meaning; our own entries use 130-199 (listed in
`docs/errors.md`). Messages with a placeholder use ``{name}``; :func:`ParafeError.message` fills it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorDef:
    """One catalogue entry."""

    key: str
    code: int
    message: str
    developer: str
    http_status: int
    soap_id: str | None = None  # S01..S31 of API-REFERENCE §3.2, when the message comes from there

    def format(self, **params: Any) -> str:
        return self.message.format(**params) if params else self.message


class ParafeError(Exception):
    """A business error carrying a catalogue entry, raised by services and rendered by connectors."""

    def __init__(self, error: ErrorDef, *, detail: str | None = None, **params: Any) -> None:
        self.error = error
        self.params = params
        self.detail = detail
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.error.format(**self.params)

    @property
    def code(self) -> int:
        return self.error.code

    @property
    def http_status(self) -> int:
        return self.error.http_status

    @property
    def developer_message(self) -> str:
        return f"{self.error.developer}: {self.detail}" if self.detail else self.error.developer


_ALL: dict[str, ErrorDef] = {}


def _e(key: str, code: int, message: str, developer: str, http: int, soap_id: str | None = None) -> ErrorDef:
    if key in _ALL or any(e.code == code for e in _ALL.values()):
        raise RuntimeError(f"duplicate catalogue entry {key}/{code}")
    entry = ErrorDef(key, code, message, developer, http, soap_id)
    _ALL[key] = entry
    return entry


class E:
    """Namespace of every catalogue entry (attribute name == entry key)."""

    # --- §4.4 on-demand codes (REST "Signification" column, typographic apostrophes verbatim) ---
    UNAUTHORIZED_DEPOSIT = _e(
        "UNAUTHORIZED_DEPOSIT", 100, "Votre utilisateur n’est pas autorisé à déposer dans ce siren.",
        "Unauthorized", 403)
    UNAUTHORIZED_ACTIONS = _e(
        "UNAUTHORIZED_ACTIONS", 102, "Votre Utilisateur n’est pas autorisé à effectuer des actions dans ce siren.",
        "Unauthorized", 403)
    SUBSCRIBER_NOT_FOUND = _e(
        "SUBSCRIBER_NOT_FOUND", 111, "Le siren renseigné n’existe pas", "Subscriber not found", 404)
    INVALID_CIRCUIT_TYPE = _e(
        "INVALID_CIRCUIT_TYPE", 117, "Le type de circuit est incorrect", "Invalid circuit type", 400)
    INVALID_STEP_TYPE = _e(
        "INVALID_STEP_TYPE", 118, "La valeur step du paramètre circuit est incorrect", "Invalid step type", 400)
    INVALID_STEP_MEMBER = _e(
        "INVALID_STEP_MEMBER", 119, "L’un des member du paramètre circuit est incorrect ou n’existe pas",
        "Invalid step member", 400)
    UPLOAD_DOC_ERROR = _e(
        "UPLOAD_DOC_ERROR", 120, "Une erreur est survenue lors du dépôt du document.", "Upload doc error", 400)
    CIRCUIT_DEF_ERROR = _e(
        "CIRCUIT_DEF_ERROR", 121, "Le paramètre  circuit n’est pas correctement renseigné.",
        "Circuit definition error", 400)
    INVALID_STEP_MEMBER_AGENT = _e(
        "INVALID_STEP_MEMBER_AGENT", 122, "L’agent déposant ne peut être signataire ou valideur du document.",
        "The agent cannot be a step member", 400)

    # --- §3.2 SOAP messages S01..S31 (verbatim) ---
    CONTENT_RETRIEVAL = _e(
        "CONTENT_RETRIEVAL", 130, "Erreur lors de la récupération du contenu du document",
        "Error while retrieving the document content", 500, "S01")
    NODE_NOT_FOUND = _e(
        "NODE_NOT_FOUND", 131, "Le nœud n'existe pas", "Document not found", 404, "S02")
    AUTH_UNKNOWN_USER = _e(
        "AUTH_UNKNOWN_USER", 132, "Erreur lors de l'authentification, Utilisateur non reconnu",
        "Authentication failed: unknown user or invalid certificate", 401, "S03")
    AUTH_ACCESS_DENIED = _e(
        "AUTH_ACCESS_DENIED", 133, "Erreur lors de l'authentification, accès refusé",
        "Authentication succeeded but access is denied", 403, "S04")
    SUBSCRIBER_UNKNOWN_OR_FORBIDDEN = _e(
        "SUBSCRIBER_UNKNOWN_OR_FORBIDDEN", 134,
        "Erreur: l'abonne est inconnu ou l'utilisateur n'a pas les permissions pour y réaliser l'action demandée",
        "Unknown subscriber or no permission on it", 403, "S05")
    CIRCUIT_NOT_FOUND = _e(
        "CIRCUIT_NOT_FOUND", 135, "Le circuit demandé n'a pas été trouvé", "Circuit not found", 404, "S06")
    NO_PERMISSION = _e(
        "NO_PERMISSION", 136, "Vous n'avez pas la permission de réaliser cette opération.",
        "Operation not permitted", 403, "S07")
    PES_DUPLICATE_NOMFIC = _e(
        "PES_DUPLICATE_NOMFIC", 137, "Fichier refusé : un fichier PES avec le même NomFic a déjà été envoyé.",
        "A PES file with the same NomFic was already sent", 409, "S08")
    PES_NO_BORDEREAU = _e(
        "PES_NO_BORDEREAU", 138, "Fichier refusé : le fichier PES ne contient aucun bordereau.",
        "The PES file contains no bordereau", 422, "S09")
    EXTENSION_NOT_ALLOWED = _e(
        "EXTENSION_NOT_ALLOWED", 139, "Extension du fichier non autorisée.", "File extension not allowed", 415,
        "S10")
    EMPTY_FILE = _e("EMPTY_FILE", 140, "Le fichier envoyé est vide.", "The file is empty", 422, "S11")
    NOT_PES = _e("NOT_PES", 141, "Ce fichier n'est pas un document PES.", "Not a PES document", 415, "S12")
    PDF_PROTECTED = _e(
        "PDF_PROTECTED", 142, "Fichier refusé : PDF protégé en écriture.", "Write-protected PDF", 422, "S13")
    PES_PJ_INVALID = _e(
        "PES_PJ_INVALID", 143, "Le fichier PES-PJ créé n'est pas valide.", "Invalid PES-PJ file", 422, "S14")
    DUPLICATE_FILE = _e(
        "DUPLICATE_FILE", 144, "Fichier déjà déposé par un agent.",
        "A document with the same circuit, label and name already exists", 409, "S15")
    BAD_CHARACTERS = _e(
        "BAD_CHARACTERS", 145, "Fichier contenant une mauvaise séquence de caractères.",
        "Invalid character sequence (file name or content)", 400, "S16")
    READ_FAILED = _e("READ_FAILED", 146, "La lecture du fichier a échoué.", "Reading the file failed", 422, "S17")
    FILE_TOO_LARGE = _e("FILE_TOO_LARGE", 147, "Fichier trop volumineux.", "File too large", 413, "S18")
    PES_PROCESSING = _e(
        "PES_PROCESSING", 148, "Erreur lors du traitement du document PES",
        "PES document does not match the PES schema", 422, "S19")
    DOCUMENT_NOT_FOUND = _e(
        "DOCUMENT_NOT_FOUND", 149, "Le document n'existe pas", "Document does not exist", 404, "S20")
    NOT_READY_FOR_METADATA = _e(
        "NOT_READY_FOR_METADATA", 150, "Le document n'est pas à l'état 'Prêt à définir les métadonnées'",
        "Document is not waiting for metadata", 409, "S21")
    NO_METADATA_MODEL = _e(
        "NO_METADATA_MODEL", 151, "Aucun modèle de métadonnées défini pour cette cinématique",
        "No metadata model for this circuit", 409, "S22")
    METADATA_UNKNOWN = _e(
        "METADATA_UNKNOWN", 152, "La métadonnée {name} n'est pas définie pour cette cinématique",
        "Metadata not defined for this circuit", 422, "S23")
    METADATA_BAD_FORMAT = _e(
        "METADATA_BAD_FORMAT", 153, "La valeur de la métadonnée {name} n'est pas au format....",
        "Metadata value does not match its format", 422, "S24")
    DELETE_NOT_ALLOWED = _e(
        "DELETE_NOT_ALLOWED", 154,
        "Erreur lors de la suppression. Le passage en suppression est impossible pour ce fichier",
        "Document cannot be deleted in its current state", 409, "S25")
    ACK_BUILD_ERROR = _e(
        "ACK_BUILD_ERROR", 155, "Erreur lors la construction du document pour envoi",
        "Error while building the acknowledgement", 404, "S26")
    ACK_LIST_ERROR = _e(
        "ACK_LIST_ERROR", 156, "Erreur lors de la récupération des informations concernant les acquittements",
        "Error while listing acknowledgements", 500, "S27")
    NOT_REFUSED = _e(
        "NOT_REFUSED", 157, "Le document n'a pas été rejeté ou refusé", "Document was neither refused nor rejected",
        409, "S28")
    BSMS_NO_SMS_STEP = _e(
        "BSMS_NO_SMS_STEP", 158,
        "le circuit dans lequel vous souhaitez uploader le fichier ne contient pas d’étape de signature pas envoi "
        "de SMS", "Circuit has no SMS signature step", 409, "S29")
    BSMS_METADATA_MISSING = _e(
        "BSMS_METADATA_MISSING", 159, "Merci de renseigner les métadonnées du (des) fichier(s).",
        "Metadata missing", 400, "S30")
    BSMS_NOT_AT_SMS_STEP = _e(
        "BSMS_NOT_AT_SMS_STEP", 160,
        "Un des fichiers n'est pas à l'étape de signature par utilisation de la boucle SMS",
        "Document is not at the SMS signature step", 409, "S31")

    # --- Parafe's own entries (130-199 range continued), documented in docs/errors.md ---
    CERT_MISSING = _e(
        "CERT_MISSING", 161, "Erreur lors de l'authentification, certificat client absent",
        "No client certificate presented", 401)
    CERT_EXPIRED = _e(
        "CERT_EXPIRED", 162, "Erreur lors de l'authentification, certificat périmé",
        "Client certificate expired or not yet valid", 401)
    CERT_REVOKED = _e(
        "CERT_REVOKED", 163, "Erreur lors de l'authentification, certificat révoqué",
        "Client certificate revoked", 401)
    CERT_UNKNOWN_CA = _e(
        "CERT_UNKNOWN_CA", 164,
        "Erreur lors de l'authentification, certificat émis par une AC non référencée",
        "Client certificate issued by an unknown certification authority", 401)
    BAD_CREDENTIALS = _e(
        "BAD_CREDENTIALS", 165, "Erreur lors de l'authentification, identifiant ou mot de passe incorrect",
        "Invalid Basic credentials", 401)
    NAME_TOO_LONG = _e(
        "NAME_TOO_LONG", 166, "Le nom du fichier ne doit pas excéder {limit} caractères.",
        "File name too long", 400)
    NAME_MISSING = _e("NAME_MISSING", 167, "Le nom du fichier est absent.", "Missing file name", 400)
    LABEL_TOO_LONG = _e(
        "LABEL_TOO_LONG", 168, "Le libellé ne doit pas excéder 255 caractères.", "Label too long", 400)
    BUNDLE_INVALID = _e(
        "BUNDLE_INVALID", 169, "Archive ZIP refusée : {reason}.", "Invalid zip bundle", 422)
    BUNDLE_MAIN_MISSING = _e(
        "BUNDLE_MAIN_MISSING", 170,
        "Archive ZIP refusée : le document principal « {name} » est absent de l'archive.",
        "Zip bundle does not contain the main document", 422)
    XML_UNSAFE = _e(
        "XML_UNSAFE", 171, "Fichier XML refusé : entités ou DTD interdites.", "XML with DTD or entities refused",
        422)
    XML_MALFORMED = _e(
        "XML_MALFORMED", 172, "Fichier XML mal formé.", "Malformed XML", 422)
    PDF_INVALID = _e(
        "PDF_INVALID", 173, "Le fichier n'est pas un document PDF valide.", "Not a valid PDF document", 415)
    BAD_REQUEST = _e(
        "BAD_REQUEST", 174, "Requête invalide : {reason}.", "Bad request", 400)
    METADATA_FILE_NAME = _e(
        "METADATA_FILE_NAME", 175, "Le fichier de métadonnées doit être nommé « METAS_XXX.xml ».",
        "Metadata file must be named METAS_XXX.xml", 400)
    INVALID_DOCUMENT_ID = _e(
        "INVALID_DOCUMENT_ID", 176, "L'identifiant du document est invalide.", "Invalid document id", 400)
    PES_SIGNATURE_INVALID = _e(
        "PES_SIGNATURE_INVALID", 177, "Fichier refusé : la signature du fichier PES est invalide.",
        "The PES file carries an invalid signature", 422)
    INTERNAL = _e(
        "INTERNAL", 199, "Erreur interne du parapheur, veuillez réessayer plus tard.", "Internal server error",
        500)
    OTP_IDENTITY_MISMATCH = _e(
        "OTP_IDENTITY_MISMATCH", 178,
        "Les documents n'ont pas exactement les mêmes métadonnées OTP (email et/ou numéro de téléphone).",
        "Documents of one OTP URL must carry the same OTP identity", 409)
    ROUTE_NOT_FOUND = _e(
        "ROUTE_NOT_FOUND", 179, "Ressource inconnue : vérifiez l'adresse appelée.", "No such route", 404)
    METHOD_NOT_ALLOWED = _e(
        "METHOD_NOT_ALLOWED", 180, "Méthode HTTP non autorisée pour cette adresse.", "Method not allowed", 405)
    # --- workflow engine (issue 6) ---
    STEP_NOT_ACTIONABLE = _e(
        "STEP_NOT_ACTIONABLE", 190, "Le document n'est pas à une étape sur laquelle vous pouvez agir.",
        "The document is not at a step the caller may act on", 409)
    OTP_CODE_INVALID = _e(
        "OTP_CODE_INVALID", 191, "Code de vérification incorrect. Essais restants : {remaining}.",
        "Wrong OTP code", 422)
    OTP_CODE_EXPIRED = _e(
        "OTP_CODE_EXPIRED", 192, "Le code de vérification a expiré ou n'a pas été demandé : demandez un nouveau code.",
        "OTP code expired or never sent", 410)
    OTP_LOCKED = _e(
        "OTP_LOCKED", 193, "Trop d'essais : ce code de vérification est bloqué, demandez un nouveau code.",
        "OTP code locked after too many attempts", 423)
    OTP_INFO_MISSING = _e(
        "OTP_INFO_MISSING", 194,
        "Les informations OTP du signataire (courriel ou téléphone) sont absentes pour ce document.",
        "No OTP signer identity for this document and step", 409)
    SIGNED_DOCUMENT_INVALID = _e(
        "SIGNED_DOCUMENT_INVALID", 195, "Le document signé est refusé : {reason}.",
        "The signed document does not carry one valid new signature of the original", 422)
    REASON_REQUIRED = _e(
        "REASON_REQUIRED", 196, "Un motif est obligatoire pour refuser ou rejeter un document.",
        "A refusal or rejection needs a message", 400)

    # --- administration (operators' command line and the portal's admin pages): 200-219 ---
    ADMIN_SIREN_INVALID = _e(
        "ADMIN_SIREN_INVALID", 200, "Le SIREN doit comporter exactement 9 chiffres : « {siren} ».",
        "A SIREN is 9 digits", 400)
    ADMIN_SUBSCRIBER_EXISTS = _e(
        "ADMIN_SUBSCRIBER_EXISTS", 201, "L'abonné {siren} existe déjà.", "Subscriber already exists", 409)
    ADMIN_SUBSCRIBER_UNKNOWN = _e(
        "ADMIN_SUBSCRIBER_UNKNOWN", 202, "Abonné inconnu : {siren}.", "Unknown subscriber", 404)
    ADMIN_USER_EXISTS = _e(
        "ADMIN_USER_EXISTS", 203, "L'utilisateur {email} existe déjà chez cet abonné.", "User already exists", 409)
    ADMIN_USER_UNKNOWN = _e(
        "ADMIN_USER_UNKNOWN", 204, "Utilisateur inconnu chez cet abonné : {email}.", "Unknown user", 404)
    ADMIN_EMAIL_INVALID = _e(
        "ADMIN_EMAIL_INVALID", 205, "Adresse électronique invalide : « {email} ».", "Invalid e-mail address", 400)
    ADMIN_PASSWORD_REQUIRED = _e(
        "ADMIN_PASSWORD_REQUIRED", 206,
        "Un compte à mot de passe doit avoir un mot de passe d'au moins 12 caractères.",
        "BASIC accounts need a password of at least 12 characters", 400)
    ADMIN_CERTIFICATE_INVALID = _e(
        "ADMIN_CERTIFICATE_INVALID", 207, "Certificat illisible : fichier PEM ou DER attendu.",
        "Unreadable certificate (PEM or DER expected)", 400)
    ADMIN_GROUP_UNKNOWN = _e(
        "ADMIN_GROUP_UNKNOWN", 208, "Groupe inconnu chez cet abonné : {name}.", "Unknown group", 404)
    ADMIN_CIRCUIT_SPEC_INVALID = _e(
        "ADMIN_CIRCUIT_SPEC_INVALID", 209, "Définition de circuit invalide : {reason}.",
        "Invalid circuit definition", 400)
    ADMIN_CIRCUIT_UNKNOWN = _e(
        "ADMIN_CIRCUIT_UNKNOWN", 210, "Circuit inconnu chez cet abonné : {key}.", "Unknown circuit", 404)
    ADMIN_CIRCUIT_IN_USE = _e(
        "ADMIN_CIRCUIT_IN_USE", 211,
        "Le circuit {key} contient des documents en cours : il ne peut pas être supprimé.",
        "Circuit has live documents", 409)
    ADMIN_FILE_UNREADABLE = _e(
        "ADMIN_FILE_UNREADABLE", 212, "Fichier de configuration illisible : {reason}.",
        "Unreadable configuration file", 400)
    # --- OSS server-signature service (issue 9): 181-189 ---
    OSS_WORKFLOW_NOT_FOUND = _e(
        "OSS_WORKFLOW_NOT_FOUND", 181, "Le workflow OSS demandé n'existe pas.", "OSS workflow not found", 404)
    OSS_MODE_NOT_ALLOWED = _e(
        "OSS_MODE_NOT_ALLOWED", 182,
        "Ce type de signature n'est pas autorisé pour ce workflow ou pour ce document.",
        "Signature mode not allowed for this workflow or document", 409)
    OSS_ALREADY_SIGNED = _e(
        "OSS_ALREADY_SIGNED", 183, "Le document a déjà été signé ou n'attend plus de signature.",
        "The document is no longer waiting for a signature", 409)
    OSS_LINK_INVALID = _e(
        "OSS_LINK_INVALID", 184, "Ce lien de signature est invalide, expiré ou déjà utilisé.",
        "Unknown, expired or used signing link", 404)
    OSS_DOCUMENT_PURGED = _e(
        "OSS_DOCUMENT_PURGED", 185, "Le document a été supprimé à la fin de sa durée de conservation.",
        "The document was purged (retention period over)", 410)
    OSS_PICTOGRAM_INVALID = _e(
        "OSS_PICTOGRAM_INVALID", 186, "Position du pictogramme invalide : {reason}.",
        "Invalid pictogram position", 400)
    OSS_SIGNATURE_FAILED = _e(
        "OSS_SIGNATURE_FAILED", 187, "La signature du document a échoué : {reason}.",
        "The document could not be signed", 422)
    OSS_SIGNER_MISSING = _e(
        "OSS_SIGNER_MISSING", 188, "Les informations du signataire sont incomplètes : {reason}.",
        "Signer identity incomplete", 400)
    OSS_TOO_MANY_CODES = _e(
        "OSS_TOO_MANY_CODES", 189,
        "Trop de codes de vérification ont été envoyés pour ce lien : contactez l'émetteur du document.",
        "Too many OTP codes sent for this link", 429)
    # --- portal (issue 8): 220-229 ---
    PORTAL_CSRF = _e(
        "PORTAL_CSRF", 220,
        "Le formulaire a expiré ou ne provient pas du parapheur : rechargez la page et recommencez.",
        "Missing or invalid CSRF token, or foreign Origin", 403)
    OTP_LINK_INVALID = _e(
        "OTP_LINK_INVALID", 221, "Ce lien de signature est invalide ou n'est plus valable.",
        "Unknown or revoked OTP page token", 404)
    SIGNER_CERTIFICATE_NOT_OWNED = _e(
        "SIGNER_CERTIFICATE_NOT_OWNED", 222,
        "Ce certificat de signature n'est pas rattaché à votre compte : signez avec votre propre certificat.",
        "The signing certificate is neither bound to the account nor issued to its e-mail address", 403)
    SIGNING_SESSION_INVALID = _e(
        "SIGNING_SESSION_INVALID", 223,
        "La session de signature est invalide ou a expiré : recommencez la signature.",
        "Unknown, foreign or expired remote-signing session", 410)
    SIGNING_HELPER_REFUSED = _e(
        "SIGNING_HELPER_REFUSED", 224, "La signature a échoué : {reason}.",
        "The remote signature could not be completed", 422)

    # --- verification of office-document (XAdES) signatures (issue 15): 230-234 ---
    SIGNATURE_DOCUMENT_ALTERED = _e(
        "SIGNATURE_DOCUMENT_ALTERED", 230,
        "Signature refusée : le document a été altéré, l'empreinte signée ne correspond pas au document "
        "« {name} » du parapheur.",
        "The signed digest does not match the stored document (same file name, different content)", 422)
    SIGNATURE_OTHER_FILE = _e(
        "SIGNATURE_OTHER_FILE", 231,
        "Signature refusée : elle porte sur un autre fichier (« {signed} ») que le document « {name} ».",
        "The signature references another file than the document", 422)
    SIGNATURE_FOREIGN_CERTIFICATE = _e(
        "SIGNATURE_FOREIGN_CERTIFICATE", 232,
        "Signature refusée : le certificat qui a signé (« {holder} ») n'appartient pas au signataire de "
        "l'étape.",
        "The signing certificate is not bound to the account of the signer of the step", 403)
    SIGNATURE_UNKNOWN_CA = _e(
        "SIGNATURE_UNKNOWN_CA", 233,
        "Signature refusée : le certificat de signature n'est pas émis par une autorité de certification "
        "reconnue par le parapheur.",
        "The signing certificate does not chain to the configured trust store", 422)
    SIGNATURE_CERTIFICATE_EXPIRED = _e(
        "SIGNATURE_CERTIFICATE_EXPIRED", 234,
        "Signature refusée : le certificat de signature est expiré ou pas encore valide (validité du {start} "
        "au {end}).",
        "The signing certificate is outside its validity period", 422)

    # --- recipients' download links (issue 15): 235-239 ---
    DOWNLOAD_LINK_INVALID = _e(
        "DOWNLOAD_LINK_INVALID", 235,
        "Ce lien de téléchargement n'existe pas : vérifiez qu'il a été copié en entier depuis le courriel reçu.",
        "Unknown download-link token", 404)
    DOWNLOAD_LINK_EXPIRED = _e(
        "DOWNLOAD_LINK_EXPIRED", 236,
        "Ce lien de téléchargement a expiré : sa durée de validité est dépassée. Demandez à l'expéditeur du "
        "document de vous le transmettre à nouveau.",
        "Download link past its expiry date", 410)
    DOWNLOAD_LINK_REVOKED = _e(
        "DOWNLOAD_LINK_REVOKED", 237,
        "Ce lien de téléchargement n'est plus valable : le document a été supprimé du parapheur.",
        "Download link revoked (document deleted or purged)", 410)

    # --- deposit pictograms (issue 15) ---
    PICTOGRAMS_INVALID = _e(
        "PICTOGRAMS_INVALID", 240, "Fichier de pictogrammes invalide : {reason}.",
        "Invalid pictograms XML (positions of the visa/signature pictograms)", 400)

    # --- SMS providers (issue 16) ---
    SMS_SEND_FAILED = _e(
        "SMS_SEND_FAILED", 245,
        "Le code n'a pas pu être envoyé par SMS ({reason}) : vérifiez le numéro de téléphone ou demandez un "
        "nouveau code plus tard.",
        "The SMS provider refused the OTP SMS for good (recorded in the document history and getSMSHistory)", 502)
    # Helios through S²LOW (issue 16): operators' commands (parafe admin s2low, providers check)
    S2LOW_ACCOUNT_INVALID = _e(
        "S2LOW_ACCOUNT_INVALID", 250, "Compte S²LOW invalide : {reason}.",
        "Invalid S2LOW account settings (URL, client certificate, key, CA)", 400)
    S2LOW_ACCOUNT_NOT_FOUND = _e(
        "S2LOW_ACCOUNT_NOT_FOUND", 251, "Aucun compte S²LOW n'est configuré pour l'abonné {siren}.",
        "No S2LOW account for this subscriber", 404)
    S2LOW_UNAVAILABLE = _e(
        "S2LOW_UNAVAILABLE", 252, "S²LOW n'a pas pu être joint ou a refusé la demande : {reason}.",
        "S2LOW unreachable, authentication refused or KO answer", 502)
    S2LOW_NO_LOST_TRANSACTION = _e(
        "S2LOW_NO_LOST_TRANSACTION", 253,
        "Le document {document} n'attend pas de numéro de transaction S²LOW (aucun envoi à la réponse perdue).",
        "The document is not waiting for the number of a S2LOW transaction whose answer was lost", 409)
    # --- abuse limits and failed steps (issue 18): 255-264 ---
    LOGIN_THROTTLED = _e(
        "LOGIN_THROTTLED", 255,
        "Trop de tentatives d'authentification échouées : réessayez dans {seconds} secondes.",
        "Too many failed Basic authentications for this account or address: back-off in force", 429)
    OTP_LINK_LOCKED = _e(
        "OTP_LINK_LOCKED", 256,
        "Trop de codes erronés : ce lien de signature est bloqué. Contactez l'émetteur du document.",
        "Too many wrong OTP codes in total for this document: its OTP links are locked", 429)
    PDF_TOO_COMPLEX = _e(
        "PDF_TOO_COMPLEX", 257, "Fichier refusé : le document PDF dépasse les limites autorisées ({reason}).",
        "The PDF exceeds the page, object, nesting or memory limits of a deposit", 422)
    DOCUMENT_NOT_IN_ERROR = _e(
        "DOCUMENT_NOT_IN_ERROR", 258,
        "Le document n'est pas en erreur de traitement : il n'y a rien à relancer.",
        "The document is not in the step_failed state", 409)
    # --- for integrators (issue 21): compliance report, Python client, sandbox: 265-274 ---
    COMPLIANCE_CERTIFICATE_REQUIRED = _e(
        "COMPLIANCE_CERTIFICATE_REQUIRED", 265,
        "Le rapport de conformité est celui d'un certificat client : appelez ce service avec votre certificat.",
        "The compliance report belongs to a client certificate; the caller authenticated otherwise", 403)
    COMPLIANCE_CLIENT_UNKNOWN = _e(
        "COMPLIANCE_CLIENT_UNKNOWN", 266, "Aucun appel de ce certificat client n'a été enregistré.",
        "No call of this client certificate was recorded (or it is not bound to this subscriber)", 404)
    CLIENT_SERVER_UNREACHABLE = _e(
        "CLIENT_SERVER_UNREACHABLE", 267, "Le serveur Parafe {url} est injoignable : {reason}.",
        "Connection to the Parafe server failed", 503)
    CLIENT_FILE_UNREADABLE = _e(
        "CLIENT_FILE_UNREADABLE", 268, "Le fichier {path} est illisible : {reason}.",
        "A local file given to the client could not be read or written", 400)
    CLIENT_WAIT_TIMEOUT = _e(
        "CLIENT_WAIT_TIMEOUT", 269,
        "Le document {document} n'a pas atteint l'état « {state} » en {seconds} secondes (état actuel : "
        "« {current} »).", "wait_until gave up", 408)
    CLIENT_STATE_UNKNOWN = _e(
        "CLIENT_STATE_UNKNOWN", 270, "État inconnu : « {state} ». États possibles : {states}.",
        "Unknown state name or code given to wait_until", 400)
    CLIENT_UNEXPECTED_ANSWER = _e(
        "CLIENT_UNEXPECTED_ANSWER", 271, "Réponse inattendue du serveur Parafe : {reason}.",
        "The server's answer did not have the documented shape", 502)
    CLIENT_DOCUMENT_ENDED = _e(
        "CLIENT_DOCUMENT_ENDED", 272,
        "Le document {document} est dans l'état « {current} » : il n'atteindra plus l'état « {state} ».",
        "wait_until: the document reached a final state other than the awaited one", 409)
    # --- passkey-confirmed signature with a server-held key (issue 20): 275-284 ---
    SERVER_KEY_MISSING = _e(
        "SERVER_KEY_MISSING", 275,
        "Vous n'avez pas de clé de signature conservée par le parapheur : demandez-la à votre administrateur.",
        "The account has no active server-held signing key", 409)
    SERVER_KEY_UNAVAILABLE = _e(
        "SERVER_KEY_UNAVAILABLE", 276,
        "Les clés de signature conservées par le parapheur sont indisponibles : {reason}.",
        "Server-held keys are not configured, or the token / encrypted key could not be opened", 503)
    SERVER_KEY_EXISTS = _e(
        "SERVER_KEY_EXISTS", 277, "Le compte {email} a déjà une clé de signature conservée par le parapheur.",
        "A server-held key already exists for this account (revoke it first)", 409)
    PASSKEY_MISSING = _e(
        "PASSKEY_MISSING", 278,
        "Aucune clé d'accès active : enregistrez une clé d'accès (page « Mes clés d'accès ») avant de signer.",
        "The account has no active passkey", 409)
    PASSKEY_REGISTRATION_REFUSED = _e(
        "PASSKEY_REGISTRATION_REFUSED", 279, "Enregistrement de la clé d'accès refusé : {reason}.",
        "The WebAuthn registration response did not verify (or its challenge is unknown, used or expired)", 400)
    PASSKEY_ASSERTION_REFUSED = _e(
        "PASSKEY_ASSERTION_REFUSED", 280, "Confirmation par clé d'accès refusée : {reason}.",
        "The WebAuthn assertion did not verify against the challenge binding these digests", 403)
    PASSKEY_CHALLENGE_USED = _e(
        "PASSKEY_CHALLENGE_USED", 281,
        "Cette confirmation par clé d'accès a déjà servi ou a expiré : recommencez la signature.",
        "Replayed or expired WebAuthn challenge (each nonce is accepted once)", 409)
    PASSKEY_REVOKED = _e(
        "PASSKEY_REVOKED", 282,
        "Cette clé d'accès a été révoquée ou n'appartient pas à votre compte : utilisez une autre clé d'accès.",
        "The assertion's credential is revoked, unknown or another user's", 403)
    PASSKEY_NOT_FOUND = _e(
        "PASSKEY_NOT_FOUND", 283, "Clé d'accès inconnue.", "Unknown passkey id (or another subscriber's)", 404)
    PASSKEY_PENDING = _e(
        "PASSKEY_PENDING", 284,
        "Cette clé d'accès attend la validation de votre administrateur : elle ne peut pas encore confirmer une "
        "signature.", "The passkey was enrolled after a password login and no administrator validated it yet", 403)
    # --- absence delegation, bulk visa, daily digest (issue 20): 285-294 ---
    DELEGATE_UNKNOWN = _e(
        "DELEGATE_UNKNOWN", 285, "Aucun utilisateur actif « {email} » dans votre collectivité.",
        "The delegate is not an active user of the delegator's subscriber", 400)
    DELEGATE_NO_SHARED_ROLE = _e(
        "DELEGATE_NO_SHARED_ROLE", 286,
        "{email} n'a le rôle de valideur ou de signataire sur aucun des circuits où vous l'avez : la délégation "
        "ne lui permettrait rien.",
        "Delegation refused: the delegate holds none of the delegator's valideur/signataire roles", 400)
    DELEGATION_PERIOD_INVALID = _e(
        "DELEGATION_PERIOD_INVALID", 287, "Période d'absence invalide : {reason}.",
        "Bad start/end dates of a delegation (end before start, in the past, longer than a year…)", 400)
    DELEGATION_NOT_FOUND = _e(
        "DELEGATION_NOT_FOUND", 288, "Délégation inconnue.", "Unknown delegation id (or another user's)", 404)
    DELEGATION_SELF = _e(
        "DELEGATION_SELF", 289, "Vous ne pouvez pas vous déléguer vos propres documents.",
        "Delegator and delegate are the same user", 400)
    DELEGATOR_NO_ROLE = _e(
        "DELEGATOR_NO_ROLE", 290,
        "Seuls les valideurs et les signataires d'un circuit peuvent déléguer leurs documents.",
        "The delegator holds no valideur/signataire role on any circuit", 403)
    BULK_VISA_EMPTY = _e(
        "BULK_VISA_EMPTY", 291, "Aucun document à viser dans la sélection.",
        "Bulk visa: none of the ids is waiting for the caller's visa", 400)

# WebDAV error cases of spec §4.4 (API-REFERENCE §9.5), verbatim: quoted in the depositor's error mail.
WEBDAV_CASES: dict[int, str] = {
    1: "Tentative de dépôt d’un fichier dont la valeur « NomFic » a déjà été utilisée : le client doit être "
       "capable de modifier le « NomFic » d’un document pour le renvoyer par la suite ;",
    2: "Tentative de dépôt d’un fichier dont le nom a déjà été utilisée précédemment (Doublon) : le logiciel "
       "métier doit être capable modifier le nom du fichier à déposer pour le renvoyer, sans oublier "
       "éventuellement de modifier le NomFic ;",
    3: "Tentative de dépôt d’une enveloppe avec une signature invalide : le logiciel métier doit être capable de "
       "reprendre le fichier, modifier son nom, le re-signer et le renvoyer, sans oublier éventuellement de "
       "modifier le NomFic ;",
    4: "Tentative de dépôt d’une enveloppe avec un formatage incorrect ou qui ne respecte pas le format PES : le "
       "logiciel métier doit être capable recréé l’enveloppe pour qu’elle puisse correspondre au standard "
       "attendu et redéposer le fichier.",
    5: "Tentative de dépôt d’un fichier qui est vide : le logiciel métier doit vérifier la conformité du fichier "
       "transmis ;",
    6: "Tentative de dépôt d’un fichier dont l’extension n’est pas autorisée : le logiciel métier doit vérifier "
       "la conformité du fichier transmis ;",
    7: "Tentative de dépôt d’un fichier PES ne contenant uniquement qu’un entête : le logiciel métier doit "
       "vérifier la conformité du fichier transmis ;",
    8: "Tentative de dépôt d’un fichier dont le contenu ou le nom d'une PJ est absent : le logiciel métier doit "
       "être capable de vérifier la conformité du fichier transmis ;",
    9: "Tentative de dépôt d’un fichier pdf protégé en écriture : le logiciel métier doit s’assurer avant envoi "
       "que le fichier n’est pas protégé en écriture ;",
    10: "Tentative de connexion avec un certificat périmé",
    11: "Tentative de connexion avec un certificat révoqué",
    12: "Tentative de connexion avec un certificat émis par une AC non référencée",
    13: "Tentative de connexion en cas de coupure internet",
}

# Which §4.4 case each catalogue entry is an instance of.
WEBDAV_CASE_OF: dict[str, int] = {
    "PES_DUPLICATE_NOMFIC": 1, "DUPLICATE_FILE": 2, "PES_SIGNATURE_INVALID": 3, "PES_PROCESSING": 4,
    "NOT_PES": 4, "EMPTY_FILE": 5, "EXTENSION_NOT_ALLOWED": 6, "PES_NO_BORDEREAU": 7, "PES_PJ_INVALID": 8,
    "PDF_PROTECTED": 9, "CERT_EXPIRED": 10, "CERT_REVOKED": 11, "CERT_UNKNOWN_CA": 12,
}


def catalogue() -> dict[str, ErrorDef]:
    """Every entry, by key."""
    return dict(_ALL)


def by_code(code: int) -> ErrorDef:
    for entry in _ALL.values():
        if entry.code == code:
            return entry
    raise KeyError(code)


def markdown_table() -> str:
    """The catalogue as the Markdown table of ``docs/errors.md`` (kept in sync by a test)."""
    lines = [
        "| code | HTTP | SOAP id | message (fr) | developer message (en) |",
        "|---:|---:|---|---|---|",
    ]
    for entry in sorted(_ALL.values(), key=lambda e: e.code):
        message = entry.message.replace("|", "\\|")
        lines.append(f"| {entry.code} | {entry.http_status} | {entry.soap_id or ''} | {message} | {entry.developer} |")
    return "\n".join(lines) + "\n"


def write_doc(path: str = "docs/errors.md") -> None:
    """Regenerate the table of ``docs/errors.md``, keeping its hand-written header."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    header = text[: text.index("| code |")] if "| code |" in text else text
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(header + markdown_table())


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write"]:
        write_doc()
    else:
        print(markdown_table(), end="")
