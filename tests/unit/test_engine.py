"""The engine against every rule and edge of the rules page."""

from datetime import datetime
from pathlib import Path

import pytest

from shared.domain.contract import LifecycleEvent
from shared.domain.engine import ClockState, RetentionClock, RetentionEngine, evaluate
from shared.domain.policy import load_default_policy, load_policy
from tests.builders import event, utc

SUBJECT = "pseudonym-of-the-subject"
NOW = utc("2026-11-25T12:00Z")
ENGINE = RetentionEngine(load_default_policy())

CASE_1 = {"case_id": "C-1"}
CASE_2 = {"case_id": "C-2"}
CLIENT_1 = {"client_id": "K-1"}
CLIENT_2 = {"client_id": "K-2"}


def clocks(*events: LifecycleEvent, now: datetime = NOW, engine: RetentionEngine = ENGINE) -> dict:
    """The clocks by ``(category, scope value or None)``."""
    return {
        (clock.category.value, clock.scope[1] if clock.scope else None): clock
        for clock in engine.evaluate(SUBJECT, events, now)
    }


def only(*events: LifecycleEvent, now: datetime = NOW) -> RetentionClock:
    [clock] = clocks(*events, now=now).values()
    return clock


# --- Collection cases: 36 months after closing, undone by reopening ---------------------------


def test_a_closed_case_runs_36_months_from_closing() -> None:
    closed = event("collection_case.closed", "2025-03-15T10:00+01:00", CASE_1)
    clock = only(closed)
    assert clock.subject == SUBJECT
    assert clock.scope == ("case_id", "C-1")
    assert clock.state is ClockState.PENDING
    assert clock.due_at == utc("2028-03-15T09:00Z")
    assert clock.rule == "collection_case.retention"
    assert clock.legal_basis.startswith("GDPR art. 6(1)(b, c, e, f)")
    assert clock.trigger_event_id == closed.event_id
    assert clock.reason == (
        "Collection-case data is kept 36 months after collection_case.closed on 2025-03-15; "
        "it falls due on 2028-03-15 10:00 Europe/Stockholm time."
    )


def test_a_back_filled_case_whose_time_has_passed_is_due_at_once() -> None:
    clock = only(event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1))
    assert clock.state is ClockState.DUE
    assert clock.due_at == utc("2022-01-10T09:00Z")
    assert "fell due on 2022-01-10" in clock.reason


def test_due_is_reached_at_the_due_instant_itself() -> None:
    closed = event("collection_case.closed", "2023-11-25T13:00+01:00", CASE_1)
    assert only(closed, now=utc("2026-11-25T11:59:59Z")).state is ClockState.PENDING
    assert only(closed, now=utc("2026-11-25T12:00Z")).state is ClockState.DUE


def test_each_case_has_its_own_clock() -> None:
    result = clocks(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        event("collection_case.closed", "2025-01-10T10:00+01:00", CASE_2),
    )
    assert result["collection_case", "C-1"].state is ClockState.DUE
    assert result["collection_case", "C-2"].state is ClockState.PENDING


def test_reopening_cancels_and_a_later_closing_rearms() -> None:
    closed = event("collection_case.closed", "2020-01-10T10:00+01:00", CASE_1)
    reopened = event("collection_case.reopened", "2021-06-01T10:00+02:00", CASE_1)
    cancelled = only(closed, reopened)
    assert cancelled.state is ClockState.CANCELLED
    assert cancelled.due_at is None
    assert cancelled.rule == "collection_case.cancelled"
    assert cancelled.trigger_event_id == reopened.event_id
    assert "collection_case.reopened on 2021-06-01 undid the trigger" in cancelled.reason

    closed_again = event("collection_case.closed", "2024-02-29T10:00+01:00", CASE_1)
    rearmed = only(closed, reopened, closed_again)
    assert rearmed.state is ClockState.PENDING
    assert rearmed.due_at == utc("2027-02-28T09:00Z")
    assert rearmed.trigger_event_id == closed_again.event_id


