"""Lifecycle messages as the purger receives them, for a fresh subject per test."""

import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, func, select

from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.domain.policy import load_default_policy
from shared.domain.policy.loader import DEFAULT_POLICY_RESOURCE
from shared.domain.policy.model import Review
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.storage.tables.purger import ErasureProof, StoredClock, SubjectFact
from shared.storage.tables.table import table_of
from tests.builders import event

RETENTION = RetentionEngine(load_default_policy())


def retention_with(**reviews: Review) -> RetentionEngine:
    """The default policy with these categories' review limits, and none for the others."""
    policy = load_default_policy()
    categories = {
        category: rules.model_copy(update={"review": reviews.get(category.value, Review())})
        for category, rules in policy.categories.items()
    }
    return RetentionEngine(policy.model_copy(update={"categories": categories}))


#: The default policy's collection-case period and review limit, as its file writes them.
CASE_RULE = "retention: {months: 36}\n    triggers: [collection_case.closed]"
CASE_REVIEW = "    review: {max_per_day: 10000}\n\n  customer_relationship:"


def policy_with_case_period(months: int, max_per_day: int | None = None) -> str:
    """The default policy file with collection-case data kept ``months`` instead of 36 (and, if
    given, at most ``max_per_day`` of its erasures a day instead of 10000): the policy change a
    refresh, a diff or a review of the purger's clocks is tested with."""
    text = (
        resources.files("shared.domain.policy").joinpath(DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    )
    assert text.count(CASE_RULE) == 1
    text = text.replace(CASE_RULE, CASE_RULE.replace("36", str(months)))
    if max_per_day is None:
        return text
    assert text.count(CASE_REVIEW) == 1
    return text.replace(CASE_REVIEW, CASE_REVIEW.replace("10000", str(max_per_day)))


PSEUDONYMISER = Pseudonymiser(b"purger-test-secret-purger-test-secret")


class Subject:
    """A person no other test knows, and the messages about them."""

    def __init__(self) -> None:
        self.identity = {"ref": f"crm:{uuid.uuid4().hex}"}
        self.pseudonym = PSEUDONYMISER.pseudonym("ref", self.identity["ref"])

    def message(
        self,
        event_type: str,
        occurred_at: datetime,
        scope: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> LifecycleMessage:
        built = event(
            event_type, occurred_at.isoformat(), scope, data, subject=self.identity, **fields
        )
        return LifecycleMessage.from_event(built, self.pseudonym)


def ago(**period: int) -> datetime:
    return datetime.now(UTC) - relativedelta(**period)


def clocks_of(db: Engine, subject: Subject) -> dict[tuple[str, str], str]:
    """``(category, scope value) -> state`` of the subject's stored clocks."""
    table = table_of(StoredClock)
    with db.connect() as connection:
        rows = connection.execute(
            select(table.c.category, table.c.scope_value, table.c.state).where(
                table.c.subject_pseudonym == subject.pseudonym
            )
        )
        return {(row.category, row.scope_value): row.state for row in rows}


def facts_of(db: Engine, subject: Subject) -> int:
    table = table_of(SubjectFact)
    with db.connect() as connection:
        return connection.execute(
            select(func.count()).where(table.c.subject_pseudonym == subject.pseudonym)
        ).scalar_one()


def proofs_of(db: Engine, subject: Subject) -> list[Any]:
    table = table_of(ErasureProof)
    with db.connect() as connection:
        return connection.execute(
            select(table).where(table.c.subject_hash == subject_hash(subject.pseudonym))
        ).all()


def utc_at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
