"""Search latency on large volumes (issue 10): p50/p99 of representative searches through the real service.

For each backend the script creates a throw-away home and database (a PostgreSQL database created and dropped
here, a SQLite file in a temporary directory), initialises it with ``parafe.cli.initialise`` (migrations and
demo set), then bulk-generates documents directly in SQL (PostgreSQL ``COPY``, SQLite ``executemany``):

- 6 subscribers (the demo 123456789 holds 40 % of the documents) and 50 circuits of six workflow templates
  (visa + signature, signature, PES, PES-PJ, server signature, OTP) with Zipf-like volumes;
- per subscriber 10–16 agents, 6 valideurs, 4 signers; each circuit has 3 agents, 1–2 valideurs, 1–2 signers
  (so an agent has roles on a few circuits);
- labels: five generic ones per circuit plus one per week ("Lot S12-2025");
- ``created_at`` over 3 years (weekdays, office hours, growing volume); ids follow time;
- 4–8 history entries per document written as the workflow writes them (``prepared`` by the uploader,
  ``sent_for_visa``, ``approved``/``disapproved`` by a valideur, ``sent_for_sign``, ``signed``/``refused`` by
  a signer, ``filed``, ``archived``, the PES and OTP chains…) with human delays (exponential, mean 1.5 days),
  so recent documents are still in progress, a few stay stuck, refused ones are sometimes deleted;
- 0–3 metadata values per document (``service``: 12 values, ``email``: 2,000, ``montant``, ``numero``: unique).
  Blob hashes are fake (the search never reads blobs).

It then runs every query kind ``--runs`` times with varied parameters, in random order, through
``parafe.services.documents.search.search(ctx, principal, SearchCriteria.from_wire({...}))`` as (a) the subscriber admin
``admin@demo.parafe.test`` and (b) generated agents of the demo subscriber restricted to their circuits, and
prints ONE line per backend on stdout:

  search  backend=postgresql  docs=1000000  admin.state+circuit p50=…ms p99=…ms  …  agent.combined p50=… p99=…

Progress, generation time and a per-kind table (p50, p99, max, mean number of results) go to stderr.

Usage: .venv/bin/python bench/search.py [--docs 1000000] [--sqlite-docs 100000] [--only postgresql|sqlite]
       [--runs 200] [--explain] [--postgres ADMIN_URL] [--keep] [--reuse URL]

``--explain`` prints, for the first run of each kind, the plan of the statement the service executed
(PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN QUERY PLAN``). ``--keep`` leaves the generated
database in place (its URL is printed); ``--reuse URL`` skips the generation and searches an existing bench
database (migrated to head first), to compare plans and indexes without regenerating.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import create_pg_database, drop_pg_database  # noqa: E402  (bench/ is the script's folder)

DEMO_SIREN = "123456789"
ADMIN_EMAIL = "admin@demo.parafe.test"
YEARS = 3
DAY = 86400.0

# (siren, name, share of the documents, number of new circuits, number of agents); the first two exist already.
SUBSCRIBERS: tuple[tuple[str, str, float, int, int], ...] = (
    ("123456789", "Commune de Démo", 0.40, 14, 16),
    ("987654321", "Commune Autre", 0.04, 4, 10),
    ("900000001", "Métropole Bench", 0.20, 7, 14),
    ("900000002", "Département Bench", 0.16, 7, 12),
    ("900000003", "Région Bench", 0.12, 6, 12),
    ("900000004", "Syndicat Bench", 0.08, 5, 10),
)
DEMO_TEMPLATES = {"bureautique": "visa_sign", "pes": "pes", "pes-pj": "pes_pj", "serveur": "server",
                  "otp": "otp", "xml": "sign"}
TEMPLATE_WEIGHTS = {"visa_sign": 40, "sign": 20, "pes": 20, "pes_pj": 10, "server": 5, "otp": 5}
CIRCUIT_TYPES = {"visa_sign": "BUREAUTIQUE_PDF", "sign": "BUREAUTIQUE_PDF", "pes": "HELIOS_AVEC_TELETRANSMISSION",
                 "pes_pj": "HELIOS_AVEC_TELETRANSMISSION", "server": "BUREAUTIQUE_PDF", "otp": "BUREAUTIQUE_PDF"}
KINDS = {"visa_sign": ("pdf", "deliberation"), "sign": ("pdf", "arrete"), "pes": ("pes", "PES_mandat"),
         "pes_pj": ("pes", "PES_PJ"), "server": ("pdf", "attestation"), "otp": ("pdf", "contrat")}

HUMAN = 1.5 * DAY
# A step: (state, actor, mean delay in seconds, failure state, failure probability, probability the step occurs).
# actor: "uploader" | "valideur" | "signer" | "auto" | "otp".
Step = tuple[str, str, float, str | None, float, float]
TEMPLATES: dict[str, tuple[Step, ...]] = {
    "visa_sign": (("prepared", "uploader", 0, None, 0, 1), ("metadata_defined", "uploader", 3600, None, 0, 0.2),
                  ("sent_for_visa", "auto", 5, None, 0, 1), ("approved", "valideur", HUMAN, "disapproved", 0.04, 1),
                  ("sent_for_sign", "auto", 5, None, 0, 1), ("signed", "signer", HUMAN, "refused", 0.03, 1),
                  ("filed", "auto", 2, None, 0, 1), ("archived", "auto", 20 * DAY, None, 0, 0.25)),
    "sign": (("prepared", "uploader", 0, None, 0, 1), ("sent_for_sign", "auto", 5, None, 0, 1),
             ("signed", "signer", HUMAN, "refused", 0.03, 1), ("filed", "auto", 2, None, 0, 1),
             ("archived", "auto", 20 * DAY, None, 0, 0.1)),
    "pes": (("prepared", "uploader", 0, None, 0, 1), ("sent_for_sign", "auto", 5, None, 0, 1),
            ("signed", "signer", HUMAN, "refused", 0.02, 1), ("sending", "auto", 30, None, 0, 1),
            ("sent_to_fast", "auto", 60, None, 0, 1), ("sent_to_helios", "auto", 600, None, 0, 1),
            ("acknowledged", "auto", DAY, None, 0, 1), ("filed", "auto", 2, None, 0, 1)),
    "pes_pj": (("prepared", "uploader", 0, None, 0, 1), ("sending", "auto", 30, None, 0, 1),
               ("sent_to_fast", "auto", 60, None, 0, 1), ("sent_to_helios", "auto", 600, None, 0, 1),
               ("acknowledged", "auto", DAY, None, 0, 1), ("filed", "auto", 2, None, 0, 1)),
    "server": (("prepared", "uploader", 0, None, 0, 1), ("sent_for_sign", "auto", 5, None, 0, 1),
               ("signed", "auto", 20, None, 0, 1), ("filed", "auto", 2, None, 0, 1)),
    "otp": (("prepared", "uploader", 0, None, 0, 1), ("otp_info_defined", "uploader", 600, None, 0, 1),
            ("otp_validated", "otp", HUMAN, None, 0, 1), ("otp_signed", "otp", 60, None, 0, 1),
            ("filed", "auto", 2, None, 0, 1)),
}
STUCK = 0.015  # probability that a human step never happens (a document forgotten in a parapheur)
SERVICES = ("Finances", "Ressources humaines", "Urbanisme", "Commande publique", "Culture", "Voirie",
            "Affaires scolaires", "Social", "Environnement", "Juridique", "Informatique", "Communication")
SEARCH_STATES = ("Filed", "Filed", "Filed", "SentForSign", "SendForVisa", "Signed", "Prepared", "Refused",
                 "Disapproved", "Archived", "Approved", "Acknowledged", "SentToHELIOS", "OTPvalidated")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- database lifecycle (as bench/deposit.py) -------------------------------------------------------------------



def _setup(home: Path, url: str, *, initialise_home: bool = True) -> Any:
    os.environ["PARAFE_HOME"] = str(home)
    os.environ["PARAFE_DATABASE_URL"] = url
    from parafe.cli import initialise
    from parafe.config import get_settings, reset_settings
    from parafe.context import AppContext
    from parafe.db.migrate import upgrade

    reset_settings()
    if initialise_home:
        initialise(verbose=False)
    else:
        upgrade(url)
    return AppContext.from_settings(get_settings())


# --- reference data: subscribers, users, circuits, roles, labels ------------------------------------------------

@dataclass
class CircuitGen:
    id: int
    subscriber_id: int
    key: str
    template: str
    agents: list[int]
    valideurs: list[int]
    signers: list[int]
    generic_labels: list[int] = field(default_factory=list)
    weekly_labels: dict[int, int] = field(default_factory=dict)  # week number since the start -> label id


@dataclass
class World:
    start: float
    now: float
    circuits: list[CircuitGen]
    cum_weights: list[float]
    names: dict[int, str]  # user id -> full name


def _reference_data(ctx: Any, rng: random.Random, start: float, now: float) -> World:
    from sqlalchemy import insert, select

    from parafe.db.models import Circuit, CircuitRole, Label, Subscriber, User

    circuits: list[CircuitGen] = []
    weights: list[float] = []
    names: dict[int, str] = {}
    weeks = int((now - start) / (7 * DAY)) + 2
    with ctx.db.write() as s:
        for siren, sub_name, share, new_circuits, n_agents in SUBSCRIBERS:
            sub = s.scalar(select(Subscriber).where(Subscriber.siren == siren))
            if sub is None:
                sub = Subscriber(siren=siren, name=sub_name)
                s.add(sub)
                s.flush()
            staff: dict[str, list[int]] = {}
            for role, count in (("agent", n_agents), ("valideur", 6), ("signer", 4)):
                rows = [{"subscriber_id": sub.id, "email": f"{role}{k}@s{siren}.bench.test",
                         "firstname": role.capitalize(), "lastname": f"{k} {siren}", "is_admin": False,
                         "authentication_type": "CERTIFICAT", "active": True,
                         "created_at": datetime.fromtimestamp(start, UTC)} for k in range(1, count + 1)]
                s.execute(insert(User), rows)
                staff[role] = list(s.scalars(select(User.id).where(
                    User.subscriber_id == sub.id, User.email.like(f"{role}%@s{siren}.bench.test"))
                    .order_by(User.id)))
            if not s.scalar(select(User.id).where(User.subscriber_id == sub.id, User.is_admin.is_(True))):
                s.add(User(subscriber_id=sub.id, email=f"admin@s{siren}.bench.test", firstname="Admin",
                           lastname=siren, is_admin=True, authentication_type="BASIC"))
            existing = list(s.scalars(select(Circuit).where(Circuit.subscriber_id == sub.id).order_by(Circuit.id)))
            specs: list[tuple[int | None, str, str]] = [
                (c.id, c.key, DEMO_TEMPLATES.get(c.key, "server")) for c in existing]
            tpl_names, tpl_weights = zip(*TEMPLATE_WEIGHTS.items(), strict=True)
            for k in range(1, new_circuits + 1):
                specs.append((None, f"circuit-{k:02d}", rng.choices(tpl_names, tpl_weights)[0]))
            sub_circuits: list[CircuitGen] = []
            for circuit_id, key, template in specs:
                if circuit_id is None:
                    circuit = Circuit(subscriber_id=sub.id, key=key, name=f"Circuit {key} ({template})",
                                      type=CIRCUIT_TYPES[template], pes_pj=template == "pes_pj",
                                      created_at=datetime.fromtimestamp(start, UTC))
                    s.add(circuit)
                    s.flush()
                    circuit_id = circuit.id
                gen = CircuitGen(circuit_id, sub.id, key, template, rng.sample(staff["agent"], 3),
                                 rng.sample(staff["valideur"], rng.randint(1, 2)),
                                 rng.sample(staff["signer"], rng.randint(1, 2)))
                have = set(s.execute(select(CircuitRole.user_id, CircuitRole.role).where(
                    CircuitRole.circuit_id == circuit_id)).all())
                roles = ({(u, "agent") for u in gen.agents} | {(u, "valideur") for u in gen.valideurs}
                         | {(u, "signataire") for u in gen.signers}) - have
                if roles:
                    s.execute(insert(CircuitRole), [{"circuit_id": circuit_id, "user_id": u, "role": r}
                                                    for u, r in sorted(roles)])
                label_rows = [{"circuit_id": circuit_id, "name": n, "created_at": datetime.fromtimestamp(start, UTC)}
                              for n in ("Délibérations", "Arrêtés", "Courriers", "Factures", "Marchés")]
                for week in range(weeks):
                    day = date.fromtimestamp(start + week * 7 * DAY)
                    iso = day.isocalendar()
                    label_rows.append({"circuit_id": circuit_id, "name": f"Lot S{iso.week:02d}-{iso.year}",
                                       "created_at": datetime.fromtimestamp(start + week * 7 * DAY, UTC)})
                s.execute(insert(Label), label_rows)
                by_name = dict(s.execute(select(Label.name, Label.id).where(Label.circuit_id == circuit_id)).all())
                gen.generic_labels = [by_name[n] for n in ("Délibérations", "Arrêtés", "Courriers", "Factures",
                                                           "Marchés")]
                for week in range(weeks):
                    iso = date.fromtimestamp(start + week * 7 * DAY).isocalendar()
                    gen.weekly_labels[week] = by_name[f"Lot S{iso.week:02d}-{iso.year}"]
                sub_circuits.append(gen)
            zipf = [1 / (rank + 1) ** 0.8 for rank in range(len(sub_circuits))]
            rng.shuffle(zipf)
            total = sum(zipf)
            circuits.extend(sub_circuits)
            weights.extend(share * z / total for z in zipf)
        for uid, first, last, email in s.execute(select(User.id, User.firstname, User.lastname, User.email)):
            names[uid] = f"{first} {last}".strip() or email
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    return World(start, now, circuits, cum, names)


# --- documents, history, metadata ------------------------------------------------------------------------------

DocRow = tuple[Any, ...]


def _timestamps(rng: random.Random, n: int, start: float, now: float) -> list[float]:
    """``n`` sorted deposit times: weekdays, 7h–19h UTC, volume growing over the period."""
    days = int((now - start) / DAY)
    out = []
    for _ in range(n):
        day = int(rng.random() ** 0.85 * days)
        base = start - (start % DAY) + day * DAY
        weekday = (int(base // DAY) + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Saturday, Sunday
        if weekday >= 5:
            base -= (weekday - 4) * DAY
        t = base + 7 * 3600 + rng.random() * 12 * 3600
        out.append(min(t, now - 60))
    out.sort()
    return out


def _meta_values(rng: random.Random, doc_id: int, year: int) -> list[tuple[str, str]]:
    k = rng.choices((0, 1, 2, 3), (30, 30, 25, 15))[0]
    out = []
    for name in rng.sample(("service", "email", "montant", "numero"), k):
        if name == "service":
            value = rng.choice(SERVICES)
        elif name == "email":
            value = f"contact{rng.randrange(2000)}@exemple.fr"
        elif name == "montant":
            value = str(rng.randrange(10, 500_000))
        else:
            value = f"{year}-{doc_id % 10_000_000:07d}"
        out.append((name, value))
    return out


def generate(world: World, rng: random.Random, n: int, first_id: int,
             chunk: int = 50_000) -> Iterator[tuple[list[DocRow], list[DocRow], list[DocRow]]]:
    """Chunks of (documents, history_entries, metadata_values) rows, datetimes aware (UTC)."""
    times = _timestamps(rng, n, world.start, world.now)
    names = world.names
    sources = ("ws",) * 8 + ("webdav", "portal")
    for begin in range(0, n, chunk):
        end = min(n, begin + chunk)
        picks = rng.choices(world.circuits, cum_weights=world.cum_weights, k=end - begin)
        docs: list[DocRow] = []
        hist: list[DocRow] = []
        metas: list[DocRow] = []
        for offset, circuit in enumerate(picks):
            i = begin + offset
            doc_id = first_id + i
            t0 = times[i]
            uploader = circuit.agents[min(int(rng.expovariate(1.2)), len(circuit.agents) - 1)]
            valideur = rng.choice(circuit.valideurs)
            signer = rng.choice(circuit.signers)
            actors = {"uploader": uploader, "valideur": valideur, "signer": signer}
            t = t0
            state = "prepared"
            deleted: float | None = None
            for st, who, delay, fail, fail_p, occurs in TEMPLATES[circuit.template]:
                if occurs < 1 and rng.random() >= occurs:
                    continue
                if who in ("valideur", "signer", "otp") and rng.random() < STUCK:
                    break
                if delay:
                    t += rng.expovariate(1 / delay) if delay >= 3600 else delay * (0.5 + rng.random())
                if t >= world.now:
                    break
                if fail and rng.random() < fail_p:
                    st = fail
                user = actors.get(who)
                if who == "otp":
                    full = "boucle sms"
                elif user is None:
                    full = "parapheur parapheur"
                else:
                    full = names[user]
                hist.append((doc_id, st, user, full, None, datetime.fromtimestamp(t, UTC)))
                state = st
                if st == fail:
                    if rng.random() < 0.3 and t + 3 * DAY < world.now:
                        deleted = t + 3 * DAY
                    break
            created = datetime.fromtimestamp(t0, UTC)
            kind, prefix = KINDS[circuit.template]
            week = int((t0 - world.start) // (7 * DAY))
            label = (circuit.weekly_labels.get(week, circuit.generic_labels[0]) if rng.random() < 0.6
                     else rng.choice(circuit.generic_labels))
            filename = f"{prefix}-{doc_id}.{'xml' if kind == 'pes' else 'pdf'}"
            docs.append((doc_id, circuit.subscriber_id, circuit.id, label, filename, kind, state, f"{doc_id:064x}",
                         20_000 + (doc_id * 7919) % 3_000_000, uploader, rng.choice(sources), "{}", created,
                         datetime.fromtimestamp(t, UTC), datetime.fromtimestamp(deleted, UTC) if deleted else None))
            for position, (name, value) in enumerate(_meta_values(rng, doc_id, created.year)):
                metas.append((doc_id, position, name, value, "meta"))
        yield docs, hist, metas


DOC_COLUMNS = ("id", "subscriber_id", "circuit_id", "label_id", "name", "kind", "state", "blob_sha256", "size",
               "uploader_id", "source", "extra", "created_at", "updated_at", "deleted_at")
HIST_COLUMNS = ("document_id", "state", "user_id", "user_fullname", "comment", "created_at")
META_COLUMNS = ("document_id", "position", "name", "value", "kind")
TABLES = ("documents", "history_entries", "metadata_values")


def load_postgresql(ctx: Any, world: World, rng: random.Random, n: int) -> None:
    """COPY the generated rows; secondary indexes are dropped first and rebuilt after (timed), FK triggers off."""
    raw = ctx.db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 99999999) + 1 FROM documents")
            first_id = int(cur.fetchone()[0])
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
                        "AND indexname NOT LIKE 'pk\\_%%'", (list(TABLES),))
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
        conn.commit()
        started = time.perf_counter()
        done = hist_n = meta_n = 0
        for docs, hist, metas in generate(world, rng, n, first_id):
            with conn.cursor() as cur:
                cur.execute("SET session_replication_role = replica")  # no FK triggers for generated, consistent rows
                for table, cols, rows in (("documents", DOC_COLUMNS, docs), ("history_entries", HIST_COLUMNS, hist),
                                          ("metadata_values", META_COLUMNS, metas)):
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                cur.execute("SET session_replication_role = origin")
            conn.commit()
            done += len(docs)
            hist_n += len(hist)
            meta_n += len(metas)
            say(f"gen  postgresql  {done}/{n} documents  {hist_n} history  {meta_n} metadata  "
                f"{time.perf_counter() - started:.0f} s")
        copied = time.perf_counter() - started
        t = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '512MB'")
            for name, definition in indexes:
                t1 = time.perf_counter()
                cur.execute(definition)
                conn.commit()
                say(f"gen  postgresql  index {name} rebuilt in {time.perf_counter() - t1:.1f} s")
            cur.execute("SELECT setval(pg_get_serial_sequence('documents', 'id'), (SELECT max(id) FROM documents))")
        conn.commit()
        indexed = time.perf_counter() - t
        t = time.perf_counter()
        conn.autocommit = True
        with conn.cursor() as cur:
            for table in TABLES:
                cur.execute(f"VACUUM (ANALYZE) {table}")
        conn.autocommit = False
        say(f"gen  postgresql  COPY {copied:.0f} s, indexes {indexed:.0f} s, VACUUM ANALYZE "
            f"{time.perf_counter() - t:.0f} s")
    finally:
        raw.close()


def _sqlite_dt(value: Any) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def load_sqlite(ctx: Any, world: World, rng: random.Random, n: int) -> None:
    """executemany in chunks, indexes in place (the production schema as migrated). No ``ANALYZE`` afterwards:
    Parafe never runs it on SQLite, so the planner works without statistics, as in production."""
    raw = ctx.db.engine.raw_connection()
    try:
        conn = raw.driver_connection
        first_id = int(conn.execute("SELECT coalesce(max(id), 99999999) + 1 FROM documents").fetchone()[0])
        started = time.perf_counter()
        done = hist_n = meta_n = 0
        for docs, hist, metas in generate(world, rng, n, first_id):
            conn.execute("BEGIN")
            for table, cols, rows in (("documents", DOC_COLUMNS, docs), ("history_entries", HIST_COLUMNS, hist),
                                      ("metadata_values", META_COLUMNS, metas)):
                conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                 [tuple(_sqlite_dt(v) for v in row) for row in rows])
            conn.execute("COMMIT")
            done += len(docs)
            hist_n += len(hist)
            meta_n += len(metas)
            say(f"gen  sqlite  {done}/{n} documents  {hist_n} history  {meta_n} metadata  "
                f"{time.perf_counter() - started:.0f} s")
        say(f"gen  sqlite  insert {time.perf_counter() - started:.0f} s")
    finally:
        raw.close()


# --- the searches ------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    circuit_id: int
    label: str
    name: str
    metas: list[tuple[str, str]]


@dataclass
class Viewer:
    """A principal and what it may search: circuits, people, sampled labels, names and metadata."""

    role: str  # admin | agent
    principals: list[Any]
    circuits: dict[int, str]  # id -> key
    uploaders: list[str]
    valideurs: list[str]
    signers: list[str]
    samples: list[Sample]


def _scenario(ctx: Any, rng: random.Random) -> tuple[list[Viewer], float, float]:
    from sqlalchemy import func, select

    from parafe.db.models import Circuit, CircuitRole, Document, Label, MetadataValue, Subscriber, User
    from parafe.services.access.auth import principal_for_email

    with ctx.db.read() as s:
        sub_id = s.scalar(select(Subscriber.id).where(Subscriber.siren == DEMO_SIREN))
        circuits = dict(s.execute(select(Circuit.id, Circuit.key).where(Circuit.subscriber_id == sub_id)).all())
        emails = dict(s.execute(select(User.id, User.email).where(User.subscriber_id == sub_id)).all())
        roles = list(s.execute(select(CircuitRole.circuit_id, CircuitRole.user_id, CircuitRole.role).where(
            CircuitRole.circuit_id.in_(list(circuits)))).all())
        lo, hi, first, last = s.execute(select(func.min(Document.id), func.max(Document.id),
                                               func.min(Document.created_at), func.max(Document.created_at))
                                        .where(Document.subscriber_id == sub_id)).one()
        ids = sorted({rng.randint(lo, hi) for _ in range(6000)})
        rows = list(s.execute(select(Document.id, Document.circuit_id, Label.name, Document.name)
                              .join(Label, Label.id == Document.label_id)
                              .where(Document.id.in_(ids), Document.subscriber_id == sub_id)).all())
        metas: dict[int, list[tuple[str, str]]] = {}
        for doc_id, name, value in s.execute(select(MetadataValue.document_id, MetadataValue.name,
                                                    MetadataValue.value).where(MetadataValue.document_id.in_(ids))):
            metas.setdefault(doc_id, []).append((name, value))
    samples = [Sample(c, label, name, metas.get(doc_id, [])) for doc_id, c, label, name in rows]

    def people(circuit_ids: set[int], role: str) -> list[str]:
        return sorted({emails[u] for c, u, r in roles if c in circuit_ids and r == role and u in emails})

    every = set(circuits)
    admin = Viewer("admin", [principal_for_email(ctx, ADMIN_EMAIL)], circuits, people(every, "agent"),
                   people(every, "valideur"), people(every, "signataire"), samples)
    agent_circuits: dict[int, set[int]] = {}
    for c, u, r in roles:
        if r == "agent" and emails.get(u, "").endswith(".bench.test"):
            agent_circuits.setdefault(u, set()).add(c)
    def usable(u: int) -> bool:
        cs = agent_circuits[u]
        return 2 <= len(cs) <= 4 and sum(1 for x in samples if x.circuit_id in cs and x.metas) >= 20

    chosen = sorted((u for u in agent_circuits if usable(u)), key=lambda u: emails[u])[:5]
    viewers = [admin]
    for u in chosen:  # each agent on its own: its circuits, people and samples
        cs = agent_circuits[u]
        viewers.append(Viewer("agent", [principal_for_email(ctx, emails[u])], {c: circuits[c] for c in cs},
                              people(cs, "agent"), people(cs, "valideur"), people(cs, "signataire"),
                              [x for x in samples if x.circuit_id in cs]))
    first_ts = first.timestamp() if first.tzinfo else first.replace(tzinfo=UTC).timestamp()
    last_ts = last.timestamp() if last.tzinfo else last.replace(tzinfo=UTC).timestamp()
    return viewers, first_ts, last_ts


def _fmt(ts: float) -> str:
    from parafe.domain.paris_time import PARIS

    return datetime.fromtimestamp(ts, UTC).astimezone(PARIS).strftime("%d/%m/%Y")


def _range(rng: random.Random, first: float, last: float, max_days: int) -> tuple[str, str]:
    span = rng.randint(1, max_days) * DAY
    begin = first + rng.random() * max(0.0, last - first - span)
    return _fmt(begin), _fmt(begin + span - DAY)


QueryMaker = Callable[[random.Random, Viewer, float, float], dict[str, Any]]


def _state_circuit(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    return {"circuit": rng.choice(list(v.circuits.values())), "state": rng.choice(SEARCH_STATES)}


def _state(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    return {"state": rng.choice(SEARCH_STATES)}


def _dates(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    if rng.random() < 0.2:  # "since": the last 1–60 days
        return {"uploadAfter": _fmt(last - rng.randint(1, 60) * DAY)}
    after, before = _range(rng, first, last, 31)
    return {"uploadAfter": after, "uploadBefore": before}


def _meta(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    with_meta = [x for x in v.samples if x.metas]
    pairs = rng.choice(with_meta).metas
    return {"meta": dict(rng.sample(pairs, 2 if len(pairs) > 1 and rng.random() < 0.25 else 1))}


def _uploader(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    return {"uploadBy": rng.choice(v.uploaders)}


def _validator(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    after, before = _range(rng, first, last, 90)
    return {"validateBy": rng.choice(v.valideurs), "validateAfter": after, "validateBefore": before}


def _signer(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    after, before = _range(rng, first, last, 90)
    return {"signBy": rng.choice(v.signers), "signAfter": after, "signBefore": before}


def _history_dates(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    after, before = _range(rng, first, last, 31)
    prefix = rng.choice(("validate", "sign"))
    return {f"{prefix}After": after, f"{prefix}Before": before}


def _combined(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    after, before = _range(rng, first, last, 120)
    out: dict[str, Any] = {"circuit": rng.choice(list(v.circuits.values())), "state": rng.choice(SEARCH_STATES),
                           "uploadAfter": after, "uploadBefore": before}
    if rng.random() < 0.5:
        out["meta"] = {"service": rng.choice(SERVICES)}
    if rng.random() < 0.5:
        out["uploadBy"] = rng.choice(v.uploaders)
    return out


def _label(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    sample = rng.choice(v.samples)
    out: dict[str, Any] = {"label": sample.label}
    if rng.random() < 0.5:
        out["circuit"] = v.circuits[sample.circuit_id]
    return out


def _filename(rng: random.Random, v: Viewer, first: float, last: float) -> dict[str, Any]:
    return {"filename": rng.choice(v.samples).name}


QUERY_KINDS: dict[str, QueryMaker] = {
    "state+circuit": _state_circuit, "dates": _dates, "meta": _meta, "uploader": _uploader,
    "validator": _validator, "signer": _signer, "combined": _combined,
    # the other criteria: state alone (SOAP listRemainingSignedDocs), visa/signature dates alone, label, filename
    "state": _state, "history-dates": _history_dates, "label": _label, "filename": _filename,
}


class Capture:
    """Remembers the last statement the engine ran (the search query itself) to EXPLAIN it."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.last: tuple[str, Any] | None = None
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self.last = (statement, parameters)

    def explain(self) -> str:
        assert self.last is not None
        statement, parameters = self.last
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.engine.dialect.name == "sqlite":
                cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                plan = "\n".join(f"  {row[0]:>3} {row[1]:>3} {row[3]}" for row in cur.fetchall())
                t = time.perf_counter()
                cur.execute(statement, parameters)
                count = len(cur.fetchall())
                plan += f"\n  ({count} rows in {(time.perf_counter() - t) * 1000:.1f} ms)"
            else:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = "\n".join("  " + row[0] for row in cur.fetchall())
            cur.close()
            raw.rollback()
            return f"{statement}\n{plan}"
        finally:
            raw.close()


