"""What part of a subject's data an event is about: one case, one client, one AML measure…"""

from functools import cached_property
from typing import Self

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
        if len(self.as_dict()) > 1:
            raise ValueError(
                f"give at most one scope key, one of: {', '.join(SCOPE_KEYS)}; "
                f"got {', '.join(self.as_dict())}"
            )
        return self

    def as_dict(self) -> dict[str, str]:
        return {key: value for key in SCOPE_KEYS if (value := getattr(self, key)) is not None}

    @cached_property
    def item(self) -> tuple[str, str] | None:
        """The one ``(key, value)`` that is set, or None for subject-wide."""
        return next(iter(self.as_dict().items()), None)

    @property
    def key(self) -> str | None:
        return self.item[0] if self.item is not None else None
