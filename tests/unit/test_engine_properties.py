"""Properties the engine must keep for any history, not just the examples we thought of."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.engine import ClockState, RetentionEngine
from shared.domain.policy import load_default_policy
from tests.histories import NOW, TRIGGERS, histories, instants, make_event

ENGINE = RetentionEngine(load_default_policy())
SUBJECT = "subject"


@settings(max_examples=300, deadline=None)
@given(history=histories, data=st.data())
def test_the_result_depends_neither_on_order_nor_on_duplicates(history, data) -> None:
    expected = ENGINE.evaluate(SUBJECT, history, NOW)
    duplicates = data.draw(st.lists(st.sampled_from(history), max_size=5))
    reordered = data.draw(st.permutations(history + duplicates))
    assert ENGINE.evaluate(SUBJECT, reordered, NOW) == expected


@settings(max_examples=300, deadline=None)
@given(history=histories, hold_at=instants)
def test_under_a_standing_subject_wide_hold_nothing_is_due(history, hold_at) -> None:
    standing = [e for e in history if e.type != "legal_hold.released"]
    placed_at = min(hold_at, NOW)  # a hold placed after `now` has not happened yet
    standing.append(make_event("legal_hold.placed", placed_at, {}, {"hold_id": "H-standing"}))
    for clock in ENGINE.evaluate(SUBJECT, standing, NOW):
        assert clock.state not in (ClockState.DUE, ClockState.ERASE_NOW)
        assert clock.state in (ClockState.HELD, ClockState.CANCELLED)


@settings(max_examples=300, deadline=None)
@given(history=histories, gap=st.integers(1, 5 * 365 * 24 * 60), year_end=st.integers(2014, 2030))
def test_a_later_trigger_never_moves_due_at_earlier(history, gap, year_end) -> None:
    later = max(e.occurred_at for e in history) + timedelta(minutes=gap)
    now = later  # so that the added trigger has happened
    for clock in ENGINE.evaluate(SUBJECT, history, now):
        scope_key = clock.scope[0] if clock.scope else None
        for trigger_type in TRIGGERS.get((clock.category.value, scope_key), []):
            if clock.due_at is None:
                continue
            data = {}
            if trigger_type == "bookkeeping.recorded":
                data = {"fiscal_year_end": date(year_end, 12, 31).isoformat()}
            extra = make_event(trigger_type, later, clock.scope_dict, data)
            [after] = [
                c
                for c in ENGINE.evaluate(SUBJECT, [*history, extra], now)
                if (c.category, c.scope) == (clock.category, clock.scope)
            ]
            assert after.due_at is not None
            assert after.due_at >= clock.due_at
