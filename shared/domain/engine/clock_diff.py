"""What a policy change does to clocks, counted by category, before anyone applies it.

A shortened period erases, at the first sweep under it, every clock it makes due, irreversibly;
``gallring policy diff`` shows the count first. Each clock (subject × category × scope) under the
old verdict and the new one, both as of the same ``now``, is one of:

- ``earlier``/``later``: it falls due earlier or later (a clock without a due time, cancelled or
  waiting for a trigger, falls due never, later than any time);
- ``unchanged``: the same due time (or none either way);
- ``new``/``gone``: only the new, or only the old, policy has it (a trigger added or removed);

and, across those, ``due_at_once``: erasable at ``now`` under the new verdict (due, or to erase
at once) but not under the old one, so the first sweep after the change erases it. A held clock
is erasable under neither: it may move, but nothing under a hold is erased. Of those, the ones
``due`` (not erased at once on a person's request) are also counted apart, per category
(``ClockDiff.made_due``): what the purger measures against a category's ``max_per_day`` to
decide whether the change waits for a disposition review.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime

from shared.domain.contract.vocabulary import Category
from shared.domain.engine.clock import ClockState, RetentionClock

#: A clock as the purger stores it: category, scope key and value (``""`` for subject-wide).
ClockId = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a diff needs of a clock: its state and due time."""

    state: ClockState
    due_at: datetime | None

    def erasable_at(self, now: datetime) -> bool:
        """Whether a sweep at ``now`` erases it. A stored pending clock whose time has come since
        it was evaluated is due all the same."""
        if self.state is ClockState.DUE or self.state is ClockState.ERASE_NOW:
            return True
        return self.state is ClockState.PENDING and self.due_at is not None and self.due_at <= now


@dataclass
class Counts:
    """One category's clocks by what the change does to them; ``due_at_once`` counts across."""

    earlier: int = 0
    later: int = 0
    unchanged: int = 0
    new: int = 0
    gone: int = 0
    due_at_once: int = 0

    @property
    def clocks(self) -> int:
        return self.earlier + self.later + self.unchanged + self.new + self.gone

    def as_dict(self) -> dict[str, int]:
        return {"clocks": self.clocks} | {f.name: getattr(self, f.name) for f in fields(self)}

    def add(self, other: "Counts") -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class ClockDiff:
    """Counts over subjects, one :meth:`add_subject` each, so that no more than a subject's
    clocks are held at a time."""

    def __init__(self) -> None:
        self.subjects = 0
        self.by_category = {category: Counts() for category in Category}
        #: Of ``due_at_once``, the clocks the new verdict makes ``due`` (not ``erase_now``).
        self.made_due = dict.fromkeys(Category, 0)

    def add_subject(
        self, old: Mapping[ClockId, Verdict], new: Mapping[ClockId, Verdict], now: datetime
    ) -> None:
        """One subject's clocks under the old verdict and the new, both as of ``now``."""
        self.subjects += 1
        for clock_id in old.keys() | new.keys():
            counts = self.by_category[Category(clock_id[0])]
            before, after = old.get(clock_id), new.get(clock_id)
            if before is None:
                counts.new += 1
            elif after is None:
                counts.gone += 1
            elif before.due_at == after.due_at:
                counts.unchanged += 1
            elif _earlier(after.due_at, before.due_at):
                counts.earlier += 1
            else:
                counts.later += 1
            erased_now = after is not None and after.erasable_at(now)
            if erased_now and (before is None or not before.erasable_at(now)):
                counts.due_at_once += 1
                if after is not None and after.state is not ClockState.ERASE_NOW:
                    self.made_due[Category(clock_id[0])] += 1

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.by_category.values():
            total.add(counts)
        return total


def verdicts(clocks: Iterable[RetentionClock]) -> dict[ClockId, Verdict]:
    """The engine's clocks of one subject, keyed as the purger stores them."""
    return {_clock_id(clock): Verdict(clock.state, clock.due_at) for clock in clocks}


def _clock_id(clock: RetentionClock) -> ClockId:
    scope_key, scope_value = clock.scope if clock.scope is not None else ("", "")
    return (clock.category.value, scope_key, scope_value)


def _earlier(due_at: datetime | None, than: datetime | None) -> bool:
    """Whether ``due_at`` comes before ``than``; None is never, after every time."""
    return due_at is not None and (than is None or due_at < than)
