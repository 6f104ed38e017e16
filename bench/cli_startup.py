"""Start-up of the ``parafe`` command (issue 17), hyperfine-like: the median wall time of ``--runs`` runs of
``parafe --help`` and ``parafe sign --help``, with ``python -c pass`` (the same interpreter) as the anchor, in the
same run. The three commands run in turn, ``--runs`` times, after one untimed run of each (Python's bytecode cache
is filled as in an installed package, see ``benchlib.command_env``). The CPU times (user + system) are printed
too: on a loaded machine they move far less than the wall times. Target: ``parafe --help`` <= 0.3 s.

Usage: ``.venv/bin/python bench/cli_startup.py [--runs 15] [--command CMD]`` (``--command``: the parafe command to
time, e.g. ``'python /tmp/old/run_parafe.py'`` for an older checkout; default: the venv's ``parafe`` script).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import command_env, run_timed  # noqa: E402
from pes_cli import parafe_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", help="the parafe command to time (default: the venv's parafe script)")
    args = parser.parse_args()
    parafe = args.command.split() if args.command else parafe_command()
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "parafe --help": [*parafe, "--help"],
                "parafe sign --help": [*parafe, "sign", "--help"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmpdir:
        env = command_env(Path(tmpdir))
        for cmd in commands.values():
            run_timed(cmd, env, ROOT)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                wall, used = run_timed(cmd, env, ROOT)
                times[name].append(wall)
                cpu[name].append(used)
    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    anchor = med["python -c pass"]
    figures = ", ".join(f"`{name}` {med[name]:.3f} s [{min(times[name]):.3f}-{max(times[name]):.3f}] "
                        f"(CPU {med_cpu[name]:.3f} s)" for name in commands)
    print(f"cli_startup (median of {args.runs}): {figures} -> `parafe --help` = {med['parafe --help'] / anchor:.1f}x "
          f"and `parafe sign --help` = {med['parafe sign --help'] / anchor:.1f}x `python -c pass` "
          f"(target: `parafe --help` <= 0.3 s)")


if __name__ == "__main__":
    main()
