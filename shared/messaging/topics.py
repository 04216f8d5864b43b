"""Kafka topic names and message headers: the documented contract ops teams watch.

Every message is keyed by the subject pseudonym, so that one subject's messages stay in order
(notification commands, erasure confirmations, the hold register's messages and reviews: by
their ids), and carries the headers below.
None of them holds personal data.
"""

from shared.domain.contract.events import HOLD_EVENT_TYPES
from shared.domain.policy.model import IMMEDIATE_EVENT_TYPES

LIFECYCLE = "gallring.lifecycle.v1"
#: Lifecycle events the notice promises to act on at once (an unsubscribe, an objection, a
#: withdrawn consent, an erasure request or instruction: ``IMMEDIATE_EVENT_TYPES``), in a lane
#: of their own, so that they never wait behind a back-fill queued on ``LIFECYCLE``; and the
#: legal holds with them, so that no immediate erasure overtakes a hold placed before it (nor a
#: release its placement). The same messages, keyed alike; the purger reads it with a consumer
#: of its own. A subject's other events may then be applied after an immediate one that came
#: later: one about data that erasure took is recognised as such and not kept; a trigger that
#: happened after it starts a clock of its own.
LIFECYCLE_IMMEDIATE = "gallring.lifecycle-immediate.v1"
ERASURE_COMMANDS = "gallring.erasure-commands.v1"
ERASURES = "gallring.erasures.v1"
DEAD_LETTERS = "gallring.dlq.v1"
#: From the API to the notifier: confirmations and redelivery requests, keyed by notification id.
NOTIFICATION_COMMANDS = "gallring.notification-commands.v1"
#: From the API to the purger: systems' confirmations of erasures, keyed by erasure id.
ERASURE_CONFIRMATIONS = "gallring.erasure-confirmations.v1"
#: From the API to ops: the register of legal holds (a hold placed, its release requested and
#: approved, its review due within 30, 7 or 1 days or past), keyed by hold id
#: (``shared/domain/contract/hold_messages.py``).
HOLDS = "gallring.holds.v1"
#: From the purger to ops: disposition reviews opened and decided, keyed by the review id.
REVIEWS = "gallring.reviews.v1"
ALL_TOPICS = (
    LIFECYCLE,
    LIFECYCLE_IMMEDIATE,
    ERASURE_COMMANDS,
    ERASURES,
    DEAD_LETTERS,
    NOTIFICATION_COMMANDS,
    ERASURE_CONFIRMATIONS,
    HOLDS,
    REVIEWS,
)

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_EVENT_ID = "event-id"


#: The event types of the immediate lane.
IMMEDIATE_LANE = frozenset({*IMMEDIATE_EVENT_TYPES, *HOLD_EVENT_TYPES})


#: Topics whose messages the outbox relays publish ahead of any backlog of others (a message
#: keeps its order among those of its topic).
URGENT = frozenset({LIFECYCLE_IMMEDIATE})


def lifecycle_topic(event_type: str) -> str:
    """The lane a lifecycle event of ``event_type`` is published in."""
    return LIFECYCLE_IMMEDIATE if event_type in IMMEDIATE_LANE else LIFECYCLE
