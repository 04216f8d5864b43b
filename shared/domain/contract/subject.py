"""Who an event is about, as the upstream system names them: a national id or an opaque ref."""

from datetime import date
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.domain.national_id import InvalidNationalIdError, normalise_national_id
from shared.domain.pseudonym import Pseudonymiser


class Subject(BaseModel):
    """Exactly one of ``national_id`` (normalised to 12 digits) or ``ref``.

    The raw value lives only as long as the request that carried it; what Gallring keeps is
    :meth:`pseudonym`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    national_id: Annotated[
        str | None,
        Field(
            description="Swedish personnummer or samordningsnummer, 10 or 12 digits, "
            "optionally with '-' or '+' before the last four; Luhn-checked.",
            examples=["19811218-9876"],
            repr=False,
        ),
    ] = None
    ref: Annotated[
        str | None,
        Field(
            description="An upstream system's own opaque id for the person, e.g. 'crm:4711'.",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$",
            max_length=200,
            examples=["crm:4711"],
            repr=False,
        ),
    ] = None

    @field_validator("national_id")
    @classmethod
    def _normalise(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        now = (info.context or {}).get("now")
        today: date | None = now.date() if now is not None else None
        try:
            return normalise_national_id(value, today=today)
        except InvalidNationalIdError as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.national_id is None) == (self.ref is None):
            raise ValueError("give exactly one of 'national_id' or 'ref'")
        return self

    def pseudonym(self, pseudonymiser: Pseudonymiser) -> str:
        if self.national_id is not None:
            return pseudonymiser.pseudonym("national_id", self.national_id)
        assert self.ref is not None
        return pseudonymiser.pseudonym("ref", self.ref)

    def __repr__(self) -> str:
        # Never print the identifier itself: reprs end up in logs and tracebacks.
        kind = "national_id" if self.national_id is not None else "ref"
        return f"Subject({kind}=***)"

    __str__ = __repr__