def test_a_reopening_that_happened_before_the_closing_cancels_nothing() -> None:
    # Arrived late, but it happened first: the case was reopened, then closed.
    reopened = event("collection_case.reopened", "2021-06-01T10:00+02:00", CASE_1)
    closed = event("collection_case.closed", "2022-01-10T10:00+01:00", CASE_1)
    assert only(closed, reopened).due_at == utc("2025-01-10T09:00Z")


def test_a_reopened_case_without_a_known_closing_is_in_use() -> None:
    clock = only(event("collection_case.reopened", "2021-06-01T10:00+02:00", CASE_1))
    assert (clock.state, clock.due_at, clock.rule) == (
        ClockState.PENDING,
        None,
        "collection_case.ongoing",
    )


def test_closing_and_reopening_at_the_same_instant_keeps_the_data() -> None:
    closed = event("collection_case.closed", "2020-01-10T10:00+01:00", CASE_1)
    reopened = event("collection_case.reopened", "2020-01-10T10:00+01:00", CASE_1)
    assert only(reopened, closed).state is ClockState.CANCELLED


# --- Customer relationships: the later of ended and settled; outdated data ---------------------


@pytest.mark.parametrize(
    ("ended_at", "settled_at", "due"),
    [
        ("2024-01-31T17:00+01:00", "2024-05-31T17:00+02:00", "2027-05-31T15:00Z"),
        ("2024-05-31T17:00+02:00", "2024-01-31T17:00+01:00", "2027-05-31T15:00Z"),
    ],
)
def test_a_relationship_runs_from_the_later_of_ended_and_settled(
    ended_at: str, settled_at: str, due: str
) -> None:
    clock = only(
        event("customer_relationship.ended", ended_at, CLIENT_1),
        event("customer_relationship.settled", settled_at, CLIENT_1),
    )
    assert (clock.state, clock.due_at) == (ClockState.PENDING, utc(due))
    assert "36 months after the later of customer_relationship." in clock.reason


def test_an_ended_relationship_waits_for_its_settlement() -> None:
    clock = only(event("customer_relationship.ended", "2020-01-31T17:00+01:00", CLIENT_1))
    assert (clock.state, clock.due_at, clock.rule) == (
        ClockState.PENDING,
        None,
        "customer_relationship.waiting",
    )
    assert "starts once customer_relationship.settled has happened too" in clock.reason


def test_resuming_cancels_a_relationship_clock_until_it_ends_and_settles_again() -> None:
    ended = event("customer_relationship.ended", "2020-01-31T17:00+01:00", CLIENT_1)
    settled = event("customer_relationship.settled", "2020-03-31T17:00+02:00", CLIENT_1)
    resumed = event("customer_relationship.resumed", "2021-01-04T09:00+01:00", CLIENT_1)
    assert only(ended, settled, resumed).state is ClockState.CANCELLED

    ended_again = event("customer_relationship.ended", "2024-01-31T17:00+01:00", CLIENT_1)
    assert only(ended, settled, resumed, ended_again).due_at is None  # no new settlement yet
    settled_again = event("customer_relationship.settled", "2024-02-15T17:00+01:00", CLIENT_1)
    assert only(ended, settled, resumed, ended_again, settled_again).due_at == utc(
        "2027-02-15T16:00Z"
    )


def test_outdated_data_falls_due_when_it_became_outdated() -> None:
    ended = event("customer_relationship.ended", "2024-01-31T17:00+01:00", CLIENT_1)
    settled = event("customer_relationship.settled", "2024-02-15T17:00+01:00", CLIENT_1)
    outdated = event(
        "data.outdated", "2025-03-01T10:00+01:00", CLIENT_1, {"category": "customer_relationship"}
    )
    clock = only(ended, settled, outdated)
    assert (clock.state, clock.due_at, clock.rule) == (
        ClockState.DUE,
        utc("2025-03-01T09:00Z"),
        "customer_relationship.outdated",
    )
    assert clock.trigger_event_id == outdated.event_id
    assert clock.reason.startswith(
        "Customer-relationship data became outdated for its purpose on 2025-03-01"
    )