def run_searches(ctx: Any, backend: str, docs: int, runs: int, explain: bool, seed: int) -> str:
    from parafe.services.documents.search import SearchCriteria, search

    rng = random.Random(seed)
    viewers, first, last = _scenario(ctx, rng)
    admin, agents = viewers[0], viewers[1:]
    tasks: list[tuple[str, str, Viewer, dict[str, Any]]] = []
    for kind, make in QUERY_KINDS.items():
        for role in ("admin", "agent"):
            for _ in range(runs):
                viewer = admin if role == "admin" else rng.choice(agents)
                tasks.append((f"{role}.{kind}", kind, viewer, make(rng, viewer, first, last)))
    capture = Capture(ctx.db.engine) if explain else None
    if capture is not None:
        done: set[str] = set()
        for name, _kind, viewer, wire in tasks:
            if name in done:
                continue
            done.add(name)
            result = search(ctx, viewer.principals[0], SearchCriteria.from_wire({"siren": DEMO_SIREN, **wire}))
            print(f"--- {backend} {name} {wire} -> {len(result)} ids\n{capture.explain()}\n", flush=True)
    rng.shuffle(tasks)
    for _name, _kind, viewer, wire in tasks[:50]:  # warm-up (caches, prepared statements)
        search(ctx, viewer.principals[0], SearchCriteria.from_wire({"siren": DEMO_SIREN, **wire}))
    timings: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    slowest: dict[str, tuple[float, str, dict[str, Any]]] = {}
    started = time.perf_counter()
    for name, _kind, viewer, wire in tasks:
        criteria = SearchCriteria.from_wire({"siren": DEMO_SIREN, **wire})
        t = time.perf_counter()
        result = search(ctx, viewer.principals[0], criteria)
        elapsed = (time.perf_counter() - t) * 1000
        timings.setdefault(name, []).append(elapsed)
        counts.setdefault(name, []).append(len(result))
        if elapsed > slowest.get(name, (0.0, "", {}))[0]:
            slowest[name] = (elapsed, viewer.principals[0].email, wire)
    say(f"search  {backend}  {len(tasks)} searches in {time.perf_counter() - started:.1f} s")
    parts = [f"search  backend={backend}  docs={docs}"]
    for name in sorted(timings, key=lambda k: (k.split(".")[0], list(QUERY_KINDS).index(k.split(".")[1]))):
        values = sorted(timings[name])
        p50, p99 = _pct(values, 50), _pct(values, 99)
        say(f"  {name:<22} p50={p50:7.1f} ms  p99={p99:7.1f} ms  max={values[-1]:7.1f} ms  "
            f"mean results={statistics.mean(counts[name]):8.0f}  slowest: {slowest[name][1]} {slowest[name][2]}")
        parts.append(f"{name} p50={p50:.1f}ms p99={p99:.1f}ms")
    return "  ".join(parts)


