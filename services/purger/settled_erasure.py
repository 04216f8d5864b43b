"""Erasing settled subjects in SQL: one statement per batch, no event parsed or evaluated.

A subject is *settled* in a sweep's batch when every clock it has is in the batch (all due), each
verdict was reached under the policy and engine running now (``policy_digest``), and no legal
hold was ever placed or released for it. Evaluating such a subject again could only repeat the
stored verdicts. The consumer locks the subject and its clock rows before it stores an event of
the subject (``subject_clocks.lock_subjects``), and rewrites the clocks in that transaction; the
sweep decides while it holds those rows, in a statement that starts after it took them. So every
event stored before is seen, and its verdict is the stored one; an event stored after waits,
then finds the proofs (apply.py).
Most erasures are a subject's last clocks falling due; the rest (holds, clocks still running,
verdicts from another policy or engine revision) take the sweep's general road, which evaluates
the subject from its facts.

For a settled subject the statement does on PostgreSQL what the general road does in Python: the
clocks become proofs (the same hashes), an erasure command and an erasure-executed event per
clock go to the outbox (the same messages as values: the keys come in another order, and times
always have six fractional digits, where pydantic drops a zero fraction), the active systems of
the register that hold each clock's category are recorded as expected to confirm it
(``expected_systems.py``), and since no clock of the subject is left and it has no holds, all its
facts go.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from shared.domain.contract.erasure_messages import (
    ERASURE_COMMAND,
    ERASURE_EXECUTED,
    SCHEMA_VERSION,
)
from shared.messaging import topics
from shared.storage.tables.purger import HOLD_FACTS

_UTC_MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"  # as to_char(..., 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


@dataclass(frozen=True, slots=True)
class SettledBatch:
    erased: int  # the locked clocks of settled subjects, erased
    unsettled_ids: list[int]  # the others, still locked, for the general road


def lock_due(connection: Connection, now: datetime, batch_size: int) -> list[Row[Any]]:
    """Lock up to ``batch_size`` clocks due at ``now``, in due order, skipping clocks another
    transaction holds (PostgreSQL); what the disposition review's brake reads of them (their
    ids, subjects, categories, states, reviews, due times and rules)."""
    return list(connection.execute(_LOCK_DUE, {"now": now, "batch_size": batch_size}))


def erase_settled(
    connection: Connection, ids: list[int], now: datetime, policy_digest: str
) -> SettledBatch:
    """Erase those of the locked clocks ``ids`` whose subjects are settled.

    Not in the statement that took the locks: a statement reads as of its start, and takes row
    locks as it goes, so it would miss what a consumer committed while it waited for a lock (a
    fact it stored, a clock it made). This statement starts once the locks are held.
    """
    erased, unsettled_ids = connection.execute(
        _ERASE,
        {
            "ids": ids,
            "now": now,
            "executed_at": now.astimezone(UTC).strftime(_UTC_MICROSECONDS),  # once, not per row
            "policy_digest": policy_digest,
            "schema_version": SCHEMA_VERSION,
            "command_topic": topics.ERASURE_COMMANDS,
            "command_type": ERASURE_COMMAND,
            "executed_topic": topics.ERASURES,
            "executed_type": ERASURE_EXECUTED,
        },
    ).one()
    return SettledBatch(erased, unsettled_ids)


# The proof's hashes are :func:`subject_hash` and :func:`subject_clocks.key_hash`; the messages
# are ErasureCommand and ErasureExecuted, with the headers of :func:`message_headers`, times in
# UTC. The outbox gets them in due order, each command before its executed event (the order they
# are published in). Tests compare this road's results with the general road's.
_LOCK_DUE = text(
    """
SELECT id, subject_pseudonym, category, state, review_id, due_at, rule FROM retention_clock
WHERE state IN ('pending', 'due', 'erase_now') AND due_at <= :now  -- the index's, as SWEPT says
ORDER BY due_at
LIMIT :batch_size
FOR UPDATE SKIP LOCKED
"""
)
_ERASE = text(
    r"""