def test_outdated_never_postpones_an_earlier_due_time() -> None:
    ended = event("customer_relationship.ended", "2019-01-31T17:00+01:00", CLIENT_1)
    settled = event("customer_relationship.settled", "2019-02-15T17:00+01:00", CLIENT_1)
    outdated = event(
        "data.outdated", "2025-03-01T10:00+01:00", CLIENT_1, {"category": "customer_relationship"}
    )
    assert only(ended, settled, outdated).due_at == utc("2022-02-15T16:00Z")


def test_outdated_without_a_scope_reaches_every_clock_of_its_category() -> None:
    result = clocks(
        event("customer_relationship.ended", "2024-01-31T17:00+01:00", CLIENT_1),
        event("customer_relationship.ended", "2024-01-31T17:00+01:00", CLIENT_2),
        event(
            "data.outdated", "2025-03-01T10:00+01:00", data={"category": "customer_relationship"}
        ),
    )
    assert {clock.rule for clock in result.values()} == {"customer_relationship.outdated"}


def test_outdated_cannot_shorten_a_statutory_retention() -> None:
    recorded = event(
        "bookkeeping.recorded", "2025-01-20T09:00+01:00", data={"fiscal_year_end": "2024-12-31"}
    )
    outdated = event("data.outdated", "2025-03-01T10:00+01:00", data={"category": "bookkeeping"})
    clock = only(recorded, outdated)
    assert (clock.state, clock.due_at) == (ClockState.PENDING, utc("2031-12-31T23:00Z"))


# --- AML: 5 years after the measure, or after the relationship ended ---------------------------


def test_a_one_off_aml_measure_is_kept_five_years() -> None:
    clock = only(event("aml.measure_performed", "2022-05-10T11:00+02:00", {"measure_id": "M-1"}))
    assert clock.due_at == utc("2027-05-10T09:00Z")
    assert clock.legal_basis.endswith("Swedish AML Act (2017:630)")


def test_of_two_measures_the_later_due_time_wins_though_a_leap_day_makes_it_the_first() -> None:
    """29 Feb 2016 + 5 years is 28 Feb 2021 at the same time, which can come before the due time
    of a measure on 28 Feb 2016 (found by test_engine_properties)."""
    scope = {"measure_id": "M-1"}
    earlier = event("aml.measure_performed", "2016-02-28T00:01+01:00", scope)
    on_the_leap_day = event("aml.measure_performed", "2016-02-29T00:00+01:00", scope)
    for history in ([earlier, on_the_leap_day], [on_the_leap_day, earlier]):
        assert only(*history).due_at == utc("2021-02-27T23:01Z")  # 28 Feb 2021 00:01 local


def test_aml_data_of_an_established_relationship_is_kept_until_five_years_after_it_ends() -> None:
    relationship = {"relationship_id": "BR-9"}
    established = event("aml.relationship_established", "2021-01-04T09:00+01:00", relationship)
    measure = event("aml.measure_performed", "2023-05-10T11:00+02:00", relationship)
    ongoing = only(established, measure)
    assert (ongoing.state, ongoing.due_at, ongoing.rule) == (
        ClockState.PENDING,
        None,
        "aml.ongoing",
    )
    assert "its clock starts with aml.relationship_ended." in ongoing.reason

    ended = event("aml.relationship_ended", "2024-06-28T16:00+02:00", relationship)
    assert only(established, measure, ended).due_at == utc("2029-06-28T14:00Z")


# --- Marketing: latest contact wins; unsubscribing erases at once -----------------------------


def test_a_new_contact_pushes_the_marketing_clock() -> None:
    first = event("marketing.contact", "2022-05-02T14:30+02:00")
    second = event("marketing.contact", "2024-05-02T14:30+02:00")
    for order in ((first, second), (second, first)):
        clock = only(*order)
        assert clock.due_at == utc("2027-05-02T12:30Z")
        assert clock.trigger_event_id == second.event_id


