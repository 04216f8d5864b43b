"""The retention engine: a subject's lifecycle events in, its retention clocks out.

Pure: no I/O, no clock of its own (``now`` is an argument; events that occur after it have not
happened yet and are left out), and the result depends only on the set of events, never on their
order or on duplicates. Each event is routed to the clocks it
concerns; each clock is then folded from its events sorted by occurrence time. At equal times a
trigger comes first, then an early erasure, then an immediate erasure, then an event that undoes
the trigger: when in doubt, keep the data. Extensions of a retention (a DPO's decision on a
disposition review), legal holds and erasure requests are applied last, in that order.
"""

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from operator import itemgetter
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.domain.contract.events import HOLD_EVENT_TYPES, RETENTION_EXTENDED
from shared.domain.contract.scope import Scope
from shared.domain.contract.vocabulary import Category
from shared.domain.engine import periods
from shared.domain.engine.clock import ClockState, RetentionClock, ScopeItem
from shared.domain.engine.holds import Holds
from shared.domain.policy.model import CategoryPolicy, Policy, Retention

#: Raise it with every change that changes a verdict: the sweep then evaluates clocks stored
#: before again instead of acting on what they say.
ENGINE_REVISION = 2


class EngineEvent(Protocol):
    """What the engine reads of an event: the v1 contract's fields, minus the subject."""

    @property
    def event_id(self) -> UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def scope(self) -> Scope: ...
    @property
    def data(self) -> Any: ...


class Role(Enum):
    """What an event does to a clock."""

    TRIGGER = "trigger"
    KNOWN = "known"  # shows data exists in the category (a disclosure), starts nothing
    OUTDATED = "outdated"
    IMMEDIATE = "immediate"
    CANCEL = "cancel"
    ONGOING = "ongoing"


#: The rule (after the category's prefix: ``marketing.immediate``) of a clock an event erases at
#: once: an unsubscribe, an objection, an erasure request.
IMMEDIATE_RULE = "immediate"

#: Among events at the same instant, which is applied first (the last one applied wins).
_SAME_TIME_ORDER = {
    Role.TRIGGER: 0,
    Role.KNOWN: 0,
    Role.OUTDATED: 1,
    Role.IMMEDIATE: 2,
    Role.CANCEL: 3,
    Role.ONGOING: 3,
}
#: Roles whose subject-wide event reaches every clock of a category kept per scope.
_BROADCAST_ROLES = (Role.IMMEDIATE, Role.OUTDATED)
_DSR_ERASURE = "dsr.erasure_requested"

ClockKey = tuple[Category, ScopeItem]
#: (occurred_at, same-time order, event id, role, event): sorting on the first three is total.
_Entry = tuple[datetime, int, UUID, Role, EngineEvent]
_entry_order = itemgetter(0, 1, 2)
#: (category, role, only with this scope key, same-time order, the category's scope keys)
_Membership = tuple[Category, Role, str | None, int, frozenset[str]]


@dataclass(frozen=True, slots=True)
class _CategoryPlan:
    """A policy row with what the engine derives from it once, not per subject."""

    rules: CategoryPolicy
    rule_prefix: str  # "collection_case."
    what: str  # "Collection-case data": starts every reason
    period: str  # "36 months after"
    trigger_types: dict[str | None, tuple[str, ...]]  # per clock scope key


