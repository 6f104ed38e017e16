"""The compliance report of one client certificate, and the list of clients a subscriber admin may see.

Reads the recorder's tables (after flushing this process's buffer) and, for returns, the database state:

- returns of the client's documents (Helios acknowledgements of documents its accounts deposited, PES_Retour
  and Chorus flows of its subscribers) downloaded later than ``PARAFE_COMPLIANCE_FETCH_CEILING_SECONDS`` after
  they appeared, or still waiting past it;
- WebDAV ``out/`` entries of its WebDAV deposits (signed file, refusal envelope) still listed past the ceiling
  and never fetched;
- documents of its subscribers purged by the 15-day purge (``document_tombstones``, reason ``purge``) whose
  deposit came through a connector and that were never fetched: the tombstone does not say who deposited
  them, so this rule counts the subscriber's purged WebDAV deposits and is a warning, never a breach.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from parafe.context import AppContext
from parafe.db.models import (
    ComplianceClient,
    ComplianceCounter,
    ComplianceExample,
    CompliancePending,
    Document,
    DocumentTombstone,
    ReturnItem,
    Subscriber,
    User,
    UserCertificate,
    WebdavDeposit,
)
from parafe.domain.states import CIRCUIT_DONE, REFUSAL
from parafe.services.compliance import recorder
from parafe.services.compliance.rules import BREACH, CONFORME, NOT_APPLICABLE, RULES, WATCH

EXPIRY_WARNING = timedelta(days=30)
TLS_LABELS = {"expired": "certificat périmé", "revoked": "certificat révoqué", "unknown_ca": "AC non référencée",
              "missing": "sans certificat", "unknown_user": "certificat inconnu"}
# documents with a WebDAV out/ entry (D6): the signed file once filed, the refusal envelope once refused (« signature
# rejetée » leaves none: counting it made an entry nobody could fetch)
FINISHED_OUT = tuple(sorted(s.value for s in CIRCUIT_DONE | REFUSAL))


@dataclass
class RuleResult:
    id: str
    title: str
    reference: str
    quote: str
    verdict: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ClientReport:
    fingerprint: str
    subject: str
    name: str  # the certificate's CN
    email: str | None
    not_after: str | None
    first_seen: str | None
    last_seen: str | None
    accounts: list[dict[str, str]]
    period_days: int
    generated_at: str
    calls: dict[str, int]
    verdict: str
    rules: list[RuleResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def common_name(subject: str) -> str:
    """The CN of an RFC 4514 subject (the subject itself without one)."""
    for part in subject.split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN" and value.strip():
            return value.strip().replace("\\", "")
    return subject


@dataclass(frozen=True)
class ClientSummary:
    fingerprint: str
    subject: str
    email: str | None
    last_seen: datetime
    breaches: int
    warnings: int

    @property
    def name(self) -> str:
        return common_name(self.subject)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".", ",")


def _worst(verdicts: list[str]) -> str:
    for verdict in (BREACH, WATCH, CONFORME):
        if verdict in verdicts:
            return verdict
    return NOT_APPLICABLE


def client_fingerprints_of(ctx: AppContext, subscriber_id: int) -> list[str]:
    """The fingerprints of the certificates bound to accounts of a subscriber."""
    with ctx.db.read() as session:
        return sorted(set(session.scalars(
            select(UserCertificate.fingerprint).join(User, User.id == UserCertificate.user_id)
            .where(User.subscriber_id == subscriber_id))))


def clients_of(ctx: AppContext, subscriber_id: int | None = None) -> list[ClientSummary]:
    """Clients seen by the connectors (all, or those bound to a subscriber's accounts), most recent first."""
    recorder.flush(ctx)
    with ctx.db.read() as session:
        query = select(ComplianceClient)
        if subscriber_id is not None:
            query = query.where(ComplianceClient.fingerprint.in_(
                select(UserCertificate.fingerprint).join(User, User.id == UserCertificate.user_id)
                .where(User.subscriber_id == subscriber_id)))
        clients = list(session.scalars(query.order_by(ComplianceClient.last_seen.desc())))
        rows = [(c.fingerprint, c.subject, c.email, c.last_seen) for c in clients]
    out = []
    for fp, subject, email, last_seen in rows:
        report = client_report(ctx, fp, flush=False)
        verdicts = [r.verdict for r in report.rules] if report else []
        out.append(ClientSummary(fp, subject, email, last_seen, verdicts.count(BREACH), verdicts.count(WATCH)))
    return out


def client_report(ctx: AppContext, fingerprint: str, *, now: datetime | None = None,
                  flush: bool = True) -> ClientReport | None:
    """The report of one client certificate, None when the connectors never saw it."""
    if flush:
        recorder.flush(ctx)
    settings = ctx.settings
    now = now or datetime.now(UTC)
    since = now - timedelta(days=settings.compliance_days)
    ceiling = timedelta(seconds=settings.compliance_fetch_ceiling_seconds)
    grace = timedelta(seconds=settings.compliance_grace_seconds)
    with ctx.db.read() as session:
        client = session.get(ComplianceClient, fingerprint)
        if client is None:
            return None
        accounts = session.execute(
            select(User.id, User.email, User.subscriber_id, Subscriber.siren)
            .join(UserCertificate, UserCertificate.user_id == User.id)
            .join(Subscriber, Subscriber.id == User.subscriber_id)
            .where(UserCertificate.fingerprint == fingerprint)).all()
        user_ids = [a.id for a in accounts]
        subscriber_ids = sorted({a.subscriber_id for a in accounts})
        counters: dict[str, int] = {}
        per_hour: dict[datetime, int] = {}
        min_gap: float | None = None
        for row in session.scalars(select(ComplianceCounter).where(
                ComplianceCounter.fingerprint == fingerprint, ComplianceCounter.hour >= since)):
            counters[row.kind] = counters.get(row.kind, 0) + row.count
            if row.kind == "listing":
                per_hour[row.hour] = per_hour.get(row.hour, 0) + row.count
                if row.min_gap is not None and (min_gap is None or row.min_gap < min_gap):
                    min_gap = row.min_gap
        examples: dict[str, list[dict[str, str]]] = {}
        for ex in session.scalars(select(ComplianceExample).where(ComplianceExample.fingerprint == fingerprint)
                                  .order_by(ComplianceExample.at.desc(), ComplianceExample.id.desc())):
            examples.setdefault(ex.rule, []).append({"at": _iso(_aware(ex.at)) or "", "detail": ex.detail})
        pending = session.execute(select(CompliancePending.kind, CompliancePending.key, CompliancePending.at)
                                  .where(CompliancePending.fingerprint == fingerprint)
                                  .order_by(CompliancePending.at.desc())).all()
        # returns (acknowledgements of the client's documents, flows of its subscribers)
        late_returns = waiting_returns = fetched_returns = 0
        if user_ids:
            own_docs = select(Document.id).where(Document.uploader_id.in_(user_ids))
            returns = session.execute(select(ReturnItem.created_at, ReturnItem.downloaded_at,
                                             ReturnItem.webdav_deleted_at).where(
                ReturnItem.created_at >= since,
                or_(and_(ReturnItem.kind == "ack", ReturnItem.document_id.in_(own_docs)),
                    and_(ReturnItem.kind != "ack", ReturnItem.subscriber_id.in_(subscriber_ids))))).all()
            for created, downloaded, deleted in returns:
                created_at = _aware(created)
                assert created_at is not None
                done = _aware(downloaded) or _aware(deleted)
                if done is not None:
                    fetched_returns += 1
                    if done - created_at > ceiling:
                        late_returns += 1
                elif now - created_at > ceiling:
                    waiting_returns += 1
            # WebDAV out/ entries of the client's WebDAV deposits still listed past the ceiling
            out_rows = session.execute(
                select(Document.name, Document.updated_at, WebdavDeposit.put_name)
                .join(WebdavDeposit, WebdavDeposit.document_id == Document.id)
                .where(Document.uploader_id.in_(user_ids), Document.deleted_at.is_(None),
                       Document.state.in_(FINISHED_OUT), Document.updated_at < now - ceiling,
                       WebdavDeposit.signed_hidden_at.is_(None), WebdavDeposit.refusal_hidden_at.is_(None))).all()
        else:
            out_rows = []
        fetched_keys = {key for kind, key, _ in pending if kind == "fetched"}
        unfetched_out = [r for r in out_rows
                         if not any(k.endswith("/" + r.put_name) or k.endswith("/" + r.put_name + ".refus.xml")
                                    for k in fetched_keys)]
        purged = 0
        if subscriber_ids:
            purged = int(session.scalar(select(func.count()).select_from(DocumentTombstone).where(
                DocumentTombstone.subscriber_id.in_(subscriber_ids), DocumentTombstone.reason == "purge",
                DocumentTombstone.deleted_at >= since)) or 0)
        sirens = [{"siren": a.siren, "email": a.email} for a in accounts]
        first_seen, last_seen, subject, email, not_after = (client.first_seen, client.last_seen, client.subject,
                                                           client.email, _aware(client.not_after))

    def result(rule_id: str, verdict: str, summary: str, figures: dict[str, Any] | None = None,
               example_rules: tuple[str, ...] = ()) -> RuleResult:
        rule = next(r for r in RULES if r.id == rule_id)
        shown = [e for name in (example_rules or (rule_id,)) for e in examples.get(name, [])]
        shown.sort(key=lambda e: e["at"], reverse=True)
        return RuleResult(rule.id, rule.title, rule.reference, rule.quote, verdict, summary, figures or {},
                          shown[:settings.compliance_examples])

    results: list[RuleResult] = []
    listings = counters.get("listing", 0)
    fast = counters.get("listing_fast", 0)
    floor = settings.compliance_poll_floor_seconds
    figures: dict[str, Any] = {
        "listings": listings, "too_frequent": fast, "max_per_hour": max(per_hour.values(), default=0),
        "hours": len(per_hour), "min_interval_seconds": min_gap, "floor_seconds": floor}
    if not listings:
        results.append(result("polling", NOT_APPLICABLE, "Aucune interrogation des retours sur la période.", figures))
    elif fast:
        results.append(result("polling", BREACH,
                              f"{fast} interrogation(s) sur {listings} à moins de {_duration(floor)} de la "
                              f"précédente du même objet (intervalle le plus court : {_duration(min_gap or 0)}, "
                              f"jusqu'à {figures['max_per_hour']} par heure).", figures))
    else:
        results.append(result("polling", CONFORME,
                              f"{listings} interrogation(s), jamais moins de {_duration(floor)} entre deux "
                              f"interrogations du même objet.", figures))
    figures = {"fetched": fetched_returns, "fetched_late": late_returns, "waiting": waiting_returns,
               "webdav_out_unfetched": len(unfetched_out),
               "ceiling_seconds": settings.compliance_fetch_ceiling_seconds}
    overdue = waiting_returns + len(unfetched_out)
    if overdue:
        results.append(result("returns_fetched", BREACH,
                              f"{overdue} retour(s) en attente depuis plus de {_duration(ceiling.total_seconds())} "
                              f"sans avoir été récupéré(s).", figures))
    elif late_returns:
        results.append(result("returns_fetched", WATCH,
                              f"{late_returns} retour(s) récupéré(s) plus de {_duration(ceiling.total_seconds())} "
                              "après leur mise à disposition.", figures))
    elif fetched_returns or out_rows:
        results.append(result("returns_fetched", CONFORME, f"{fetched_returns} retour(s) récupéré(s) à temps.",
                              figures))
    else:
        results.append(result("returns_fetched", NOT_APPLICABLE, "Aucun retour sur la période.", figures))
    for rule_id, kind, what in (("returns_deleted", "fetched", "retour(s) téléchargé(s) de « out » mais jamais "
                                 "supprimé(s)"),
                                ("blocked_in", "blocked", "fichier(s) refusé(s) laissé(s) dans « in » (jamais "
                                 "supprimé(s))")):
        owed = [(key, _aware(at)) for k, key, at in pending if k == kind]
        overdue_keys = [(key, at) for key, at in owed if at is not None and now - at >= grace]
        figures = {"pending": len(owed), "overdue": len(overdue_keys), "grace_seconds": grace.total_seconds()}
        shown = [{"at": _iso(at) or "", "detail": key} for key, at in overdue_keys]
        if overdue_keys:
            r = result(rule_id, BREACH, f"{len(overdue_keys)} {what}.", figures)
            r.examples = shown[:settings.compliance_examples]
        elif owed:
            r = result(rule_id, WATCH, f"{len(owed)} en attente de suppression (délai de "
                                       f"{_duration(grace.total_seconds())} non écoulé).", figures)
        else:
            r = result(rule_id, CONFORME, "Rien en attente.", figures)
        results.append(r)
    results.append(result("purged_unfetched", WATCH if purged else CONFORME,
                          f"{purged} document(s) des abonnés du client purgé(s) après 15 jours (la purge ne dit "
                          "pas qui les avait déposés : à vérifier)." if purged else "Aucun document purgé.",
                          {"purged": purged}))
    refusals = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("refused:")}
    deposits = sum(v for k, v in counters.items() if k.startswith("deposit:"))
    total_refused = sum(refusals.values())
    figures = {"deposits": deposits, "refused": total_refused, "by_connector_and_code": refusals}
    if total_refused:
        detail = ", ".join(f"{k.replace(':', ' ')} × {v}" for k, v in sorted(refusals.items()))
        results.append(result("deposit_refusals", WATCH if total_refused > deposits else CONFORME,
                              f"{total_refused} dépôt(s) refusé(s) pour {deposits} accepté(s) ({detail}).", figures))
    else:
        results.append(result("deposit_refusals", CONFORME if deposits else NOT_APPLICABLE,
                              f"{deposits} dépôt(s) accepté(s), aucun refus.", figures))
    for rule_id, kind, what in (("nomfic", "nomfic", "dépôt(s) refusé(s) pour le NomFic ou le nom du fichier"),
                                ("duplicates", "duplicate", "dépôt(s) d'un nom déjà déposé"),
                                ("oversize", "oversize", "dépôt(s) de plus de la taille maximale"),
                                ("download_unknown", "download_unknown",
                                 "téléchargement(s) de retours inexistants ou déjà récupérés")):
        count = counters.get(kind, 0)
        results.append(result(rule_id, BREACH if count else (CONFORME if deposits or listings else NOT_APPLICABLE),
                              f"{count} {what}." if count else "Aucun écart.", {"count": count}))
    faults = counters.get("soap_fault", 0)
    unknown = counters.get("unknown_operation", 0)
    figures = {"soap_faults": faults, "unknown_operations": unknown}
    if unknown:
        results.append(result("protocol", BREACH, f"{unknown} appel(s) d'opérations ou d'adresses inconnues, "
                              f"{faults} faute(s) SOAP.", figures, ("unknown_operations", "soap_faults")))
    elif faults:
        results.append(result("protocol", WATCH, f"{faults} faute(s) SOAP.", figures, ("soap_faults",)))
    else:
        results.append(result("protocol", CONFORME, "Aucune faute SOAP, aucune opération inconnue.", figures))
    deprecated = counters.get("deprecated_operation", 0)
    results.append(result("deprecated", BREACH if deprecated else CONFORME,
                          f"{deprecated} appel(s) d'opérations dépréciées (getSmsUrl : utiliser getMultiIdsSmsUrl)."
                          if deprecated else "Aucune opération dépréciée.", {"count": deprecated},
                          ("deprecated_operations",)))
    tls = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("tls:")}
    figures = {"refused_connections": tls, "not_after": _iso(not_after)}
    if tls:
        results.append(result("certificate", BREACH, "Connexions refusées : " + ", ".join(
            f"{TLS_LABELS.get(k, k)} × {v}" for k, v in sorted(tls.items())) + ".", figures))
    elif not_after is not None and not_after - now < EXPIRY_WARNING:
        days = max(0, (not_after - now).days)
        results.append(result("certificate", WATCH, f"Le certificat expire dans {days} jour(s) "
                              f"({not_after:%d/%m/%Y}) : le renouveler.", figures))
    else:
        results.append(result("certificate", CONFORME, f"Certificat valide jusqu'au "
                              f"{not_after:%d/%m/%Y}." if not_after else "Certificat valide.", figures))
    calls = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("calls:")}
    return ClientReport(
        fingerprint=fingerprint, subject=subject, name=common_name(subject), email=email, not_after=_iso(not_after),
        first_seen=_iso(_aware(first_seen)), last_seen=_iso(_aware(last_seen)), accounts=sirens,
        period_days=settings.compliance_days, generated_at=_iso(now) or "", calls=calls,
        verdict=_worst([r.verdict for r in results]), rules=results)