@pytest.mark.parametrize(
    "immediate", ["newsletter.unsubscribed", "dsr.objection", "consent.withdrawn"]
)
def test_unsubscribe_objection_and_withdrawn_consent_erase_marketing_at_once(
    immediate: str,
) -> None:
    contact = event("marketing.contact", "2024-05-02T14:30+02:00")
    trigger = event(immediate, "2025-02-10T08:15+01:00")
    clock = only(contact, trigger, now=utc("2025-02-10T07:15Z"))
    assert (clock.state, clock.due_at, clock.rule) == (
        ClockState.ERASE_NOW,
        utc("2025-02-10T07:15Z"),
        "marketing.immediate",
    )
    assert clock.trigger_event_id == trigger.event_id
    assert clock.reason == (
        f"Marketing and analysis data is erased at once because of {immediate} on 2025-02-10."
    )


def test_unsubscribing_with_no_known_contact_still_erases_marketing_data() -> None:
    assert only(event("newsletter.unsubscribed", "2025-02-10T08:15+01:00")).state is (
        ClockState.ERASE_NOW
    )


def test_only_a_later_contact_starts_a_new_marketing_clock() -> None:
    unsubscribed = event("newsletter.unsubscribed", "2025-02-10T08:15+01:00")
    earlier_contact = event("marketing.contact", "2025-01-02T14:30+01:00")
    assert only(unsubscribed, earlier_contact).state is ClockState.ERASE_NOW
    later_contact = event("marketing.contact", "2025-06-02T14:30+02:00")
    clock = only(unsubscribed, earlier_contact, later_contact)
    assert (clock.state, clock.due_at) == (ClockState.PENDING, utc("2028-06-02T12:30Z"))


def test_unsubscribing_leaves_other_categories_on_their_own_clocks() -> None:
    result = clocks(
        event("marketing.contact", "2024-05-02T14:30+02:00"),
        event("collection_case.closed", "2025-01-10T10:00+01:00", CASE_1),
        event("newsletter.unsubscribed", "2025-02-10T08:15+01:00"),
    )
    assert result["marketing", None].state is ClockState.ERASE_NOW
    assert result["collection_case", "C-1"].state is ClockState.PENDING


# --- Bookkeeping: through the 7th year after the fiscal year ---------------------------------


def test_bookkeeping_runs_through_the_seventh_year_and_a_later_fiscal_year_pushes_it() -> None:
    fy2024 = event(
        "bookkeeping.recorded", "2025-01-20T09:00+01:00", data={"fiscal_year_end": "2024-12-31"}
    )
    clock = only(fy2024)
    assert clock.due_at == utc("2032-01-01T00:00+01:00")
    assert "financial year ending 2024-12-31" in clock.reason

    # A later fiscal year pushes the clock, even when recorded (occurred) earlier.
    fy2025 = event(
        "bookkeeping.recorded", "2024-08-01T09:00+02:00", data={"fiscal_year_end": "2025-06-30"}
    )
    assert only(fy2024, fy2025).due_at == utc("2033-01-01T00:00+01:00")
    assert only(fy2024, fy2025).trigger_event_id == fy2025.event_id


def test_erasing_a_case_never_erases_bookkeeping_still_under_its_own_retention() -> None:
    result = clocks(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        event(
            "bookkeeping.recorded", "2020-01-20T09:00+01:00", data={"fiscal_year_end": "2019-12-31"}
        ),
    )
    assert result["collection_case", "C-1"].state is ClockState.DUE
    assert result["bookkeeping", None].state is ClockState.PENDING
    assert result["bookkeeping", None].due_at == utc("2027-01-01T00:00+01:00")


# --- Invoice administration: as the client (controller) instructs ----------------------------


def test_the_controllers_instruction_erases_that_clients_data_at_once() -> None:
    instructed = event("controller.erasure_instructed", "2025-02-01T10:00+01:00", CLIENT_1)
    result = clocks(
        event("invoice_administration.ended", "2024-12-31T23:00+01:00", CLIENT_1),
        event("invoice_administration.ended", "2024-12-31T23:00+01:00", CLIENT_2),
        instructed,
    )
    assert result["invoice_administration", "K-1"].state is ClockState.ERASE_NOW
    assert result["invoice_administration", "K-1"].trigger_event_id == instructed.event_id
    assert result["invoice_administration", "K-2"].state is ClockState.PENDING


