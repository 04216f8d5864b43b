"""What each Kafka topic carries, as JSON Schema: the reference ops teams read a topic with
(``docs/topics.v1.schema.json``, written by ``make schema``)."""

from typing import Any

from pydantic import BaseModel, TypeAdapter

from shared.domain.contract.erasure_messages import (
    CommandRequested,
    ConfirmationReported,
    ErasureCommand,
    ErasureConfirmed,
    ErasureExecuted,
)
from shared.domain.contract.hold_messages import (
    HoldPlaced,
    HoldReleased,
    HoldReleaseRequested,
    HoldReviewDue,
)
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.notification_messages import (
    NotificationClosed,
    NotificationConfirmed,
    RedeliveryRequested,
)
from shared.domain.contract.review_messages import ReviewDecided, ReviewOpened
from shared.messaging import topics

#: Per topic: what its key is, and the models its values take (told apart by ``type``).
TOPIC_MESSAGES: dict[str, tuple[str, tuple[type[BaseModel], ...]]] = {
    topics.LIFECYCLE: ("the subject's pseudonym", (LifecycleMessage,)),
    topics.LIFECYCLE_IMMEDIATE: ("the subject's pseudonym", (LifecycleMessage,)),
    topics.ERASURE_COMMANDS: (
        "the subject's pseudonym (a command published again for one system: the subject hash)",
        (ErasureCommand,),
    ),
    topics.ERASURES: (
        "the subject's pseudonym (erasure.confirmed: the erasure id)",
        (ErasureExecuted, ErasureConfirmed),
    ),
    topics.ERASURE_CONFIRMATIONS: ("the erasure id", (ConfirmationReported, CommandRequested)),
    topics.NOTIFICATION_COMMANDS: (
        "the notification id",
        (NotificationConfirmed, RedeliveryRequested, NotificationClosed),
    ),
    topics.HOLDS: (
        "the hold id",
        (HoldPlaced, HoldReleaseRequested, HoldReleased, HoldReviewDue),
    ),
    topics.REVIEWS: ("the review id", (ReviewOpened, ReviewDecided)),
}


def topic_json_schema() -> dict[str, Any]:
    """One schema whose ``properties`` are the topics, each the union of its messages."""
    properties: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for topic, (key, models) in TOPIC_MESSAGES.items():
        schemas = []
        for model in models:
            schema = TypeAdapter(model).json_schema(
                ref_template="#/$defs/{model}", mode="serialization"
            )
            # As published, every field is there but those left out when empty (None):
            # ``type`` and ``schema_version`` always, which tell a topic's messages apart.
            schema["required"] = [
                name for name, field in model.model_fields.items() if field.default is not None
            ]
            definitions.update(schema.pop("$defs", {}))
            definitions[model.__name__] = schema
            schemas.append({"$ref": f"#/$defs/{model.__name__}"})
        properties[topic] = {
            "description": f"key: {key}; headers: {topics.HEADER_EVENT_TYPE}, "
            f"{topics.HEADER_SCHEMA_VERSION}, {topics.HEADER_EVENT_ID}",
            **({"oneOf": schemas} if len(schemas) > 1 else schemas[0]),
        }
    properties[topics.DEAD_LETTERS] = {
        "description": "the original message's bytes, unchanged; headers: reason (what was "
        "wrong, naming fields, echoing no values) and source (topic/partition/offset)"
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Gallring's Kafka topics, v1: each topic's message values",
        "type": "object",
        "properties": properties,
        "$defs": dict(sorted(definitions.items())),
    }
