"""Validation errors as a person can act on them, with no input value echoed back.

Pydantic's own message repeats the input, which may be a personal identity number; these
descriptions name the field and what it expects, nothing more. The API's problem+json and the
command line both print them.
"""

from dataclasses import dataclass

from pydantic import ValidationError

from shared.contract.events import EVENT_TYPES


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def describe(error: ValidationError) -> list[FieldError]:
    """One :class:`FieldError` per problem, the field as a dotted path (``scope.case_id``)."""
    described = []
    for detail in error.errors(include_input=False, include_url=False):
        location = [str(part) for part in detail["loc"]]
        if location and location[0] in EVENT_TYPES:
            location = location[1:]  # the discriminator tag is not a field the sender wrote
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "union_tag_invalid":
            message = f"unknown event type; expected one of: {', '.join(EVENT_TYPES)}"
            location = ["type"]
        elif detail["type"] == "union_tag_not_found":
            message = "missing; every event names its type"
            location = ["type"]
        described.append(FieldError(".".join(location), message))
    return described