def test_a_clients_own_retention_overrides_the_default(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "shared/domain/policy/default_policy.yaml").read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(
        text.replace(
            "    client_overrides: {}",
            '    client_overrides:\n      K-1: {retention: {months: 18}, legal_basis: "DPA K-1"}',
        )
    )
    engine = RetentionEngine(load_policy(path))
    result = clocks(
        event("invoice_administration.ended", "2024-12-31T12:00+01:00", CLIENT_1),
        event("invoice_administration.ended", "2024-12-31T12:00+01:00", CLIENT_2),
        engine=engine,
    )
    overridden = result["invoice_administration", "K-1"]
    assert (overridden.due_at, overridden.legal_basis, overridden.rule) == (
        utc("2026-06-30T10:00Z"),
        "DPA K-1",
        "invoice_administration.retention.client:K-1",
    )
    assert "as client K-1 instructed" in overridden.reason
    assert result["invoice_administration", "K-2"].due_at == utc("2027-12-31T11:00Z")


# --- Legal holds ---------------------------------------------------------------------------------


def hold(at: str, hold_id: str = "H-1", **narrowing: str) -> LifecycleEvent:
    return event("legal_hold.placed", at, data={"hold_id": hold_id, **narrowing})


def release(at: str, hold_id: str = "H-1", **narrowing: str) -> LifecycleEvent:
    return event("legal_hold.released", at, data={"hold_id": hold_id, **narrowing})


SUBJECT_HISTORY = (
    event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
    event("collection_case.closed", "2019-02-10T10:00+01:00", CASE_2),
    event("marketing.contact", "2019-05-02T14:30+02:00"),
    event("newsletter.unsubscribed", "2020-02-10T08:15+01:00"),
)


def test_a_subject_wide_hold_keeps_every_clock_held_whatever_its_due_time() -> None:
    result = clocks(*SUBJECT_HISTORY, hold("2021-01-01T00:00+01:00"))
    assert {clock.state for clock in result.values()} == {ClockState.HELD}
    held = result["collection_case", "C-1"]
    assert held.due_at == utc("2022-01-10T09:00Z")
    assert held.rule == "collection_case.legal_hold"
    assert held.reason.startswith("Held by legal hold H-1 (placed 2021-01-01)")


def test_a_hold_on_one_case_keeps_only_that_case() -> None:
    result = clocks(*SUBJECT_HISTORY, hold("2021-01-01T00:00+01:00", case_id="C-1"))
    assert result["collection_case", "C-1"].state is ClockState.HELD
    assert result["collection_case", "C-2"].state is ClockState.DUE
    assert result["marketing", None].state is ClockState.ERASE_NOW


def test_a_hold_on_one_category_keeps_only_that_category() -> None:
    result = clocks(*SUBJECT_HISTORY, hold("2021-01-01T00:00+01:00", category="marketing"))
    assert result["marketing", None].state is ClockState.HELD
    assert result["collection_case", "C-1"].state is ClockState.DUE


def test_on_release_whatever_fell_due_meanwhile_is_due_at_once() -> None:
    result = clocks(
        *SUBJECT_HISTORY, hold("2021-01-01T00:00+01:00"), release("2025-01-01T00:00+01:00")
    )
    assert result["collection_case", "C-1"].state is ClockState.DUE
    assert result["marketing", None].state is ClockState.ERASE_NOW


def test_a_clock_is_free_only_when_no_hold_covers_it() -> None:
    result = clocks(
        *SUBJECT_HISTORY,
        hold("2021-01-01T00:00+01:00", "H-1"),
        hold("2021-02-01T00:00+01:00", "H-2", case_id="C-2"),
        release("2025-01-01T00:00+01:00", "H-1"),
    )
    assert result["collection_case", "C-1"].state is ClockState.DUE
    assert result["collection_case", "C-2"].state is ClockState.HELD
    assert result["collection_case", "C-2"].reason.startswith("Held by legal hold H-2")


def test_releasing_one_category_of_a_subject_wide_hold_keeps_the_rest() -> None:
    result = clocks(
        *SUBJECT_HISTORY,
        hold("2021-01-01T00:00+01:00"),
        release("2025-01-01T00:00+01:00", category="marketing"),
    )
    assert result["marketing", None].state is ClockState.ERASE_NOW
    assert result["collection_case", "C-1"].state is ClockState.HELD


