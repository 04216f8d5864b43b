"""``GET /v1/erasures/proofs``: the proofs of the erasures executed since a time, what an agent
re-applies after its database was restored from a backup (services/agent/restore.py)."""

from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta

from services.api.api_keys import Scope
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.pseudonym import subject_hash
from shared.storage.database import make_engine
from tests.integration.conftest import RunningApi
from tests.integration.purger.helpers import RETENTION, Subject, ago, proofs_of

CASE = {"case_id": "C-1"}


async def test_proofs_executed_since_a_time_a_page_at_a_time(api: RunningApi) -> None:
    db = make_engine(api.settings.database_url)
    before, case_a, case_b, marketing = Subject(), Subject(), Subject(), Subject()
    three_months_ago = datetime.now(UTC) - relativedelta(months=3)
    try:
        # Executed three months ago: before the backup the check asks about.
        handle_batch(
            db,
            RETENTION,
            [before.message("collection_case.closed", ago(months=40), CASE)],
            datetime.now(UTC),
        )
        sweep(db, RETENTION, three_months_ago, batch_size=100)
        handle_batch(
            db,
            RETENTION,
            [
                case_a.message("collection_case.closed", ago(months=37), CASE),
                case_b.message("collection_case.closed", ago(months=37), CASE),
                marketing.message("marketing.contact", ago(years=4)),
            ],
            datetime.now(UTC),
        )
        sweep(db, RETENTION, datetime.now(UTC), batch_size=100)
        proofs = {
            name: proofs_of(db, person)[0]
            for name, person in (
                ("before", before),
                ("case_a", case_a),
                ("case_b", case_b),
                ("marketing", marketing),
            )
        }
    finally:
        db.dispose()
    hashes = {subject_hash(p.pseudonym): p for p in (before, case_a, case_b, marketing)}
    agent = api.key(Scope.ERASURES_CONFIRM)
    since = (three_months_ago + relativedelta(days=1)).isoformat()

    async def every_page(**params: object) -> list[dict]:
        seen, cursor, pages = [], None, 0
        while True:
            query = dict(params) | ({"cursor": cursor} if cursor else {})
            response = await api.client.get("/v1/erasures/proofs", params=query, headers=agent)
            assert response.status_code == 200, response.text
            page = response.json()
            seen += page["proofs"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
            assert pages < 1000

    # A page of one at a time: every proof once, in execution order (the session's other
    # tests' proofs among them).
    paged = await every_page(executed_since=since, limit=1)
    ids = [proof["erasure_id"] for proof in paged]
    assert len(ids) == len(set(ids))
    assert [p["executed_at"] for p in paged] == sorted(p["executed_at"] for p in paged)
    assert paged == await every_page(executed_since=since, limit=1000)
    mine = {proof["erasure_id"]: proof for proof in paged if proof["subject_hash"] in hashes}
    assert set(mine) == {str(proofs[name].erasure_id) for name in ("case_a", "case_b", "marketing")}
    a = mine[str(proofs["case_a"].erasure_id)]
    assert a == {
        "erasure_id": str(proofs["case_a"].erasure_id),
        "category": "collection_case",
        "subject_hash": proofs["case_a"].subject_hash,
        "clock_hash": proofs["case_a"].clock_hash,
        "executed_at": a["executed_at"],
    }
    assert a["clock_hash"] is not None
    assert datetime.fromisoformat(a["executed_at"]).utcoffset() is not None

    # Of one category only.
    cases = await every_page(executed_since=since, category="collection_case", limit=2)
    assert {p["category"] for p in cases} == {"collection_case"}
    assert {p["erasure_id"] for p in cases if p["subject_hash"] in hashes} == {
        str(proofs["case_a"].erasure_id),
        str(proofs["case_b"].erasure_id),
    }
    # Since before the first: the proof executed three months ago too.
    earlier = (three_months_ago - relativedelta(days=1)).isoformat()
    assert str(proofs["before"].erasure_id) in {
        p["erasure_id"] for p in await every_page(executed_since=earlier, limit=1000)
    }


async def test_proofs_are_refused_without_the_scope_or_with_a_time_without_offset(
    api: RunningApi,
) -> None:
    agent = api.key(Scope.ERASURES_CONFIRM)
    url = "/v1/erasures/proofs"
    since = {"executed_since": "2026-11-01T00:00:00Z"}
    assert (await api.client.get(url, params=since, headers=agent)).status_code == 200
    assert (await api.client.get(url, params=since)).status_code == 401
    other = api.key(Scope.EVENTS_WRITE)
    assert (await api.client.get(url, params=since, headers=other)).status_code == 403
    for params, field in (
        ({"executed_since": "2026-11-01T00:00:00"}, "executed_since"),  # no offset
        ({"executed_since": "1700000000"}, "executed_since"),
        ({}, "executed_since"),
        (since | {"category": "no_such_category"}, "category"),
        (since | {"cursor": "nonsense"}, "cursor"),
        (since | {"limit": "0"}, "limit"),
    ):
        response = await api.client.get(url, params=params, headers=agent)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.json()["errors"][0]["field"], response.json()
