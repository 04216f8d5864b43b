"""Bringing stored verdicts up to the policy running now.

A clock's due time was reached under the policy and engine revision that stored it (its
``policy_digest``). When the policy file changes (a period shortened, say) or a release raises
``ENGINE_REVISION``, the stored due times no longer say what the privacy notice now promises: a
clock the new policy makes due sooner would wait for its old due time, and data would be kept too
long. The sweep re-evaluates only clocks that are due already.

So the purger re-evaluates, from their facts, every subject with a clock reached under another
digest: when it starts, and again every :data:`REFRESH_EVERY_SECONDS`, which also catches what
purgers of the old policy stored during a rolling deploy. Candidates are read without locks;
each batch is then locked as the consumer locks subjects, and only subjects still stale are
evaluated, so that consuming and sweeping go on meanwhile and purgers running at once do not
evaluate a subject twice.

Not covered: verdicts without a digest (one of the subject's events lay in the future), which
wait for the subject's next event or due time as before, and subjects that have facts but no
clocks, which a new policy could give some only through their next event.
"""

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from services.purger import subject_clocks
from shared.domain.engine import RetentionEngine
from shared.storage.database import begin_deciding

log = logging.getLogger(__name__)
_CLOCKS = subject_clocks.CLOCKS
REFRESH_EVERY_SECONDS = 3600.0
PROGRESS_EVERY_SUBJECTS = 10_000


@dataclass(frozen=True, slots=True)
class Refreshed:
    subjects: int  # re-evaluated under the policy running now
    erasable_clocks: int  # of theirs now due or to erase at once: worth a sweep right away


def refresh_stale_verdicts(
    db: Engine,
    retention: RetentionEngine,
    batch_size: int,
    stopping: threading.Event | None = None,
) -> Refreshed:
    """Re-evaluate every subject with a clock stored under another policy or engine revision;
    between batches, give up if ``stopping`` is set (the process is shutting down)."""
    subjects_done = erasable = 0
    after = ""
    while stopping is None or not stopping.is_set():
        with db.connect() as connection:  # no lock: on SQLite, writers go on meanwhile
            candidates = _stale_subjects(connection, retention.digest, after, batch_size)
        if not candidates:
            break
        after = candidates[-1]
        with begin_deciding(db) as connection:
            clocks_of = subject_clocks.lock_subjects(connection, candidates)
            stale = [s for s in candidates if _is_stale(clocks_of[s].values(), retention.digest)]
            facts_of = subject_clocks.load_facts_of(connection, stale)
            now = datetime.now(UTC)
            for subject in stale:
                clocks = subject_clocks.reevaluate(
                    connection, retention, subject, facts_of[subject], clocks_of[subject], now
                )
                erasable += sum(1 for clock in clocks if clock.state in subject_clocks.ERASABLE)
        before, subjects_done = subjects_done, subjects_done + len(stale)
        if subjects_done // PROGRESS_EVERY_SUBJECTS > before // PROGRESS_EVERY_SUBJECTS:
            log.info(
                "purger: %d subject(s) re-evaluated under the policy running now", subjects_done
            )
    if subjects_done:
        log.info(
            "purger: clocks stored under another policy brought up to this one: %d subject(s), "
            "%d clock(s) now due",
            subjects_done,
            erasable,
        )
    return Refreshed(subjects_done, erasable)


def _stale_subjects(connection: Connection, digest: str, after: str, limit: int) -> list[str]:
    """The next subjects after ``after`` with a clock reached under another digest. A scan of
    the clocks: it runs at start and hourly, not per event."""
    query = (
        select(_CLOCKS.c.subject_pseudonym)
        .where(_CLOCKS.c.policy_digest != digest, _CLOCKS.c.subject_pseudonym > after)
        .group_by(_CLOCKS.c.subject_pseudonym)
        .order_by(_CLOCKS.c.subject_pseudonym)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def _is_stale(rows: Iterable[Row[Any]], digest: str) -> bool:
    """Whether a locked subject still has a clock reached under another digest: the consumer,
    or another purger's refresh, may have evaluated it since it was found."""
    return any(row.policy_digest is not None and row.policy_digest != digest for row in rows)
