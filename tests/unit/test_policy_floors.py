"""Floors: a policy that could erase a category's data before its statutory minimum is refused,
with the line of the offending period, by `gallring policy check` and by the services at start."""

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.cli.main import main
from shared.domain.contract.vocabulary import Category
from shared.domain.engine import RetentionEngine
from shared.domain.engine.periods import due_at
from shared.domain.policy import PolicyError, Retention, load_default_policy, load_policy
from shared.domain.policy.floors import at_least
from shared.domain.policy.loader import parse_policy
from tests.unit.test_policy import DEFAULT_TEXT, line_of, problems_of

STOCKHOLM = ZoneInfo("Europe/Stockholm")
BOOKKEEPING_RETENTION = "retention: {calendar_years_after: 7, anchor: fiscal_year_end}"
AML_RETENTION = "retention: {years: 5}"


def with_retention(category_retention: str, retention: str) -> str:
    assert DEFAULT_TEXT.count(category_retention) == 1
    return DEFAULT_TEXT.replace(category_retention, retention)


def test_the_default_policy_declares_the_swedish_floors_and_keeps_them() -> None:
    floors = load_default_policy().floors
    assert floors[Category.BOOKKEEPING].at_least == Retention(
        calendar_years_after=7, anchor="fiscal_year_end"
    )
    assert "Bookkeeping Act (1999:1078)" in floors[Category.BOOKKEEPING].because
    assert floors[Category.AML].at_least == Retention(years=5)
    assert "AML Act (2017:630)" in floors[Category.AML].because


def test_policy_check_accepts_the_default_policy_and_names_its_floors(capsys) -> None:
    default = Path(__file__).parents[2] / "shared/domain/policy/default_policy.yaml"
    assert main(["policy", "check", str(default)]) == 0
    assert (
        "floors: bookkeeping through the 7th calendar year after the end of the financial "
        "year; aml 5 years after its trigger"
    ) in capsys.readouterr().out


def test_policy_check_refuses_a_period_below_its_floor_naming_the_line(tmp_path, capsys) -> None:
    text = with_retention(AML_RETENTION, "retention:\n      years: 4")
    policy = tmp_path / "shorter-aml.yaml"
    policy.write_text(text)

    code = main(["policy", "check", str(policy)])

    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    line = line_of(text, "years: 4")  # the period's own line, not its category's
    assert (
        f"{policy}:{line}: categories.aml.retention.years: 4 years after its trigger is below "
        "its floor, 5 years after its trigger (the Swedish AML Act (2017:630), ch. 5 s. 3)"
    ) in captured.err
    assert "the least of this shape that keeps the floor is years: 5" in captured.err


@pytest.mark.parametrize(
    ("retention", "kept"),
    [
        # 31 December + 84 months is 31 December of the 7th year: kept through it, due after.
        ("{months: 96, anchor: fiscal_year_end}", True),
        ("{months: 95, anchor: fiscal_year_end}", False),  # 30 Nov + 95 months: November, y+8
        ("{years: 8, anchor: fiscal_year_end}", True),
        ("{years: 7, anchor: fiscal_year_end}", False),
        ("{calendar_years_after: 8, anchor: fiscal_year_end}", True),
        ("{calendar_years_after: 6, anchor: fiscal_year_end}", False),
    ],
)
def test_bookkeeping_periods_of_other_shapes_compare_exactly(
    tmp_path, retention: str, kept: bool
) -> None:
    text = with_retention(BOOKKEEPING_RETENTION, f"retention: {retention}")
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    if kept:
        load_policy(path)
        return
    [problem] = problems_of(text, tmp_path)
    assert problem.startswith(f"{path}:{line_of(text, retention)}: categories.bookkeeping.")
    assert (
        "is below its floor, through the 7th calendar year after the end of the financial "
        "year (the Swedish Bookkeeping Act (1999:1078), ch. 7 s. 2)"
    ) in problem


