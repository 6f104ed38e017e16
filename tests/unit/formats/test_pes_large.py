"""Memory and time of :func:`parafe.formats.pes.inspect_pes` on ~100 MiB PES files (the deposit limit, D8).

Each inspection runs in a fresh interpreter so that its peak RSS (``VmHWM``) is its own. Figures measured
on the 2-core dev VM (lxml 6.1.3 / libxml2 2.14.6), for the record:

| file (100 MiB)                                  | result          | time   | peak RSS |
|-------------------------------------------------|-----------------|--------|----------|
| 159 bordereaux x 1000 pièces, 4.9 M elements    | valid           | 8-11 s | 23 MiB   |
| same, schema error in the last bordereau        | PES_PROCESSING  | 9 s    | 23 MiB   |
| PES_PJ, one 97 MiB base64 attachment            | valid           | 9-12 s | 326 MiB  |

For comparison, parsing the first file as a tree and validating it costs 1.45 GiB (hence the streaming pass),
and the attachment case is dominated by libxml2's streaming base64 validation (superlinear: 0.5 s at 25 MiB,
1.5 s at 50 MiB, 6.5 s at 100 MiB) and holds the text three times (libxml2 node, validator buffer, Python str).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
TARGET = 100 * MIB - 256 * 1024  # just under the 100 MiB deposit limit

HEAD = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Aller Id="ROOTID" xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"><Enveloppe><Parametres>\
<Version V="2"/><TypFic V="%s"/><NomFic V="SYNTH_BIG"/></Parametres><Emetteur><Sigle V="S"/><Adresse V="A"/>\
</Emetteur></Enveloppe><EnTetePES><DteStr V="2015-09-24"/><IdPost V="031007"/><IdColl V="24310063300011"/>\
<CodCol V="100"/><CodBud V="00"/></EnTetePES>
"""
PIECE = b"""<Piece><BlocPiece><InfoPce><IdPce V="%d"/><TypPce V="09"/><NatPce V="01"/><Obj V="EA 102 FACT"/>\
</InfoPce></BlocPiece><LigneDePiece><BlocLignePiece><InfoLignePce><IdLigne V="1"/><Nature V="60628"/>\
<Fonction V="64"/><LibVir1 V="15-08-0764 Facture"/><ModRegl V="03"/><TVAIntraCom V="0"/><MtHT V="55.22"/>\
</InfoLignePce></BlocLignePiece><Tiers><InfoTiers><IdTiers V="37909534200018"/><NatIdTiers V="01"/>\
<RefTiers V="4078"/><CatTiers V="50"/><NatJur V="03"/><Nom V="CELLULOSES DE BROCELIANDE"/></InfoTiers>\
<Adresse><TypAdr V="1"/><Adr2 V="ZI LA LANDE DU MOULIN"/><CP V="56803"/><Ville V="PLOERMEL"/><CodRes V="0"/>\
</Adresse></Tiers></LigneDePiece></Piece>
"""
BAD_PIECE = b"<Piece><BlocPiece><IdPce V=\"1\"/></BlocPiece></Piece>\n"  # InfoPce missing


def _bordereau(i: int, pieces: int) -> bytes:
    head = (b'<Bordereau Id="B%d"><BlocBordereau><Exer V="2015"/><IdBord V="%d"/><DteBordEm V="2015-09-16"/>'
            b'<TypBord V="01"/><NbrPce V="1"/><MtCumulAnnuel V="45064101.79"/><MtBordHT V="55.22"/>'
            b"</BlocBordereau>\n" % (i, i + 1))
    return head + b"".join(PIECE % (k + 1) for k in range(pieces)) + b"</Bordereau>\n"