WITH due AS MATERIALIZED (
    SELECT id, subject_pseudonym, policy_digest,
           (SELECT count(*) FROM retention_clock AS other
            WHERE other.subject_pseudonym = retention_clock.subject_pseudonym)
               AS clocks_of_subject,
           EXISTS (SELECT FROM subject_fact  -- the holds index's own predicate
                   WHERE subject_fact.subject_pseudonym = retention_clock.subject_pseudonym
                     AND """  # noqa: S608 - HOLD_FACTS is a constant, not input
    + HOLD_FACTS.text
    + r""")
               AS subject_has_holds
    FROM retention_clock
    WHERE id = ANY(CAST(:ids AS bigint[]))
), settled AS MATERIALIZED (
    SELECT id FROM (
        SELECT id, clocks_of_subject, subject_has_holds,
               count(*) OVER subject AS due_of_subject,
               bool_and(coalesce(policy_digest = :policy_digest, false)) OVER subject
                   AS reached_under_this_policy
        FROM due
        WINDOW subject AS (PARTITION BY subject_pseudonym)
    ) AS verdicts
    WHERE due_of_subject = clocks_of_subject AND NOT subject_has_holds
      AND reached_under_this_policy
), erased AS (
    DELETE FROM retention_clock WHERE id = ANY(ARRAY(SELECT id FROM settled))
    RETURNING id, erasure_id, subject_pseudonym, category, scope_key, scope_value, rule,
              legal_basis, due_at,
              encode(sha256(convert_to(subject_pseudonym, 'UTF8')), 'hex') AS subject_hash,
              encode(sha256(convert_to(subject_pseudonym, 'UTF8') || decode('00', 'hex')
                            || convert_to(category, 'UTF8') || decode('00', 'hex')
                            || convert_to(scope_key, 'UTF8') || decode('00', 'hex')
                            || convert_to(scope_value, 'UTF8')), 'hex') AS clock_hash,
              -- What both messages say of the erasure, as JSON members, "{" and "}" cut off.
              substr(json_build_object(
                  'erasure_id', erasure_id, 'category', category,
                  'scope', CASE WHEN scope_key = '' THEN json_build_object()
                                ELSE json_build_object(scope_key, scope_value) END,
                  'rule', rule, 'legal_basis', legal_basis,
                  'due_at', to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
              )::text, 2) AS members
), proofs AS (
    INSERT INTO erasure (erasure_id, subject_hash, clock_hash, category, rule, legal_basis,
                         due_at, executed_at)
    SELECT erasure_id, subject_hash, clock_hash, category, rule, legal_basis, due_at, :now
    FROM erased
), expected AS (
    INSERT INTO erasure_expected_system (erasure_id, system, due_by)
    SELECT erased.erasure_id, company_system.system_id,
           :now + make_interval(secs => company_system.confirm_within_seconds)
    FROM erased JOIN company_system
         ON company_system.active
            AND erased.category = ANY(string_to_array(company_system.categories, ' '))
), queued AS (
    INSERT INTO outbox_message (event_id, topic, message_key, value, headers, created_at)
    SELECT message.event_id, message.topic, erased.subject_pseudonym,
           '{"schema_version":' || CAST(:schema_version AS text)
               || ',"type":"' || message.type || '","event_id":"' || message.event_id || '",'
               || CASE message.position
                      WHEN 1 THEN left(erased.members, -1) || ',"system"\:null,"subject_hash":"'
                           || erased.subject_hash || '","clock_hash":"' || erased.clock_hash
                           || '"}'
                      ELSE left(erased.members, -1) || ',"executed_at":"'
                           || CAST(:executed_at AS text) || '"}'
                  END,
           '{"event-type":"' || message.type || '","schema-version":"'
               || CAST(:schema_version AS text) || '","event-id":"' || message.event_id || '"}',
           :now
    FROM erased, LATERAL (VALUES
        -- erased.id keeps each row's ids its own: a VALUES list that named no outer column
        -- could be computed once for all rows.
        (1, gen_random_uuid(), CAST(:command_topic AS text), CAST(:command_type AS text),
         erased.id),
        (2, gen_random_uuid(), CAST(:executed_topic AS text), CAST(:executed_type AS text),
         erased.id)
    ) AS message (position, event_id, topic, type, clock_id)
    ORDER BY erased.due_at, erased.id, message.position
), forgotten AS (
    DELETE FROM subject_fact USING (SELECT DISTINCT subject_pseudonym FROM erased) AS subject
    WHERE subject_fact.subject_pseudonym = subject.subject_pseudonym
)
SELECT (SELECT count(*) FROM erased),
       ARRAY(SELECT id FROM due WHERE id NOT IN (SELECT id FROM settled))  -- hashed
"""
)
