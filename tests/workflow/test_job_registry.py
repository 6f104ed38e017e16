"""The outbox's kinds are registered at the composition root; a worker refuses to start while a pending row has
a kind nobody registered, naming it (issue 19)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from parafe.jobs import outbox
from parafe.jobs.runtime import WorkerRuntime


def test_worker_start_fails_on_a_pending_kind_nobody_registered(ctx: Any) -> None:
    with ctx.db.write() as session:
        outbox.add(session, "tache.inconnue", None, {})
    with pytest.raises(outbox.UnknownJobKind, match="tache.inconnue") as raised:
        WorkerRuntime(ctx, threads=1, periodic=False, dispatch=False).start()
    assert raised.value.kinds == ["tache.inconnue"]


def test_worker_starts_when_every_pending_kind_is_registered(ctx: Any) -> None:
    with ctx.db.write() as session:
        outbox.add(session, "mail.deposit_error", None, {}, delay=3600)
    runtime = WorkerRuntime(ctx, threads=1, periodic=False, dispatch=False).start()
    runtime.stop()


def test_registering_a_module_without_jobs_is_a_wiring_error() -> None:
    with pytest.raises(RuntimeError, match="ne déclare aucune tâche"):
        outbox.register(types.ModuleType("parafe.sans_taches"))


def test_the_outbox_module_imports_no_handler() -> None:
    source = outbox.__file__
    assert source is not None
    with open(source, encoding="utf-8") as fh:
        text = fh.read()
    assert "import parafe.workflow" not in text
    assert "parafe.services" not in text
