"""Which holds stand over which subjects and clocks now, read from what the purger keeps: the
``legal_hold.*`` facts of ``subject_fact`` and the clocks of ``retention_clock`` (the API reads
them, never writes them).

This is how the register knows the holds upstream systems place with events of their own: no
table of the API records them, the purger's facts do (it keeps a standing hold's events until its
release, even past the erasure of everything else of the subject). And how it knows what any hold
covers now, as the engine decides it (``shared.domain.engine.holds``), without evaluating
subjects again: a held clock is stored ``held``, and the subject's hold facts say by which holds.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, select

from shared.domain.contract.events import LEGAL_HOLD_PLACED
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.vocabulary import PLACEMENT_SEPARATOR, Category
from shared.domain.engine.holds import Holds
from shared.domain.pseudonym import subject_hash
from shared.storage.database import one_of
from shared.storage.tables.purger import HOLD_FACTS, StoredClock, SubjectFact
from shared.storage.tables.table import table_of

_FACTS = table_of(SubjectFact)
_CLOCKS = table_of(StoredClock)
_HELD = "held"
_CHUNK = 10_000


def belongs(placement: str, hold_id: str) -> bool:
    """Whether the engine's hold id ``placement`` is the hold ``hold_id``: its own id, or one of
    the register's placements of it on several cases or categories of a subject (``<hold>~…``).
    Unambiguous: no upstream hold id holds the separator (the intake refuses it)."""
    return placement == hold_id or placement.startswith(hold_id + PLACEMENT_SEPARATOR)


def hold_of(placement: str, registered: Collection[str]) -> str:
    """The hold an engine's hold id is part of: a registered hold's, or its own."""
    base, separator, _ = placement.partition(PLACEMENT_SEPARATOR)
    return base if separator and base in registered else placement


@dataclass(frozen=True, slots=True)
class Covered:
    """A clock a hold covers now."""

    subject: str
    category: Category
    scope: dict[str, str]
    due_at: datetime | None
    also_held_by: list[str]

    @property
    def subject_hash(self) -> str:
        return subject_hash(self.subject)


def subjects_of(connection: Connection, hold_id: str, *, exact: bool = False) -> set[str]:
    """The subjects with a hold fact of ``hold_id`` or one of its placements (``exact``: of
    ``hold_id`` itself only)."""
    pattern = f"%{_escaped(hold_id)}%"  # finds candidates; their data says which are
    rows = connection.execute(
        select(_FACTS.c.subject_pseudonym, _FACTS.c.message).where(
            HOLD_FACTS, _FACTS.c.message.like(pattern, escape="\\")
        )
    )
    found = set()
    for subject, message in rows:
        placement = _hold_id_in(message)
        if placement == hold_id or (not exact and belongs(placement, hold_id)):
            found.add(subject)
    return found


def holds_of(
    connection: Connection, subjects: Collection[str], now: datetime | None
) -> dict[str, Holds]:
    """Each subject's holds as the engine sees them at ``now`` (None: once every fact known has
    happened), from all its hold facts."""
    holds: dict[str, Holds] = {}
    for subject, fact in _facts_of(connection, subjects):
        # As the engine: what has not happened yet is left out.
        if now is None or fact.occurred_at <= now:
            holds.setdefault(subject, Holds()).add(fact)
    return holds


def placed_on(connection: Connection, hold_id: str, now: datetime | None) -> dict[str, datetime]:
    """The subjects a placement of exactly ``hold_id`` stands over at ``now`` (None: once every
    fact known has happened, an upstream event dated ahead too), each with the time of its
    latest placement there (a release must come after it: at equal times the placement wins)."""
    holds: dict[str, Holds] = {}
    placed: dict[str, datetime] = {}
    for subject, fact in _facts_of(connection, subjects_of(connection, hold_id, exact=True)):
        if now is not None and fact.occurred_at > now:
            continue
        holds.setdefault(subject, Holds()).add(fact)
        if fact.type == LEGAL_HOLD_PLACED and fact.data.hold_id == hold_id:
            placed[subject] = max(fact.occurred_at, placed.get(subject, fact.occurred_at))
    return {
        subject: placed[subject]
        for subject, subject_holds in holds.items()
        if hold_id in subject_holds.standing()
    }


def upstream_holds(
    connection: Connection, registered: Collection[str], now: datetime
) -> dict[str, int]:
    """The holds that stand now that the register does not know (upstream systems placed them
    by events), each with the number of subjects it stands over."""
    by_subject: dict[str, list[str]] = defaultdict(list)
    for subject, message in connection.execute(
        select(_FACTS.c.subject_pseudonym, _FACTS.c.message).where(HOLD_FACTS)
    ):
        # The register's own holds are left out before their facts are parsed: they may be many.
        if hold_of(_hold_id_in(message), registered) not in registered:
            by_subject[subject].append(message)
    subjects: dict[str, int] = defaultdict(int)
    for messages in by_subject.values():
        holds = Holds()
        for fact in map(LifecycleMessage.from_json, messages):
            if fact.occurred_at <= now:
                holds.add(fact)
        for hold_id in {hold_of(placement, registered) for placement in holds.standing()}:
            subjects[hold_id] += 1
    return dict(subjects)


def covered(
    connection: Connection, hold_id: str, subjects: Iterable[str], now: datetime
) -> list[Covered]:
    """The clocks ``hold_id`` covers now, among ``subjects``' held clocks, by due time."""
    wanted = set(subjects) | subjects_of(connection, hold_id)
    holds = holds_of(connection, wanted, now)
    found = []
    for some in _chunks(holds):
        rows = connection.execute(
            select(
                _CLOCKS.c.subject_pseudonym,
                _CLOCKS.c.category,
                _CLOCKS.c.scope_key,
                _CLOCKS.c.scope_value,
                _CLOCKS.c.due_at,
            ).where(_CLOCKS.c.state == _HELD, one_of(connection, _CLOCKS.c.subject_pseudonym, some))
        )
        for subject, category_name, scope_key, scope_value, due_at in rows:
            category = Category(category_name)
            scope = (scope_key, scope_value) if scope_key else None
            standing = holds[subject].covering(category, scope)
            if any(belongs(hold.hold_id, hold_id) for hold in standing):
                others = sorted({h.hold_id for h in standing if not belongs(h.hold_id, hold_id)})
                scope_dict = {scope_key: scope_value} if scope_key else {}
                found.append(Covered(subject, category, scope_dict, due_at, others))
    return sorted(found, key=_by_due_time)


