"""PES_Aller deposit inspection and PES acknowledgement validation against the shared samples."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import threading
from pathlib import Path

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.formats import pes
from parafe.formats.pes import (
    inspect_pes,
    pes_aller_schema,
    pj_content_problem,
    validate_acquit,
    validate_pes_aller,
    validate_pes_retour,
)
from tests.conftest import TESTDATA

SAMPLES = TESTDATA / "pes" / "samples"

_FICHIER_OPEN = b'<Fichier MIMEType="application/pdf">'


def _write(tmp_path: Path, data: bytes, name: str = "pes.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _with_fichier(content: bytes) -> bytes:
    data = _sample("valid_PES_PJ.xml")
    start = data.index(_FICHIER_OPEN) + len(_FICHIER_OPEN)
    return data[:start] + content + data[data.index(b"</Fichier>"):]


def _signed_valid() -> bytes:
    """The per-bordereau signed sample without its stray <PJ> (which makes it schema-invalid)."""
    data = _sample("signed_per_bordereau_xades122_sha256.xml")
    start = data.index(b" <PJ>\n  <Contenu>")
    return data[:start] + data[data.index(b"</PJ>", start) + len(b"</PJ>"):]


def _cut(data: bytes, start_marker: bytes, end_marker: bytes) -> tuple[bytes, bytes]:
    start = data.index(start_marker)
    end = data.index(end_marker, start) + len(end_marker)
    return data[:start] + data[end:], data[start:end]


# --- the samples of testdata/README.md, each with its expected result ------------------------------------


@pytest.mark.parametrize(("name", "nom_fic", "root_id"), [
    ("valid_unsigned_PES_ex.xml", "SICOVAL201512104", "SICOVAL201512104"),
    ("valid_unsigned_HELIOS_SIMU_ALR2_1496987735_826268894.xml", "HELIOS_SIMU_ALR2_1496987735_826268894.xml",
     "ID1800478292"),
    ("valid_unsigned_iso8859_accents.xml", "HELIOS_SIMU_ALR2_1496987735_826268894.xml", "ID1800478292"),
])
def test_valid_unsigned_samples(name: str, nom_fic: str, root_id: str) -> None:
    info = inspect_pes(SAMPLES / name)
    assert info.nom_fic == nom_fic
    assert info.typ_fic == "PESALR2"
    assert info.bordereau_count == 1
    assert info.pj_count == 0
    assert info.signature == "none"
    assert info.root_id == root_id
    assert info.encoding == "ISO-8859-1"


def test_iso8859_sample_really_is_latin1_with_accents() -> None:
    data = _sample("valid_unsigned_iso8859_accents.xml")
    assert b'encoding="ISO-8859-1"' in data[:60]
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "é" in data.decode("latin-1")
    assert validate_pes_aller(data) == []


def test_iso8859_sample_recoded_in_utf8_stays_valid(tmp_path: Path) -> None:
    text = _sample("valid_unsigned_iso8859_accents.xml").decode("latin-1").replace("ISO-8859-1", "UTF-8")
    info = inspect_pes(_write(tmp_path, text.encode("utf-8")))
    assert info.encoding == "UTF-8"
    assert info.bordereau_count == 1


def test_pes_pj_sample_is_refused_in_a_plain_pes_circuit() -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(SAMPLES / "valid_PES_PJ.xml")
    assert err.value.error is E.PES_NO_BORDEREAU
    assert err.value.message == "Fichier refusé : le fichier PES ne contient aucun bordereau."


def test_pes_pj_sample_is_accepted_in_a_pes_pj_circuit() -> None:
    info = inspect_pes(SAMPLES / "valid_PES_PJ.xml", pj_circuit=True)
    assert (info.nom_fic, info.typ_fic, info.pj_count, info.bordereau_count) == ("PES_PJ_TEST", "PES_PJ", 1, 0)
    assert info.root_id == "ID20180814145503"
    assert info.signature == "none"


@pytest.mark.parametrize("pj_circuit", [False, True])
def test_invalid_blocpiece_sample_reports_line_47(pj_circuit: bool) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(SAMPLES / "invalid_BlocPiece_without_InfoPce.xml", pj_circuit=pj_circuit)
    assert err.value.error is E.PES_PROCESSING
    assert err.value.message == "Erreur lors du traitement du document PES"
    assert err.value.detail is not None
    assert err.value.detail.startswith("line 47: ")
    assert "IdPce" in err.value.detail
    assert "InfoPce" in err.value.detail


def test_signed_sample_is_schema_invalid_because_of_the_stray_pj() -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(SAMPLES / "signed_per_bordereau_xades122_sha256.xml")
    assert err.value.error is E.PES_PROCESSING
    assert err.value.detail is not None
    assert err.value.detail.startswith("line 141: Element 'PJ'")


@pytest.mark.parametrize("name", ["acquit_ok.xml", "acquit_ko.xml", "pes_retour_depense.xml"])
def test_other_pes_roots_are_not_pes_aller(name: str) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(SAMPLES / name)
    assert err.value.error is E.NOT_PES
    assert err.value.message == "Ce fichier n'est pas un document PES."


@pytest.mark.parametrize("name", ["acquit_ok.xml", "acquit_ko.xml"])
def test_acquit_samples_are_valid_acquits(name: str) -> None:
    assert validate_acquit(SAMPLES / name) == []
    assert validate_acquit(_sample(name)) == []


def test_acquit_ko_holds_etatack_0() -> None:
    assert b'EtatAck V="0"' in _sample("acquit_ko.xml")


def test_retour_sample_is_a_valid_retour_and_not_an_acquit() -> None:
    assert validate_pes_retour(SAMPLES / "pes_retour_depense.xml") == []
    errors = validate_acquit(SAMPLES / "pes_retour_depense.xml")
    assert errors
    assert errors[0].startswith("line 2: ")
    assert "PES_Retour" in errors[0]


def test_broken_acquit_reports_schema_errors_with_lines() -> None:
    data = _sample("acquit_ok.xml").replace(b'<Version V="2"/>', b"")
    errors = validate_acquit(data)
    assert errors
    assert errors[0].startswith("line ")
    assert "Version" in errors[0] or "TypFic" in errors[0]


def test_validate_pes_aller_on_samples() -> None:
    assert validate_pes_aller(SAMPLES / "valid_unsigned_PES_ex.xml") == []
    errors = validate_pes_aller(SAMPLES / "invalid_BlocPiece_without_InfoPce.xml")
    assert errors[0].startswith("line 47: ")


# --- signature shapes -------------------------------------------------------------------------------------


def test_per_bordereau_signature(tmp_path: Path) -> None:
    info = inspect_pes(_write(tmp_path, _signed_valid()))
    assert info.signature == "per_bordereau"
    assert info.bordereau_count == 1
    assert info.root_id == "ID153504434"
    assert info.nom_fic == "HELIOS_SIMU_ALR2_1529593767_1834011863.xml"


def test_global_signature(tmp_path: Path) -> None:
    data, signature = _cut(_signed_valid(), b"<ds:Signature", b"</ds:Signature>")
    data = data.replace(b"</n:PES_Aller>", signature + b"</n:PES_Aller>")
    assert validate_pes_aller(data) == []
    assert inspect_pes(_write(tmp_path, data)).signature == "global"


def test_partial_signature(tmp_path: Path) -> None:
    data = _signed_valid()
    bordereau = data[data.index(b"<Bordereau "):data.index(b"</Bordereau>") + len(b"</Bordereau>")]
    unsigned, _ = _cut(bordereau, b"<ds:Signature", b"</ds:Signature>")
    unsigned = unsigned.replace(b'Id="BORD822933"', b'Id="BORD2"')
    end = data.index(b"</Bordereau>") + len(b"</Bordereau>")
    data = data[:end] + unsigned + data[end:]
    info = inspect_pes(_write(tmp_path, data))
    assert info.bordereau_count == 2
    assert info.signature == "partial"


# --- deposit refusals -------------------------------------------------------------------------------------


def test_header_only_pes_has_no_bordereau(tmp_path: Path) -> None:
    data, _ = _cut(_sample("valid_unsigned_PES_ex.xml"), b"<PES_DepenseAller>", b"</PES_DepenseAller>")
    path = _write(tmp_path, data)
    assert validate_pes_aller(data) == []
    with pytest.raises(ParafeError) as err:
        inspect_pes(path)
    assert err.value.error is E.PES_NO_BORDEREAU
    with pytest.raises(ParafeError) as err:
        inspect_pes(path, pj_circuit=True)
    assert err.value.error is E.PES_PJ_INVALID
    assert err.value.message == "Le fichier PES-PJ créé n'est pas valide."


def test_pes_pj_block_without_pj(tmp_path: Path) -> None:
    data, _ = _cut(_sample("valid_PES_PJ.xml"), b"<PJ>", b"</PJ>")
    path = _write(tmp_path, data)
    with pytest.raises(ParafeError) as err:
        inspect_pes(path, pj_circuit=True)
    assert err.value.error is E.PES_PJ_INVALID
    with pytest.raises(ParafeError) as err:
        inspect_pes(path)
    assert err.value.error is E.PES_NO_BORDEREAU


@pytest.mark.parametrize(("content", "why"), [
    (b"", "empty content"),
    (b"   \n  ", "empty content"),
    (base64.b64encode(b"%PDF-1.4 not gzipped"), "not gzip"),
    (base64.b64encode(gzip.compress(b"", mtime=0)), "empty once decompressed"),
    (base64.b64encode(gzip.compress(b"%PDF-1.4 " * 100, mtime=0)[:-12]), "not a complete gzip stream"),
    (base64.b64encode(gzip.compress(b"%PDF", mtime=0) + b"trailing junk"), "data after the gzip stream"),
    (b"@@@ not base64 @@@", "not base64"),
], ids=["empty", "blank", "not-gzip", "empty-gzip", "truncated-gzip", "trailing-junk", "not-base64"])
@pytest.mark.parametrize("pj_circuit", [False, True])
def test_broken_pj_content(tmp_path: Path, content: bytes, why: str, pj_circuit: bool) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, _with_fichier(content)), pj_circuit=pj_circuit)
    assert err.value.error is E.PES_PJ_INVALID
    assert err.value.detail is not None
    assert why in err.value.detail


def test_pj_without_name(tmp_path: Path) -> None:
    data = _sample("valid_PES_PJ.xml").replace(b'<NomPJ V="MARCHE_2018_05_A_E.PDF"/>', b'<NomPJ V=""/>')
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data), pj_circuit=True)
    assert err.value.error is E.PES_PJ_INVALID
    assert "NomPJ" in (err.value.detail or "")


def test_pj_without_content_element(tmp_path: Path) -> None:
    data, _ = _cut(_sample("valid_PES_PJ.xml"), b"<Contenu>", b"</Contenu>")
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data), pj_circuit=True)
    assert err.value.error is E.PES_PJ_INVALID
    assert "no content" in (err.value.detail or "")


def test_multi_member_gzip_and_wrapped_base64_are_accepted(tmp_path: Path) -> None:
    content = base64.encodebytes(gzip.compress(b"%PDF-1.4 first") + gzip.compress(b"second"))
    info = inspect_pes(_write(tmp_path, _with_fichier(content)), pj_circuit=True)
    assert info.pj_count == 1


def test_pj_content_problem_budget_stops_a_gzip_bomb() -> None:
    bomb = base64.b64encode(gzip.compress(bytes(8 * 1024 * 1024))).decode()
    assert pj_content_problem(bomb) is None
    assert "expand beyond" in (pj_content_problem(bomb, budget=[1024 * 1024]) or "")


def test_attachment_over_libxml2_text_limit_is_read(tmp_path: Path) -> None:
    """libxml2 refuses text nodes over 10,000,000 characters unless XML_PARSE_HUGE: a PES_PJ carrying a
    7.5 MB attachment must still pass (the DTD refusal happens first, so no entity can be involved)."""
    content = base64.encodebytes(gzip.compress(os.urandom(8 * 1024 * 1024), compresslevel=1))
    assert len(content) > 10_000_000
    info = inspect_pes(_write(tmp_path, _with_fichier(content)), pj_circuit=True)
    assert info.pj_count == 1


@pytest.mark.parametrize("data", [
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    b'{"json": true}',
    b"\x00\x01\x02\x03binary",
    b"<html><body>unclosed",
])
def test_not_xml_is_not_pes(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data))
    assert err.value.error is E.NOT_PES


def test_other_root_is_not_pes(tmp_path: Path) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, b'<?xml version="1.0"?><facture><a/></facture>'))
    assert err.value.error is E.NOT_PES


def test_pes_aller_in_another_namespace_is_a_processing_error(tmp_path: Path) -> None:
    data = _sample("valid_unsigned_PES_ex.xml").replace(b"pes_v2/Rev0/aller", b"pes_v2/Rev9/aller")
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data))
    assert err.value.error is E.PES_PROCESSING


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, b""))
    assert err.value.error is E.EMPTY_FILE


def test_truncated_pes_reports_the_parse_error_with_its_line(tmp_path: Path) -> None:
    data = _sample("valid_unsigned_HELIOS_SIMU_ALR2_1496987735_826268894.xml")
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data[: len(data) // 2]))
    assert err.value.error is E.PES_PROCESSING
    assert (err.value.detail or "").startswith("line ")


def test_schema_error_of_a_large_tree_has_no_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pes, "LINE_LOOKUP_BUDGET", 0)  # pretend the file is too large to re-parse as a tree
    with pytest.raises(ParafeError) as err:
        inspect_pes(SAMPLES / "invalid_BlocPiece_without_InfoPce.xml")
    assert err.value.error is E.PES_PROCESSING
    assert "IdPce" in (err.value.detail or "")
    assert "no line number" in (err.value.detail or "")


XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE n:PES_Aller [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"><Enveloppe><Parametres>
<Version V="2"/><TypFic V="PESALR2"/><NomFic V="&xxe;"/></Parametres></Enveloppe></n:PES_Aller>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<n:PES_Aller xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller" Id="&lol9;">&lol9;</n:PES_Aller>"""


