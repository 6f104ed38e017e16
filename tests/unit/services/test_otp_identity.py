"""The one signer identity type and the one-time-code hashing shared by OTP circuits, OTP links and OSS pages."""

from __future__ import annotations

from parafe.services.otp.hashing import code_matches, hash_code
from parafe.services.otp.identity import SignerIdentity


def test_code_hash_is_salted_and_checked_in_constant_time() -> None:
    first, second = hash_code("123456"), hash_code("123456")
    assert first != second  # a new salt each time
    assert code_matches(first, "123456")
    assert code_matches(first, " 123456 ")
    assert not code_matches(first, "123457")
    assert hash_code("123456", "sel") == hash_code("123456", "sel")


def test_signer_identity_key_name_and_dict() -> None:
    one = SignerIdentity("Jean", "Dupont", "Jean.Dupont@Mail.fr", "06 12 34 56 78")
    other = SignerIdentity(email="jean.dupont@mail.fr", phone="+33612345678")
    assert one.key() == other.key() == ("jean.dupont@mail.fr", "+33612345678")
    assert one.full_name == "Jean Dupont"
    assert other.full_name == "jean.dupont@mail.fr"
    assert SignerIdentity.from_dict(one.as_dict()) == one
    assert other.merged(one) == SignerIdentity("Jean", "Dupont", "jean.dupont@mail.fr", "+33612345678")
