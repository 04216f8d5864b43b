"""The systems an erasure expects a confirmation from: every active system of the register that
holds its category when it is executed, recorded with the proof on both of the sweep's roads; a
confirmation marks its system's row; a request publishes the command again for one system."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import Engine, insert, select

from services.purger import settled_erasure
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import (
    CommandRequested,
    ConfirmationReported,
    ErasureCommand,
)
from shared.messaging import topics
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import ErasureExpectedSystem
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import RETENTION, Subject, ago, proofs_of

_SYSTEMS = table_of(CompanySystem)
_EXPECTED = table_of(ErasureExpectedSystem)
_OUTBOX = table_of(OutboxMessage)


def register(
    db: Engine, system_id: str, categories: str, within: timedelta, *, active: bool = True
) -> None:
    """As ``POST /v1/systems`` stores it (the API's table; the purger only reads it)."""
    now = datetime.now(UTC)
    with db.begin() as connection:
        connection.execute(
            insert(_SYSTEMS).values(
                system_id=system_id,
                name=system_id.title(),
                categories=categories,
                confirm_within_seconds=int(within.total_seconds()),
                active=active,
                created_at=now,
                updated_at=now,
            )
        )


def expected_of(db: Engine, person: Subject) -> dict[str, set[tuple[str, datetime]]]:
    """Per category of the person's erasures, the expected systems and their due times."""
    by_id = {proof.erasure_id: proof.category for proof in proofs_of(db, person)}
    expected: dict[str, set[tuple[str, datetime]]] = {
        category: set() for category in by_id.values()
    }
    with db.connect() as connection:
        for row in connection.execute(select(_EXPECTED).where(_EXPECTED.c.erasure_id.in_(by_id))):
            expected[by_id[row.erasure_id]].add((row.system, row.due_by))
    return expected


def history(person: Subject) -> list:
    """A case closed 37 months ago and a newsletter unsubscribed: two erasures at once."""
    return [
        person.message("collection_case.closed", ago(months=37), {"case_id": "C-1"}),
        person.message("marketing.contact", ago(months=37)),
        person.message("newsletter.unsubscribed", ago(days=1)),
    ]


def test_each_erasure_expects_the_active_systems_holding_its_category_on_both_roads(
    fresh_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = fresh_db
    register(db, "collection", "collection_case", timedelta(days=7))
    register(db, "crm", "collection_case marketing", timedelta(days=1))
    register(db, "newsletter", "marketing", timedelta(hours=12))
    register(db, "archive", "collection_case", timedelta(days=7), active=False)
    register(db, "ledger", "bookkeeping", timedelta(days=7))
    now = datetime.now(UTC)
    by_sql, evaluated = Subject(), Subject()
    erased_in_sql: list[int] = []
    erase = settled_erasure.erase_settled

    def recording(*args, **kwargs):
        batch = erase(*args, **kwargs)
        erased_in_sql.append(batch.erased)
        return batch

    monkeypatch.setattr(settled_erasure, "erase_settled", recording)
    handle_batch(db, RETENTION, history(by_sql), now)
    sweep(db, RETENTION, now, batch_size=50)
    if db.dialect.name == "postgresql":
        assert erased_in_sql == [2]  # the SQL road (SQLite takes the general road only)
    # The general road, also on PostgreSQL: no subject is settled.
    monkeypatch.setattr(
        settled_erasure,
        "erase_settled",
        lambda _c, ids, *_: settled_erasure.SettledBatch(0, ids),
    )
    handle_batch(db, RETENTION, history(evaluated), now)
    sweep(db, RETENTION, now, batch_size=50)

    for person in (by_sql, evaluated):
        assert expected_of(db, person) == {
            "collection_case": {
                ("collection", now + timedelta(days=7)),
                ("crm", now + timedelta(days=1)),
            },
            "marketing": {
                ("crm", now + timedelta(days=1)),
                ("newsletter", now + timedelta(hours=12)),
            },
        }


def test_an_erasure_of_a_category_no_system_holds_expects_none(fresh_db: Engine) -> None:
    register(fresh_db, "ledger", "bookkeeping", timedelta(days=7))
    person = Subject()
    now = datetime.now(UTC)
    handle_batch(fresh_db, RETENTION, history(person), now)
    sweep(fresh_db, RETENTION, now, batch_size=50)
    assert expected_of(fresh_db, person) == {"collection_case": set(), "marketing": set()}


def test_a_confirmation_marks_its_systems_expectation_once(fresh_db: Engine) -> None:
    register(fresh_db, "collection", "collection_case", timedelta(days=7))
    register(fresh_db, "crm", "collection_case", timedelta(days=7))
    person = Subject()
    now = datetime.now(UTC)
    handle_batch(fresh_db, RETENTION, history(person)[:1], now)
    sweep(fresh_db, RETENTION, now, batch_size=50)
    [proof] = proofs_of(fresh_db, person)

    def report(system: str, at: datetime) -> ConfirmationReported:
        return ConfirmationReported(
            event_id=uuid4(),
            erasure_id=proof.erasure_id,
            system=system,
            reported_at=at,
            reported_by="test",
        )

    first, later = now + timedelta(minutes=1), now + timedelta(minutes=2)
    applied = handle_batch(
        fresh_db, RETENTION, [report("crm", first), report("somewhere-else", first)], first
    )
    assert (applied.confirmations, applied.unregistered_confirmations) == (2, 1)
    handle_batch(fresh_db, RETENTION, [report("crm", later)], later)  # a repeat: the first stands
    with fresh_db.connect() as connection:
        confirmed = dict(
            connection.execute(select(_EXPECTED.c.system, _EXPECTED.c.confirmed_at)).all()
        )
    assert confirmed == {"collection": None, "crm": first}


def test_a_command_requested_again_is_published_for_one_system_from_the_proof(
    fresh_db: Engine,
) -> None:
    person = Subject()
    now = datetime.now(UTC)
    handle_batch(fresh_db, RETENTION, history(person)[:1], now)
    sweep(fresh_db, RETENTION, now, batch_size=50)
    [proof] = proofs_of(fresh_db, person)
    request = CommandRequested(
        event_id=uuid4(),
        erasure_id=proof.erasure_id,
        system="crm",
        requested_at=now,
        requested_by="an-admin",
    )
    unknown = request.model_copy(update={"event_id": uuid4(), "erasure_id": uuid4()})

    handle_batch(fresh_db, RETENTION, [request, unknown], now)

    with fresh_db.connect() as connection:
        rows = connection.execute(
            select(_OUTBOX).where(
                _OUTBOX.c.topic == topics.ERASURE_COMMANDS,
                _OUTBOX.c.message_key == proof.subject_hash,  # no pseudonym left to key it by
            )
        ).all()
    [row] = rows  # none for the erasure that was never executed
    command = ErasureCommand.model_validate_json(row.value)
    assert command.erasure_id == proof.erasure_id
    assert (command.system, command.scope) == ("crm", None)
    assert (command.subject_hash, command.clock_hash) == (proof.subject_hash, proof.clock_hash)
    assert (command.category, command.rule, command.due_at) == (
        proof.category,
        proof.rule,
        proof.due_at,
    )
