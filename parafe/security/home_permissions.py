"""Owner-only permissions for ``$PARAFE_HOME`` (issue 18): the home holds the database, the blobs, private keys
and the demo admin password, so nothing in it is readable by other local users.

- :func:`restrict_umask` — every ``parafe`` command runs with umask 077: whatever it creates (SQLite files and
  their WAL, blobs, spool files, certificates, the demo README) is 0600, every folder 0700.
- :func:`secure_home` — at ``init`` / ``serve`` / ``worker`` start: the home, its folders and files made
  owner-only, for homes created by an older version (or by hand). The blob tree itself is not walked (it can
  hold millions of files): the home and the blob folder at 0700 already close it to other users.
- :func:`current_umask` — the process umask, read without changing it (other threads may be creating files),
  once per process: Parafe changes its umask only through :func:`restrict_umask`, which records the new one
  (issue 17: read from ``/proc`` at every blob write before).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
_umask: int | None = None  # the umask this process set or read (a forked child inherits it)


def restrict_umask() -> int:
    """Add 077 to the process umask (group and others get nothing); returns the previous umask."""
    global _umask
    previous = os.umask(OWNER_ONLY_UMASK)
    _umask = previous | OWNER_ONLY_UMASK
    os.umask(_umask)
    return previous


def _read_umask() -> int:
    """The process umask, from ``/proc/self/status`` (Linux), else by setting it and back."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    value = os.umask(OWNER_ONLY_UMASK)
    os.umask(value)
    return value


def current_umask() -> int:
    """The process umask: read once, then the value :func:`restrict_umask` set."""
    global _umask
    if _umask is None:
        _umask = _read_umask()
    return _umask


def _restrict(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        return  # never follow a link, never touch what another user owns
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def secure_home(home: Path, extra_dirs: Iterable[Path] = (), skip: Iterable[Path] = ()) -> None:
    """Make ``home`` and everything in it owner-only (group/other bits removed), except inside ``skip``
    folders (restricted themselves, not walked); ``extra_dirs`` (folders configured outside the home) are
    restricted too."""
    skipped = {p.resolve() for p in skip}
    _restrict(home)
    for root, dirs, files in os.walk(home):
        base = Path(root)
        for name in files:
            _restrict(base / name)
        for name in list(dirs):
            path = base / name
            _restrict(path)
            if path.resolve() in skipped:
                dirs.remove(name)
    for directory in extra_dirs:
        _restrict(directory)
