"""The rules that issue 19 gave one home each: e-mail check, finished states, Paris time, document ids.

Each test pins a point where the former copies disagreed, so going back to one of the losing behaviours fails.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parafe.domain import emails, ids, paris_time, states
from parafe.domain.errors import E, ParafeError
from parafe.domain.states import LABELS_V34, State

# --- e-mail addresses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "agent@gmail.com", "john.doe@mail.fr", "Jean.Dupont@Mairie-Exemple.fr", "jean.o'neil@exemple.fr",
    "a+tag@sous.domaine.gouv.fr", "x@y.z",
])
def test_email_accepted(value: str) -> None:
    assert emails.is_email(value)


@pytest.mark.parametrize("value", [
    "", "agent", "agent@", "@gmail.com", "agent@gmail", "a@@b.fr", "a@b@c.fr",
    "a b@c.fr", "a@b.fr ", " a@b.fr",
    "a@b.fr\n",  # the former ``^…$`` + re.match accepted a trailing newline
    "a\x00b@c.fr", "a\x1bb@c.fr", "a\x7fb@c.fr",  # control characters (three copies let them through)
    "a,b@c.fr", "a;b@c.fr", "a@b.fr;c@d.fr",  # the spec's list separators
    "<a@b.fr>", "\"Nom\"@b.fr", "Nom <a@b.fr>",  # display-name syntax
])
def test_email_refused(value: str) -> None:
    assert not emails.is_email(value)


def test_email_length_limit_is_rfc5321() -> None:
    domain = "@exemple.fr"
    longest = "a" * (254 - len(domain)) + domain
    assert len(longest) == 254
    assert emails.is_email(longest)
    assert not emails.is_email("a" + longest)  # 255: two copies accepted it


def test_email_is_not_stripped() -> None:
    """Callers strip (and lower-case) as their field wants; the check takes the value as it is."""
    assert not emails.is_email("\tagent@gmail.com")


# --- finished states ----------------------------------------------------------------------------------------------


def test_finished_states_by_label() -> None:
    """The set, named by the spec's own labels (API-REFERENCE §2.1, LABELS_V34, never retyped here)."""
    finished_labels = sorted(LABELS_V34[s] for s in states.FINISHED)
    expected = sorted(LABELS_V34[s] for s in (
        State.FILED, State.ARCHIVED, State.REFUSED, State.DISAPPROVED, State.SIGNATURE_REJECTED,
        State.SEND_TO_FAST_FAILED, State.FAST_PROCESSING_FAILED, State.SEND_TO_HELIOS_FAILED, State.REPLACED))
    assert finished_labels == expected
    assert {s.value for s in states.FINISHED} == states.FINISHED_VALUES


def test_step_failed_is_not_finished() -> None:
    """« Échec du traitement » waits for an administrator's retry: not purged, not the end of a client's wait."""
    assert State.STEP_FAILED not in states.FINISHED
    assert State.STEP_FAILED.value not in states.FINISHED_VALUES


def test_replaced_is_finished() -> None:
    assert State.REPLACED in states.FINISHED


def test_no_waiting_state_is_finished() -> None:
    for waiting in (State.PREPARED, State.OTP_INFO_DEFINED, State.SENT_FOR_VISA, State.SENT_FOR_SIGN,
                    State.READY_FOR_METADATA, State.METADATA_DEFINED, State.OTP_VALIDATED, State.SENDING,
                    State.SENT_TO_FAST, State.SENT_TO_HELIOS):
        assert waiting not in states.FINISHED


def test_done_and_refusal_are_finished_and_disjoint() -> None:
    assert states.CIRCUIT_DONE <= states.FINISHED
    assert states.REFUSAL <= states.FINISHED
    assert not states.CIRCUIT_DONE & states.REFUSAL
    assert {LABELS_V34[s] for s in states.REFUSAL} == {LABELS_V34[State.REFUSED], LABELS_V34[State.DISAPPROVED]}


def test_deletable_states_are_not_circuit_done() -> None:
    assert not states.DELETABLE & states.CIRCUIT_DONE


