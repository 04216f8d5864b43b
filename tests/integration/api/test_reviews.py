"""Disposition reviews through the API: listed without a subject, decided once by a key with
``reviews:decide`` (audited with its reason), and what the decision does once the purger applies
it. Each test has a database of its own: the purger's brake counts the whole database's day."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from services.api.api_keys import Scope
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.policy.model import Review
from shared.messaging import topics
from shared.storage.tables.api import AuditEntry
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of
from tests.integration.conftest import RunningApi, relay_settings
from tests.integration.purger.helpers import Subject, ago, proofs_of, retention_with

RETENTION = retention_with(collection_case=Review(max_per_day=1))
_OUTBOX = table_of(OutboxMessage)
_AUDIT = table_of(AuditEntry)


@pytest.fixture
def migrated_url(fresh_db: Engine) -> str:
    """The API's database (``make_api``): one of its own, PostgreSQL and SQLite in turn."""
    return fresh_db.url.render_as_string(hide_password=False)


@pytest.fixture
async def api(make_api):
    """Its outbox left unpublished: the test hands the purger what the API sent."""
    async with make_api(relay=relay_settings(enabled=False)) as running:
        yield running


def key_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer gal_").split("_")[0]


def stopped_cases(api: RunningApi, db: Engine, cases: int) -> list[Subject]:
    """``cases`` overdue collection cases, swept with max_per_day 1: one erased, the rest in a
    review. Subjects pseudonymised with the API's secret, so the API can look them up."""
    pseudonymiser = api.settings.pseudonymiser()
    people = [Subject() for _ in range(cases)]
    for person in people:
        person.pseudonym = pseudonymiser.pseudonym("ref", person.identity["ref"])
    handle_batch(
        db,
        RETENTION,
        [
            p.message("collection_case.closed", ago(months=38), {"case_id": f"C-{n}"})
            for n, p in enumerate(people)
        ],
        datetime.now(UTC),
    )
    assert sweep(db, RETENTION, datetime.now(UTC), batch_size=10) == 1
    return [person for person in people if not proofs_of(db, person)]


def events_sent(db: Engine) -> list[LifecycleMessage]:
    with db.connect() as connection:
        values = connection.execute(
            select(_OUTBOX.c.value).where(
                _OUTBOX.c.topic.in_((topics.LIFECYCLE, topics.LIFECYCLE_IMMEDIATE))
            )
        ).scalars()
        return [LifecycleMessage.from_json(value) for value in values]


def last_audit(db: Engine) -> tuple[str, str, dict[str, Any]]:
    with db.connect() as connection:
        row = connection.execute(select(_AUDIT).order_by(_AUDIT.c.id.desc()).limit(1)).one()
    return row.actor, row.action, json.loads(row.detail)


