"""Validation errors as a person can act on them, with no input value echoed back.

Pydantic's own message (``str(ValidationError)``) may repeat the input, which may be a personal
identity number, so it must never be logged or returned: :func:`describe` is what the command line
prints and what an API returns. It names the field and what it expects, nothing more.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.domain.contract.events import EVENT_TYPES

_FIELD_NAME = re.compile(r"^[a-z][a-z_]{0,39}$")


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def describe(error: ValidationError) -> list[FieldError]:
    """One :class:`FieldError` per problem, the field as a dotted path (``scope.case_id``)."""
    return describe_errors(error.errors(include_input=False, include_url=False))


def describe_errors(details: Sequence[Any]) -> list[FieldError]:
    """:func:`describe` for error details already taken out of their exception (FastAPI's)."""
    described = []
    for detail in details:
        location = [str(part) for part in detail["loc"]]
        if location and location[0] in EVENT_TYPES:
            location = location[1:]  # the discriminator tag is not a field the sender wrote
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            # The unknown key is the sender's text: repeat it only if it looks like a field name.
            message = "unknown field; remove it"
            if location and not _FIELD_NAME.match(location[-1]):
                location[-1] = "(unknown field)"
        elif detail["type"] == "union_tag_invalid":
            message = f"unknown event type; expected one of: {', '.join(EVENT_TYPES)}"
            location = ["type"]
        elif detail["type"] == "union_tag_not_found":
            message = "missing; every event names its type"
            location = ["type"]
        described.append(FieldError(".".join(location), message))
    return described
