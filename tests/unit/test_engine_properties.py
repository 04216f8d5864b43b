"""Properties the engine must keep for any history, not just the examples we thought of."""

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.contract import LifecycleEvent
from shared.domain.engine import ClockState, RetentionEngine
from shared.domain.policy import load_default_policy
from tests.builders import event

ENGINE = RetentionEngine(load_default_policy())
SUBJECT = "subject"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
START = datetime(2015, 1, 1, tzinfo=UTC)
#: Times to the minute over 12 years, so that equal instants happen often enough to matter.
instants = st.integers(0, 12 * 365 * 24 * 60).map(
    lambda minutes: START + timedelta(minutes=minutes)
)

CASES = ["C-1", "C-2"]
CLIENTS = ["K-1", "K-2"]
SCOPED_TYPES = {
    "collection_case.closed": "case_id",
    "collection_case.reopened": "case_id",
    "customer_relationship.ended": "client_id",
    "customer_relationship.settled": "client_id",
    "customer_relationship.resumed": "client_id",
    "invoice_administration.ended": "client_id",
    "controller.erasure_instructed": "client_id",
}
SUBJECT_WIDE_TYPES = [
    "marketing.contact",
    "newsletter.unsubscribed",
    "dsr.objection",
    "consent.withdrawn",
    "dsr.erasure_requested",
]
#: For a clock of (category, scope key): an event type that triggers it.
TRIGGERS = {
    ("collection_case", "case_id"): ["collection_case.closed"],
    ("customer_relationship", "client_id"): [
        "customer_relationship.ended",
        "customer_relationship.settled",
    ],
    ("marketing", None): ["marketing.contact"],
    ("invoice_administration", "client_id"): ["invoice_administration.ended"],
    ("bookkeeping", None): ["bookkeeping.recorded"],
    ("aml", "measure_id"): ["aml.measure_performed"],
    ("aml", "relationship_id"): ["aml.relationship_ended"],
}
CATEGORIES = ["collection_case", "customer_relationship", "marketing", "aml", "bookkeeping"]


def _make(event_type: str, at: datetime, scope: dict, data: dict) -> LifecycleEvent:
    return event(event_type, at.isoformat(), scope, data, event_id=str(uuid.uuid4()))


@st.composite
def lifecycle_events(draw: st.DrawFn) -> LifecycleEvent:
    at = draw(instants)
    kind = draw(
        st.sampled_from(
            ["scoped", "subject_wide", "bookkeeping", "hold", "release", "aml", "measure", "data"]
        )
    )
    if kind == "scoped":
        event_type = draw(st.sampled_from(sorted(SCOPED_TYPES)))
        key = SCOPED_TYPES[event_type]
        value = draw(st.sampled_from(CASES if key == "case_id" else CLIENTS))
        return _make(event_type, at, {key: value}, {})
    if kind == "subject_wide":
        return _make(draw(st.sampled_from(SUBJECT_WIDE_TYPES)), at, {}, {})
    if kind == "bookkeeping":
        year_end = date(draw(st.integers(2014, 2026)), draw(st.sampled_from([6, 12])), 30)
        return _make("bookkeeping.recorded", at, {}, {"fiscal_year_end": year_end.isoformat()})
    if kind == "aml":
        event_type = draw(
            st.sampled_from(
                ["aml.relationship_established", "aml.relationship_ended", "aml.measure_performed"]
            )
        )
        return _make(event_type, at, {"relationship_id": "BR-1"}, {})
    if kind == "measure":
        return _make("aml.measure_performed", at, {"measure_id": "M-1"}, {})
    if kind == "data":
        category = draw(st.sampled_from(CATEGORIES))
        scope = draw(st.sampled_from([{}, {"case_id": "C-1"}, {"client_id": "K-1"}]))
        if draw(st.booleans()):
            return _make("data.outdated", at, scope, {"category": category})
        disclosed = {"recipient_id": "print-vendor", "category": category, "recipient_ref": "R-1"}
        return _make("data.disclosed", at, scope, disclosed)
    narrowing = draw(
        st.sampled_from([{}, {"case_id": "C-1"}, {"category": "marketing"}])
        if kind == "hold"
        else st.sampled_from([{}, {"category": "marketing"}])
    )
    hold_id = draw(st.sampled_from(["H-1", "H-2"]))
    event_type = "legal_hold.placed" if kind == "hold" else "legal_hold.released"
    return _make(event_type, at, {}, {"hold_id": hold_id, **narrowing})


histories = st.lists(lifecycle_events(), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(history=histories, data=st.data())
def test_the_result_depends_neither_on_order_nor_on_duplicates(history, data) -> None:
    expected = ENGINE.evaluate(SUBJECT, history, NOW)
    duplicates = data.draw(st.lists(st.sampled_from(history), max_size=5))
    reordered = data.draw(st.permutations(history + duplicates))
    assert ENGINE.evaluate(SUBJECT, reordered, NOW) == expected


@settings(max_examples=300, deadline=None)
@given(history=histories, hold_at=instants)
def test_under_a_standing_subject_wide_hold_nothing_is_due(history, hold_at) -> None:
    standing = [e for e in history if e.type != "legal_hold.released"]
    placed_at = min(hold_at, NOW)  # a hold placed after `now` has not happened yet
    standing.append(_make("legal_hold.placed", placed_at, {}, {"hold_id": "H-standing"}))
    for clock in ENGINE.evaluate(SUBJECT, standing, NOW):
        assert clock.state not in (ClockState.DUE, ClockState.ERASE_NOW)
        assert clock.state in (ClockState.HELD, ClockState.CANCELLED)


@settings(max_examples=300, deadline=None)
@given(history=histories, gap=st.integers(1, 5 * 365 * 24 * 60), year_end=st.integers(2014, 2030))
def test_a_later_trigger_never_moves_due_at_earlier(history, gap, year_end) -> None:
    later = max(e.occurred_at for e in history) + timedelta(minutes=gap)
    now = later  # so that the added trigger has happened
    for clock in ENGINE.evaluate(SUBJECT, history, now):
        scope_key = clock.scope[0] if clock.scope else None
        for trigger_type in TRIGGERS.get((clock.category.value, scope_key), []):
            if clock.due_at is None:
                continue
            data = {}
            if trigger_type == "bookkeeping.recorded":
                data = {"fiscal_year_end": date(year_end, 12, 31).isoformat()}
            extra = _make(trigger_type, later, clock.scope_dict, data)
            [after] = [
                c
                for c in ENGINE.evaluate(SUBJECT, [*history, extra], now)
                if (c.category, c.scope) == (clock.category, clock.scope)
            ]
            assert after.due_at is not None
            assert after.due_at >= clock.due_at