class RetentionEngine:
    """Applies one :class:`Policy`; build it once and call :meth:`evaluate` per subject."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.zone = policy.zone
        #: Names this policy and engine revision: a stored verdict reached under them holds.
        #: Floors (which only refuse a policy) and the review limits (how many the sweep acts on
        #: in a day) change no verdict, so they are left out: declaring or changing them does
        #: not make the purger evaluate every stored clock again.
        verdict_policy = policy.model_dump_json(
            exclude={"floors": True, "categories": {"__all__": {"review"}}}
        )
        self.digest = hashlib.sha256(f"{ENGINE_REVISION}:{verdict_policy}".encode()).hexdigest()
        self._plans = {
            category: _plan(category, rules) for category, rules in policy.categories.items()
        }
        roles: dict[str, list[_Membership]] = defaultdict(list)
        for category, rules in policy.categories.items():
            for role, event_rules in (
                (Role.TRIGGER, rules.triggers),
                (Role.CANCEL, rules.cancelled_by),
                (Role.ONGOING, rules.ongoing_while),
            ):
                for rule in event_rules:
                    roles[rule.event].append(self._membership(category, role, rule.scope))
        for event_type, categories in policy.immediate_erasure.items():
            for category in categories:
                roles[event_type].append(self._membership(category, Role.IMMEDIATE))
        self._roles = dict(roles)
        self._dsr_reaches = frozenset(policy.immediate_erasure.get(_DSR_ERASURE, ()))

    def evaluate(
        self, subject: str, events: Iterable[EngineEvent], now: datetime
    ) -> list[RetentionClock]:
        """The clocks of one subject (its pseudonym) as of ``now``, sorted by category and scope."""
        entries: dict[ClockKey, list[_Entry]] = {}
        broadcasts: list[tuple[Category, Role, int, EngineEvent]] = []
        holds: Holds | None = None
        erasure_requests: list[EngineEvent] = []
        extensions: list[EngineEvent] = []

        for event in _deduplicate(events):
            if event.occurred_at > now:
                continue
            event_type = event.type
            if event_type in HOLD_EVENT_TYPES:
                holds = holds or Holds()
                holds.add(event)
                continue
            if event_type == RETENTION_EXTENDED:
                extensions.append(event)
                continue
            if event_type == _DSR_ERASURE:
                erasure_requests.append(event)
            for key, category, role, rank in self._routes(event):
                if key is None:
                    broadcasts.append((category, role, rank, event))
                    continue
                entry = (event.occurred_at, rank, event.event_id, role, event)
                entries.setdefault(key, []).append(entry)

        for category, role, rank, event in broadcasts:
            entry = (event.occurred_at, rank, event.event_id, role, event)
            for key, clock_entries in entries.items():
                if key[0] == category:
                    clock_entries.append(entry)

        clocks = []
        for (category, scope), clock_entries in entries.items():
            if len(clock_entries) > 1:
                clock_entries.sort(key=_entry_order)
            clock = self._fold(subject, category, scope, clock_entries, now)
            extended_for = None
            if extensions:
                clock, extended_for = self._apply_extensions(clock, extensions, now)
            if holds is not None and clock.state is not ClockState.CANCELLED:
                clock = self._apply_holds(clock, holds)
            if erasure_requests:
                clock = self._answer_erasure_requests(clock, erasure_requests, extended_for)
            clocks.append(clock)
        if len(clocks) > 1:
            clocks.sort(key=lambda clock: (clock.category, clock.scope or ("", "")))
        return clocks

    def clock_keys(self, events: Iterable[EngineEvent]) -> dict[UUID, set[ClockKey]]:
        """Per event, the clocks it feeds, whenever it occurs. Legal holds and erasure requests
        feed none: they act on clocks other events made. An extension feeds the one clock it
        extends (and makes none). The purger keeps an event as long as one of its clocks is
        alive."""
        keys: dict[UUID, set[ClockKey]] = {}
        broadcasts: list[tuple[UUID, Category]] = []
        extensions: list[EngineEvent] = []
        for event in events:
            routed = keys.setdefault(event.event_id, set())
            if event.type == RETENTION_EXTENDED:
                extensions.append(event)
                continue
            for key, category, _, _ in self._routes(event):
                if key is None:
                    broadcasts.append((event.event_id, category))
                else:
                    routed.add(key)
        made = {key for routed in keys.values() for key in routed}
        for event_id, category in broadcasts:
            keys[event_id].update(key for key in made if key[0] == category)
        for event in extensions:
            keys[event.event_id].add((event.data.category, event.scope.item))
        return keys

    def _routes(self, event: EngineEvent) -> Iterator[tuple[ClockKey | None, Category, Role, int]]:
        """The clocks ``event`` concerns; key None: every clock of the category (a broadcast)."""
        if event.type in HOLD_EVENT_TYPES:
            return
        scope = event.scope.item
        memberships = self._roles.get(event.type) or self._data_memberships(event)
        for category, role, only_scope, rank, category_scope in memberships:
            if only_scope is not None and (scope is None or scope[0] != only_scope):
                continue
            if not category_scope:
                yield (category, None), category, role, rank
            elif scope is not None and scope[0] in category_scope:
                yield (category, scope), category, role, rank
            elif scope is None and role in _BROADCAST_ROLES:
                yield None, category, role, rank
            # otherwise a scope this category is not kept per: not about its data

    def _membership(
        self, category: Category, role: Role, only_scope: str | None = None
    ) -> _Membership:
        scope_keys = frozenset(self.policy.categories[category].scope)
        return (category, role, only_scope, _SAME_TIME_ORDER[role], scope_keys)

    def _data_memberships(self, event: EngineEvent) -> list[_Membership]:
        """The clocks that ``data.*`` events concern: the category is in the event's data."""
        if event.type == "data.outdated":
            category = event.data.category
            if self._plans[category].rules.may_become_outdated:
                return [self._membership(category, Role.OUTDATED)]
        elif event.type == "data.disclosed":
            return [self._membership(event.data.category, Role.KNOWN)]
        return []

    def _fold(
        self,
        subject: str,
        category: Category,
        scope: ScopeItem,
        entries: list[_Entry],
        now: datetime,
    ) -> RetentionClock:
        """One clock from its events, sorted: what they come to as of ``now`` (its state, due
        time and rule, and the event that decided them). The words are :meth:`explain`'s."""
        plan = self._plans[category]
        client_id = scope[1] if scope is not None and scope[0] == "client_id" else None
        if client_id is None:
            retention, legal_basis, client = plan.rules.retention, plan.rules.legal_basis, None
        else:
            retention, legal_basis, client = plan.rules.retention_for(client_id)
        triggered: dict[str, list[EngineEvent]] = {}  # trigger events by type
        erasure: EngineEvent | None = None
        outdated: EngineEvent | None = None
        reset: EngineEvent | None = None
        reset_cancelled = False
        for _, _, _, role, event in entries:
            if role is Role.TRIGGER:
                triggered.setdefault(event.type, []).append(event)
                erasure = None  # a trigger after an immediate erasure starts a new clock
            elif role is Role.OUTDATED:
                outdated = outdated or event
            elif role is Role.IMMEDIATE:
                erasure = erasure or event
                triggered.clear()
                outdated = None
            elif role is Role.CANCEL or role is Role.ONGOING:
                reset_cancelled = role is Role.CANCEL and (
                    reset_cancelled or bool(triggered) or erasure is not None
                )
                reset = event
                triggered.clear()
                erasure = outdated = None

        triggers = {  # of each type, the event that falls due last
            event_type: events[0] if len(events) == 1 else _due_last(retention, events, self.zone)
            for event_type, events in triggered.items()
        }
        trigger_types = plan.trigger_types[scope[0] if scope is not None else None]
        state: ClockState
        due: datetime | None = None
        decided_by: EngineEvent | None = None
        rule = "retention" if client is None else f"retention.client:{client}"
        if (
            erasure is None
            and triggers
            and (plan.rules.start == "latest" or len(triggers) == len(trigger_types))
        ):
            decided_by = (
                next(iter(triggers.values()))
                if len(triggers) == 1
                else _due_last(retention, list(triggers.values()), self.zone)
            )
            due = periods.due_at(retention, _anchor(retention, decided_by), self.zone)
        if outdated is not None and (due is None or outdated.occurred_at < due):
            due, decided_by, rule = outdated.occurred_at.astimezone(UTC), outdated, "outdated"

        if erasure is not None:
            state, rule, decided_by = ClockState.ERASE_NOW, IMMEDIATE_RULE, erasure
            due = erasure.occurred_at.astimezone(UTC)
        elif due is not None:
            state = ClockState.DUE if due <= now else ClockState.PENDING
        elif reset_cancelled:
            state, rule, decided_by = ClockState.CANCELLED, "cancelled", reset
        elif triggers:  # start: later_of, with a trigger type still missing
            state, rule = ClockState.PENDING, "waiting"
            decided_by = max(triggers.values(), key=lambda e: (e.occurred_at, e.event_id))
        else:
            state, rule, decided_by = ClockState.PENDING, "ongoing", reset
        reason = self.explain(
            plan, state, due, rule, decided_by, retention, client, trigger_types, triggers
        )
        return RetentionClock(
            subject,
            category,
            scope,
            state,
            due,
            plan.rule_prefix + rule,
            legal_basis,
            decided_by.event_id if decided_by is not None else None,
            reason,
        )

    def explain(
        self,
        plan: _CategoryPlan,
        state: ClockState,
        due: datetime | None,
        rule: str,
        decided_by: EngineEvent | None,
        retention: Retention,
        client: str | None,
        trigger_types: tuple[str, ...],
        triggers: dict[str, EngineEvent],
    ) -> str:
        """Why a clock is in its state, in English, from what :meth:`_fold` made of its events:
        ``rule`` (without the category's prefix) tells which road the fold took; ``retention``
        is the category's or ``client``'s own; ``triggers`` has, of each of ``trigger_types``
        that happened, the event that falls due last. Holds and erasure requests add their own
        words later."""
        what = plan.what
        if rule == IMMEDIATE_RULE:
            assert decided_by is not None and due is not None
            return f"{what} is erased at once because of {decided_by.type} on {self._day(due)}."
        if due is not None:
            if rule == "outdated":
                why = f"{what} became outdated for its purpose on {self._day(due)}"
            else:
                period = plan.period if client is None else retention.describe()
                why = f"{what} is kept {period} {self._anchor_phrase(retention, triggers)}"
                if client is not None:
                    why += f" as client {client} instructed"
            when = "fell due" if state is ClockState.DUE else "falls due"
            return f"{why}; it {when} on {self._moment(due)}."
        if rule == "cancelled":
            assert decided_by is not None
            return (
                f"{what} is not erased: {decided_by.type} on {self._day(decided_by.occurred_at)} "
                f"undid the trigger; a later {' or '.join(trigger_types)} starts the clock again."
            )
        if rule == "waiting":
            have = ", ".join(f"{t} on {self._day(e.occurred_at)}" for t, e in triggers.items())
            missing = " and ".join(t for t in trigger_types if t not in triggers)
            return f"{what} is kept: {have}; its clock starts once {missing} has happened too."
        reset = decided_by  # ongoing: the latest sign of use, if any
        since = f"{reset.type} on {self._day(reset.occurred_at)}" if reset else "no trigger yet"
        return f"{what} is in use ({since}); its clock starts with {' or '.join(trigger_types)}."

    def _apply_holds(self, clock: RetentionClock, holds: Holds) -> RetentionClock:
        standing = holds.covering(clock.category, clock.scope)
        if not standing:
            return clock
        names = ", ".join(f"{h.hold_id} (placed {self._day(h.placed_at)})" for h in standing)
        return clock._replace(
            state=ClockState.HELD,
            rule=f"{clock.category}.legal_hold",
            reason=f"Held by legal hold {names}, whatever its due time; without it: {clock.reason}",
        )

    def _apply_extensions(
        self, clock: RetentionClock, extensions: list[EngineEvent], now: datetime
    ) -> tuple[RetentionClock, str | None]:
        """A clock whose period ran, or runs, is kept until the latest ``until`` of the
        extensions of its category and scope, if that is later than its own due time; and the
        extension's ground, which answers an erasure request instead of the category's. An
        immediate erasure, a cancelled clock or one still waiting for its trigger is left as it
        is: an extension keeps data longer than its period, nothing else."""
        if clock.due_at is None or clock.state not in (ClockState.DUE, ClockState.PENDING):
            return clock, None
        matching = [
            event
            for event in extensions
            if event.data.category == clock.category and event.scope.item == clock.scope
        ]
        if not matching:
            return clock, None
        latest = max(matching, key=lambda event: (event.data.until, *_order(event)))
        until = periods.start_of_day(latest.data.until, self.zone)
        if until <= clock.due_at:
            return clock, None
        state = ClockState.DUE if until <= now else ClockState.PENDING
        review = latest.data.review_id
        decided = f" in disposition review {review}" if review is not None else ""
        when = "fell due" if state is ClockState.DUE else "falls due"
        reason = (
            f"{self._plans[clock.category].what} is kept until {latest.data.until.isoformat()} "
            f"because {latest.data.ground} (extended on {self._day(latest.occurred_at)}"
            f"{decided}); it {when} on {self._moment(until)}. Without the extension: "
            f"{clock.reason}"
        )
        extended = clock._replace(
            state=state,
            due_at=until,
            rule=f"{clock.category}.extended",
            trigger_event_id=latest.event_id,
            reason=reason,
        )
        return extended, latest.data.ground

    def _answer_erasure_requests(
        self, clock: RetentionClock, requests: list[EngineEvent], extended_for: str | None = None
    ) -> RetentionClock:
        """Say, per clock, whether an art. 17 request erased it, or why and until when not
        (``extended_for``: the ground of an extension that keeps it)."""
        latest = max(requests, key=_order)
        asked = f"the erasure request of {self._day(latest.occurred_at)}"
        state = clock.state
        if state is ClockState.HELD:
            answer = f"Kept despite {asked}, while the legal hold stands. "
        elif state is ClockState.ERASE_NOW and any(
            clock.trigger_event_id == request.event_id for request in requests
        ):
            answer = f"Erased now in answer to {asked}: no retention ground remains. "
        elif state is ClockState.DUE or state is ClockState.ERASE_NOW:
            return clock  # erased at the next sweep anyway
        elif clock.category in self._dsr_reaches:
            return clock  # a trigger after the request started a new clock
        else:
            ground = extended_for or self._plans[clock.category].rules.retention_ground
            if clock.due_at is not None:
                until = f"until {self._moment(clock.due_at)}"
            elif state is ClockState.CANCELLED:
                until = "while it is in use again"
            else:
                until = "until its clock has run"
            answer = f"Kept despite {asked}, {until}, because {ground}. "
        return clock._replace(reason=answer + clock.reason)

    def _anchor_phrase(self, retention: Retention, triggers: dict[str, EngineEvent]) -> str:
        if retention.anchor == "fiscal_year_end":
            latest = max(_anchor(retention, event) for event in triggers.values())
            return f"the financial year ending {latest}"
        if len(triggers) == 1:
            ((event_type, event),) = triggers.items()
            return f"{event_type} on {self._day(event.occurred_at)}"
        chronological = sorted(triggers.items(), key=lambda item: _order(item[1]))
        parts = " and ".join(f"{t} ({self._day(e.occurred_at)})" for t, e in chronological)
        return f"the later of {parts}"

    def _day(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).date().isoformat()

    def _moment(self, instant: datetime) -> str:
        local = instant.astimezone(self.zone).isoformat(" ", "minutes")[:16]
        return f"{local} {self.policy.timezone} time"


