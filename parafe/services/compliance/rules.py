"""The rules of the compliance report, with their references in the interface document (FAST-Parapheur,
« Interfaçage logiciel » v3.4, docs/spec/FAST-Parapheur-interfacage-v3.4.txt) and the verdicts.

A rule is judged on the report's period (``PARAFE_COMPLIANCE_DAYS``) from the recorder's counters, examples and
pending duties and, for returns, from the database state. Verdicts: ``conforme``, ``à surveiller`` (a warning,
not a breach), ``non conforme`` (a breach of the document's rule), ``sans objet`` (nothing to judge yet).
"""

from __future__ import annotations

from dataclasses import dataclass

CONFORME = "conforme"
WATCH = "à surveiller"
BREACH = "non conforme"
NOT_APPLICABLE = "sans objet"
VERDICTS = (CONFORME, WATCH, BREACH, NOT_APPLICABLE)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    reference: str  # section of the interface document
    quote: str  # the document's words, verbatim


RULES: tuple[Rule, ...] = (
    Rule("polling", "Interrogation à intervalle régulier",
         "§2.3, §2.4 et §4.3",
         "La commande « listRemainingAcknowledgements » ne doit être utilisée que toutes les 30 minutes au "
         "minimum afin d’éviter une surcharge des serveurs"),
    Rule("returns_fetched", "Retours récupérés à temps",
         "§2.3 et §4.3",
         "il convient d’interroger la plateforme à intervalle régulier pour vérifier ce qui doit être récupéré"),
    Rule("returns_deleted", "Retours supprimés de « out » après récupération",
         "§4.3 et §4.5",
         "Les différents retours mis à disposition de l’éditeur devront être effacés par l’éditeur, une fois que "
         "celui-ci les aura correctement récupérés"),
    Rule("blocked_in", "Fichiers bloqués retirés de « in »",
         "§4.1 (note 2) et §4.5",
         "supprimer du répertoire les fichiers bloqués, avant de redéposer les fichiers corrigés"),
    Rule("purged_unfetched", "Documents purgés avant leur récupération",
         "§4.5",
         "une purge a lieu automatiquement et quotidiennement pour les fichiers plus vieux de 15 jours dans les "
         "répertoires « in » et « out »"),
    Rule("deposit_refusals", "Dépôts refusés",
         "§1.2.7 et §4.4",
         "Lors du dépôt en échec d’un fichier sur le répertoire  « WebDAV », le serveur transmet un mail à "
         "l’acteur du dépôt, relatif au problème rencontré."),
    Rule("nomfic", "Règles du NomFic et des noms de fichiers",
         "§1.2.7, §2.4 et §4.5",
         "Penser à mettre des « NomFic » unique, selon une règle sûre, qui ne risquent pas d’être utilisés par "
         "d’autres éditeurs / collectivités."),
    Rule("duplicates", "Noms de fichiers déjà déposés (doublons)",
         "§4.4 et §4.5",
         "Avant chaque dépôt de fichier, il faut être sûr qu’un fichier avec le même nom n’existe pas déjà"),
    Rule("oversize", "Taille des fichiers",
         "§1.2.7",
         "Taille du fichier : limité fixée à 100 Mo à la date du présent document."),
    Rule("download_unknown", "Téléchargements de retours inexistants ou déjà récupérés",
         "§2.4",
         "éviter d’utiliser la commande « downloadAcknowledgement » pour des fichiers qui n’existent pas ou qui ont "
         "déjà été récupérés"),
    Rule("protocol", "Erreurs SOAP et opérations inconnues",
         "§2.5 (WSDL) et §2.4",
         "Prévoir les mécanismes de reprise nécessaires en cas d’erreur, qu’elles proviennent de la procédure de "
         "connexion ou du niveau applicatif"),
    Rule("deprecated", "Opérations dépréciées",
         "§2.5.16",
         "cette méthode est en état DEPRECATED et ne doit plus être intégrée à compter du 01/11/2015. Merci de bien "
         "vouloir utiliser la méthode « getMultiIdsSmsUrl »."),
    Rule("certificate", "Certificat client",
         "§4.4",
         "Tentative de connexion avec un certificat périmé"),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}
