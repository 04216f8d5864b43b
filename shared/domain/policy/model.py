"""The shape of a policy file, validated strictly so that a typo cannot shorten or stretch a
retention period unnoticed."""

from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.domain.contract.events import EVENT_TYPES, HOLD_EVENT_TYPES, RETENTION_EXTENDED
from shared.domain.contract.scope import SCOPE_KEYS
from shared.domain.contract.vocabulary import IDENTIFIER_PATTERN, Category, NoNationalId

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
ScopeKey = Literal[SCOPE_KEYS]  # type: ignore[valid-type]
IMMEDIATE_EVENT_TYPES = (
    "newsletter.unsubscribed",
    "dsr.objection",
    "consent.withdrawn",
    "dsr.erasure_requested",
    "controller.erasure_instructed",
)
ImmediateEventType = Literal[IMMEDIATE_EVENT_TYPES]  # type: ignore[valid-type]
#: Events the engine applies in their own way (holds, and data.* naming their category in data)
#: or not at all (rectification and restriction notices, for the notifier): they cannot also be
#: a category's trigger, cancellation or sign of use.
SPECIAL_EVENT_TYPES = frozenset(
    {
        *HOLD_EVENT_TYPES,
        RETENTION_EXTENDED,
        "data.outdated",
        "data.disclosed",
        "data.rectified",
        "processing.restricted",
    }
)
#: Events that carry ``data.fiscal_year_end``, the only other anchor a retention may count from.
FISCAL_YEAR_EVENT_TYPES = frozenset({"bookkeeping.recorded"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retention(_Strict):
    """How long after its anchor a clock runs: exactly one of the three ways the notice counts.

    ``months``/``years``: N calendar months (years × 12) after the anchor, same local time, clamped
    to the month's last day. ``calendar_years_after``: kept through 31 December of the anchor's
    year + N, so due at 1 January of year + N + 1, 00:00 local time (the Bookkeeping Act).
    """

    months: Annotated[int, Field(gt=0)] | None = None
    years: Annotated[int, Field(gt=0)] | None = None
    calendar_years_after: Annotated[int, Field(ge=0)] | None = None
    anchor: Literal["occurred_at", "fiscal_year_end"] = "occurred_at"

    @model_validator(mode="after")
    def _exactly_one_length(self) -> Self:
        given = [
            n for n in ("months", "years", "calendar_years_after") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of months, years or calendar_years_after"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self

    @property
    def total_months(self) -> int | None:
        if self.months is not None:
            return self.months
        return self.years * 12 if self.years is not None else None

    def describe(self) -> str:
        if self.calendar_years_after is not None:
            return f"through the {_ordinal(self.calendar_years_after)} calendar year after"
        if self.years is not None:
            return f"{self.years} years after"
        return f"{self.months} months after"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class EventRule(_Strict):
    """An event type, optionally only when it carries the given scope key."""

    event: EventType
    scope: ScopeKey | None = None


def _event_rule_shorthand(value: object) -> object:
    """Let a policy file write ``- closed`` for ``- {event: closed}``."""
    return {"event": value} if isinstance(value, str) else value


Rule = Annotated[EventRule, BeforeValidator(_event_rule_shorthand)]


#: What the clock and proof tables keep of a legal basis (``legal_basis VARCHAR(300)``).
LegalBasis = Annotated[str, Field(min_length=1, max_length=300)]
#: A client id short enough that the rule it names (``…retention.client:<id>``) fits its column.
ClientId = Annotated[
    str, StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=60), *NoNationalId
]


class ClientOverride(_Strict):
    """What one client, as controller, instructed for the data processed on its behalf."""

    retention: Retention
    legal_basis: LegalBasis | None = None


class Review(_Strict):
    """Disposition review: a brake on sweeps that erase more of a category than usual.

    The sweep does not execute what goes past it: those clocks become ``awaiting_review``, in a
    review a DPO decides on (``POST /v1/reviews/{id}/decision``). Without a ``review`` section a
    category has none of these brakes, as before they existed.

    ``first_erasure``: the first erasure of the category ever whose time came (no proof of one
    but an immediate erasure's, no approved review) waits for a review: a new deployment's, or
    a back-fill's, first sweep.
    ``max_per_day``: at most this many of the category's erasures whose time has come (not the
    immediate ones, an unsubscribe, which the person asked for) are executed in a UTC day; the
    rest of the day's wait for a review. ``auto_approve_after_days``: a review nobody decided on
    is approved after this many days (never, if unset).
    """

    first_erasure: bool = False
    max_per_day: Annotated[int, Field(gt=0)] | None = None
    auto_approve_after_days: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _something_to_approve(self) -> Self:
        if self.auto_approve_after_days is not None and not self.brakes:
            raise ValueError(
                "auto_approve_after_days approves reviews, which only first_erasure or "
                "max_per_day open"
            )
        return self

    @property
    def brakes(self) -> bool:
        """Whether the sweep must count or stop this category's erasures at all."""
        return self.first_erasure or self.max_per_day is not None


class CategoryPolicy(_Strict):
    """One row of the rules page."""

    description: Annotated[str, Field(min_length=1, description="Names the data in reasons.")]
    legal_basis: LegalBasis
    scope: list[ScopeKey] = Field(
        default_factory=list, description="Scope keys clocks are kept per; empty: subject-wide."
    )
    retention: Retention
    start: Literal["latest", "later_of"] = Field(
        default="latest",
        description="latest: the latest trigger starts the clock; later_of: every trigger type "
        "must have happened and the last of them starts it.",
    )
    triggers: Annotated[list[Rule], Field(min_length=1)]
    cancelled_by: list[Rule] = Field(default_factory=list)
    ongoing_while: list[Rule] = Field(
        default_factory=list,
        description="Events that show the data is in active use (e.g. an AML relationship "
        "established): no clock runs until a later trigger.",
    )
    may_become_outdated: bool = Field(
        default=False, description="Whether data.outdated erases it before its period ends."
    )
    retention_ground: Annotated[
        str,
        Field(
            min_length=1,
            description="Why it is kept despite an erasure request, finishing 'kept … because'.",
        ),
    ]
    client_overrides: dict[ClientId, ClientOverride] = Field(default_factory=dict)
    review: Review = Field(
        default_factory=Review,
        description="Disposition review: the brakes on unusual sweeps (none if left out).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for rule in (*self.triggers, *self.cancelled_by, *self.ongoing_while):
            if rule.event in SPECIAL_EVENT_TYPES:
                raise ValueError(
                    f"{rule.event} has a fixed meaning (holds and data.* events name their "
                    "category themselves); it cannot be listed here"
                )
            if rule.scope is not None and rule.scope not in self.scope:
                raise ValueError(
                    f"{rule.event} is limited to scope {rule.scope}, which is not one of this "
                    f"category's scope keys ({', '.join(self.scope) or 'none: subject-wide'})"
                )
        if self.retention.anchor == "fiscal_year_end" and any(
            rule.event not in FISCAL_YEAR_EVENT_TYPES for rule in self.triggers
        ):
            raise ValueError(
                "anchor: fiscal_year_end needs triggers that carry data.fiscal_year_end "
                f"({', '.join(sorted(FISCAL_YEAR_EVENT_TYPES))})"
            )
        if self.client_overrides and "client_id" not in self.scope:
            raise ValueError("client_overrides need a category kept per client_id")
        for client_id, override in self.client_overrides.items():
            if override.retention.anchor != self.retention.anchor:
                raise ValueError(
                    f"client_overrides.{client_id}: anchor must stay {self.retention.anchor}"
                )
        if self.start == "later_of" and len({r.event for r in self.triggers}) < 2:
            raise ValueError("start: later_of needs at least two trigger event types")
        return self

    def retention_for(self, client_id: str | None) -> tuple[Retention, str, str | None]:
        """The retention, legal basis and overriding client that apply to one clock."""
        override = self.client_overrides.get(client_id) if client_id is not None else None
        if override is None:
            return self.retention, self.legal_basis, None
        return override.retention, override.legal_basis or self.legal_basis, client_id


class Floor(_Strict):
    """The least a category must be kept, whatever its ``retention`` says: a statute's minimum
    (the Bookkeeping Act's seven calendar years, the AML Act's five years) written in the
    policy's own terms. The loader refuses a policy that goes below one
    (:mod:`shared.domain.policy.floors` says exactly what "below" means)."""

    at_least: Retention
    because: Annotated[
        str,
        Field(
            min_length=1,
            description="The statute or decision that sets it; named when a policy goes below it.",
        ),
    ]


class Policy(_Strict):
    """A whole policy file. Build it through :mod:`shared.domain.policy.loader`, which also
    refuses one that goes below its ``floors`` (and says on which line)."""

    version: Literal[1]
    timezone: str = "Europe/Stockholm"
    floors: dict[Category, Floor] = Field(
        default_factory=dict,
        description="Per category, the least it must be kept (statutory minimums).",
    )
    categories: dict[Category, CategoryPolicy]
    immediate_erasure: dict[ImmediateEventType, list[Category]] = Field(
        description="Which categories each immediate trigger erases at once for its scope."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("categories")
    @classmethod
    def _every_category(
        cls, value: dict[Category, CategoryPolicy]
    ) -> dict[Category, CategoryPolicy]:
        missing = [c.value for c in Category if c not in value]
        if missing:
            raise ValueError(f"every category needs a row; missing: {', '.join(missing)}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