def evaluate(
    policy: Policy, subject: str, events: Iterable[EngineEvent], now: datetime
) -> list[RetentionClock]:
    """One-off evaluation; for many subjects, build a :class:`RetentionEngine` once."""
    return RetentionEngine(policy).evaluate(subject, events, now)


def _plan(category: Category, rules: CategoryPolicy) -> _CategoryPlan:
    trigger_types = {
        scope_key: tuple(
            dict.fromkeys(r.event for r in rules.triggers if r.scope in (None, scope_key))
        )
        for scope_key in (None, *rules.scope)
    }
    what = rules.description[:1].upper() + rules.description[1:]
    return _CategoryPlan(
        rules, f"{category.value}.", what, rules.retention.describe(), trigger_types
    )


def _deduplicate(events: Iterable[EngineEvent]) -> list[EngineEvent]:
    """One event per id; should two differ (an upstream bug), the pick must not depend on order."""
    by_id: dict[UUID, EngineEvent] = {}
    for event in events:
        kept = by_id.setdefault(event.event_id, event)
        if kept is not event and _fingerprint(event) < _fingerprint(kept):
            by_id[event.event_id] = event
    return list(by_id.values())


def _fingerprint(event: EngineEvent) -> str:
    return f"{event.occurred_at.isoformat()}|{event.type}|{event.scope!r}|{event.data!r}"


