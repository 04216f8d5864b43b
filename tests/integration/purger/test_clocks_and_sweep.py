"""Clocks from lifecycle messages and the sweep that erases them, on PostgreSQL and SQLite."""

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from services.purger import subject_clocks
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import ErasureCommand, ErasureExecuted
from shared.messaging import topics
from shared.storage.database import make_engine
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import (
    RETENTION,
    Subject,
    ago,
    clocks_of,
    facts_of,
    proofs_of,
)

CASE = {"case_id": "C-1"}


def apply(db: Engine, *messages) -> None:
    handle_batch(db, RETENTION, messages, datetime.now(UTC))


def sweep_now(db: Engine) -> None:
    sweep(db, RETENTION, datetime.now(UTC), batch_size=50)


def outbox_of(db: Engine, subject: Subject) -> list:
    table = table_of(OutboxMessage)
    with db.connect() as connection:
        return connection.execute(
            select(table).where(table.c.message_key == subject.pseudonym).order_by(table.c.id)
        ).all()


def test_a_case_closed_37_months_ago_is_erased_leaving_only_a_proof(db: Engine) -> None:
    person = Subject()
    apply(db, person.message("collection_case.closed", ago(months=37), CASE, role="debtor"))
    assert clocks_of(db, person) == {("collection_case", "C-1"): "due"}

    sweep_now(db)

    [proof] = proofs_of(db, person)
    assert (proof.category, proof.rule) == ("collection_case", "collection_case.retention")
    assert clocks_of(db, person) == {}
    assert facts_of(db, person) == 0
    command_row, executed_row = outbox_of(db, person)
    assert (command_row.topic, executed_row.topic) == (topics.ERASURE_COMMANDS, topics.ERASURES)
    command = ErasureCommand.model_validate_json(command_row.value)
    executed = ErasureExecuted.model_validate_json(executed_row.value)
    assert command.erasure_id == executed.erasure_id == proof.erasure_id
    assert command.scope == {"case_id": "C-1"}
    assert json.loads(command_row.headers)["event-type"] == "erasure.command"


def test_a_redelivered_event_does_not_bring_an_erased_clock_back(db: Engine) -> None:
    person = Subject()
    closed = person.message("collection_case.closed", ago(months=37), CASE)
    apply(db, closed)
    sweep_now(db)
    apply(db, closed)  # the broker delivers it again
    sweep_now(db)
    assert clocks_of(db, person) == {}
    assert len(proofs_of(db, person)) == 1  # erased once


def test_an_event_delivered_again_before_its_clock_falls_due_is_stored_once(db: Engine) -> None:
    person = Subject()
    closed = person.message("collection_case.closed", ago(months=35), CASE)
    reopened = person.message("collection_case.reopened", ago(months=1), CASE)
    apply(db, closed, closed)  # twice in one batch
    apply(db, reopened)
    apply(db, closed)  # and again after a later event
    assert facts_of(db, person) == 2
    assert clocks_of(db, person) == {("collection_case", "C-1"): "cancelled"}


def test_a_clock_not_yet_due_waits(db: Engine) -> None:
    person = Subject()
    apply(db, person.message("collection_case.closed", ago(months=35), CASE))
    sweep_now(db)
    assert clocks_of(db, person) == {("collection_case", "C-1"): "pending"}
    assert proofs_of(db, person) == []


def test_a_hold_placed_before_the_sweep_stops_the_erasure_until_released(db: Engine) -> None:
    person = Subject()
    apply(db, person.message("collection_case.closed", ago(months=37), CASE))
    assert clocks_of(db, person) == {("collection_case", "C-1"): "due"}
    apply(db, person.message("legal_hold.placed", ago(days=1), data={"hold_id": "H-1"}))

    sweep_now(db)
    assert clocks_of(db, person) == {("collection_case", "C-1"): "held"}
    assert proofs_of(db, person) == []

    apply(db, person.message("legal_hold.released", ago(hours=1), data={"hold_id": "H-1"}))
    sweep_now(db)
    assert len(proofs_of(db, person)) == 1
    assert facts_of(db, person) == 0  # the hold's events went with the last clock


def test_a_standing_hold_outlives_an_erasure_and_holds_a_case_back_filled_later(
    db: Engine,
) -> None:
    person = Subject()
    apply(
        db,
        person.message("marketing.contact", ago(years=4)),
        person.message("legal_hold.placed", ago(days=2), data={"hold_id": "H-9", "case_id": "C-9"}),
    )
    sweep_now(db)  # the marketing clock goes; the hold does not
    assert len(proofs_of(db, person)) == 1
    assert facts_of(db, person) == 1

    apply(db, person.message("collection_case.closed", ago(years=4), {"case_id": "C-9"}))
    sweep_now(db)
    assert clocks_of(db, person) == {("collection_case", "C-9"): "held"}
    assert len(proofs_of(db, person)) == 1


def test_a_hold_released_after_the_last_clock_went_leaves_nothing_behind(db: Engine) -> None:
    person = Subject()
    apply(
        db,
        person.message("marketing.contact", ago(years=4)),
        person.message("legal_hold.placed", ago(days=2), data={"hold_id": "H-9", "case_id": "C-9"}),
    )
    sweep_now(db)
    assert clocks_of(db, person) == {}
    assert facts_of(db, person) == 1  # the standing hold
    apply(db, person.message("legal_hold.released", ago(days=1), data={"hold_id": "H-9"}))
    assert clocks_of(db, person) == {}
    assert facts_of(db, person) == 0


