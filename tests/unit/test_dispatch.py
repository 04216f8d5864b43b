"""The workers' handler tables: every message type their consumers decode has a handler, and a
batch is dispatched as ``shared/messaging/dispatch.py`` says."""

from dataclasses import dataclass
from typing import get_args

import pytest

from services.notifier import handlers as notifier
from services.notifier.apply import HeardExecuted
from services.purger import handlers as purger
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.events import EVENT_TYPES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.messaging.dispatch import Unhandled, dispatch


def decodable_types(incoming: object) -> set[str]:
    """The message types of a consumer's ``Incoming`` union."""
    types: set[str] = set()
    for model in get_args(incoming):
        if get_args(model):  # a union inside the union (the notifier's commands)
            types |= decodable_types(model)
        elif model is LifecycleMessage:
            types |= set(EVENT_TYPES)
        elif model is HeardExecuted:
            types.add(ErasureExecuted.model_fields["type"].default)
        else:
            types.add(model.model_fields["type"].default)
    return types


@pytest.mark.parametrize("worker", [purger, notifier], ids=["purger", "notifier"])
def test_every_type_a_consumer_decodes_has_a_handler(worker) -> None:
    decodable = decodable_types(worker.Incoming)
    assert len(decodable) > len(EVENT_TYPES)
    assert decodable - set(worker.HANDLERS) == set()


@dataclass(frozen=True)
class Message:
    type: str
    n: int


def test_each_handler_is_called_once_with_its_messages_in_order_first_come_first() -> None:
    calls: list[tuple[str, list[int]]] = []

    def handler(name: str):
        return lambda batch, messages: calls.append((name, [m.n for m in messages]))

    a, b = handler("a"), handler("b")
    table = {"x": b, "y": a, "z": b}
    dispatch(table, None, [Message("y", 1), Message("x", 2), Message("y", 3), Message("z", 4)])
    assert calls == [("a", [1, 3]), ("b", [2, 4])]


def test_a_type_without_a_handler_fails_the_batch_before_any_handler_runs() -> None:
    calls: list[object] = []
    with pytest.raises(Unhandled, match=r"'erasure\.unheard_of'"):
        dispatch(
            {"x": lambda batch, messages: calls.append(messages)},
            None,
            [Message("x", 1), Message("erasure.unheard_of", 2)],
        )
    assert calls == []
