"""Random histories of lifecycle events (hypothesis strategies), for the engine's properties and
for the purger's consumer, which must come to the engine's verdicts however they are batched."""

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from shared.domain.contract import LifecycleEvent
from tests.builders import event

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


def make_event(event_type: str, at: datetime, scope: dict, data: dict) -> LifecycleEvent:
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
        return make_event(event_type, at, {key: value}, {})
    if kind == "subject_wide":
        return make_event(draw(st.sampled_from(SUBJECT_WIDE_TYPES)), at, {}, {})
    if kind == "bookkeeping":
        year_end = date(draw(st.integers(2014, 2026)), draw(st.sampled_from([6, 12])), 30)
        return make_event("bookkeeping.recorded", at, {}, {"fiscal_year_end": year_end.isoformat()})
    if kind == "aml":
        event_type = draw(
            st.sampled_from(
                ["aml.relationship_established", "aml.relationship_ended", "aml.measure_performed"]
            )
        )
        return make_event(event_type, at, {"relationship_id": "BR-1"}, {})
    if kind == "measure":
        return make_event("aml.measure_performed", at, {"measure_id": "M-1"}, {})
    if kind == "data":
        category = draw(st.sampled_from(CATEGORIES))
        scope = draw(st.sampled_from([{}, {"case_id": "C-1"}, {"client_id": "K-1"}]))
        if draw(st.booleans()):
            return make_event("data.outdated", at, scope, {"category": category})
        disclosed = {"recipient_id": "print-vendor", "category": category, "recipient_ref": "R-1"}
        return make_event("data.disclosed", at, scope, disclosed)
    narrowing = draw(
        st.sampled_from([{}, {"case_id": "C-1"}, {"category": "marketing"}])
        if kind == "hold"
        else st.sampled_from([{}, {"category": "marketing"}])
    )
    hold_id = draw(st.sampled_from(["H-1", "H-2"]))
    event_type = "legal_hold.placed" if kind == "hold" else "legal_hold.released"
    return make_event(event_type, at, {}, {"hold_id": hold_id, **narrowing})


histories = st.lists(lifecycle_events(), min_size=1, max_size=12)