def test_a_late_event_about_erased_data_neither_erases_it_again_nor_keeps_it(
    db: Engine,
) -> None:
    person = Subject()
    apply(
        db,
        person.message("marketing.contact", ago(months=12)),
        person.message("newsletter.unsubscribed", ago(days=1)),
        person.message("collection_case.closed", ago(years=4), {"case_id": "C-9"}),
    )
    sweep_now(db)
    assert len(proofs_of(db, person)) == 2
    apply(
        db,
        person.message("marketing.contact", ago(months=6)),  # before the unsubscribe
        person.message("collection_case.reopened", ago(years=5), {"case_id": "C-9"}),
    )
    sweep_now(db)
    assert clocks_of(db, person) == {}
    assert facts_of(db, person) == 0
    assert len(proofs_of(db, person)) == 2

    # Data that comes after an erasure is new data, with a clock of its own.
    apply(db, person.message("marketing.contact", ago(hours=1)))
    assert clocks_of(db, person) == {("marketing", ""): "pending"}


def test_an_event_for_every_clock_of_a_category_is_kept_beside_a_late_one_about_erased_data(
    db: Engine,
) -> None:
    person = Subject()
    k1, k2 = {"client_id": "K-1"}, {"client_id": "K-2"}
    apply(
        db,
        person.message("customer_relationship.ended", ago(months=40), k1),
        person.message("customer_relationship.settled", ago(months=39), k1),
        person.message("customer_relationship.ended", ago(months=6), k2),
        person.message("customer_relationship.settled", ago(months=5), k2),
    )
    sweep_now(db)
    assert clocks_of(db, person) == {("customer_relationship", "K-2"): "pending"}
    apply(
        db,
        person.message("customer_relationship.settled", ago(months=38), k1),  # late, erased
        person.message("data.outdated", ago(months=4), data={"category": "customer_relationship"}),
    )
    assert clocks_of(db, person) == {("customer_relationship", "K-2"): "due"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "arriving", ["legal_hold.placed", "collection_case.closed"], ids=["hold", "late-close"]
)
def test_on_sqlite_an_event_that_comes_while_the_sweep_works_waits_for_it(
    db: Engine, migrated_url: str, monkeypatch: pytest.MonkeyPatch, arriving: str
) -> None:
    """SQLite locks no rows: the sweep holds the database's write lock from its start, so a
    consumer commits nothing between what the sweep read and what it writes. (PostgreSQL:
    test_settled_erasure.py.)"""
    person = Subject()
    closed = ago(months=37)
    apply(db, person.message("collection_case.closed", closed, CASE))
    if arriving == "legal_hold.placed":
        event = person.message(arriving, ago(hours=1), data={"hold_id": "H-7"})
    else:  # the same case closed a day earlier, sent late: it changes no clock
        event = person.message(arriving, closed - timedelta(days=1), CASE)
    facts_of_subjects = subject_clocks.load_facts_of
    consumer_db = make_engine(migrated_url)
    consumer = ThreadPoolExecutor(max_workers=1)
    applying: list[Future] = []

    def facts_read_then_an_event_arrives(connection, subjects):
        facts = facts_of_subjects(connection, subjects)
        if not applying:
            applying.append(consumer.submit(apply, consumer_db, event))
            time.sleep(0.5)  # time enough to apply it, were it not made to wait
            assert not applying[0].done()
        return facts

    monkeypatch.setattr(subject_clocks, "load_facts_of", facts_read_then_an_event_arrives)
    try:
        sweep_now(db)
        applying[0].result(timeout=30)
    finally:
        consumer.shutdown()
        consumer_db.dispose()
    # Erased: the event came after the sweep had reached the clock.
    assert clocks_of(db, person) == {}
    assert len(proofs_of(db, person)) == 1
    # A hold still stands for data back-filled later; a late close about erased data is not kept.
    assert facts_of(db, person) == (1 if arriving == "legal_hold.placed" else 0)


def test_a_release_read_before_its_placement_still_releases_the_hold(db: Engine) -> None:
    person = Subject()
    apply(db, person.message("legal_hold.released", ago(days=1), data={"hold_id": "H-3"}))
    apply(db, person.message("legal_hold.placed", ago(days=2), data={"hold_id": "H-3"}))
    apply(db, person.message("collection_case.closed", ago(months=37), CASE))
    assert clocks_of(db, person) == {("collection_case", "C-1"): "due"}


def test_a_reopened_case_is_not_erased(db: Engine) -> None:
    person = Subject()
    apply(
        db,
        person.message("collection_case.closed", ago(months=40), CASE),
        person.message("collection_case.reopened", ago(months=38), CASE),
    )
    sweep_now(db)
    assert clocks_of(db, person) == {("collection_case", "C-1"): "cancelled"}
    assert proofs_of(db, person) == []


def test_erasing_one_clock_keeps_what_the_others_need(db: Engine) -> None:
    person = Subject()
    apply(
        db,
        person.message("collection_case.closed", ago(months=37), {"case_id": "C-1"}),
        person.message("collection_case.closed", ago(months=2), {"case_id": "C-2"}),
    )
    sweep_now(db)
    assert clocks_of(db, person) == {("collection_case", "C-2"): "pending"}
    assert facts_of(db, person) == 1
    assert len(proofs_of(db, person)) == 1


def test_an_unsubscribe_erases_marketing_data_at_the_next_sweep(db: Engine) -> None:
    person = Subject()
    apply(
        db,
        person.message("marketing.contact", ago(months=2), role="newsletter_recipient"),
        person.message("newsletter.unsubscribed", ago(minutes=1), role="newsletter_recipient"),
    )
    assert clocks_of(db, person) == {("marketing", ""): "erase_now"}
    sweep_now(db)
    [proof] = proofs_of(db, person)
    assert (proof.category, proof.rule) == ("marketing", "marketing.immediate")