# --- Paris time ---------------------------------------------------------------------------------------------------


def test_naive_time_is_utc_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """A naive datetime is UTC (D16), whatever the machine's time zone (the stamp's copy took it as local)."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        naive = datetime(2026, 11, 27, 22, 53)
        assert paris_time.paris_format(naive) == "27/11/2026 à 23:53"
        assert paris_time.stamp_text(naive) == "le 27/11/2026 à 23:53"
    finally:
        monkeypatch.delenv("TZ")
        if hasattr(time, "tzset"):
            time.tzset()


def test_summer_and_winter_offsets() -> None:
    assert paris_time.paris_format(datetime(2026, 7, 1, 10, 0, tzinfo=UTC), paris_time.FORMAT_PORTAL) \
        == "01/07/2026 12:00"
    assert paris_time.paris_format(datetime(2026, 1, 1, 10, 0, 5, tzinfo=UTC), paris_time.FORMAT_SECONDS) \
        == "01/01/2026 11:00:05"


def test_paris_today_crosses_midnight_before_utc() -> None:
    assert paris_time.paris_today(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)).isoformat() == "2027-01-01"


def test_callers_share_the_helpers() -> None:
    from parafe.domain import deposit
    from parafe.notify import mail
    from parafe.portal import web
    from parafe.signing import stamp

    moment = datetime(2026, 3, 29, 0, 30)  # naive, the night of the change to summer time
    assert mail.paris(moment) == paris_time.paris_format(moment) == "29/03/2026 à 01:30"
    assert web.paris(moment) == "29/03/2026 01:30"
    assert ("le 29/03/2026 à 01:30", False) in stamp.stamp_lines(stamp.StampSpec(x=0, y=0), "Jean Dupont", moment)
    assert deposit.default_label(datetime(2026, 3, 28, 23, 30)) == "2026-03-29"


# --- document ids -------------------------------------------------------------------------------------------------


def test_parse_id() -> None:
    assert ids.parse_id(" 100000001 ") == 100000001
    for bad in ("abc", "", "0", "-5", str(2**62 + 1), "1.5"):
        with pytest.raises(ParafeError) as caught:
            ids.parse_id(bad)
        assert caught.value.error is E.DOCUMENT_NOT_FOUND


def test_parse_id_custom_not_found() -> None:
    with pytest.raises(ParafeError) as caught:
        ids.parse_id("x", E.BAD_REQUEST)
    assert caught.value.error is E.BAD_REQUEST


def test_parse_ids_separators_and_duplicates() -> None:
    assert ids.parse_ids("[1, 2;3 4,,2]") == [1, 2, 3, 4]
    assert ids.parse_ids(["5", "6,5", 7]) == [5, 6, 7]


def test_parse_ids_limits() -> None:
    assert len(ids.parse_ids([str(i) for i in range(1, ids.MAX_IDS + 1)])) == ids.MAX_IDS
    assert ids.parse_ids(["9"] * (ids.MAX_IDS + 5)) == [9]  # repeats name one document
    with pytest.raises(ParafeError) as caught:
        ids.parse_ids(",".join(str(i) for i in range(1, ids.MAX_IDS + 2)))
    assert caught.value.error is E.BAD_REQUEST
    for empty in (None, "", [], " , ", ["", " "]):
        with pytest.raises(ParafeError) as caught:
            ids.parse_ids(empty)
        assert caught.value.error is E.BAD_REQUEST
    with pytest.raises(ParafeError) as caught:
        ids.parse_ids("1,abc")
    assert caught.value.error is E.DOCUMENT_NOT_FOUND


def test_client_wait_ends_on_finished_states_only() -> None:
    """``wait_until`` gives up on a finished document, not on one waiting for an administrator's retry."""
    from parafe.client import api

    assert api.FINAL_STATES == states.FINISHED
    assert LABELS_V34[State.STEP_FAILED] not in api.FINAL_LABELS
    assert LABELS_V34[State.REPLACED] in api.FINAL_LABELS
