"""Basic authentication answer times (issue 18): an unknown e-mail, a certificate-only account and the real Basic
account with a wrong password must take the same time (each one argon2id verification — against a dummy hash
when the account does not exist), so that the time does not tell which accounts exist.

One ``parafe serve`` (TLS, one process, worker off) on a fresh SQLite home, with the throttling relaxed
(``PARAFE_LOGIN_FREE_FAILURES`` and ``PARAFE_LOGIN_ADDRESS_FREE_FAILURES`` very high) so that every attempt reaches
the password check. ``--n`` attempts per kind, interleaved, on one keep-alive connection; the answer is 401
(165) for all.

Usage: .venv/bin/python bench/login_timing.py [--n 200]
Prints one line per kind: ``login_timing  kind=…  n=…  p50=… ms  p90=… ms  mean=… ms``, then the largest
difference of medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import serve  # noqa: E402  (bench/ is the script's folder)

PATH = "/parapheur-ws/rest/v1/documents/v2/123456789/history"
KINDS = {
    "unknown": "personne@inconnu.parafe.test",
    "certificate_only": "agent@demo.parafe.test",
    "basic_account": "admin@demo.parafe.test",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="parafe-login-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAFE_")}
        env.update(PARAFE_HOME=str(home), PARAFE_DATABASE_URL=f"sqlite:///{home / 'parafe.db'}",
                   PARAFE_WORKERS="1", PARAFE_WORKER_IN_PROCESS="false", PARAFE_LOGIN_FREE_FAILURES="1000000",
                   PARAFE_LOGIN_ADDRESS_FREE_FAILURES="1000000")
        subprocess.run([sys.executable, "-m", "parafe", "init"], cwd=str(ROOT), env=env, check=True,
                       stdout=subprocess.DEVNULL)
        proc, url = serve(home, env, ROOT)
        ca = str(home / "pki" / "ca.pem")
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        with httpx.Client(base_url=url, verify=ca, timeout=60) as client:
            for login in KINDS.values():  # warm-up (the dummy hash is made on first use)
                client.get(PATH, auth=(login, "mauvais"))
            for _ in range(args.n):
                for kind, login in KINDS.items():
                    start = time.perf_counter()
                    r = client.get(PATH, auth=(login, "mauvais"))
                    elapsed = (time.perf_counter() - start) * 1000
                    if r.status_code != 401:
                        raise RuntimeError(f"{kind}: {r.status_code} {r.text[:200]}")
                    times[kind].append(elapsed)
        medians = {}
        for kind, values in times.items():
            ordered = sorted(values)
            medians[kind] = statistics.median(ordered)
            print(f"login_timing  kind={kind:<16}  n={len(values)}  p50={medians[kind]:.1f} ms  "
                  f"p90={ordered[int(0.9 * (len(ordered) - 1))]:.1f} ms  mean={statistics.fmean(values):.1f} ms")
        print(f"login_timing  largest difference of medians: {max(medians.values()) - min(medians.values()):.1f} ms"
              f"  load={os.getloadavg()[0]:.1f}")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
