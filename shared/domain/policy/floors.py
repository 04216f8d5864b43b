"""Floors: the least a category must be kept, and when a policy goes below one.

A policy edit that shortens a statutory retention would erase, at the next sweep, data the law
says to keep; nothing could bring it back. So a policy declares its floors, and a policy that
could erase a floored category's data before its floor is refused when it is loaded (by
``gallring policy check`` and by every service at start), as S3 Object Lock's compliance mode
refuses to shorten a retention.

**Below a floor**, exactly: a retention R is at or above a floor F when, for *every* possible
anchor a (every instant, or every local date for ``anchor: fiscal_year_end``), R falls due no
earlier than F: ``due(R, a) >= due(F, a)`` in the engine's time arithmetic
(:mod:`shared.domain.engine.periods`, in the policy's time zone). R is below F when some anchor
makes it fall due earlier. Since a clock falls due at the due time of one of its triggers (the
latest, or the last one of ``later_of``), a retention at or above its floor for every anchor
keeps every clock at or after the floor's due time, whatever the triggers. The shapes compare
in closed form (``years`` are 12 ``months``):

- months M with months N: M >= N. More calendar months land in a later month, whatever day the
  month's end clamps to.
- ``calendar_years_after`` C with ``calendar_years_after`` D: C >= D.
- ``calendar_years_after`` C (due 1 January of year(a) + C + 1, 00:00) against months M: the
  latest anchor of a year, 31 December (late in the day), plus M months lands in year(a) +
  ceil(M / 12), after its 1 January; so C >= ceil(M / 12). Through the 7th calendar year after
  is at least 84 months, not 85.
- months M against ``calendar_years_after`` C: the earliest anchor of a year, 1 January 00:00,
  plus M months must not come before 1 January of year(a) + C + 1: M >= 12 × (C + 1). Through
  the 7th calendar year after needs 96 months.

The comparisons in ``tests/unit/test_policy_floors.py`` are checked against the engine's own
arithmetic. A retention counted from another anchor than its floor (the time of an event
against the end of a financial year) cannot be compared, and is refused. So are the other ways
a floored category's data would go sooner: a client's override below the floor,
``may_become_outdated`` (``data.outdated`` erases before the period ends) and an immediate
erasure (``immediate_erasure``) of the category.
"""

from dataclasses import dataclass
from math import ceil

from shared.domain.policy.model import Floor, Policy, Retention


@dataclass(frozen=True, slots=True)
class FloorViolation:
    """Where in the policy file a floor is gone below (a path of keys, as validation errors
    name fields), and how."""

    path: tuple[str | int, ...]
    why: str


def at_least(retention: Retention, floor: Retention) -> bool:
    """Whether ``retention`` falls due no earlier than ``floor`` for every anchor (both counted
    from the same anchor): the module's docstring derives each case."""
    if retention.calendar_years_after is not None:
        if floor.calendar_years_after is not None:
            return retention.calendar_years_after >= floor.calendar_years_after
        return retention.calendar_years_after >= ceil(_months(floor) / 12)
    if floor.calendar_years_after is not None:
        return _months(retention) >= 12 * (floor.calendar_years_after + 1)
    return _months(retention) >= _months(floor)


def floor_violations(policy: Policy) -> list[FloorViolation]:
    """Every place ``policy`` would let a floored category's data go before its floor."""
    violations = []
    for category, floor in policy.floors.items():
        name = category.value
        rules = policy.categories[category]
        retentions = [(("categories", name, "retention"), rules.retention)] + [
            (("categories", name, "client_overrides", client_id, "retention"), override.retention)
            for client_id, override in rules.client_overrides.items()
        ]
        for path, retention in retentions:
            if retention.anchor != floor.at_least.anchor:
                violations.append(
                    FloorViolation(
                        (*path, "anchor"),
                        f"counts from {retention.anchor} and its floor, {_floor_text(floor)}, "
                        f"from {floor.at_least.anchor}: periods from different anchors cannot be "
                        f"compared; count it from {floor.at_least.anchor}",
                    )
                )
            elif not at_least(retention, floor.at_least):
                violations.append(
                    FloorViolation(
                        (*path, _length_field(retention)),
                        f"{describe(retention)} is below its floor, {_floor_text(floor)}: for "
                        "some starts it would fall due earlier; the least of this shape that "
                        f"keeps the floor is {_least(retention, floor.at_least)}",
                    )
                )
        if rules.may_become_outdated:
            violations.append(
                FloorViolation(
                    ("categories", name, "may_become_outdated"),
                    f"data.outdated would erase {name} data before its floor, "
                    f"{_floor_text(floor)}; set it to false",
                )
            )
    for event_type, categories in policy.immediate_erasure.items():
        for index, category in enumerate(categories):
            floor_of = policy.floors.get(category)
            if floor_of is not None:
                violations.append(
                    FloorViolation(
                        ("immediate_erasure", event_type, index),
                        f"{event_type} would erase {category.value} data at once, before its "
                        f"floor, {_floor_text(floor_of)}; remove {category.value} here",
                    )
                )
    return violations


def describe(retention: Retention) -> str:
    """``84 months after its trigger``, ``through the 7th calendar year after the end of the
    financial year``."""
    anchor = "the end of the financial year" if retention.anchor == "fiscal_year_end" else None
    return f"{retention.describe()} {anchor or 'its trigger'}"


def _floor_text(floor: Floor) -> str:
    return f"{describe(floor.at_least)} ({floor.because})"


def _least(retention: Retention, floor: Retention) -> str:
    """The shortest length, in ``retention``'s own field, that is at or above ``floor``."""
    if retention.calendar_years_after is not None:
        needed = floor.calendar_years_after
        return (
            f"calendar_years_after: {needed if needed is not None else ceil(_months(floor) / 12)}"
        )
    months = (
        12 * (floor.calendar_years_after + 1)
        if floor.calendar_years_after is not None
        else _months(floor)
    )
    return f"years: {ceil(months / 12)}" if retention.years is not None else f"months: {months}"


def _months(retention: Retention) -> int:
    months = retention.total_months
    assert months is not None, "a retention has exactly one length"
    return months


def _length_field(retention: Retention) -> str:
    if retention.calendar_years_after is not None:
        return "calendar_years_after"
    return "years" if retention.years is not None else "months"
