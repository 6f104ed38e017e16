"""The whole ``parafe sign pes IN OUT --per-bordereau`` command (process start, imports, key loading, parse,
20 XAdES-EPES signatures, write) on a 10 MB / 20-bordereaux PES, against the ``xmlsec1 --sign`` CLI making ONE
whole-file enveloped signature of the same file with the same key, in the same run (issue 17).

The PES is built from ``tests/data/pes/samples/valid_unsigned_PES_ex.xml``: its envelope, its bordereau and its
piece, the bordereau repeated ``--bordereaux`` times (each with its own ``Id``) and the pieces repeated until the
file weighs ``--mb`` MB. The key, the certificate and the ``xmlsec1`` template come from ``bench/pes_sign.py``
(which times the signing function alone, in process). Both commands run on one core (the bench pins itself, the
children inherit it), alternately, ``--runs`` times after one untimed run of each (Python's bytecode cache is
filled as in an installed package, see ``benchlib.command_env``); the figures are medians with their ranges, the
ratio is that of the medians (the per-run ratios pair each run with the CLI run that followed it). The CPU times
(user + system) are printed too: on a loaded machine they move far less than the wall times. Target: ours
<= 1.5x the CLI.

Usage: ``.venv/bin/python bench/pes_cli.py [--mb 10] [--bordereaux 20] [--runs 5] [--command CMD]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import command_env, run_timed  # noqa: E402
from pes_sign import TEMPLATE, make_key  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "pes" / "samples" / "valid_unsigned_PES_ex.xml"


def pes_from_sample(target_bytes: int, n_bordereaux: int) -> tuple[bytes, str]:
    """A PES_Aller of about ``target_bytes`` with ``n_bordereaux`` bordereaux, and its root ``Id``."""
    text = SAMPLE.read_bytes().decode("iso-8859-1")
    found = re.search(r"(?s)^(.*?)(<Bordereau [^>]*>.*?</BlocBordereau>)(<Piece>.*?</Piece>)(</Bordereau>)(.*)$",
                      text)
    root_id = re.search(r'<n:PES_Aller Id="([^"]+)"', text)
    if not found or not root_id:
        raise SystemExit(f"{SAMPLE} : structure inattendue")
    head, bordereau, piece, close, tail = found.groups()
    pieces = max(1, (target_bytes - len(head) - len(tail)) // n_bordereaux // (len(piece) + 1))
    parts = [head]
    for b in range(1, n_bordereaux + 1):
        parts.append(re.sub(r'Id="[^"]+"', f'Id="BORD{b}"', bordereau, count=1).replace(
            '<NbrPce V="1"/>', f'<NbrPce V="{pieces}"/>') + "\n")
        parts.extend(piece.replace('<IdPce V="6623"/>', f'<IdPce V="{p}"/>') + "\n" for p in range(1, pieces + 1))
        parts.append(close + "\n")
    parts.append(tail)
    return "".join(parts).encode("iso-8859-1"), root_id.group(1)


def parafe_command() -> list[str]:
    """The ``parafe`` console script of this interpreter's environment (else ``python -m parafe``)."""
    script = Path(sys.executable).parent / "parafe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "parafe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--bordereaux", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--command", help="the parafe command to time (default: the venv's parafe), e.g. "
                                          "'python /tmp/old/run_parafe.py' for an older checkout")
    args = parser.parse_args()
    if not shutil.which("xmlsec1"):
        sys.exit("xmlsec1 (Debian package xmlsec1) is required")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, the commands inherit it
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = command_env(tmp / "pycache")
        key_pem, cert_pem, p12 = make_key(tmp)
        pes, root_id = pes_from_sample(int(args.mb * 1024 * 1024), args.bordereaux)
        unsigned, signed, template = tmp / "in.xml", tmp / "out.xml", tmp / "template.xml"
        unsigned.write_bytes(pes)
        template.write_bytes(pes.replace(b"</n:PES_Aller>", TEMPLATE.replace("#PESBENCH", f"#{root_id}").encode()
                                         + b"</n:PES_Aller>"))
        parafe = args.command.split() if args.command else parafe_command()
        ours_cmd = [*parafe, "sign", "pes", str(unsigned), str(signed), "--per-bordereau", "--p12", str(p12)]
        cli_cmd = ["xmlsec1", "--sign", "--privkey-pem", f"{key_pem},{cert_pem}", "--id-attr:Id", "PES_Aller",
                   "--output", str(tmp / "cli.xml"), str(template)]
        ours, cli, ours_cpu, cli_cpu = [], [], [], []
        run_timed(ours_cmd, env)  # warm-up: bytecode cache, page cache
        run_timed(cli_cmd, env)
        for _ in range(args.runs):
            wall, cpu = run_timed(ours_cmd, env)
            ours.append(wall)
            ours_cpu.append(cpu)
            wall, cpu = run_timed(cli_cmd, env)
            cli.append(wall)
            cli_cpu.append(cpu)
        if signed.read_bytes().count(b"SignatureValue") != 2 * args.bordereaux:
            raise SystemExit("parafe sign pes: unexpected number of signatures")
    t_ours, t_cli = statistics.median(ours), statistics.median(cli)
    c_ours, c_cli = statistics.median(ours_cpu), statistics.median(cli_cpu)
    ratios = sorted(o / c for o, c in zip(ours, cli, strict=True))
    print(f"pes_cli ({len(pes) / 1e6:.1f} MB, {args.bordereaux} bordereaux, 1 core, median of {args.runs}): "
          f"`parafe sign pes --per-bordereau` {t_ours:.2f} s [{min(ours):.2f}-{max(ours):.2f}] vs `xmlsec1 --sign` "
          f"whole file {t_cli:.2f} s [{min(cli):.2f}-{max(cli):.2f}] -> ratio {t_ours / t_cli:.2f}x "
          f"(per-run {ratios[0]:.2f}-{ratios[-1]:.2f}; target <= 1.5x); CPU time {c_ours:.2f} s vs {c_cli:.2f} s "
          f"-> {c_ours / c_cli:.2f}x")


if __name__ == "__main__":
    main()