def _facts_of(
    connection: Connection, subjects: Collection[str]
) -> Iterator[tuple[str, LifecycleMessage]]:
    """The hold facts of ``subjects``."""
    for some in _chunks(subjects):
        rows = connection.execute(
            select(_FACTS.c.subject_pseudonym, _FACTS.c.message).where(
                HOLD_FACTS, one_of(connection, _FACTS.c.subject_pseudonym, some)
            )
        )
        for subject, message in rows:
            yield subject, LifecycleMessage.from_json(message)


def _chunks(subjects: Collection[str]) -> Iterator[list[str]]:
    """``subjects`` in lists a query's ``IN`` takes on SQLite too (a category's hold may stand
    over a great many)."""
    listed = list(subjects)
    for start in range(0, len(listed), _CHUNK):
        yield listed[start : start + _CHUNK]


def _by_due_time(clock: Covered) -> tuple[bool, datetime | None, str, str]:
    return (clock.due_at is None, clock.due_at, clock.category, clock.subject_hash)


def _hold_id_in(message: str) -> str:
    """A hold fact's ``data.hold_id``, read without validating the whole message."""
    hold_id: str = orjson.loads(message)["data"]["hold_id"]
    return hold_id


def _escaped(text: str) -> str:
    """``text`` for a LIKE pattern: its ``%``, ``_`` and ``\\`` taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
