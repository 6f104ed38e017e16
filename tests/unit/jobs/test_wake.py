"""Waking the job workers after a commit (issue 17, :mod:`parafe.jobs.wake`): the bells of this process at once,
the other worker processes of the home by a datagram; names of workers that are gone are removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from parafe.jobs import wake


def test_ring_wakes_the_workers_of_this_process(tmp_path: Path) -> None:
    bell = wake.Bell()
    listener = wake.listen(tmp_path, bell)
    assert listener is not None
    try:
        seen = bell.generation()
        wake.ring(tmp_path)
        assert bell.generation() > seen
    finally:
        listener.close()


def test_ring_reaches_another_process_by_its_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bell = wake.Bell()
    listener = wake.listen(tmp_path, bell)
    assert listener is not None
    try:
        monkeypatch.setattr(wake, "_local", {})  # as seen from another process: only the socket's name is known
        seen = bell.generation()
        wake.ring(tmp_path)
        bell.wait(seen, 30)
        assert bell.generation() > seen
    finally:
        listener.close()
    assert not listener._thread.is_alive()
    assert not (wake.wake_dir(tmp_path) / listener.name).exists()


def test_the_name_of_a_worker_that_is_gone_is_removed(tmp_path: Path) -> None:
    directory = wake.wake_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / "1-disparu").touch()
    wake.ring(tmp_path)
    assert not (directory / "1-disparu").exists()


def test_a_bell_rung_before_the_wait_is_not_missed() -> None:
    bell = wake.Bell()
    seen = bell.generation()
    bell.ring()
    bell.wait(seen, 30)  # returns at once: the ring came after ``seen`` was read
    assert bell.generation() == seen + 1