@pytest.mark.parametrize("data", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_dtd_and_entities_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        inspect_pes(_write(tmp_path, data))
    assert err.value.error is E.XML_UNSAFE


@pytest.mark.parametrize("data", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_acquit_validation_refuses_dtd(data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        validate_acquit(data)
    assert err.value.error is E.XML_UNSAFE


# --- schemas: once per process, thread-safe ---------------------------------------------------------------


def test_schemas_are_compiled_once() -> None:
    assert pes_aller_schema() is pes_aller_schema()
    assert pes._schema(pes.PES_ACQUIT_XSD) is pes._schema(pes.PES_ACQUIT_XSD)
    assert pes._schema(pes.PES_RETOUR_XSD) is pes._schema(pes.PES_RETOUR_XSD)
    assert pes_aller_schema() is not pes._schema(pes.PES_ACQUIT_XSD)


def test_schemas_ship_inside_the_package() -> None:
    assert pes.XSD_ROOT.is_relative_to(Path(pes.__file__).resolve().parent)
    assert (pes.XSD_ROOT / pes.PES_ALLER_XSD).is_file()
    shipped = sorted(p.relative_to(pes.XSD_ROOT).as_posix() for p in pes.XSD_ROOT.rglob("*.xsd"))
    # The DGFiP v5.17 set as published (tests/data/pes/xsd-v5.17.sha256, recorded from the upstream files).
    upstream = dict(
        (line.split()[1].removeprefix("./"), line.split()[0])
        for line in (TESTDATA / "pes" / "xsd-v5.17.sha256").read_text().splitlines()
        if line.strip()
    )
    assert shipped == sorted(upstream)
    for rel, digest in upstream.items():
        assert hashlib.sha256((pes.XSD_ROOT / rel).read_bytes()).hexdigest() == digest, rel


def test_concurrent_validation_from_threads() -> None:
    ok, ko = _sample("acquit_ok.xml"), _sample("acquit_ok.xml").replace(b'<Version V="2"/>', b"")
    expected_ko = validate_acquit(ko)
    results: list[tuple[bool, list[str]]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for _ in range(20):
            valid = i % 2 == 0
            errors = validate_acquit(ok if valid else ko)
            with lock:
                results.append((valid, errors))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 120
    for valid, errors in results:
        assert errors == ([] if valid else expected_ko)


def test_concurrent_inspections_from_threads() -> None:
    cases = {
        "valid_unsigned_PES_ex.xml": "ok",
        "invalid_BlocPiece_without_InfoPce.xml": "PES_PROCESSING",
        "valid_PES_PJ.xml": "PES_NO_BORDEREAU",
        "valid_unsigned_iso8859_accents.xml": "ok",
    }
    outcomes: list[tuple[str, str, str | None]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        for _ in range(5):
            try:
                inspect_pes(SAMPLES / name)
                outcome, detail = "ok", None
            except ParafeError as exc:
                outcome, detail = exc.error.key, exc.detail
            with lock:
                outcomes.append((name, outcome, detail))

    threads = [threading.Thread(target=work, args=(name,)) for name in cases for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 40
    for name, outcome, detail in outcomes:
        assert outcome == cases[name], (name, detail)
        if outcome == "PES_PROCESSING":
            assert (detail or "").startswith("line 47: ")
