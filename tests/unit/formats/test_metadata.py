"""meta-data-list (§6.1), OTP information (§6.3), validation against a model (S22-S24), METAS_ names (§6.5)."""

from __future__ import annotations

import re

import pytest

from parafe.domain.errors import E, ParafeError
from parafe.formats.metadata import (
    MetadataField,
    OtpSigner,
    check_metas_file_name,
    is_metas_file_name,
    metas_target,
    parse_meta_data_list,
    parse_otp_info,
    render_meta_data_list,
    validate_metadata,
)
from tests.conftest import SPEC

REF = (SPEC / "API-REFERENCE.md").read_text(encoding="utf-8")


def _spec_block(title: str) -> str:
    section = REF[REF.index(title):]
    match = re.search(r"```xml\n(.*?)```", section, re.S)
    assert match
    return match.group(1)


SPEC_EXAMPLE = _spec_block("### 6.1 Generic metadata XML")


def test_spec_example_is_parsed_in_order() -> None:
    assert parse_meta_data_list(SPEC_EXAMPLE.encode("utf-8")) == [
        ("TEXT001", "John"), ("TEXT002", "Doe"), ("TEXT003", "0606060606"), ("NUM001", "45812")]


def test_render_has_the_spec_layout() -> None:
    items = parse_meta_data_list(SPEC_EXAMPLE.encode("utf-8"))
    rendered = render_meta_data_list(items).decode("utf-8")
    expected = SPEC_EXAMPLE.replace(" </meta-data-list>", "</meta-data-list>")  # the spec's stray space
    assert rendered == expected


def test_round_trip_with_awkward_values() -> None:
    items = [("MAILEVA_SENDER_ADDR4", "120-122 rue Réaumur"), ("x", 'a "quoted" <b> & c'),
             ("multi", "line1\nline2\tTab\r"), ("empty", ""), ("x", "duplicate kept")]
    assert parse_meta_data_list(render_meta_data_list(items)) == items


def test_render_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(ParafeError) as err:
        render_meta_data_list([("a", "bell\x07")])
    assert err.value.error is E.BAD_CHARACTERS


def test_liberal_reading() -> None:
    data = (b'<?xml version="1.0" encoding="ISO-8859-1"?><m:meta-data-list xmlns:m="urn:x"><!-- c -->'
            b'<m:meta-data name="A">from text</m:meta-data><meta-data name=" B " /><meta-data name="C" '
            b'value="\xe9t\xe9"/></m:meta-data-list>')
    assert parse_meta_data_list(data) == [("A", "from text"), ("B", ""), ("C", "été")]


@pytest.mark.parametrize("data", [b"<other/>", b"<meta-data-list><item/></meta-data-list>",
                                  b'<meta-data-list><meta-data value="x"/></meta-data-list>'])
def test_not_a_meta_data_list(data: bytes) -> None:
    with pytest.raises(ParafeError) as err:
        parse_meta_data_list(data)
    assert err.value.error is E.READ_FAILED


def test_unsafe_and_malformed() -> None:
    with pytest.raises(ParafeError) as err:
        parse_meta_data_list(b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><meta-data-list>'
                             b'<meta-data name="a" value="&x;"/></meta-data-list>')
    assert err.value.error is E.XML_UNSAFE
    with pytest.raises(ParafeError) as err:
        parse_meta_data_list(b"<meta-data-list>")
    assert err.value.error is E.XML_MALFORMED


# --- OTP ----------------------------------------------------------------------------------------------------


def test_otp_spec_example_shape() -> None:
    block = _spec_block("### 6.3 OTP information")
    # the spec elides steps with " (…)" and uses the symbolic index "n-1": keep the two concrete steps
    concrete = "\n".join(line for line in block.splitlines() if "(…)" not in line and "n-1" not in line)
    signers = parse_otp_info(concrete.encode("utf-8"))
    assert signers == [OtpSigner(0, "John", "Doe", "0606060606", "john.doe@mail.fr"),
                       OtpSigner(1, "John", "Doe", "0606060606", "john.doe@mail.fr")]


