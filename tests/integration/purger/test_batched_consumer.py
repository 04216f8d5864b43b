"""The consumer applies a batch of many subjects' events at once (their facts read in one query,
their new clocks written in one statement): whatever the history and however it is cut into
batches, interleaved with other subjects' events and redelivered, the clocks it stores are the
engine's verdicts over each subject's whole history."""

import uuid
from typing import Any

from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from services.purger.handlers import handle_batch
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.storage.bulk_insert import COPY_FROM_ROWS
from shared.storage.subject_facts import load_facts_of
from shared.storage.tables.purger import StoredClock
from shared.storage.tables.table import table_of
from tests.histories import NOW, histories
from tests.integration.purger.helpers import RETENTION, Subject

CLOCKS = table_of(StoredClock)
SUBJECTS = 3


def stored(db: Engine, subject: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    with db.connect() as connection:
        rows = connection.execute(select(CLOCKS).where(CLOCKS.c.subject_pseudonym == subject))
        return {
            (row.category, row.scope_key, row.scope_value): (row.state, row.due_at, row.rule)
            for row in rows
        }


def verdicts(subject: str, messages: list[LifecycleMessage]) -> dict[tuple[str, str, str], Any]:
    clocks = RETENTION.evaluate(subject, messages, NOW)
    return {
        (clock.category.value, *(clock.scope or ("", ""))): (
            clock.state.value,
            clock.due_at,
            clock.rule,
        )
        for clock in clocks
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stories=st.lists(histories, min_size=SUBJECTS, max_size=SUBJECTS), data=st.data())
def test_batched_clocks_are_the_engines_verdicts(db: Engine, stories, data) -> None:
    subjects = [f"{uuid.uuid4().hex}{uuid.uuid4().hex}" for _ in stories]
    messages = [
        LifecycleMessage.from_event(event, subject)
        for subject, story in zip(subjects, stories, strict=True)
        for event in story
    ]
    redelivered = data.draw(st.lists(st.sampled_from(messages), max_size=4))
    arriving = data.draw(st.permutations(messages + redelivered))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arriving) - 1), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(arriving)], strict=True):
        handle_batch(db, RETENTION, arriving[start:end], NOW)
    for subject in subjects:
        history = [message for message in messages if message.subject == subject]
        assert stored(db, subject) == verdicts(subject, history)


def test_a_backfill_batch_is_stored_as_its_events_say(db: Engine) -> None:
    """A back-fill's batch (hundreds of subjects, more than ``COPY_FROM_ROWS``: PostgreSQL takes
    its facts, dedupe records and clocks by COPY) stores each subject's verdict and facts, and
    the same batch redelivered is recognised, event by event."""
    subjects = [Subject() for _ in range(2 * COPY_FROM_ROWS)]
    messages = [
        subject.message(
            "collection_case.closed",
            NOW - relativedelta(months=40 if n % 10 == 0 else 3, days=n),
            {"case_id": f"C-{n}"},
            role="debtor",
        )
        for n, subject in enumerate(subjects)
    ]
    applied = handle_batch(db, RETENTION, messages, NOW)
    again = handle_batch(db, RETENTION, messages, NOW)

    assert (applied.new_events, again.new_events) == (len(messages), 0)
    assert applied.erasable_clocks == len(subjects) // 10  # closed 40 months ago: due
    with db.connect() as connection:
        facts = load_facts_of(connection, [subject.pseudonym for subject in subjects])
    for subject, message in zip(subjects, messages, strict=True):
        assert stored(db, subject.pseudonym) == verdicts(subject.pseudonym, [message])
        assert facts[subject.pseudonym] == [message]
