"""Legal holds: which clocks a subject's standing holds cover.

A hold is named by ``hold_id``. Its latest placement says what it covers: the whole subject, one
case and/or one category. A release frees everything, or, naming a category, only that category
until the hold is placed again. Events apply in occurrence order; at equal times the placement
comes last, so it wins: when in doubt, keep.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.contract.events import LEGAL_HOLD_PLACED
from shared.domain.contract.vocabulary import Category
from shared.domain.engine.clock import ScopeItem


@dataclass(frozen=True, slots=True)
class _HoldChange:
    occurred_at: datetime
    placed: bool
    case_id: str | None
    category: Category | None


@dataclass(frozen=True, slots=True)
class StandingHold:
    hold_id: str
    placed_at: datetime


@dataclass(frozen=True, slots=True)
class _HoldState:
    placement: _HoldChange | None
    released_categories: frozenset[Category]

    def covers(self, category: Category, case_id: str | None) -> bool:
        placement = self.placement
        return (
            placement is not None
            and placement.category in (None, category)
            and placement.case_id in (None, case_id)
            and category not in self.released_categories
        )


class Holds:
    def __init__(self) -> None:
        self._changes: dict[str, list[_HoldChange]] = defaultdict(list)
        self._states: dict[str, _HoldState] | None = None

    def add(self, event: Any) -> None:
        """Record a ``legal_hold.placed`` or ``legal_hold.released`` event."""
        data = event.data
        placed = event.type == LEGAL_HOLD_PLACED
        case_id = data.case_id if placed else None
        self._changes[data.hold_id].append(
            _HoldChange(event.occurred_at, placed, case_id, data.category)
        )
        self._states = None

    def covering(self, category: Category, scope: ScopeItem) -> list[StandingHold]:
        """The holds that stand over this clock, oldest placement first."""
        case_id = scope[1] if scope is not None and scope[0] == "case_id" else None
        standing = [
            StandingHold(hold_id, state.placement.occurred_at)
            for hold_id, state in self._current().items()
            if state.placement is not None and state.covers(category, case_id)
        ]
        return sorted(standing, key=lambda hold: (hold.placed_at, hold.hold_id))

    def standing(self) -> set[str]:
        """The ids of the holds that still stand over something, whatever clocks exist now: a
        clock created later falls under them too."""
        return {
            hold_id
            for hold_id, state in self._current().items()
            if state.placement is not None
            and (
                state.placement.category is None
                or state.placement.category not in state.released_categories
            )
        }

    def _current(self) -> dict[str, _HoldState]:
        if self._states is None:
            self._states = {hold_id: _replay(changes) for hold_id, changes in self._changes.items()}
        return self._states


def _replay(changes: list[_HoldChange]) -> _HoldState:
    placement: _HoldChange | None = None
    released: frozenset[Category] = frozenset()
    ordered = sorted(
        changes, key=lambda c: (c.occurred_at, c.placed, c.case_id or "", c.category or "")
    )
    for change in ordered:
        if change.placed:
            placement, released = change, frozenset()
        elif change.category is None:
            placement, released = None, frozenset()
        else:
            released = released | {change.category}
    return _HoldState(placement, released)
