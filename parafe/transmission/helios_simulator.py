"""The Helios simulator (DECISIONS D13), the default Helios transport, and the ``PES_ACQUIT`` it builds
(:func:`build_acquit`) and the engine reads (:func:`etat_ack`, whatever the transport).

:class:`HeliosSimulator` implements :class:`~parafe.transmission.helios_types.HeliosTransport` (chosen by
:func:`parafe.transmission.helios.transport`) and behaves like a real one:

- it keeps what it receives (``$PARAFE_HOME/simulators/helios``), once per key;
- ``PARAFE_HELIOS_SIM_DELAY`` seconds after receipt the file is "transmitted", twice that later the
  acknowledgement is there: a schema-valid ``PES_ACQUIT`` (one ``ElementACQUIT`` per bordereau, EtatAck 1);
- a NomFic or file name containing ``PARAFE_HELIOS_SIM_ACK_KO`` gets EtatAck 0 with an error detail,
  ``…_FAIL_FAST`` a FAST processing failure, ``…_FAIL_HELIOS`` a failure to reach Helios and ``…_FAIL_SEND``
  a refused send (a transport error, retried by the engine);
- it can also emit a ``PES_Retour`` flow (:meth:`HeliosSimulator.pes_retour`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from parafe.config import workflow_settings
from parafe.context import AppContext
from parafe.formats.safexml import parse_untrusted
from parafe.transmission.helios_types import HeliosSendError, HeliosStatus
from parafe.transmission.simstore import SimStore

NS_ACK = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2"
NS_RETOUR = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour"


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def _first(root: etree._Element, name: str) -> etree._Element | None:
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el.tag) == name:
            return el
    return None


def _v(el: etree._Element | None, name: str, default: str = "") -> str:
    if el is None:
        return default
    for child in el:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return str(child.get("V", default))
    return default


def build_acquit(pes: bytes, *, ok: bool = True) -> bytes:
    """A ``PES_ACQUIT`` answering a ``PES_Aller`` (schema PES_V2_Acquit_Autonome_V2.xsd)."""
    root = parse_untrusted(pes, allow_huge_text=True).getroot()
    params = _first(root, "Parametres")
    entete = _first(root, "EnTetePES")
    out = etree.Element(f"{{{NS_ACK}}}PES_ACQUIT", nsmap={"n": NS_ACK})
    env = etree.SubElement(out, "Enveloppe")
    p = etree.SubElement(env, "Parametres")
    etree.SubElement(p, "Version", V="2")
    etree.SubElement(p, "TypFic", V=_v(params, "TypFic", "PESALR2") or "PESALR2")
    etree.SubElement(p, "NomFic", V=_v(params, "NomFic", "inconnu") or "inconnu")
    em = etree.SubElement(env, "Emetteur")
    etree.SubElement(em, "Sigle", V="PARAFE")
    etree.SubElement(em, "Adresse", V="Simulateur Helios Parafe")
    rec = etree.SubElement(env, "Recepteur")
    etree.SubElement(rec, "Sigle", V="HELIOS")
    head = etree.SubElement(out, "EnTetePES")
    for name in ("DteStr", "IdPost", "LibellePoste", "IdColl", "CodCol", "CodBud", "LibelleColBud"):
        value = _v(entete, name)
        if value:
            etree.SubElement(head, name, V=value)
    acquit = etree.SubElement(out, "ACQUIT")
    etree.SubElement(etree.SubElement(acquit, "EnTeteAcquit"), "IdVer", V="2")
    bordereaux = [el for el in root.iter() if isinstance(el.tag, str) and _local(el.tag) == "Bordereau"]
    if not bordereaux:  # PES_PJ: one element for the file
        el = etree.SubElement(acquit, "ElementACQUIT")
        etree.SubElement(el, "DomaineAck", V="7")
        etree.SubElement(el, "EtatAck", V="1" if ok else "0")
    for bordereau in bordereaux:
        bloc = _first(bordereau, "BlocBordereau")
        el = etree.SubElement(acquit, "ElementACQUIT")
        etree.SubElement(el, "DomaineAck", V="5")
        etree.SubElement(el, "EtatAck", V="1" if ok else "0")
        etree.SubElement(el, "NumBord", V=_v(bloc, "IdBord", "1") or "1")
        etree.SubElement(el, "ExerciceBord", V=_v(bloc, "Exer", str(datetime.now(UTC).year)))
        if not ok:
            piece = _first(bordereau, "InfoPce")
            detail = etree.SubElement(el, "DetailPiece")
            etree.SubElement(detail, "NumPiece", V=_v(piece, "IdPce", "1") or "1")
            ligne = etree.SubElement(detail, "DetailLigne")
            etree.SubElement(ligne, "NumLigne", V="1")
            err = etree.SubElement(ligne, "Erreur")
            etree.SubElement(err, "NumAnoAck", V="ERREUR_AUTRE")
            etree.SubElement(err, "LibelleAnoAck", V="Anomalie simulée par le simulateur Helios de Parafe")
    return bytes(etree.tostring(out, xml_declaration=True, encoding="ISO-8859-1"))


def etat_ack(acquit: bytes) -> int:
    """0 when any ``EtatAck`` of the acknowledgement is 0, else 1."""
    root = parse_untrusted(acquit).getroot()
    states = [str(el.get("V")) for el in root.iter() if isinstance(el.tag, str) and _local(el.tag) == "EtatAck"]
    return 0 if "0" in states else 1


class HeliosSimulator:
    """The default Helios transport: a real component with its own durable state (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.store = SimStore(root)

    @classmethod
    def for_context(cls, ctx: AppContext) -> HeliosSimulator:
        return cls(ctx.settings.resolved_home / "simulators" / "helios")

    def _outcome(self, name: str, data: bytes) -> str:
        s = workflow_settings()
        try:
            nom_fic = _v(_first(parse_untrusted(data, allow_huge_text=True).getroot(), "Parametres"), "NomFic")
        except Exception:
            nom_fic = ""
        text = f"{name} {nom_fic}"
        for marker, outcome in ((s.helios_sim_fail_send, "send_failed"), (s.helios_sim_fail_fast, "fast_failed"),
                                (s.helios_sim_fail_helios, "helios_failed"), (s.helios_sim_ack_ko, "ack_ko")):
            if marker and marker in text:
                return outcome
        return "ack_ok"

    def send(self, key: str, name: str, data: bytes, *, document_id: int | None = None) -> str:
        outcome = self._outcome(name, data)
        if outcome == "send_failed":
            raise HeliosSendError("le simulateur Helios refuse la connexion (cas d'échec configuré)")
        receipt = self.store.receive(key, data, {"name": name, "outcome": outcome})
        return receipt.remote_id

    def status(self, remote_id: str, now: float | None = None) -> HeliosStatus:
        receipt = self.store.by_remote_id(remote_id)
        if receipt is None:
            return HeliosStatus("fast_failed", detail=f"transmission {remote_id} inconnue de FAST")
        delay = workflow_settings().helios_sim_delay
        elapsed = (now if now is not None else time.time()) - receipt.received_at
        outcome = str(receipt.info.get("outcome"))
        if elapsed < delay:
            return HeliosStatus("received")
        if outcome == "fast_failed":
            return HeliosStatus("fast_failed", detail="FAST a rejeté le fichier (cas d'échec simulé)")
        if elapsed < 2 * delay:
            return HeliosStatus("transmitted")
        if outcome == "helios_failed":
            return HeliosStatus("helios_failed", detail="Hélios n'a pas accepté le fichier (cas d'échec simulé)")
        ack = build_acquit(self.store.data(receipt.key), ok=outcome != "ack_ko")
        return HeliosStatus("acknowledged", ack=ack)

    @staticmethod
    def poll_delay(rounds: int) -> float:
        """The simulator is asked at a fixed pace (``PARAFE_HELIOS_POLL_SECONDS``)."""
        return workflow_settings().helios_poll_seconds

    def transmissions(self) -> list[dict[str, object]]:
        """What the simulator received: one entry per key, with the number of repeated sends."""
        return [{"key": r.key, "remote_id": r.remote_id, "received_at": r.received_at, **r.info,
                 "duplicates": self.store.duplicates(r.key)} for r in self.store.receipts()]

    @staticmethod
    def pes_retour(id_coll: str = "21000000000000", *, date: str | None = None) -> bytes:
        """A small schema-valid ``PES_Retour`` flow (TypFic PESRETOUR_DEP), as the treasury would send it."""
        day = date or datetime.now(UTC).strftime("%Y-%m-%d")
        stamp = int(time.time() * 1000)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<n:PES_Retour xmlns:n="{NS_RETOUR}">
<Enveloppe><Parametres><Version V="2"/><TypFic V="PESRETOUR_DEP"/><NomFic V="PARAFE_SIMU_RETOUR_{stamp}.xml"/>
</Parametres></Enveloppe>
<EnTetePES><DteStr V="{day}"/><IdPost V="086016"/><IdColl V="{id_coll}"/><CodColl V="221"/><CodBud V="00"/>
</EnTetePES>
<PES_DepenseRetour><EnTeteDepense><TypRestit V="AA"/><IdVer V="2"/><NatInf V="2"/></EnTeteDepense>
<Bordereau><BlocBordereau><Exer V="{day[:4]}"/><IdBord V="1"/><TypBord V="01"/></BlocBordereau>
<Piece><InfoPiece><IdPce V="1"/><TypPce V="01"/><NatPce V="01"/><Obj V="Mandat pris en charge"/>
<DtePcePec V="{day}"/><EtatPce V="01"/></InfoPiece>
<LigneDePiece><BlocLignePiece><InfoLignePiece><IdLigne V="1"/><EtatLigPce V="01"/><MtHT V="100.00"/>
</InfoLignePiece></BlocLignePiece></LigneDePiece></Piece></Bordereau></PES_DepenseRetour>
</n:PES_Retour>
""".encode()