@pytest.mark.parametrize(
    ("retention", "kept"),
    [
        ("{months: 60}", True),
        ("{months: 59}", False),
        # Due 1 January of year + 6, at or after every start + 5 years; year + 5 is too early
        # for a start after 1 January.
        ("{calendar_years_after: 5}", True),
        ("{calendar_years_after: 4}", False),
    ],
)
def test_aml_periods_of_other_shapes_compare_exactly(tmp_path, retention: str, kept: bool) -> None:
    text = with_retention(AML_RETENTION, f"retention: {retention}")
    if kept:
        parse_policy(text, source="policy.yaml")
    else:
        assert len(problems_of(text, tmp_path)) == 1


def test_a_period_counted_from_another_anchor_than_its_floor_is_refused(tmp_path) -> None:
    text = with_retention(BOOKKEEPING_RETENTION, "retention: {calendar_years_after: 9}")
    [problem] = problems_of(text, tmp_path)
    assert ": categories.bookkeeping.retention.anchor: counts from occurred_at and its floor" in (
        problem
    )
    assert "cannot be compared; count it from fiscal_year_end" in problem


def test_a_client_override_below_the_floor_is_refused_on_its_own_line(tmp_path) -> None:
    text = DEFAULT_TEXT.replace(
        "client_overrides: {}\n",
        "client_overrides:\n      K-1001:\n        retention: {months: 18}\n",
    ).replace(
        "  bookkeeping:\n    at_least: {calendar_years_after: 7, anchor: fiscal_year_end}",
        "  invoice_administration:\n    at_least: {months: 24}\n    because: a contract\n"
        "  bookkeeping:\n    at_least: {calendar_years_after: 7, anchor: fiscal_year_end}",
    )
    # (A controller's instruction would erase it at once, before the floor, too.)
    text = text.replace("controller.erasure_instructed: [invoice_administration]", "")
    [problem] = problems_of(text, tmp_path)
    assert problem.startswith(
        f"{tmp_path}/policy.yaml:{line_of(text, 'months: 18')}: "
        "categories.invoice_administration.client_overrides.K-1001.retention.months: "
        "18 months after its trigger is below its floor, 24 months after its trigger (a contract)"
    )


def test_other_ways_to_erase_before_a_floor_are_refused(tmp_path) -> None:
    """data.outdated and an immediate erasure would end the retention before the floor."""
    text = (
        DEFAULT_TEXT.replace(
            "    retention: {years: 5}\n",
            "    retention: {years: 5}\n    may_become_outdated: true\n",
        )
        .replace("dsr.erasure_requested: [marketing]", "dsr.erasure_requested: [marketing, aml]")
        .replace(
            "consent.withdrawn: [marketing]", "consent.withdrawn: [bookkeeping, aml, marketing]"
        )
    )
    assert problems_of(text, tmp_path) == [
        f"{tmp_path}/policy.yaml:{line_of(text, 'retention: {years: 5}') + 1}: "
        "categories.aml.may_become_outdated: data.outdated would erase aml data before its "
        "floor, 5 years after its trigger (the Swedish AML Act (2017:630), ch. 5 s. 3); "
        "set it to false",
        f"{tmp_path}/policy.yaml:{line_of(text, 'consent.withdrawn')}: "
        "immediate_erasure.consent.withdrawn.0: consent.withdrawn would erase bookkeeping data "
        "at once, before its floor, through the 7th calendar year after the end of the "
        "financial year (the Swedish Bookkeeping Act (1999:1078), ch. 7 s. 2); remove "
        "bookkeeping here",
        f"{tmp_path}/policy.yaml:{line_of(text, 'consent.withdrawn')}: "
        "immediate_erasure.consent.withdrawn.1: consent.withdrawn would erase aml data at once, "
        "before its floor, 5 years after its trigger (the Swedish AML Act (2017:630), "
        "ch. 5 s. 3); remove aml here",
        f"{tmp_path}/policy.yaml:{line_of(text, 'dsr.erasure_requested')}: "
        "immediate_erasure.dsr.erasure_requested.1: dsr.erasure_requested would erase aml data "
        "at once, before its floor, 5 years after its trigger (the Swedish AML Act (2017:630), "
        "ch. 5 s. 3); remove aml here",
    ]


