"""The short chaos run (about a minute of load, docs/chaos.md): two ``parafe serve`` nodes and two ``parafe worker``
processes on one PostgreSQL (also the job queue) and one S3 server, under a mixed load, with ``kill -9`` of a
random process every few seconds, PostgreSQL restarted once (a private server of the test's own, see
:mod:`tests.cluster.private_pg`: restarting the machine's shared one would break the tests running beside it) and S3
failing requests for a while; then zero lost, duplicated or stuck, no old orphan blob and no job left claimed.

The scenario itself is :mod:`parafe.devtools.chaos` (``parafe dev chaos`` runs the long version).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parafe.devtools.chaos import ChaosOptions, run
from tests.cluster.private_pg import private_postgres
from tests.conftest import IN_CI


def test_short_chaos_run_loses_nothing(tmp_path: Path) -> None:
    try:
        import moto  # noqa: F401
    except ImportError:
        if IN_CI:
            raise
        pytest.skip("moto[server] not installed (pip install -e .[dev])")
    lines: list[str] = []
    with private_postgres() as pg:
        report = run(ChaosOptions(duration=50, clients=4, kill_every=5, restart_after=2, pg_restarts=1,
                                  s3_fault_seconds=8, postgres=pg.url, pg_restart_command=pg.restart_command,
                                  workdir=tmp_path / "chaos", say=lines.append))
    text = "\n".join(lines + report.lines() + report.details())
    print(text)
    # the faults did happen
    assert report.kills >= 3, text
    assert report.s3_failed_requests > 0, text
    assert report.pg_restarts == 1, text
    # and the load went through them
    assert sum(report.acked.values()) >= 20, text
    assert report.signatures_by_api > 0, text
    assert report.signed_checked > 0, text
    # the invariants
    assert report.lost == [], text
    assert report.duplicated == [], text
    assert report.stuck == [], text
    assert report.orphans_old == 0, text
    assert report.jobs_claimed == [], text
    assert report.deleted_still_there == [], text
    assert report.failures == 0, text
