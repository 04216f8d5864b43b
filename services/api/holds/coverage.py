"""From what a hold covers to the ``legal_hold.placed`` events that place it: one per subject and
engine hold id, in the events the engine already understands.

The engine knows holds per subject: a hold id placed on a subject covers all of its data, or one
case, or one category, and its latest placement says which. So:

- a subject's hold is one placement (narrowed to a category if one is given);
- cases are placed per subject on each of its cases: under the hold's own id where the subject
  has one of them, else under ``<hold>~<case>`` per case (one id can cover one case only);
- a category is placed, narrowed to it, on every subject with a clock of the category now;
- a client is placed on every subject with a clock kept for that client now, narrowed to the
  category of those clocks (``<hold>~<category>`` per category where there are several). The
  engine cannot narrow a hold to a client: a subject's clocks of the same category for another
  client are held too (when in doubt, keep).

Without a subject, the subjects are those the purger holds clocks of when the hold is placed
(``retention_clock``, which the API reads): data of other subjects that arrives later is not held.
"""

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, select

from services.api.holds.schemas import Covers, HoldCoverage
from shared.domain.contract.vocabulary import PLACEMENT_SEPARATOR, Category
from shared.storage.database import one_of
from shared.storage.tables.purger import StoredClock
from shared.storage.tables.table import table_of

_CLOCKS = table_of(StoredClock)


@dataclass(frozen=True, slots=True)
class Placement:
    """One ``legal_hold.placed`` event: on this subject, under this engine hold id."""

    subject: str
    hold_id: str
    case_id: str | None = None
    category: Category | None = None


class NothingToHold(Exception):
    """Gallring holds no clock the coverage reaches; the message says what to do."""


class UnknownCases(Exception):
    def __init__(self, case_ids: list[str]) -> None:
        super().__init__(case_ids)
        self.case_ids = case_ids


def placements(
    connection: Connection, hold_id: str, covers: Covers, subject: str | None
) -> list[Placement]:
    """The placements of ``hold_id`` over ``covers``; ``subject``: its pseudonym, if it names one.

    Raises :class:`UnknownCases` for cases (without a subject) no subject has a clock of, and
    :class:`NothingToHold` for a category or client no clock is kept for."""
    kind = covers.kind
    if kind is HoldCoverage.SUBJECT:
        assert subject is not None
        return [Placement(subject, hold_id)]
    if kind is HoldCoverage.SUBJECT_CATEGORY:
        assert subject is not None
        return [Placement(subject, hold_id, category=covers.category)]
    if kind is HoldCoverage.SUBJECT_CASES:
        assert subject is not None and covers.case_ids is not None
        return _on_cases(hold_id, {subject: sorted(set(covers.case_ids))})
    if kind is HoldCoverage.CASES:
        assert covers.case_ids is not None
        return _on_cases(hold_id, _subjects_of_cases(connection, covers.case_ids))
    if kind is HoldCoverage.CATEGORY:
        assert covers.category is not None
        found = _subjects_of_category(connection, covers.category)
        if not found:
            raise NothingToHold(
                f"Gallring keeps no clock of {covers.category} now: there is nothing to hold"
            )
        return [Placement(each, hold_id, category=covers.category) for each in found]
    assert kind is HoldCoverage.CLIENT and covers.client_id is not None
    by_subject = _categories_of_client(connection, covers.client_id)
    if not by_subject:
        raise NothingToHold(
            f"Gallring keeps no clock for client {covers.client_id} now: there is nothing to hold"
        )
    return [
        Placement(each, _placement_id(hold_id, category, len(categories)), category=category)
        for each, categories in sorted(by_subject.items())
        for category in categories
    ]


def _on_cases(hold_id: str, cases: dict[str, list[str]]) -> list[Placement]:
    return [
        Placement(subject, _placement_id(hold_id, case_id, len(case_ids)), case_id=case_id)
        for subject, case_ids in sorted(cases.items())
        for case_id in case_ids
    ]


def _placement_id(hold_id: str, part: str, parts: int) -> str:
    """The hold's own id where a subject has one placement of it, else one per part."""
    return hold_id if parts == 1 else f"{hold_id}{PLACEMENT_SEPARATOR}{part}"


def _subjects_of_cases(connection: Connection, case_ids: list[str]) -> dict[str, list[str]]:
    rows = connection.execute(
        select(_CLOCKS.c.subject_pseudonym, _CLOCKS.c.scope_value)
        .where(
            _CLOCKS.c.scope_key == "case_id",
            one_of(connection, _CLOCKS.c.scope_value, sorted(set(case_ids))),
        )
        .distinct()
    )
    cases: dict[str, set[str]] = defaultdict(set)
    for subject, case_id in rows:
        cases[subject].add(case_id)
    unknown = sorted(set(case_ids) - {c for found in cases.values() for c in found})
    if unknown:
        raise UnknownCases(unknown)
    return {subject: sorted(found) for subject, found in cases.items()}


def _subjects_of_category(connection: Connection, category: Category) -> list[str]:
    rows = connection.execute(
        select(_CLOCKS.c.subject_pseudonym)
        .where(_CLOCKS.c.category == category.value)
        .distinct()
        .order_by(_CLOCKS.c.subject_pseudonym)
    )
    return list(rows.scalars())


def _categories_of_client(connection: Connection, client_id: str) -> dict[str, list[Category]]:
    rows = connection.execute(
        select(_CLOCKS.c.subject_pseudonym, _CLOCKS.c.category)
        .where(_CLOCKS.c.scope_key == "client_id", _CLOCKS.c.scope_value == client_id)
        .distinct()
    )
    categories: dict[str, set[Category]] = defaultdict(set)
    for subject, category in rows:
        categories[subject].add(Category(category))
    return {subject: sorted(found) for subject, found in categories.items()}
