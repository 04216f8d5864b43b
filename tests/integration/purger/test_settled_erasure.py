"""The sweep's two roads: settled subjects erased by one SQL statement on PostgreSQL, every other
subject evaluated again from its facts. Both must leave the same proofs and messages, and a
stored verdict is trusted only when nothing can have changed it."""

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Event, Thread, current_thread

import pytest
from sqlalchemy import Engine, select, update

from services.purger import settled_erasure, subject_clocks
from services.purger.handlers import handle_batch
from services.purger.subject_clocks import key_hash
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import ErasureCommand, ErasureExecuted
from shared.domain.pseudonym import subject_hash
from shared.messaging import topics
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import HOLD_FACTS, SWEPT, StoredClock
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
_CLOCKS = table_of(StoredClock)
_OUTBOX = table_of(OutboxMessage)


@pytest.fixture
def unsettled_ids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The clocks the SQL road left to the general road (it still does its work)."""
    left: list[int] = []
    erase = settled_erasure.erase_settled

    def recording(*args, **kwargs):
        batch = erase(*args, **kwargs)
        left.extend(batch.unsettled_ids)
        return batch

    monkeypatch.setattr(settled_erasure, "erase_settled", recording)
    return left


def clock_ids(db: Engine, person: Subject) -> set[int]:
    with db.connect() as connection:
        query = select(_CLOCKS.c.id).where(_CLOCKS.c.subject_pseudonym == person.pseudonym)
        return set(connection.execute(query).scalars())


def history(person: Subject, closed: datetime, unsubscribed: datetime) -> list:
    """A case closed and a newsletter unsubscribed: a scoped clock and a subject-wide one."""
    return [
        person.message("collection_case.closed", closed, {"case_id": "C-1"}, role="debtor"),
        person.message("marketing.contact", closed),
        person.message("newsletter.unsubscribed", unsubscribed),
    ]


def published(db: Engine, person: Subject) -> list:
    with db.connect() as connection:
        return connection.execute(
            select(_OUTBOX).where(_OUTBOX.c.message_key == person.pseudonym).order_by(_OUTBOX.c.id)
        ).all()


def what_was_said(rows: list) -> list[tuple]:
    """The messages' content, less the ids every erasure has its own of."""
    said = []
    for row in rows:
        model = ErasureCommand if row.topic == topics.ERASURE_COMMANDS else ErasureExecuted
        message = model.model_validate_json(row.value)
        headers = json.loads(row.headers)
        assert headers == {
            topics.HEADER_EVENT_TYPE: message.type,
            topics.HEADER_SCHEMA_VERSION: "1",
            topics.HEADER_EVENT_ID: str(message.event_id),
        }
        assert row.event_id == message.event_id
        # The ids are every erasure's own, the hashes every subject's own (compared with the
        # proofs' by the caller).
        content = message.model_dump(
            exclude={"event_id", "erasure_id", "subject_hash", "clock_hash"}
        )
        said.append((row.topic, sorted(content.items(), key=str)))
    return sorted(said, key=str)


