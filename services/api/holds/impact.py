"""What a hold's release would do: its clocks counted as the erasure forecast counts clocks
(``shared.storage.clock_forecast``), by category and by the month they fall due.

A clock it covers is erased at once when it is due already, falls due later in its month, stays
held when another hold covers it too, or waits for a trigger (no due time yet)."""

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from services.api.holds.schemas import CategoryClocks, HoldImpact, MonthClocks
from services.api.holds.standing import Covered
from shared.domain.contract.vocabulary import Category
from shared.storage.clock_forecast import month_of


def impact(hold_id: str, clocks: list[Covered], *, now: datetime, zone: ZoneInfo) -> HoldImpact:
    at_once: Counter[Category] = Counter()
    later: Counter[tuple[str, Category]] = Counter()
    still_held: Counter[Category] = Counter()
    not_scheduled: Counter[Category] = Counter()
    for clock in clocks:
        if clock.also_held_by:
            still_held[clock.category] += 1
        elif clock.due_at is None:
            not_scheduled[clock.category] += 1
        elif clock.due_at <= now:
            at_once[clock.category] += 1
        else:
            later[(month_of(clock.due_at, zone), clock.category)] += 1
    return HoldImpact(
        hold_id=hold_id,
        evaluated_at=now,
        clocks=len(clocks),
        at_once=_by_category(at_once),
        later=[
            MonthClocks(month=month, category=category, clocks=count)
            for (month, category), count in sorted(later.items())
        ],
        still_held=_by_category(still_held),
        not_scheduled=_by_category(not_scheduled),
    )


def _by_category(counts: Counter[Category]) -> list[CategoryClocks]:
    return [CategoryClocks(category=c, clocks=n) for c, n in sorted(counts.items())]
