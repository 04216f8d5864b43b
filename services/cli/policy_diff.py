"""``gallring policy diff``: what a policy change would do to the clocks, before it is applied.

Offline, ``OLD NEW --events FILE`` evaluates a JSON-lines file of events (as ``policy evaluate``
reads it) under both policies; ``--database NEW`` compares the clocks the purger holds with what
NEW makes of their facts (:mod:`services.purger.policy_diff`, which changes nothing). Either way,
per category: how many clocks move earlier, later, stay, appear or go, and how many fall due at
once (:mod:`shared.domain.engine.clock_diff`), as a table or, with ``--json``, for machines. An
offline diff also names the floors NEW removes or lowers: a floor taken away lets the next edit
shorten a period unchecked. A diff on the database also names the categories whose clocks made
due at once exceed NEW's ``max_per_day``: the purger will not erase those when NEW runs, but
stop them all for a disposition review (:mod:`services.purger.policy_change_review`).
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from services.cli.policy import (
    EXIT_INVALID_INPUT,
    OUTSIDE_THE_CALENDAR,
    describe_error,
    outside_the_calendar,
    read_events,
)
from shared.domain.engine import RetentionEngine
from shared.domain.engine.clock_diff import ClockDiff, verdicts
from shared.domain.policy import Policy, PolicyError, load_policy
from shared.domain.policy.floors import at_least

_COLUMNS = (
    ("clocks", "clocks"),
    ("earlier", "earlier"),
    ("later", "later"),
    ("unchanged", "unchanged"),
    ("new", "new"),
    ("gone", "gone"),
    ("due_at_once", "due at once"),
)


def diff_events(
    old_path: Path,
    new_path: Path,
    events_path: Path,
    *,
    now: datetime | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Evaluate a file of events under OLD and under NEW and print what changes; 2 if a policy
    or a line of the file is bad."""
    try:
        old, new = load_policy(old_path), load_policy(new_path)
        events, problems = read_events(events_path)
    except (PolicyError, OSError) as error:
        print(f"gallring: {describe_error(error)}", file=err)
        return EXIT_INVALID_INPUT
    if problems:
        print("\n".join(problems), file=err)
        return EXIT_INVALID_INPUT
    at = now or datetime.now(UTC)
    old_engine, new_engine = RetentionEngine(old), RetentionEngine(new)
    diff = ClockDiff()
    try:
        for pseudonym, subject_events in events.by_subject.items():
            before = verdicts(old_engine.evaluate(pseudonym, subject_events, at))
            after = verdicts(new_engine.evaluate(pseudonym, subject_events, at))
            diff.add_subject(before, after, at)
    except (OverflowError, ValueError) as error:
        if not outside_the_calendar(error):
            raise
        print(OUTSIDE_THE_CALENDAR, file=err)
        return EXIT_INVALID_INPUT
    report = _report(diff, at, old=str(old_path), new=str(new_path))
    report["floors_lowered"] = lowered_floors(old, new)
    _print(report, as_json=as_json, out=out)
    return 0


def diff_database(
    database_url: str, new_path: Path, *, as_json: bool, out: TextIO, err: TextIO
) -> int:
    """Compare the clocks the purger holds in the database with NEW's verdicts; 2 if NEW is
    bad. Reads only."""
    from services.purger.policy_diff import diff_stored_clocks  # the database for this alone
    from shared.storage.database import make_engine

    try:
        new = load_policy(new_path)
    except PolicyError as error:
        print(f"gallring: {describe_error(error)}", file=err)
        return EXIT_INVALID_INPUT
    at = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        diff = diff_stored_clocks(engine, RetentionEngine(new), at)
    finally:
        engine.dispose()
    report = _report(diff, at, old=None, new=str(new_path))
    report["to_review"] = to_review(diff, new)
    _print(report, as_json=as_json, out=out)
    return 0


def to_review(diff: ClockDiff, new: Policy) -> dict[str, dict[str, int]]:
    """Per category whose clocks made due at once (not erased at once on a request) exceed
    NEW's ``max_per_day``: how many, and the limit. The purger's policy refresh stops them all
    for a review once NEW runs."""
    stopped = {}
    for category, made_due in diff.made_due.items():
        limit = new.categories[category].review.max_per_day
        if limit is not None and made_due > limit:
            stopped[category.value] = {"clocks": made_due, "max_per_day": limit}
    return stopped


def lowered_floors(old: Policy, new: Policy) -> dict[str, str]:
    """Per category, ``removed`` or ``lowered`` where NEW's floor is gone or below OLD's."""
    lowered = {}
    for category, floor in old.floors.items():
        kept = new.floors.get(category)
        if kept is None:
            lowered[category.value] = "removed"
        elif kept.at_least.anchor != floor.at_least.anchor or not at_least(
            kept.at_least, floor.at_least
        ):
            lowered[category.value] = "lowered"
    return lowered


def _report(diff: ClockDiff, now: datetime, *, old: str | None, new: str) -> dict[str, Any]:
    return {
        "old": old,  # None: the clocks the purger holds
        "new": new,
        "now": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "subjects": diff.subjects,
        "categories": {
            category.value: counts.as_dict() for category, counts in diff.by_category.items()
        },
        "total": diff.total.as_dict(),
    }


def _print(report: dict[str, Any], *, as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump(report, out, indent=2)
        out.write("\n")
        return
    old = report["old"] or "the clocks the purger holds"
    print(
        f"{old} -> {report['new']}: {report['subjects']:,} subject(s), as of {report['now']}",
        file=out,
    )
    rows = [(category, counts) for category, counts in report["categories"].items()]
    rows.append(("total", report["total"]))
    table = [["category", *(title for _, title in _COLUMNS)]]
    table += [[name, *(f"{counts[key]:,}" for key, _ in _COLUMNS)] for name, counts in rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = [f"{row[0]:<{widths[0]}}"]
        cells += [f"{cell:>{width}}" for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells), file=out)
    due = report["total"]["due_at_once"]
    to_review = report.get("to_review", {})
    if due and not to_review:
        print(
            f"{due:,} clock(s) fall due at once under {report['new']}: the first sweep after it "
            "is applied erases their data.",
            file=out,
        )
    elif due:
        stopped = sum(counts["clocks"] for counts in to_review.values())
        rest = (
            f"; the first sweep after it erases the other {due - stopped:,}"
            if due > stopped
            else ""
        )
        print(
            f"{due:,} clock(s) fall due at once under {report['new']}: "
            f"{'all' if due == stopped else f'{stopped:,}'} of them wait for a disposition "
            f"review (cause policy_change) once it is applied{rest}.",
            file=out,
        )
    for category, counts in to_review.items():
        print(
            f"{category}: {counts['clocks']:,} clock(s) made due at once exceed its max_per_day "
            f"({counts['max_per_day']:,}): none is erased until a DPO approves the review.",
            file=out,
        )
    for category, how in report.get("floors_lowered", {}).items():
        print(f"{report['new']} {how} the floor of {category}.", file=out)
