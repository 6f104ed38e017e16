"""The chaos scenario's options and its report (what the run did, what the checks found), shared by the run
(:mod:`parafe.devtools.chaos`), its cluster (:mod:`parafe.devtools.chaos_cluster`) and its load
(:mod:`parafe.devtools.chaos_load`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class ChaosOptions:
    duration: float = 60.0
    clients: int = 4
    nodes: int = 2
    workers: int = 2
    kill_every: float = 6.0
    restart_after: float = 2.0
    pg_restarts: int = 1
    s3_fault_seconds: float = 8.0
    s3_fault_rate: float = 0.7
    drain_timeout: float = 180.0
    postgres: str = DEFAULT_POSTGRES
    workdir: Path | None = None
    keep: bool = False
    seed: int | None = None
    pg_restart_command: list[str] | None = None
    say: Callable[[str], None] = field(default=lambda message: print(message, flush=True))


@dataclass
class Report:
    """What the run did and what the checks found; ``failures`` must be 0."""

    acked: Counter[str] = field(default_factory=Counter)
    deleted: int = 0
    requests: int = 0
    request_errors: int = 0
    kills: int = 0
    self_exits: int = 0
    pg_restarts: int = 0
    s3_failed_requests: int = 0
    signed_checked: int = 0
    visas: int = 0
    signatures_by_api: int = 0
    otp_signatures: int = 0
    otp_interrupted: Counter[str] = field(default_factory=Counter)
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    orphans_old: int = 0
    orphans_recent: int = 0
    jobs_claimed: list[str] = field(default_factory=list)
    jobs_recovered: int = 0
    deleted_still_there: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return (len(self.lost) + len(self.duplicated) + len(self.stuck) + self.orphans_old + len(self.jobs_claimed)
                + len(self.deleted_still_there))

    def lines(self) -> list[str]:
        acked = ", ".join(f"{k} {v}" for k, v in sorted(self.acked.items()))
        return [
            f"Dépôts acquittés : {sum(self.acked.values())} ({acked})",
            f"Visas et signatures par l'API : {self.visas} visas, {self.signatures_by_api} signatures ; "
            f"signatures OTP : {self.otp_signatures}",
            f"Parcours OTP interrompus (pannes) : {sum(self.otp_interrupted.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.otp_interrupted.items())) or 'aucun'})",
            f"Suppressions acquittées : {self.deleted}",
            f"Requêtes des clients : {self.requests} (dont {self.request_errors} en erreur pendant les pannes)",
            "  erreurs : " + (", ".join(f"{k} × {v}" for k, v in self.errors_by_kind.most_common(6)) or "aucune"),
            f"Arrêts brutaux (kill -9) : {self.kills} ; arrêts d'eux-mêmes (relancés) : {self.self_exits} ; "
            f"redémarrages de PostgreSQL : {self.pg_restarts} ; "
            f"requêtes S3 en échec injecté : {self.s3_failed_requests}",
            f"Tâches exécutées en plus d'une tentative (reprises) : {self.jobs_recovered}",
            f"Documents signés vérifiés : {self.signed_checked}",
            f"Documents acquittés perdus (ligne ou contenu manquant) : {len(self.lost)}",
            f"Documents supprimés encore présents : {len(self.deleted_still_there)}",
            f"Signatures ou entrées « Signé » en double ou manquantes : {len(self.duplicated)}",
            f"Documents bloqués hors d'un état final ou d'attente : {len(self.stuck)}",
            f"Blobs orphelins plus vieux que le délai de grâce : {self.orphans_old} "
            f"(orphelins récents, ramassés après le délai : {self.orphans_recent})",
            f"Tâches laissées à un processus mort : {len(self.jobs_claimed)}",
            f"Résultat : {'OK' if self.failures == 0 else f'{self.failures} ÉCART(S)'}",
        ]

    def details(self) -> list[str]:
        out: list[str] = []
        for title, items in (("perdus", self.lost), ("doublons", self.duplicated), ("bloqués", self.stuck),
                             ("tâches", self.jobs_claimed), ("supprimés présents", self.deleted_still_there)):
            if items:
                out.append(f"  {title} : " + "; ".join(items[:20]))
        return out