def _order(event: EngineEvent) -> tuple[datetime, UUID]:
    return event.occurred_at, event.event_id


#: How far month arithmetic can turn two anchors' order around: 31 Jan + 1 month and 28 Jan + 1
#: month both fall on 28 Feb, each at its own time of day.
_CLAMPED_AT_MOST = timedelta(days=4)


def _due_last(retention: Retention, events: list[EngineEvent], zone: ZoneInfo) -> EngineEvent:
    """The event whose due time is latest: mostly the latest-anchored one, but where the day of
    the month is clamped (29 Feb 2016 + 5 years falls due on 28 Feb 2021, before 28 Feb 2016
    00:01 + 5 years does) an event a few days earlier may fall due after it. Due times are
    computed only for those few."""
    latest = max(events, key=lambda event: (_anchor(retention, event), event.event_id))
    since = _anchor(retention, latest) - _CLAMPED_AT_MOST
    close = [event for event in events if _anchor(retention, event) >= since]
    if len(close) == 1:
        return latest

    def lateness(event: EngineEvent) -> tuple[datetime, datetime | date, UUID]:
        anchor = _anchor(retention, event)
        return periods.due_at(retention, anchor, zone), anchor, event.event_id

    return max(close, key=lateness)


def _anchor(retention: Retention, event: EngineEvent) -> datetime | date:
    if retention.anchor == "fiscal_year_end":
        fiscal_year_end: date = event.data.fiscal_year_end
        return fiscal_year_end
    return event.occurred_at