def test_otp_sorted_blank_as_none_and_other_names_ignored() -> None:
    data = render_meta_data_list([("OTP_email_1", "b@x.fr"), ("TEXT001", "ignored"), ("OTP_firstname_0", "Ann"),
                                  ("OTP_phonenumber_0", " "), ("OTP_lastname_1", "Bee")])
    assert parse_otp_info(data) == [OtpSigner(0, firstname="Ann"), OtpSigner(1, lastname="Bee", email="b@x.fr")]


@pytest.mark.parametrize(("items", "error"), [
    ([("OTP_mobile_0", "x")], E.METADATA_UNKNOWN),
    ([("OTP_email_x", "x")], E.METADATA_UNKNOWN),
    ([("OTP_email_0", "a@x.fr"), ("OTP_email_0", "b@x.fr")], E.METADATA_BAD_FORMAT),
])
def test_otp_errors(items: list[tuple[str, str]], error: object) -> None:
    with pytest.raises(ParafeError) as err:
        parse_otp_info(render_meta_data_list(items))
    assert err.value.error is error
    assert items[0][0] in err.value.message


# --- validation -------------------------------------------------------------------------------------------

MODEL = [
    MetadataField("TEXT001", "text", required=True),
    MetadataField("NUM001", "numeric"),
    MetadataField("DATE001", "date"),
    MetadataField("CODE", "regex", pattern=r"[A-Z]{3}-\d{2}"),
]


def test_no_model() -> None:
    with pytest.raises(ParafeError) as err:
        validate_metadata([("TEXT001", "x")], None)
    assert err.value.error is E.NO_METADATA_MODEL
    assert err.value.message == "Aucun modèle de métadonnées défini pour cette cinématique"


def test_valid_values() -> None:
    validate_metadata([("TEXT001", "John"), ("NUM001", "-45812,5"), ("DATE001", "29/02/2024"),
                       ("CODE", "ABC-12")], MODEL)
    validate_metadata([("TEXT001", "x"), ("DATE001", "2024-02-29"), ("NUM001", " ")], MODEL)


def test_unknown_name() -> None:
    with pytest.raises(ParafeError) as err:
        validate_metadata([("TEXT001", "x"), ("NOPE", "1")], MODEL)
    assert err.value.error is E.METADATA_UNKNOWN
    assert err.value.message == "La métadonnée NOPE n'est pas définie pour cette cinématique"


@pytest.mark.parametrize(("name", "value"), [
    ("NUM001", "12a"), ("NUM001", "1.2.3"), ("NUM001", "1e5"),
    ("DATE001", "31/02/2024"), ("DATE001", "2024-13-01"), ("DATE001", "1/2/2024"), ("DATE001", "2024/01/01"),
    ("CODE", "ABC-123"), ("CODE", "abc-12"),
])
def test_bad_format(name: str, value: str) -> None:
    with pytest.raises(ParafeError) as err:
        validate_metadata([("TEXT001", "x"), (name, value)], MODEL)
    assert err.value.error is E.METADATA_BAD_FORMAT
    assert err.value.message == f"La valeur de la métadonnée {name} n'est pas au format...."


@pytest.mark.parametrize("items", [[], [("TEXT001", "  ")], [("TEXT001", "a"), ("TEXT001", "b")]])
def test_required_and_duplicates(items: list[tuple[str, str]]) -> None:
    with pytest.raises(ParafeError) as err:
        validate_metadata(items, MODEL)
    assert err.value.error is E.METADATA_BAD_FORMAT
    assert "TEXT001" in err.value.message


def test_empty_model_knows_no_name() -> None:
    validate_metadata([], [])
    with pytest.raises(ParafeError) as err:
        validate_metadata([("A", "1")], [])
    assert err.value.error is E.METADATA_UNKNOWN


# --- METAS_ names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "target"), [
    ("METAS_bonjour.pdf.xml", "bonjour.pdf"), ("METAS_XXX.xml", "XXX"), ("metas_a.XML", "a"),
    ("METAS_.xml", None), ("METAS_bonjour.pdf", None), ("bonjour.xml", None), ("XMETAS_a.xml", None),
])
def test_metas_names(name: str, target: str | None) -> None:
    assert metas_target(name) == target
    assert is_metas_file_name(name) is (target is not None)


def test_check_metas_file_name() -> None:
    check_metas_file_name("METAS_bonjour.pdf.xml")
    with pytest.raises(ParafeError) as err:
        check_metas_file_name("meta.xml")
    assert err.value.error is E.METADATA_FILE_NAME
