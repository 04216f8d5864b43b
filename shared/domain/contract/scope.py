"""What part of a subject's data an event is about: one case, one client, one AML measure…"""

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, model_validator

from shared.domain.contract.vocabulary import Identifier

SCOPE_KEYS = ("case_id", "client_id", "relationship_id", "measure_id", "hold_id")


class Scope(BaseModel):
    """At most one key; empty means the whole subject."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    case_id: Identifier | None = None
    client_id: Identifier | None = None
    relationship_id: Identifier | None = None
    measure_id: Identifier | None = None
    hold_id: Identifier | None = None

    @model_validator(mode="after")
    def _at_most_one_key(self) -> Self:
        given = self.as_dict()
        if len(given) > 1:
            raise ValueError(
                f"give at most one scope key, one of: {', '.join(SCOPE_KEYS)}; "
                f"got {', '.join(given)}"
            )
        # ``item`` from the same dict, kept where the cached property keeps it: the engine asks
        # for it of every event, and building the dict again cost as much as this check did
        # (issue 23). A scope built without validation (model_construct) works it out then.
        self.__dict__["item"] = next(iter(given.items()), None)
        return self

    def as_dict(self) -> dict[str, str]:
        return {key: value for key in SCOPE_KEYS if (value := getattr(self, key)) is not None}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; one with fields changed works its ``item`` out again."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            copied.__dict__.pop("item", None)
        return copied

    @cached_property
    def item(self) -> tuple[str, str] | None:
        """The one ``(key, value)`` that is set, or None for subject-wide."""
        return next(iter(self.as_dict().items()), None)

    @property
    def key(self) -> str | None:
        return self.item[0] if self.item is not None else None
