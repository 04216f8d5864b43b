"""How a worker applies a batch of messages: one table from message type to handler, as
cosmicpython's ``EVENT_HANDLERS``, so that what a worker does with each kind of message is read
in one place and a type nobody handles is an error rather than silence.

A consumer decodes each record by its topic (the topic says which schema applies), then hands
the whole batch to :func:`dispatch` inside one transaction: each handler is called once, with its
messages in the order they came, handlers in the order their first message came. Handlers of one
batch therefore must not depend on one another's order beyond that (a worker that needs a step
after all of them, such as the notifier's matching, runs it after :func:`dispatch`). One call per
handler rather than one per message keeps the batch's work batched: a handler reads and writes
for all its messages at once.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar


class Typed(Protocol):
    """A decoded message: every message of the contract says its type."""

    @property
    def type(self) -> str: ...


Batch = TypeVar("Batch")
#: A handler: the batch's context (its transaction and what the worker needs) and the messages of
#: the types it is registered for.
Handler = Callable[[Batch, list[Any]], None]


class Unhandled(LookupError):
    """A message of a type the worker's table does not name: a table to complete, not a
    message to drop (its consumer sets the batch apart as it does any batch that fails)."""


def dispatch(
    handlers: Mapping[str, Handler[Batch]], batch: Batch, messages: Iterable[Typed]
) -> None:
    """Call each message's handler, once per handler, in the order described above."""
    grouped: dict[Handler[Batch], list[Any]] = {}
    for message in messages:
        try:
            handler = handlers[message.type]
        except KeyError:
            raise Unhandled(f"no handler for messages of type {message.type!r}") from None
        grouped.setdefault(handler, []).append(message)
    for handler, of_handler in grouped.items():
        handler(batch, of_handler)


def nothing_to_do(_batch: object, _messages: list[Any]) -> None:
    """For types a worker reads on its topics and leaves alone, named so that it is a choice."""