def _pct(values: Sequence[float], pct: int) -> float:
    k = max(0, math.ceil(len(values) * pct / 100) - 1)
    return values[k]


# --- driver ------------------------------------------------------------------------------------------------------

def run_backend(backend: str, n: int, args: argparse.Namespace) -> str:
    from sqlalchemy import text

    home = Path(tempfile.mkdtemp(prefix="parafe-bench-search-"))
    dbname = None
    keep = args.keep
    try:
        if args.reuse:
            ctx = _setup(home, args.reuse, initialise_home=False)
            with ctx.db.read() as s:
                n = int(s.execute(text("SELECT count(*) FROM documents")).scalar_one())
            say(f"gen  {backend}  reusing {args.reuse} ({n} documents)")
        else:
            if backend == "sqlite":
                db_dir = Path(tempfile.mkdtemp(prefix="parafe-bench-sqlite-")) if keep else home
                url = f"sqlite:///{db_dir / 'parafe.db'}"
            else:
                url, dbname = create_pg_database(args.postgres)
            say(f"gen  {backend}  database {url}")
            t = time.perf_counter()
            ctx = _setup(home, url)
            rng = random.Random(args.seed)
            now = time.time()
            world = _reference_data(ctx, rng, now - YEARS * 365.25 * DAY, now)
            (load_postgresql if backend == "postgresql" else load_sqlite)(ctx, world, rng, n)
            say(f"gen  {backend}  {n} documents generated in {time.perf_counter() - t:.0f} s")
        line = run_searches(ctx, backend, n, args.runs, args.explain, args.seed)
        ctx.close()
        if keep and not args.reuse:
            say(f"gen  {backend}  kept: --reuse {url}")
        return line
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if dbname and not keep:
            drop_pg_database(args.postgres, dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="documents on PostgreSQL")
    parser.add_argument("--sqlite-docs", type=int, default=100_000, help="documents on SQLite")
    parser.add_argument("--only", choices=("postgresql", "sqlite"))
    parser.add_argument("--runs", type=int, default=200, help="runs of each query kind, per principal")
    parser.add_argument("--explain", action="store_true", help="print the plan of each query kind")
    parser.add_argument("--postgres", default=os.environ.get(
        "PARAFE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--reuse", metavar="URL", help="search this existing bench database (needs --only)")
    args = parser.parse_args()
    if args.reuse and not args.only:
        parser.error("--reuse needs --only")
    for backend in ("postgresql", "sqlite"):
        if args.only and backend != args.only:
            continue
        print(run_backend(backend, args.docs if backend == "postgresql" else args.sqlite_docs, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
