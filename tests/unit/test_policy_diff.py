"""``gallring policy diff OLD NEW --events FILE``: what a policy change would do to the clocks of
a file of events, before anyone applies it."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain.contract.vocabulary import Category
from shared.domain.engine import ClockState
from shared.domain.engine.clock_diff import ClockDiff, ClockId, Verdict
from shared.domain.policy.loader import DEFAULT_POLICY_RESOURCE
from tests.unit.test_cli import run, write_lines

REPO = Path(__file__).parents[2]
DEFAULT = REPO / "shared" / "domain" / "policy" / DEFAULT_POLICY_RESOURCE
NOW = "2026-11-25T00:00:00Z"
CASE_RULE = "retention: {months: 36}\n    triggers: [collection_case.closed]"
MARKETING_RULE = "retention: {months: 36}\n    triggers: [marketing.contact]"
AML_FLOOR = (
    "  aml:\n    at_least: {years: 5}\n    because: the Swedish AML Act (2017:630), ch. 5 s. 3\n"
)


def new_policy(tmp_path: Path) -> Path:
    """Collection cases kept 18 months instead of 36, marketing 48 instead of 36, and the AML
    floor dropped."""
    text = DEFAULT.read_text()
    for old, new in [
        (CASE_RULE, CASE_RULE.replace("36", "18")),
        (MARKETING_RULE, MARKETING_RULE.replace("36", "48")),
        (AML_FLOOR, ""),
    ]:
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = tmp_path / "new.yaml"
    path.write_text(text)
    return path


def an_event(event_type: str, ref: str, occurred_at: str, **fields: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": occurred_at,
        "subject": {"ref": ref},
        **fields,
    }


def closed(ref: str, occurred_at: str) -> dict:
    return an_event(
        "collection_case.closed", ref, occurred_at, role="debtor", scope={"case_id": "C-1"}
    )


#: When :func:`one_subject_diffed` compares the verdicts.
DIFFED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def one_subject_diffed(before: dict[ClockId, Verdict], after: dict[ClockId, Verdict]) -> ClockDiff:
    """The diff of one subject's clocks at :data:`DIFFED_AT`, from their verdicts under the old
    policy (``before``) to those under the new one (``after``)."""
    diff = ClockDiff()
    diff.add_subject(before, after, DIFFED_AT)
    return diff


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path,
        # Closed 30 months before NOW: due in 6 months under OLD, overdue under NEW.
        closed("crm:overdue", "2024-05-25T10:00:00+02:00"),
        # Closed 6 months before: due 12 months sooner, still pending.
        closed("crm:recent", "2026-05-25T10:00:00+02:00"),
        # As the first, but held: earlier, yet nothing under a hold is erased.
        closed("crm:held", "2024-05-25T10:00:00+02:00"),
        an_event(
            "legal_hold.placed", "crm:held", "2025-01-01T10:00:00+01:00", data={"hold_id": "H"}
        ),
        # Marketing contact: kept 12 months longer.
        an_event("marketing.contact", "crm:contact", "2026-01-10T10:00:00+01:00"),
        # Bookkeeping: untouched.
        an_event(
            "bookkeeping.recorded",
            "crm:books",
            "2026-01-20T10:00:00+01:00",
            data={"fiscal_year_end": "2025-12-31"},
        ),
    )


def test_the_diff_counts_clocks_moved_earlier_later_and_due_at_once_by_category(
    tmp_path, events, capsys
) -> None:
    argv = ["policy", "diff", str(DEFAULT), str(new_policy(tmp_path)), "--events", str(events)]
    code, out, err = run(capsys, *argv, "--now", NOW, "--json")

    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["subjects"], report["now"]) == (5, NOW)
    zero = dict.fromkeys(["earlier", "later", "unchanged", "new", "gone", "due_at_once"], 0)
    assert report["categories"]["collection_case"] == {
        **zero,
        "clocks": 3,
        "earlier": 3,
        "due_at_once": 1,
    }
    assert report["categories"]["marketing"] == {**zero, "clocks": 1, "later": 1}
    assert report["categories"]["bookkeeping"] == {**zero, "clocks": 1, "unchanged": 1}
    assert report["categories"]["aml"] == {**zero, "clocks": 0}
    assert report["total"] == {
        **zero,
        "clocks": 5,
        "earlier": 3,
        "later": 1,
        "unchanged": 1,
        "due_at_once": 1,
    }
    assert report["floors_lowered"] == {"aml": "removed"}


def test_the_diff_for_a_person_is_a_table_and_says_what_the_first_sweep_would_erase(
    tmp_path, events, capsys
) -> None:
    new = new_policy(tmp_path)
    argv = ["policy", "diff", str(DEFAULT), str(new), "--events", str(events), "--now", NOW]
    code, out, _ = run(capsys, *argv)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{DEFAULT} -> {new}: 5 subject(s), as of {NOW}"
    assert lines[1].split() == [
        "category",
        *("clocks", "earlier", "later", "unchanged", "new", "gone", "due", "at", "once"),
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:9]}
    assert rows["collection_case"] == ["3", "3", "0", "0", "0", "0", "1"]
    assert rows["marketing"] == ["1", "0", "1", "0", "0", "0", "0"]
    assert rows["total"] == ["5", "3", "1", "1", "0", "0", "1"]
    assert lines[9:] == [
        f"1 clock(s) fall due at once under {new}: the first sweep after it is applied erases "
        "their data.",
        f"{new} removed the floor of aml.",
    ]


def test_the_same_policy_changes_nothing(events, capsys) -> None:
    argv = ["policy", "diff", str(DEFAULT), str(DEFAULT), "--events", str(events), "--now", NOW]
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    total = json.loads(out)["total"]
    assert (total["clocks"], total["unchanged"], total["due_at_once"]) == (5, 5, 0)


def test_a_new_policy_below_a_floor_is_refused_rather_than_diffed(tmp_path, events, capsys):
    below = tmp_path / "below.yaml"
    below.write_text(DEFAULT.read_text().replace("retention: {years: 5}", "retention: {years: 3}"))
    code, out, err = run(
        capsys, "policy", "diff", str(DEFAULT), str(below), "--events", str(events)
    )
    assert (code, out) == (2, "")
    assert f"{below}:" in err and "categories.aml.retention.years: 3 years" in err


def test_bad_lines_and_wrong_arguments_exit_2(tmp_path, capsys) -> None:
    bad = write_lines(tmp_path, "not json")
    code, _, err = run(capsys, "policy", "diff", str(DEFAULT), str(DEFAULT), "--events", str(bad))
    assert (code, err) == (2, "line 1: not valid JSON: Expecting value (column 1)\n")
    code, _, err = run(capsys, "policy", "diff", str(DEFAULT), "--events", str(bad))
    assert (code, err) == (2, "gallring policy diff: give OLD NEW with --events\n")
    code, _, err = run(capsys, "policy", "diff", str(DEFAULT), "--database", "--now", NOW)
    assert code == 2 and "--now goes with --events" in err


def test_new_gone_and_clocks_that_never_fall_due_are_told_apart() -> None:
    now = DIFFED_AT
    soon, later = now + timedelta(days=1), now + timedelta(days=30)
    diff = one_subject_diffed(
        {
            ("marketing", "", ""): Verdict(ClockState.PENDING, later),
            ("collection_case", "case_id", "C-1"): Verdict(ClockState.CANCELLED, None),
            ("collection_case", "case_id", "C-2"): Verdict(ClockState.PENDING, soon),
            ("collection_case", "case_id", "C-3"): Verdict(ClockState.PENDING, soon),
            # Stored pending, its time come since: the next sweep erases it either way.
            ("aml", "measure_id", "M-1"): Verdict(ClockState.PENDING, now - timedelta(days=1)),
        },
        {
            ("collection_case", "case_id", "C-1"): Verdict(ClockState.PENDING, later),
            ("collection_case", "case_id", "C-2"): Verdict(ClockState.CANCELLED, None),
            ("collection_case", "case_id", "C-4"): Verdict(ClockState.ERASE_NOW, now),
            ("aml", "measure_id", "M-1"): Verdict(ClockState.DUE, now - timedelta(days=2)),
        },
    )
    counts = {category.value: c.as_dict() for category, c in diff.by_category.items()}
    assert (counts["marketing"]["clocks"], counts["marketing"]["gone"]) == (1, 1)
    assert counts["collection_case"] == {
        "clocks": 4,
        "earlier": 1,  # C-1: from never to a day
        "later": 1,  # C-2: from a day to never
        "unchanged": 0,
        "new": 1,  # C-4
        "gone": 1,  # C-3
        "due_at_once": 1,  # C-4, erased at once
    }
    assert counts["aml"]["earlier"] == 1 and counts["aml"]["due_at_once"] == 0


def test_clocks_made_due_are_counted_apart_from_those_erased_at_once_on_a_request() -> None:
    """What the purger measures against max_per_day: an erasure at once (the person asked for
    it) is due at once, but no review stops it."""
    now = DIFFED_AT
    later = now + timedelta(days=30)
    diff = one_subject_diffed(
        {
            ("collection_case", "case_id", "C-1"): Verdict(ClockState.PENDING, later),
            ("collection_case", "case_id", "C-2"): Verdict(ClockState.PENDING, later),
            ("collection_case", "case_id", "C-3"): Verdict(ClockState.DUE, now),
            ("marketing", "", ""): Verdict(ClockState.PENDING, later),
        },
        {
            ("collection_case", "case_id", "C-1"): Verdict(ClockState.DUE, now),
            ("collection_case", "case_id", "C-2"): Verdict(ClockState.PENDING, later),
            ("collection_case", "case_id", "C-3"): Verdict(ClockState.DUE, now),  # due already
            ("collection_case", "case_id", "C-4"): Verdict(ClockState.DUE, now),  # new, due
            ("marketing", "", ""): Verdict(ClockState.ERASE_NOW, now),
        },
    )
    assert diff.by_category[Category.COLLECTION_CASE].due_at_once == 2
    assert diff.made_due[Category.COLLECTION_CASE] == 2
    assert diff.by_category[Category.MARKETING].due_at_once == 1
    assert diff.made_due[Category.MARKETING] == 0
