"""The facts the purger keeps of a subject, read back as lifecycle messages.

The purger re-evaluates subjects from them and the API's subject lookup shows what they give:
both read them here, so that the two cannot come to differ in what a subject's facts are.
"""

from collections.abc import Collection

from sqlalchemy import Connection, select

from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.storage.database import one_of
from shared.storage.tables.purger import SubjectFact
from shared.storage.tables.table import table_of

FACTS = table_of(SubjectFact)


def load_facts(connection: Connection, subject: str) -> list[LifecycleMessage]:
    """The facts of one subject (its pseudonym), in no particular order."""
    rows = connection.execute(select(FACTS.c.message).where(FACTS.c.subject_pseudonym == subject))
    return [LifecycleMessage.from_json(message) for (message,) in rows]


def load_facts_of(
    connection: Connection, subjects: Collection[str]
) -> dict[str, list[LifecycleMessage]]:
    """The facts of many subjects, read in one query: a sweep's batch must not cost a query per
    subject."""
    facts: dict[str, list[LifecycleMessage]] = {subject: [] for subject in subjects}
    if subjects:
        rows = connection.execute(
            select(FACTS.c.subject_pseudonym, FACTS.c.message).where(
                one_of(connection, FACTS.c.subject_pseudonym, subjects)
            )
        )
        for subject, message in rows:
            facts[subject].append(LifecycleMessage.from_json(message))
    return facts
