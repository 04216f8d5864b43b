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

A change that makes more of a category's clocks due at once than its ``max_per_day`` is not
applied by the refresh alone: the clocks it makes due wait, gathered while it runs, and once it
has been through every stale subject they go to disposition review, or, within the limit, are
swept as any (:mod:`services.purger.policy_change_review`).

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

from services.purger import policy_change_review, subject_clocks
from shared.domain.engine import RetentionEngine
from shared.storage.database import begin_deciding

log = logging.getLogger(__name__)
_CLOCKS = subject_clocks.CLOCKS
REFRESH_EVERY_SECONDS = 3600.0
PROGRESS_EVERY_SUBJECTS = 10_000


@dataclass(frozen=True, slots=True)
class Refreshed:
    subjects: int  # re-evaluated under the policy running now
    erasable_clocks: int  # now due or to erase at once (not awaiting a review): worth a sweep
    to_review: int = 0  # made due by the change, past max_per_day: awaiting a review opened


def refresh_stale_verdicts(
    db: Engine,
    retention: RetentionEngine,
    batch_size: int,
    stopping: threading.Event | None = None,
) -> Refreshed:
    """Re-evaluate every subject with a clock stored under another policy or engine revision;
    between batches, give up if ``stopping`` is set (the process is shutting down). The clocks
    the change makes due are gathered for review; once every stale subject is done, the
    gathering reviews are closed (:mod:`services.purger.policy_change_review`), not when the
    refresh gave up."""
    subjects_done = erasable = 0
    after = ""
    while True:
        if stopping is not None and stopping.is_set():
            return Refreshed(subjects_done, erasable)  # the next run closes what it gathered
        with db.connect() as connection:  # no lock: on SQLite, writers go on meanwhile
            candidates = _stale_subjects(connection, retention.digest, after, batch_size)
        if not candidates:
            break
        after = candidates[-1]
        made_due = policy_change_review.MadeDue(retention.policy, retention.digest, new_clocks=True)
        with begin_deciding(db) as connection:
            clocks_of = subject_clocks.lock_subjects(connection, candidates)
            stale = [s for s in candidates if _is_stale(clocks_of[s].values(), retention.digest)]
            facts_of = subject_clocks.load_facts_of(connection, stale)
            now = datetime.now(UTC)
            for subject in stale:
                clocks = subject_clocks.reevaluate(
                    connection,
                    retention,
                    subject,
                    facts_of[subject],
                    clocks_of[subject],
                    now,
                    made_due=made_due,
                )
                erasable += sum(1 for clock in clocks if clock.state in subject_clocks.ERASABLE)
            erasable -= made_due.gather(connection, now)
        before, subjects_done = subjects_done, subjects_done + len(stale)
        if subjects_done // PROGRESS_EVERY_SUBJECTS > before // PROGRESS_EVERY_SUBJECTS:
            log.info(
                "purger: %d subject(s) re-evaluated under the policy running now", subjects_done
            )
    closed = policy_change_review.close_gathered(
        db, retention.policy, datetime.now(UTC), batch_size
    )
    erasable += closed.released
    if subjects_done:
        log.info(
            "purger: clocks stored under another policy brought up to this one: %d subject(s), "
            "%d clock(s) now due, %d awaiting a review of the change",
            subjects_done,
            erasable,
            closed.opened,
        )
    return Refreshed(subjects_done, erasable, closed.opened)


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
