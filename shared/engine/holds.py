"""Legal holds: which clocks a subject's standing holds cover.

A hold is named by ``hold_id`` and may be narrowed to a case and/or a category; a release may
be narrowed to a category. For each hold and category, the latest event decides whether it stands
(at equal times the placement wins: when in doubt, keep).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.contract.vocabulary import Category
from shared.engine.clock import ScopeItem


@dataclass(frozen=True, slots=True)
class _HoldEvent:
    occurred_at: datetime
    placed: bool
    case_id: str | None
    category: Category | None


@dataclass(frozen=True, slots=True)
class StandingHold:
    hold_id: str
    placed_at: datetime


class Holds:
    def __init__(self) -> None:
        self._events: dict[str, list[_HoldEvent]] = defaultdict(list)

    def add(self, event: Any) -> None:
        """Record a ``legal_hold.placed`` or ``legal_hold.released`` event."""
        data = event.data
        placed = event.type == "legal_hold.placed"
        case_id = data.case_id if placed else None
        self._events[data.hold_id].append(
            _HoldEvent(event.occurred_at, placed, case_id, data.category)
        )

    def covering(self, category: Category, scope: ScopeItem) -> list[StandingHold]:
        """The holds that stand over this clock, oldest placement first."""
        case_id = scope[1] if scope is not None and scope[0] == "case_id" else None
        standing = []
        for hold_id, events in self._events.items():
            relevant = [
                event
                for event in events
                if event.category in (None, category)
                and (not event.placed or event.case_id in (None, case_id))
            ]
            if not relevant:
                continue
            last = max(relevant, key=lambda event: (event.occurred_at, event.placed))
            if last.placed:
                standing.append(StandingHold(hold_id, last.occurred_at))
        return sorted(standing, key=lambda hold: (hold.placed_at, hold.hold_id))