def test_both_roads_leave_the_same_proofs_and_messages(
    db: Engine, unsettled_ids: list[int]
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite takes the general road only")
    closed, unsubscribed = ago(months=37), ago(days=1)
    by_sql, evaluated = Subject(), Subject()
    now = datetime.now(UTC)
    handle_batch(db, RETENTION, history(by_sql, closed, unsubscribed), now)
    handle_batch(db, RETENTION, history(evaluated, closed, unsubscribed), now)
    with db.begin() as connection:  # as stored by a release before policy digests
        connection.execute(
            update(_CLOCKS)
            .where(_CLOCKS.c.subject_pseudonym == evaluated.pseudonym)
            .values(policy_digest=None)
        )

    roads = {person: clock_ids(db, person) for person in (by_sql, evaluated)}

    sweep(db, RETENTION, now, batch_size=50)

    assert roads[by_sql].isdisjoint(unsettled_ids)
    assert roads[evaluated] <= set(unsettled_ids)
    for person in (by_sql, evaluated):
        assert clocks_of(db, person) == {}
        assert facts_of(db, person) == 0
        proofs = proofs_of(db, person)
        assert {proof.clock_hash for proof in proofs} == {
            key_hash(person.pseudonym, ("collection_case", "case_id", "C-1")),
            key_hash(person.pseudonym, ("marketing", "", "")),
        }
        assert {proof.subject_hash for proof in proofs} == {subject_hash(person.pseudonym)}
        rows = published(db, person)
        assert len({row.event_id for row in rows}) == len(rows) == 4
        # Each erasure's command goes out before its executed event.
        topics_by_erasure: dict[str, list[str]] = {}
        for row in rows:
            topics_by_erasure.setdefault(json.loads(row.value)["erasure_id"], []).append(row.topic)
        assert set(topics_by_erasure) == {str(proof.erasure_id) for proof in proofs}
        assert all(
            t == [topics.ERASURE_COMMANDS, topics.ERASURES] for t in topics_by_erasure.values()
        )
        # Every command carries its proof's hashes, by which a system finds the rows again.
        commands = [
            ErasureCommand.model_validate_json(row.value)
            for row in rows
            if row.topic == topics.ERASURE_COMMANDS
        ]
        assert {(c.erasure_id, c.subject_hash, c.clock_hash, c.system) for c in commands} == {
            (p.erasure_id, p.subject_hash, p.clock_hash, None) for p in proofs
        }
    assert what_was_said(published(db, by_sql)) == what_was_said(published(db, evaluated))
    proof_content = [
        sorted(
            (p.category, p.rule, p.legal_basis, p.due_at, p.executed_at)
            for p in proofs_of(db, person)
        )
        for person in (by_sql, evaluated)
    ]
    assert proof_content[0] == proof_content[1]


def test_a_verdict_reached_under_another_policy_is_reached_again(db: Engine) -> None:
    person = Subject()
    handle_batch(
        db,
        RETENTION,
        [person.message("collection_case.closed", ago(months=35), {"case_id": "C-1"})],
        datetime.now(UTC),
    )
    with db.begin() as connection:  # what an older policy, with a shorter period, said
        connection.execute(
            update(_CLOCKS)
            .where(_CLOCKS.c.subject_pseudonym == person.pseudonym)
            .values(state="due", due_at=ago(days=1), policy_digest="an older policy")
        )

    sweep(db, RETENTION, datetime.now(UTC), batch_size=50)

    assert clocks_of(db, person) == {("collection_case", "C-1"): "pending"}
    assert proofs_of(db, person) == []


def test_an_event_that_lay_in_the_future_counts_once_its_time_has_come(db: Engine) -> None:
    person = Subject()
    now = datetime.now(UTC)
    reopened = now + timedelta(minutes=2)  # senders' clocks run a little ahead
    handle_batch(
        db,
        RETENTION,
        [
            person.message("collection_case.closed", ago(months=37), {"case_id": "C-1"}),
            person.message("collection_case.reopened", reopened, {"case_id": "C-1"}),
        ],
        now,
    )
    assert clocks_of(db, person) == {("collection_case", "C-1"): "due"}  # not reopened yet

    sweep(db, RETENTION, reopened + timedelta(minutes=1), batch_size=50)

    assert clocks_of(db, person) == {("collection_case", "C-1"): "cancelled"}
    assert proofs_of(db, person) == []


def test_the_statement_writes_the_partial_indexes_predicates_as_they_are_declared() -> None:
    # Else PostgreSQL cannot prove a partial index applies, and scans the table instead.
    assert SWEPT.text in settled_erasure._LOCK_DUE.text
    assert HOLD_FACTS.text in settled_erasure._ERASE.text


def test_an_event_that_comes_while_the_sweep_holds_the_subject_waits_and_then_sees_the_erasure(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    person = Subject()
    closed = ago(months=37)
    handle_batch(
        db, RETENTION, [person.message("collection_case.closed", closed, CASE)], datetime.now(UTC)
    )
    # Sent late: the same case closed a day earlier. It changes no clock.
    late = person.message("collection_case.closed", closed - timedelta(days=1), CASE)
    consumer = ThreadPoolExecutor(max_workers=1)
    applying: list[Future] = []
    lock_due = settled_erasure.lock_due

    def lock_then_let_the_consumer_in(*args, **kwargs):
        locked = lock_due(*args, **kwargs)
        if applying:  # once
            return locked
        applying.append(consumer.submit(handle_batch, db, RETENTION, [late], datetime.now(UTC)))
        time.sleep(0.5)  # time enough to store the event, were it not made to wait
        return locked

    monkeypatch.setattr(settled_erasure, "lock_due", lock_then_let_the_consumer_in)
    sweep(db, RETENTION, datetime.now(UTC), batch_size=50)
    applying[0].result(timeout=10)
    consumer.shutdown()

    assert (clocks_of(db, person), facts_of(db, person), len(proofs_of(db, person))) == (
        {},
        0,  # the late event about erased data is not kept
        1,
    )
    # Nor does a later event bring the erased case back through it.
    handle_batch(
        db, RETENTION, [person.message("marketing.contact", ago(hours=1))], datetime.now(UTC)
    )
    sweep(db, RETENTION, datetime.now(UTC), batch_size=50)
    assert clocks_of(db, person) == {("marketing", ""): "pending"}
    assert len(proofs_of(db, person)) == 1


def test_two_consumers_of_one_subject_take_turns_even_before_it_has_clocks(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when partitions are added and a subject's events come from two of them for a while:
    the second consumer waits for the first, so it sees the clock the first one made (and would
    wait for a sweep erasing it, as for any consumer of a subject with clocks)."""
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    person = Subject()
    closed = ago(months=37)
    first = person.message("collection_case.closed", closed, CASE)
    late = person.message("collection_case.closed", closed - timedelta(days=1), CASE)
    stored, go_on, second_reads_facts = Event(), Event(), Event()
    store, load_facts = subject_clocks.store, subject_clocks.load_facts

    def storing_then_pausing(*args, **kwargs):
        changed = store(*args, **kwargs)
        if current_thread().name == "first":
            stored.set()
            go_on.wait(10)
        return changed

    def signalling(*args, **kwargs):
        if current_thread().name == "second":
            second_reads_facts.set()
        return load_facts(*args, **kwargs)

    monkeypatch.setattr(subject_clocks, "store", storing_then_pausing)
    monkeypatch.setattr(subject_clocks, "load_facts", signalling)
    consumers = [
        Thread(name=name, target=handle_batch, args=(db, RETENTION, [message], ago(seconds=0)))
        for name, message in (("first", first), ("second", late))
    ]
    consumers[0].start()
    try:
        assert stored.wait(10)  # the first has made the subject's clock and not committed
        consumers[1].start()
        assert not second_reads_facts.wait(1)  # the second waits for the first
    finally:
        go_on.set()
        for consumer in consumers:
            if consumer.ident is not None:  # started
                consumer.join(10)
    assert not any(consumer.is_alive() for consumer in consumers)

    assert clocks_of(db, person) == {("collection_case", "C-1"): "due"}
    assert facts_of(db, person) == 2
    sweep(db, RETENTION, datetime.now(UTC), batch_size=50)
    assert (clocks_of(db, person), facts_of(db, person), len(proofs_of(db, person))) == ({}, 0, 1)
