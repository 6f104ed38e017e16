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


def test_the_jobs_package_imports_no_service_nor_workflow() -> None:
    """The periodic tasks too are registered at the composition root: no module of jobs/ imports a service or
    the workflow, even inside a function."""
    import ast
    from pathlib import Path

    folder = Path(outbox.__file__).parent
    imported: set[str] = set()
    for source in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "parafe.context" in imported  # the scan sees the imports
    assert not [name for name in imported if name.startswith(("parafe.services", "parafe.workflow"))]


def test_the_periodic_tasks_of_the_composition_root_are_the_worker_s() -> None:
    from datetime import datetime

    from huey import MemoryHuey

    from parafe import composition
    from parafe.jobs import periodic, tasks

    names = {task.name for task in periodic.registered()}
    assert names == {composition.PURGE, composition.DIGEST, composition.S2LOW_RETOURS, composition.SMS_STATUS}
    huey = MemoryHuey("periodic-test")
    tasks.register(huey)
    at_0317 = {t.name for t in huey.read_periodic(datetime(2026, 12, 7, 3, 17))}
    at_0605 = {t.name for t in huey.read_periodic(datetime(2026, 12, 7, 6, 5))}
    assert at_0317 == {composition.PURGE, composition.S2LOW_RETOURS, composition.SMS_STATUS}
    assert at_0605 == {composition.DIGEST, composition.S2LOW_RETOURS, composition.SMS_STATUS}


def test_a_second_function_under_a_periodic_name_is_a_wiring_error() -> None:
    from parafe import composition
    from parafe.jobs import periodic

    with pytest.raises(RuntimeError, match="déjà enregistrée"):
        periodic.register(composition.PURGE, lambda ctx: None, hour="4", minute="0")


def test_the_periodic_purge_runs_with_the_worker_s_context(ctx: Any) -> None:
    from datetime import datetime

    from huey import MemoryHuey

    from parafe import composition
    from parafe.jobs import current, tasks

    huey = MemoryHuey("periodic-purge-test")
    tasks.register(huey)
    (task,) = [t for t in huey.read_periodic(datetime(2026, 12, 7, 3, 17)) if t.name == composition.PURGE]
    previous = current.set_context(ctx)
    try:
        huey.execute(task)  # raises if the purge fails on this context's database
    finally:
        current.set_context(previous)


def test_entering_a_step_before_the_composition_root_ran_fails(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from parafe.workflow import engine

    monkeypatch.setattr(engine, "_STEP_HOOKS", [])
    with pytest.raises(RuntimeError, match="install_jobs"):
        engine.enter(ctx, None, types.SimpleNamespace(circuit_id=0, current_step=None), 0)  # type: ignore[arg-type]
