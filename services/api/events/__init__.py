"""``/v1/events``: durable, idempotent intake of lifecycle events."""
