"""How many clocks fall due per month and category: what a DPO reviews before a bulk back-fill
goes live, and what a hold's release would let fall due (the hold register's impact). Read from
the purger's clocks; held and cancelled clocks are not counted, clocks already overdue count in
the month they fell due."""

from collections import Counter
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from shared.storage.tables.purger import SWEPT_STATES, StoredClock
from shared.storage.tables.table import table_of

_CLOCKS = table_of(StoredClock)
STREAM_ROWS = 10_000


def forecast(db: Engine, until: date, zone: ZoneInfo) -> dict[tuple[str, str], int]:
    """``(month "YYYY-MM" in ``zone``, category) -> clocks`` due up to the end of ``until``."""
    end = datetime.combine(until + timedelta(days=1), time(), zone)
    counts: Counter[tuple[str, str]] = Counter()
    query = select(_CLOCKS.c.due_at, _CLOCKS.c.category).where(
        _CLOCKS.c.state.in_(SWEPT_STATES), _CLOCKS.c.due_at < end
    )
    with db.connect() as connection:
        rows = connection.execution_options(yield_per=STREAM_ROWS).execute(query)
        for due_at, category in rows:
            counts[(month_of(due_at, zone), category)] += 1
    return dict(sorted(counts.items()))


def month_of(due_at: datetime, zone: ZoneInfo) -> str:
    """The month a clock falls due in, ``YYYY-MM`` in the policy's time zone."""
    return due_at.astimezone(zone).strftime("%Y-%m")