def write_bordereaux_pes(path: Path, *, broken_at_end: bool = False) -> int:
    count = 0
    with open(path, "wb") as fh:
        fh.write(HEAD % b"PESALR2")
        fh.write(b'<PES_DepenseAller><EnTeteDepense><IdVer V="2"/></EnTeteDepense>\n')
        block = _bordereau(0, 1000)
        while fh.tell() + len(block) < TARGET:
            fh.write(block.replace(b'Id="B0"', b'Id="B%d"' % count, 1))
            count += 1
        if broken_at_end:
            fh.write(b'<Bordereau Id="BLAST"><BlocBordereau><Exer V="2015"/><IdBord V="1"/>'
                     b'<DteBordEm V="2015-09-16"/><TypBord V="01"/><NbrPce V="1"/><MtCumulAnnuel V="1"/>'
                     b'<MtBordHT V="1"/></BlocBordereau>\n' + BAD_PIECE + b"</Bordereau>\n")
        fh.write(b"</PES_DepenseAller></n:PES_Aller>\n")
    return count


def write_pj_pes(path: Path) -> None:
    """One attachment of incompressible data filling the file, written in a streaming way."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip container
    carry = b""
    raw_target = int(TARGET * 0.74)  # base64 adds a third (plus newlines)
    with open(path, "wb") as fh:
        fh.write(HEAD % b"PES_PJ")
        fh.write(b'<PES_PJ><EnTetePES_PJ><IdVer V="1"/></EnTetePES_PJ><PJ><Contenu>'
                 b'<Fichier MIMEType="application/pdf">')
        produced = 0
        while produced < raw_target:
            chunk = os.urandom(3 * MIB)
            produced += len(chunk)
            carry += compressor.compress(chunk)
            usable = len(carry) - len(carry) % 57
            fh.write(base64.encodebytes(carry[:usable]))
            carry = carry[usable:]
        fh.write(base64.encodebytes(carry + compressor.flush()))
        fh.write(b'</Fichier></Contenu><IdUnique V="X1"/><NomPJ V="gros.pdf"/><Description V="d"/></PJ>'
                 b"</PES_PJ></n:PES_Aller>\n")


PROBE = """
import json, resource, sys, time
from pathlib import Path
from parafe.domain.errors import ParafeError
from parafe.formats.pes import inspect_pes
start = time.monotonic()
try:
    info = inspect_pes(Path(sys.argv[1]), pj_circuit=sys.argv[2] == "pj")
    result = {"ok": True, "bordereaux": info.bordereau_count, "pj": info.pj_count}
except ParafeError as exc:
    result = {"ok": False, "error": exc.error.key, "detail": exc.detail}
result["seconds"] = time.monotonic() - start
# VmHWM is this process's own high-water mark; ru_maxrss would include the parent's (kept across exec)
try:
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result["peak_mib"] = hwm / 1024
print(json.dumps(result))
"""


def _probe(path: Path, circuit: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), circuit], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result: dict[str, Any] = json.loads(out.stdout)
    print(f"{path.name}: {result}")  # visible with -s: the figures of the module docstring
    return result


@pytest.mark.slow
def test_100_mib_of_bordereaux_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    count = write_bordereaux_pes(path)
    assert path.stat().st_size > 99 * MIB
    result = _probe(path, "plain")
    assert result["ok"] is True
    assert result["bordereaux"] == count
    assert float(result["peak_mib"]) < 64  # interpreter + schema: 21 MiB; a tree would take ~1.45 GiB


@pytest.mark.slow
def test_100_mib_invalid_at_the_end_fails_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big-invalid.xml"
    write_bordereaux_pes(path, broken_at_end=True)
    result = _probe(path, "plain")
    assert result["ok"] is False
    assert result["error"] == "PES_PROCESSING"
    assert "IdPce" in str(result["detail"])
    assert "no line number" in str(result["detail"])
    assert float(result["peak_mib"]) < 64  # the line lookup must not build the 1.45 GiB tree


@pytest.mark.slow
def test_100_mib_attachment(tmp_path: Path) -> None:
    path = tmp_path / "big-pj.xml"
    write_pj_pes(path)
    assert path.stat().st_size > 99 * MIB
    result = _probe(path, "pj")
    assert result["ok"] is True
    assert result["pj"] == 1
    assert float(result["peak_mib"]) < 450  # about 3x the attachment, see the module docstring