@pytest.mark.parametrize("service", ["api", "purger"])
def test_a_service_refuses_to_start_on_a_policy_below_its_floor(
    service, tmp_path, monkeypatch, capsys
) -> None:
    text = with_retention(AML_RETENTION, "retention: {years: 4}")
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", "p" * 40)
    monkeypatch.setenv("GALLRING_SECRET_SEALING_KEY", "s" * 40)
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'gallring.db'}")
    monkeypatch.setenv("GALLRING_POLICY_FILE", str(policy))
    monkeypatch.delenv("GALLRING_SECRETS_DIR", raising=False)

    def started(*_: object) -> None:
        raise AssertionError(f"the {service} started on a policy below its floor")

    monkeypatch.setattr(f"services.{service}.main.serve", started)  # else it would run on
    code = main([service])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"gallring: invalid policy {policy}:\n  {policy}:")
    assert f":{line_of(text, 'years: 4')}: categories.aml.retention.years: " in err
    assert not (tmp_path / "gallring.db").exists()  # refused before it migrated anything


def test_floors_change_no_verdict_so_they_leave_the_policy_digest_alone() -> None:
    """Declaring a floor must not make the purger re-evaluate every subject it holds."""
    floors_block = DEFAULT_TEXT[DEFAULT_TEXT.index("floors:") : DEFAULT_TEXT.index("categories:")]
    without = parse_policy(DEFAULT_TEXT.replace(floors_block, ""), source="without floors")
    assert not without.floors
    assert RetentionEngine(without).digest == RetentionEngine(load_default_policy()).digest


# The comparison against the engine's own arithmetic: for every pair of shapes on a grid,
# at_least holds exactly when no anchor among the extremes of a year (its first instant, its last,
# month ends, leap days, DST days) falls due earlier than the floor.
_INSTANTS = [
    datetime(2023, 1, 1, 0, 0, tzinfo=STOCKHOLM),
    datetime(2023, 1, 31, 12, 0, tzinfo=STOCKHOLM),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=STOCKHOLM),
    datetime(2023, 3, 26, 2, 30, tzinfo=STOCKHOLM),  # in the spring DST gap
    datetime(2023, 10, 29, 2, 30, tzinfo=STOCKHOLM),  # in the autumn fold
    datetime(2023, 8, 31, 0, 0, tzinfo=STOCKHOLM),
    datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=STOCKHOLM),
    datetime(2023, 12, 31, 23, 30, tzinfo=UTC),  # already 1 January 2024 in Stockholm
]
_DATES = [date(2023, 1, 1), date(2024, 2, 29), date(2023, 6, 30), date(2023, 12, 31)]


def _shapes(anchor: str) -> list[Retention]:
    return [
        *(Retention(months=n, anchor=anchor) for n in range(1, 50)),
        *(Retention(calendar_years_after=n, anchor=anchor) for n in range(4)),
    ]


@pytest.mark.parametrize("anchor", ["occurred_at", "fiscal_year_end"])
def test_at_least_is_exactly_no_start_falling_due_earlier(anchor: str) -> None:
    anchors: list[datetime | date] = [*_INSTANTS] if anchor == "occurred_at" else [*_DATES]
    for retention, floor in itertools.product(_shapes(anchor), repeat=2):
        earlier = [
            start
            for start in anchors
            if due_at(retention, start, STOCKHOLM) < due_at(floor, start, STOCKHOLM)
        ]
        assert at_least(retention, floor) == (not earlier), (retention, floor, earlier)


def test_at_least_holds_for_every_start_of_a_whole_year_at_the_boundaries() -> None:
    """Hour by hour through a year: the boundary cases of each mixed pair are never earlier."""
    pairs = [
        (Retention(calendar_years_after=7), Retention(months=84)),
        (Retention(months=96), Retention(calendar_years_after=7)),
        (Retention(calendar_years_after=5), Retention(years=5)),
    ]
    start = datetime(2024, 1, 1, tzinfo=STOCKHOLM)
    for hours in range(0, 366 * 24):
        anchor = (start + timedelta(hours=hours)).astimezone(UTC)
        for retention, floor in pairs:
            assert at_least(retention, floor)
            assert due_at(retention, anchor, STOCKHOLM) >= due_at(floor, anchor, STOCKHOLM)


def test_a_loaded_policy_below_its_floor_is_a_policy_error(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(with_retention(AML_RETENTION, "retention: {months: 59}"))
    with pytest.raises(PolicyError, match=r"categories\.aml\.retention\.months: 59 months"):
        load_policy(path)
