"""Kafka topic names and message headers: the documented contract ops teams watch.

Every message is keyed by the subject pseudonym, so that one subject's messages stay in order
(notification commands and erasure confirmations: by their ids), and carries the headers below.
None of them holds personal data.
"""

LIFECYCLE = "gallring.lifecycle.v1"
ERASURE_COMMANDS = "gallring.erasure-commands.v1"
ERASURES = "gallring.erasures.v1"
DEAD_LETTERS = "gallring.dlq.v1"
#: From the API to the notifier: confirmations and redelivery requests, keyed by notification id.
NOTIFICATION_COMMANDS = "gallring.notification-commands.v1"
#: From the API to the purger: systems' confirmations of erasures, keyed by erasure id.
ERASURE_CONFIRMATIONS = "gallring.erasure-confirmations.v1"
ALL_TOPICS = (
    LIFECYCLE,
    ERASURE_COMMANDS,
    ERASURES,
    DEAD_LETTERS,
    NOTIFICATION_COMMANDS,
    ERASURE_CONFIRMATIONS,
)

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_EVENT_ID = "event-id"