def test_a_release_that_happened_before_the_placement_releases_nothing() -> None:
    result = clocks(
        *SUBJECT_HISTORY, release("2020-06-01T00:00+02:00"), hold("2021-01-01T00:00+01:00")
    )
    assert result["collection_case", "C-1"].state is ClockState.HELD


def test_a_hold_leaves_a_cancelled_clock_cancelled() -> None:
    result = clocks(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        event("collection_case.reopened", "2019-03-10T10:00+01:00", CASE_1),
        hold("2021-01-01T00:00+01:00"),
    )
    assert result["collection_case", "C-1"].state is ClockState.CANCELLED


# --- Data-subject erasure requests (art. 17) -------------------------------------------------


def test_an_erasure_request_erases_what_has_no_ground_and_says_why_the_rest_is_kept() -> None:
    request = event("dsr.erasure_requested", "2025-09-15T13:00+02:00")
    result = clocks(
        event("marketing.contact", "2024-05-02T14:30+02:00"),
        event("collection_case.closed", "2024-01-10T10:00+01:00", CASE_1),
        event(
            "bookkeeping.recorded", "2025-01-20T09:00+01:00", data={"fiscal_year_end": "2024-12-31"}
        ),
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_2),
        request,
    )
    marketing = result["marketing", None]
    assert (marketing.state, marketing.trigger_event_id) == (ClockState.ERASE_NOW, request.event_id)
    assert marketing.reason.startswith(
        "Erased now in answer to the erasure request of 2025-09-15: no retention ground remains."
    )

    bookkeeping = result["bookkeeping", None]
    assert bookkeeping.state is ClockState.PENDING
    assert bookkeeping.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, until 2032-01-01 00:00 Europe/Stockholm "
        "time, because the Swedish Bookkeeping Act requires it"
    )
    case = result["collection_case", "C-1"]
    assert case.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, until 2027-01-10 10:00 Europe/Stockholm "
        "time, because it is needed to establish, exercise or defend the legal claim"
    )
    # Already due anyway: erased at the next sweep, nothing to explain.
    assert result["collection_case", "C-2"].reason.startswith("Collection-case data is kept")


def test_an_erasure_request_under_a_hold_is_kept_while_the_hold_stands() -> None:
    result = clocks(
        event("collection_case.closed", "2024-01-10T10:00+01:00", CASE_1),
        hold("2025-01-01T00:00+01:00"),
        event("dsr.erasure_requested", "2025-09-15T13:00+02:00"),
    )
    clock = result["collection_case", "C-1"]
    assert clock.state is ClockState.HELD
    assert clock.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, while the legal hold stands"
    )


# --- Order, duplicates, disclosures ----------------------------------------------------------


def test_disclosure_alone_makes_a_clock_known_without_starting_it() -> None:
    disclosed = event(
        "data.disclosed",
        "2023-04-02T10:00+02:00",
        CASE_1,
        {"recipient_id": "print-vendor", "category": "collection_case", "recipient_ref": "PV-1"},
    )
    clock = only(disclosed)
    assert (clock.state, clock.due_at) == (ClockState.PENDING, None)
    erased = clocks(disclosed, event("dsr.erasure_requested", "2025-09-15T13:00+02:00"))
    assert erased["collection_case", "C-1"].reason.startswith("Kept despite the erasure request")


def test_the_result_depends_neither_on_order_nor_on_duplicates() -> None:
    history = [*SUBJECT_HISTORY, hold("2021-01-01T00:00+01:00"), release("2025-01-01T00:00+01:00")]
    expected = ENGINE.evaluate(SUBJECT, history, NOW)
    shuffled = [history[3], history[0], history[5], history[2], history[4], history[1], history[0]]
    assert ENGINE.evaluate(SUBJECT, shuffled, NOW) == expected


def test_clocks_come_sorted_by_category_and_scope_with_utc_due_times() -> None:
    result = ENGINE.evaluate(SUBJECT, SUBJECT_HISTORY, NOW)
    assert [(c.category.value, c.scope) for c in result] == [
        ("collection_case", ("case_id", "C-1")),
        ("collection_case", ("case_id", "C-2")),
        ("marketing", None),
    ]
    assert all(c.due_at is not None and c.due_at.utcoffset().total_seconds() == 0 for c in result)


