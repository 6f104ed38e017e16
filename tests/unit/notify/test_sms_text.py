"""SMS numbers and sizes (issue 16): E.164 normalisation with French numbers by default, and the GSM-7 / UCS-2
segment count operators bill (160/153 septets, extension characters count 2; 70/67 UCS-2 code units)."""

from __future__ import annotations

import pytest

from parafe.notify.sms import InvalidPhoneNumber, SmsConfigError, checked_url, e164, mask_phone, sms_parts


@pytest.mark.parametrize(("given", "expected"), [
    ("06 12 34 56 78", "+33612345678"),
    ("06.12.34.56.78", "+33612345678"),
    ("0612345678", "+33612345678"),
    ("+33 6 12 34 56 78", "+33612345678"),
    ("+33 (0)6 12 34 56 78", "+33612345678"),
    ("+33 06 12 34 56 78", "+33612345678"),
    ("0033 6 12 34 56 78", "+33612345678"),
    ("07-98-76-54-32", "+33798765432"),
    ("01 23 45 67 89", "+33123456789"),
    ("0692 12 34 56", "+262692123456"),  # La Réunion mobile
    ("0696 12 34 56", "+596696123456"),  # Martinique mobile
    ("0690 12 34 56", "+590690123456"),  # Guadeloupe mobile
    ("+32 470 12 34 56", "+32470123456"),  # Belgian number given in international form
    ("0041 79 123 45 67", "+41791234567"),
])
def test_numbers_are_normalised_to_e164(given: str, expected: str) -> None:
    assert e164(given) == expected


@pytest.mark.parametrize("given", ["", "06 12 34 56", "+33 6 12 34 56 789", "12345", "+0612345678", "06 12 AB 56 78",
                                   "470 12 34 56"])
def test_invalid_numbers_are_refused_in_french(given: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        e164(given)
    assert "numéro de téléphone invalide" in str(info.value)


def test_mask_keeps_country_and_last_digits() -> None:
    assert mask_phone("06 12 34 56 78") == "+336••••••78"


@pytest.mark.parametrize(("text", "encoding", "length", "segments"), [
    ("", "GSM-7", 0, 1),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("é" * 160, "GSM-7", 160, 1),  # é, è, à, ù, Ç are in the GSM alphabet
    ("€" * 80, "GSM-7", 80, 1),  # extension characters take 2 septets: 160
    ("€" * 81, "GSM-7", 81, 2),
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 163, 2),  # 165 septets; the escape pair is not cut at 153
    ("a" * 152 + "€" + "a" * 153, "GSM-7", 306, 3),  # 152+2 does not fit in 153: the € opens part 2
    ("ê" * 70, "UCS-2", 70, 1),  # ê is not in the GSM alphabet: UCS-2
    ("ê" * 71, "UCS-2", 71, 2),
    ("a" * 133 + "ê", "UCS-2", 134, 2),
    ("a" * 134 + "ê", "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 35, 1),  # a surrogate pair is 2 code units
    ("😀" * 36, "UCS-2", 36, 2),
])
def test_length_and_segments(text: str, encoding: str, length: int, segments: int) -> None:
    parts = sms_parts(text)
    assert (parts.encoding, parts.length, parts.segments) == (encoding, length, segments)


def test_the_otp_message_is_one_gsm7_sms() -> None:
    parts = sms_parts("Parafe : votre code de signature est 123456. Il est valable 10 minutes.")
    assert (parts.encoding, parts.length, parts.segments) == ("GSM-7", 71, 1)


@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.example.fr/sms", True), ("http://127.0.0.1:8080/sms", True), ("http://[::1]:8080/sms", True),
    ("http://localhost/sms", True), ("http://api.example.fr/sms", False), ("http://10.0.0.1/sms", False),
    ("ftp://127.0.0.1/x", False), ("", False)])
def test_plain_http_only_on_loopback(url: str, ok: bool) -> None:
    if ok:
        assert checked_url(url, "test") == url
    else:
        with pytest.raises(SmsConfigError):
            checked_url(url, "test")


def test_operator_check_refuses_plain_http_and_incomplete_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from parafe.notify.sms import check_sms_provider

    monkeypatch.setenv("PARAFE_SMS_PROVIDER", "http")
    monkeypatch.setenv("PARAFE_SMS_HTTP_URL", "http://sms.exemple.fr/v1/sms")
    monkeypatch.setenv("PARAFE_SMS_HTTP_AUTHORIZATION", "Bearer ne-doit-pas-apparaitre")
    ok, verdict = check_sms_provider()
    assert not ok
    assert "HTTPS obligatoire" in verdict
    assert "ne-doit-pas-apparaitre" not in verdict
    monkeypatch.setenv("PARAFE_SMS_HTTP_URL", "https://sms.exemple.fr/v1/sms")
    monkeypatch.setenv("PARAFE_SMS_HTTP_BODY", '{"to": "{phone}"')
    ok, verdict = check_sms_provider()
    assert not ok
    assert "PARAFE_SMS_HTTP_BODY n'est pas un JSON valide" in verdict
    monkeypatch.setenv("PARAFE_SMS_PROVIDER", "ovh")
    monkeypatch.setenv("PARAFE_SMS_OVH_APPLICATION_KEY", "ak")
    ok, verdict = check_sms_provider()
    assert not ok
    assert "PARAFE_SMS_OVH_CONSUMER_KEY" in verdict
    assert "PARAFE_SMS_OVH_SERVICE_NAME" in verdict
    monkeypatch.setenv("PARAFE_SMS_PROVIDER", "pigeon")
    assert check_sms_provider() == (False, "SMS (pigeon) : échec — fournisseur inconnu « pigeon » (disponibles : "
                                           "outbox, ovh, http)")
