"""Bringing stored verdicts up to the policy running now.

A clock's due time was reached under the policy and engine revision that stored it (its
``policy_digest``). When the policy file changes (a period shortened, a trigger added) or a
release raises ``ENGINE_REVISION``, the stored due times no longer say what the privacy notice now
promises: a clock the new policy makes due sooner would wait for its old due time, and data would
be kept too long. The sweep re-evaluates only clocks that are due already.

So when the purger starts it re-evaluates, from their facts, every subject with a clock reached
under another digest, a batch of subjects per transaction, in pseudonym order. Subjects are locked
as the consumer locks them, so consuming and sweeping go on meanwhile; several purgers starting at
once each find only what the others have not done yet. Verdicts without a digest (one of the
subject's events lay in the future) are left as before, to the subject's next event or due time.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from services.purger import subject_clocks
from shared.database import begin_deciding
from shared.engine import RetentionEngine

log = logging.getLogger(__name__)
_CLOCKS = subject_clocks.CLOCKS
PROGRESS_EVERY_SUBJECTS = 10_000


@dataclass(frozen=True, slots=True)
class Refreshed:
    subjects: int  # re-evaluated under the policy running now
    erasable_clocks: int  # of theirs now due or to erase at once: worth a sweep right away


def refresh_stale_verdicts(
    db: Engine, retention: RetentionEngine, now: datetime, batch_size: int
) -> Refreshed:
    """Re-evaluate every subject with a clock stored under another policy or engine revision."""
    subjects_done = erasable = 0
    after = ""
    while True:
        with begin_deciding(db) as connection:
            subjects = _stale_subjects(connection, retention.digest, after, batch_size)
            if not subjects:
                break
            clocks_of = subject_clocks.lock_subjects(connection, subjects)
            facts_of = subject_clocks.load_facts_of(connection, subjects)
            for subject in subjects:
                clocks = subject_clocks.reevaluate(
                    connection, retention, subject, facts_of[subject], clocks_of[subject], now
                )
                erasable += sum(1 for clock in clocks if clock.state in subject_clocks.ERASABLE)
        after = subjects[-1]
        before, subjects_done = subjects_done, subjects_done + len(subjects)
        if subjects_done // PROGRESS_EVERY_SUBJECTS > before // PROGRESS_EVERY_SUBJECTS:
            log.info(
                "purger: %d subject(s) re-evaluated under the policy now running", subjects_done
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
    """The next subjects after ``after`` with a clock reached under another digest (the clocks'
    key index leads with the subject). A clock without a digest is not stale here."""
    query = (
        select(_CLOCKS.c.subject_pseudonym)
        .where(_CLOCKS.c.policy_digest != digest, _CLOCKS.c.subject_pseudonym > after)
        .group_by(_CLOCKS.c.subject_pseudonym)
        .order_by(_CLOCKS.c.subject_pseudonym)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())
