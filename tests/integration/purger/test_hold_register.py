"""The golden case of the hold register, end to end with the API, a real broker and the purger:
a collection case closed 37 months ago is due; under a hold placed through ``POST /v1/holds``
the sweep does not erase it, while the same case of a subject without the hold is erased; its
release requested by one key changes nothing; approved by a second key, the case is erased."""

import uuid
from datetime import UTC, date, datetime, timedelta

from dateutil.relativedelta import relativedelta

from services.api.api_keys import Scope
from shared.domain.contract.examples import EXAMPLES
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.storage.database import make_engine
from tests.integration.conftest import SECRET, RunningApi
from tests.integration.purger.helpers import clocks_of, facts_of, proofs_of
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_topic
from tests.polling import eventually

PSEUDONYMS = Pseudonymiser(SECRET.encode())
SWEEPS = "gallring_purger_sweep_duration_seconds_count"


class Person:
    """A subject as the API is told of it, and as the purger's helpers look it up."""

    def __init__(self) -> None:
        self.identity = {"ref": f"crm:{uuid.uuid4().hex}"}
        self.pseudonym = PSEUDONYMS.pseudonym("ref", self.identity["ref"])


def closed_37_months_ago(person: Person, case_id: str) -> dict:
    return {
        **EXAMPLES["collection_case.closed"],
        "event_id": str(uuid.uuid4()),
        "subject": person.identity,
        "scope": {"case_id": case_id},
        "occurred_at": (datetime.now(UTC) - relativedelta(months=37)).isoformat(),
    }


def key(api: RunningApi, name: str, *scopes: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.keys.create(name, set(scopes))}"}


async def test_a_hold_placed_through_the_register_keeps_a_due_case_until_two_keys_release_it(
    api: RunningApi, kafka_settings
) -> None:
    held, control = Person(), Person()
    hold_id = f"H-{uuid.uuid4().hex[:10]}"
    db = make_engine(api.settings.database_url)
    try:
        async with running_purger(api.settings.database_url, kafka_settings) as purger:

            def sweeps() -> float:
                return purger.metrics.registry.get_sample_value(SWEEPS) or 0.0

            placed = await api.client.post(
                "/v1/holds",
                json={
                    "hold_id": hold_id,
                    "matter": "Ä 4711-26",
                    "reason": "court_proceedings",
                    "owner_team": "legal",
                    "review_by": (date.today() + timedelta(days=60)).isoformat(),
                    "covers": {"subject": held.identity, "case_ids": ["C-disputed"]},
                },
                headers=key(api, "legal-desk", Scope.HOLDS_WRITE),
            )
            assert placed.status_code == 201, placed.text
            await eventually(lambda: facts_of(db, held), timeout=30)  # the purger has the hold

            for person in (held, control):
                response = await api.client.post(
                    "/v1/events",
                    json=closed_37_months_ago(person, "C-disputed"),
                    headers=key(api, "collection", Scope.EVENTS_WRITE),
                )
                assert response.status_code == 202
            await eventually(lambda: proofs_of(db, control), timeout=30)  # the control erased
            # Its case applied: held, or (were the hold not there) erased.
            await eventually(lambda: clocks_of(db, held) or proofs_of(db, held), timeout=30)
            swept = sweeps()
            await eventually(lambda: sweeps() >= swept + 2, timeout=30)  # a whole sweep since

            assert clocks_of(db, held) == {("collection_case", "C-disputed"): "held"}
            assert proofs_of(db, held) == []
            reader = key(api, "dashboard", Scope.HOLDS_READ)
            detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
            assert [clock["scope"] for clock in detail["clocks"]] == [{"case_id": "C-disputed"}]
            impact = (await api.client.get(f"/v1/holds/{hold_id}/impact", headers=reader)).json()
            assert impact["at_once"] == [{"category": "collection_case", "clocks": 1}]

            requested = await api.client.post(
                f"/v1/holds/{hold_id}/release", headers=key(api, "legal-desk", Scope.HOLDS_WRITE)
            )
            assert requested.status_code == 202
            swept = sweeps()
            await eventually(lambda: sweeps() >= swept + 2, timeout=30)
            assert proofs_of(db, held) == []  # one key's request releases nothing

            approved = await api.client.post(
                f"/v1/holds/{hold_id}/approve", headers=key(api, "dpo", Scope.HOLDS_APPROVE)
            )
            assert approved.status_code == 200, approved.text
            [proof] = await eventually(lambda: proofs_of(db, held), timeout=30)
            assert (proof.category, proof.rule) == ("collection_case", "collection_case.retention")

        records = await read_topic(
            kafka_settings,
            topics.HOLDS,
            until=lambda records: sum(r.key == hold_id.encode() for r in records) >= 3,
        )
        types = [dict(r.headers)["event-type"] for r in records if r.key == hold_id.encode()]
        assert types == [b"hold.placed", b"hold.release_requested", b"hold.released"]
    finally:
        db.dispose()