def test_a_second_reopening_keeps_the_clock_cancelled() -> None:
    clock = only(
        event("collection_case.closed", "2020-01-10T10:00+01:00", CASE_1),
        event("collection_case.reopened", "2021-06-01T10:00+02:00", CASE_1),
        event("collection_case.reopened", "2021-07-01T10:00+02:00", CASE_1),
    )
    assert clock.state is ClockState.CANCELLED


def test_the_latest_placement_of_a_hold_says_what_it_covers() -> None:
    result = clocks(
        *SUBJECT_HISTORY,
        hold("2021-01-01T00:00+01:00", case_id="C-1"),
        hold("2021-02-01T00:00+01:00", case_id="C-2"),
    )
    assert result["collection_case", "C-1"].state is ClockState.DUE
    assert result["collection_case", "C-2"].state is ClockState.HELD


def test_placing_a_hold_again_after_a_category_release_covers_that_category_again() -> None:
    result = clocks(
        *SUBJECT_HISTORY,
        hold("2021-01-01T00:00+01:00"),
        release("2022-01-01T00:00+01:00", category="marketing"),
        hold("2023-01-01T00:00+01:00"),
    )
    assert result["marketing", None].state is ClockState.HELD


def test_events_after_now_have_not_happened_yet() -> None:
    contact = event("marketing.contact", "2024-05-02T14:30+02:00")
    unsubscribed = event("newsletter.unsubscribed", "2025-02-10T08:15+01:00")
    before = only(contact, unsubscribed, now=utc("2025-01-01T00:00Z"))
    assert (before.state, before.due_at) == (ClockState.PENDING, utc("2027-05-02T12:30Z"))
    assert only(contact, unsubscribed, now=utc("2025-03-01T00:00Z")).state is (ClockState.ERASE_NOW)


def test_an_erasure_request_answers_for_a_cancelled_clock_too() -> None:
    result = clocks(
        event("collection_case.closed", "2020-01-10T10:00+01:00", CASE_1),
        event("collection_case.reopened", "2021-06-01T10:00+02:00", CASE_1),
        event("dsr.erasure_requested", "2025-09-15T13:00+02:00"),
    )
    clock = result["collection_case", "C-1"]
    assert clock.state is ClockState.CANCELLED
    assert clock.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, while it is in use again, because it is "
        "needed to establish, exercise or defend the legal claim"
    )


def test_a_held_category_that_an_erasure_request_reaches_is_kept_while_held() -> None:
    result = clocks(
        event("marketing.contact", "2024-05-02T14:30+02:00"),
        hold("2025-01-01T00:00+01:00", category="marketing"),
        event("dsr.erasure_requested", "2025-09-15T13:00+02:00"),
    )
    clock = result["marketing", None]
    assert clock.state is ClockState.HELD
    assert clock.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, while the legal hold stands. Held by"
    )


def test_a_repeated_erasure_request_still_says_erased_now() -> None:
    first = event("dsr.erasure_requested", "2025-09-15T13:00+02:00")
    again = event("dsr.erasure_requested", "2025-10-15T13:00+02:00")
    clock = only(event("marketing.contact", "2024-05-02T14:30+02:00"), first, again)
    assert (clock.state, clock.trigger_event_id) == (ClockState.ERASE_NOW, first.event_id)
    assert clock.reason.startswith("Erased now in answer to the erasure request of 2025-10-15")


def test_the_pure_function_matches_the_engine() -> None:
    history = list(SUBJECT_HISTORY)
    assert evaluate(load_default_policy(), SUBJECT, history, NOW) == ENGINE.evaluate(
        SUBJECT, history, NOW
    )


# --- Extensions: a DPO keeps a clock's data longer, on a ground of its own ---------------------


def extended(
    until: str, *, scope: dict[str, str] | None = CASE_1, category: str = "collection_case"
) -> LifecycleEvent:
    data = {"category": category, "until": until, "ground": "a claim is disputed", "review_id": 7}
    return event("retention.extended", "2025-06-01T10:00+02:00", scope, data)


