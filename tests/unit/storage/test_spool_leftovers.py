"""The start-up sweep of spool files (issue 18): a spool keeps its file locked from creation until it is
discarded — also after ``finish()``, while its owner still has to move it into the store — so that
:func:`clean_leftovers` removes only what a killed process left, old enough not to be in its first instants."""

from __future__ import annotations

import os
import time
from pathlib import Path

from parafe.storage.spool import HashingSpool, clean_leftovers


def _age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_live_spool_is_never_swept(tmp_path: Path) -> None:
    spool = HashingSpool(tmp_path)
    spool.write(b"en cours")
    _age(spool.path)
    assert clean_leftovers(tmp_path) == 0
    assert spool.path.exists()  # being written
    path, _sha, _size = spool.finish()
    _age(path)
    assert clean_leftovers(tmp_path) == 0
    assert path.exists()  # finished, not yet taken away
    spool.discard()
    assert not path.exists()


def test_an_abandoned_spool_is_swept_once_old_enough(tmp_path: Path) -> None:
    spool = HashingSpool(tmp_path)
    spool.write(b"abandonne")
    path, _sha, _size = spool.finish()
    spool._release()  # what the death of its process does to the lock
    assert clean_leftovers(tmp_path) == 0
    assert path.exists()  # too recent: could be in its first instants
    _age(path)
    assert clean_leftovers(tmp_path) == 1
    assert not path.exists()
    del spool


def test_only_part_files_are_swept(tmp_path: Path) -> None:
    for name in ("spool-a.part", "deposit-b", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
        _age(tmp_path / name)
    assert clean_leftovers(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deposit-b", "notes.txt"]
    assert clean_leftovers(tmp_path / "absent") == 0
