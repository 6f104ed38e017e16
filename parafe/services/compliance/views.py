"""The compliance report as a subscriber admin sees it in the portal: only the clients whose certificate is
bound to an account of a subscriber the caller administers; a foreign or unknown fingerprint answers like an
unknown client."""

from __future__ import annotations

from parafe.context import AppContext
from parafe.domain.errors import E, ParafeError
from parafe.services.access.auth import Principal
from parafe.services.compliance import report
from parafe.services.portal.admin import require_admin


def clients_for_admin(ctx: AppContext, principal: Principal, siren: str) -> list[report.ClientSummary]:
    account = require_admin(principal, siren)
    return report.clients_of(ctx, account.subscriber_id)


def client_for_admin(ctx: AppContext, principal: Principal, siren: str, fingerprint: str) -> report.ClientReport:
    account = require_admin(principal, siren)
    fingerprint = fingerprint.lower()
    if fingerprint not in report.client_fingerprints_of(ctx, account.subscriber_id):
        raise ParafeError(E.COMPLIANCE_CLIENT_UNKNOWN, detail="not bound to this subscriber")
    found = report.client_report(ctx, fingerprint)
    if found is None:
        raise ParafeError(E.COMPLIANCE_CLIENT_UNKNOWN)
    return found