async def test_a_dpo_extends_a_review_and_the_lookup_says_why(
    api: RunningApi, fresh_db: Engine
) -> None:
    waiting = stopped_cases(api, fresh_db, 3)
    reader = api.key(Scope.ERASURES_READ)

    listing = await api.client.get("/v1/reviews", params={"state": "open"}, headers=reader)
    assert listing.status_code == 200, listing.text
    [review] = listing.json()
    assert (review["category"], review["cause"], review["state"]) == (
        "collection_case",
        "max_per_day",
        "open",
    )
    assert (review["clocks"], review["awaiting"], review["decision"]) == (2, 2, None)
    assert sum(count["clocks"] for count in review["counts"]) == 2
    assert {count["rule"] for count in review["counts"]} == {"collection_case.retention"}
    assert len(review["sample_erasure_ids"]) == 2
    assert not any(person.pseudonym in listing.text for person in waiting)
    erasure = await api.client.get(
        f"/v1/erasures/{review['sample_erasure_ids'][0]}", headers=reader
    )
    assert erasure.json()["state"] == "awaiting_review"

    dpo = api.key(Scope.REVIEWS_DECIDE)
    until = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()
    ground = "the client contests the closing dates in court (GDPR art. 17(3)(e))"
    decided = await api.client.post(
        f"/v1/reviews/{review['review_id']}/decision",
        json={"decision": "extend", "reason": "dates contested", "ground": ground, "until": until},
        headers=dpo,
    )
    assert decided.status_code == 202, decided.text
    body = decided.json()
    assert body["state"] == "extended"
    assert body["decision"] | {"decided_at": None} == {
        "decision": "extend",
        "decided_by": key_id(dpo),
        "reason": "dates contested",
        "decided_at": None,
        "applied": False,
        "ground": ground,
        "until": until,
        "hold_id": None,
        "events": 2,
    }
    assert last_audit(fresh_db) == (
        "test-client",
        "reviews.decided",
        {
            "review_id": review["review_id"],
            "decision": "extend",
            "key_id": key_id(dpo),
            "reason": "dates contested",
            "events": 2,
            "ground": ground,
            "until_date": until,
        },
    )
    again = await api.client.post(
        f"/v1/reviews/{review['review_id']}/decision",
        json={"decision": "approve", "reason": "changed my mind"},
        headers=dpo,
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "urn:gallring:problem:review-decided"
    assert again.json()["state"] == "extended"

    # The purger consumes what the API sent, then sweeps: kept, and the lookup says why.
    handle_batch(fresh_db, RETENTION, events_sent(fresh_db), datetime.now(UTC))
    assert sweep(fresh_db, RETENTION, datetime.now(UTC), batch_size=10) == 0
    lookup = await api.client.post(
        "/v1/subjects/lookup", json=waiting[0].identity, headers=api.key(Scope.SUBJECTS_READ)
    )
    [clock] = lookup.json()["clocks"]
    assert (clock["state"], clock["rule"]) == ("pending", "collection_case.extended")
    assert f"kept until {until} because {ground}" in clock["reason"]
    assert f"disposition review {review['review_id']}" in clock["reason"]
    applied = await api.client.get(f"/v1/reviews/{review['review_id']}", headers=dpo)
    assert (applied.json()["state"], applied.json()["awaiting"]) == ("extended", 0)
    assert applied.json()["decision"]["applied"] is True
    assert (await api.client.get("/v1/reviews?state=open", headers=dpo)).json() == []


async def test_an_approval_through_the_api_is_erased_at_the_next_sweep(
    api: RunningApi, fresh_db: Engine
) -> None:
    waiting = stopped_cases(api, fresh_db, 3)
    dpo = api.key(Scope.REVIEWS_DECIDE)
    [review] = (await api.client.get("/v1/reviews?state=open", headers=dpo)).json()
    decided = await api.client.post(
        f"/v1/reviews/{review['review_id']}/decision",
        json={"decision": "approve", "reason": "checked against the collection system"},
        headers=dpo,
    )
    assert decided.status_code == 202 and decided.json()["state"] == "approved"
    assert events_sent(fresh_db) == []  # an approval sends nothing: the purger acts on it

    assert sweep(fresh_db, RETENTION, datetime.now(UTC), batch_size=10) == 2
    assert all(proofs_of(fresh_db, person) for person in waiting)
    listed = (await api.client.get("/v1/reviews?state=approved", headers=dpo)).json()
    assert [(r["review_id"], r["awaiting"]) for r in listed] == [(review["review_id"], 0)]


async def test_decisions_need_the_scope_an_open_review_and_a_valid_body(
    api: RunningApi, fresh_db: Engine
) -> None:
    stopped_cases(api, fresh_db, 2)
    dpo = api.key(Scope.REVIEWS_DECIDE)
    [review] = (await api.client.get("/v1/reviews", headers=dpo)).json()
    url = f"/v1/reviews/{review['review_id']}/decision"
    approve = {"decision": "approve", "reason": "fine"}

    async def answer(path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict]:
        response = await api.client.post(path, json=body, headers=headers)
        assert response.headers["content-type"] == "application/problem+json"
        return response.status_code, response.json()

    status, problem = await answer(url, approve, api.key(Scope.ERASURES_READ))
    assert (status, problem["type"]) == (403, "urn:gallring:problem:forbidden")
    status, problem = await answer("/v1/reviews/999999/decision", approve, dpo)
    assert (status, problem["type"]) == (404, "urn:gallring:problem:review-not-found")
    status, problem = await answer(url, {"decision": "erase", "reason": "x"}, dpo)
    assert (status, problem["type"]) == (422, "urn:gallring:problem:validation-error")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    extend = {"decision": "extend", "reason": "x", "ground": "a claim", "until": yesterday}
    status, problem = await answer(url, extend, dpo)
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["until"])
    # Tomorrow in the policy's zone starts within a day: the extension could end before the
    # purger applies it.
    tomorrow = (datetime.now(ZoneInfo("Europe/Stockholm")) + timedelta(days=1)).date()
    status, problem = await answer(url, {**extend, "until": tomorrow.isoformat()}, dpo)
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["until"])
    status, problem = await answer(url, {"decision": "approve", "reason": "19811218-9876"}, dpo)
    assert status == 422 and "9876" not in json.dumps(problem)
    status, problem = await answer(url, {"decision": "approve"}, dpo)
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["reason"])
    status, problem = await answer(url, {"decision": "extend", "reason": "x"}, dpo)
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["ground", "until"])
    status, problem = await answer(url, {**approve, "hold_id": "H-1"}, dpo)
    assert (status, problem["errors"]) == (
        422,
        [{"field": "hold_id", "message": "only with decision hold; remove it"}],
    )
    # None of these decided anything.
    assert (await api.client.get(f"/v1/reviews/{review['review_id']}", headers=dpo)).json()[
        "state"
    ] == "open"

    listing = await api.client.get("/v1/reviews", headers=api.key(Scope.SUBJECTS_READ))
    assert listing.status_code == 403
    unknown = await api.client.get("/v1/reviews/999999", headers=dpo)
    assert unknown.status_code == 404