def test_an_extension_keeps_a_due_clock_until_its_day_and_says_why() -> None:
    closed = event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1)
    extension = extended("2027-03-01")
    clock = only(closed, extension)
    assert (clock.state, clock.due_at) == (ClockState.PENDING, utc("2027-02-28T23:00Z"))
    assert (clock.rule, clock.trigger_event_id) == ("collection_case.extended", extension.event_id)
    assert clock.reason.startswith(
        "Collection-case data is kept until 2027-03-01 because a claim is disputed (extended on "
        "2025-06-01 in disposition review 7); it falls due on 2027-03-01 00:00 "
        "Europe/Stockholm time. Without the extension: Collection-case data is kept 36 months"
    )
    assert only(closed, extension, now=utc("2027-03-01T00:00Z")).state is ClockState.DUE


def test_of_several_extensions_the_latest_day_wins_and_an_earlier_one_changes_nothing() -> None:
    closed = event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1)
    assert only(closed, extended("2027-03-01"), extended("2028-01-01")).due_at == utc(
        "2027-12-31T23:00Z"
    )
    assert only(closed, extended("2021-01-01")) == only(closed)


def test_an_extension_keeps_only_its_own_clock_and_never_an_immediate_erasure() -> None:
    result = clocks(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_2),
        event("marketing.contact", "2019-05-02T14:30+02:00"),
        event("newsletter.unsubscribed", "2020-02-10T08:15+01:00"),
        extended("2027-03-01"),
        extended("2027-03-01", scope=None, category="marketing"),
    )
    assert result["collection_case", "C-1"].state is ClockState.PENDING
    assert result["collection_case", "C-2"].state is ClockState.DUE
    assert result["marketing", None].state is ClockState.ERASE_NOW


def test_an_erasure_request_is_answered_with_the_extensions_ground() -> None:
    clock = clocks(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        extended("2027-03-01"),
        event("dsr.erasure_requested", "2025-09-15T13:00+02:00"),
    )["collection_case", "C-1"]
    assert clock.reason.startswith(
        "Kept despite the erasure request of 2025-09-15, until 2027-03-01 00:00 "
        "Europe/Stockholm time, because a claim is disputed."
    )


def test_a_hold_keeps_an_extended_clock_past_its_extension() -> None:
    clock = only(
        event("collection_case.closed", "2019-01-10T10:00+01:00", CASE_1),
        extended("2025-12-01"),
        event("legal_hold.placed", "2025-06-01T10:00+02:00", data={"hold_id": "H-1"}),
    )
    assert (clock.state, clock.due_at) == (ClockState.HELD, utc("2025-11-30T23:00Z"))


# --- Which clocks an event feeds (what the purger may delete after an erasure) ------------------


def test_clock_keys_name_the_clocks_each_event_feeds() -> None:
    closed_1 = event("collection_case.closed", "2025-03-15T10:00+01:00", CASE_1)
    closed_2 = event("collection_case.closed", "2025-03-15T10:00+01:00", CASE_2)
    ended = event("customer_relationship.ended", "2025-03-15T10:00+01:00", CLIENT_1)
    outdated = event(
        "data.outdated", "2025-04-01T10:00+01:00", data={"category": "customer_relationship"}
    )
    hold = event("legal_hold.placed", "2025-04-01T10:00+01:00", data={"hold_id": "H-1"})
    extension = extended("2029-01-01", scope=CASE_2)

    keys = ENGINE.clock_keys([closed_1, closed_2, ended, outdated, hold, extension])

    assert keys[closed_1.event_id] == {("collection_case", ("case_id", "C-1"))}
    assert keys[closed_2.event_id] == {("collection_case", ("case_id", "C-2"))}
    # A subject-wide event reaches every clock of its category that other events made...
    assert keys[outdated.event_id] == {("customer_relationship", ("client_id", "K-1"))}
    # ...and a hold feeds none: it only acts on clocks; an extension feeds the one it extends.
    assert keys[hold.event_id] == set()
    assert keys[extension.event_id] == {("collection_case", ("case_id", "C-2"))}
