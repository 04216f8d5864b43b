from pathlib import Path

import pytest

from shared.domain.contract.vocabulary import Category
from shared.domain.policy import PolicyError, load_default_policy, load_policy
from shared.domain.policy.loader import DEFAULT_POLICY_RESOURCE

DEFAULT_TEXT = (
    Path(__file__).parents[2] / "shared" / "domain" / "policy" / DEFAULT_POLICY_RESOURCE
).read_text()


def problems_of(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    return refused.value.problems


def line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if fragment in line)


def test_the_default_policy_encodes_every_row_of_the_rules_page() -> None:
    policy = load_default_policy()
    rows = policy.categories
    assert set(rows) == set(Category)
    assert policy.timezone == "Europe/Stockholm"

    assert rows[Category.COLLECTION_CASE].retention.total_months == 36
    assert [r.event for r in rows[Category.COLLECTION_CASE].triggers] == ["collection_case.closed"]
    assert [r.event for r in rows[Category.COLLECTION_CASE].cancelled_by] == [
        "collection_case.reopened"
    ]

    relationship = rows[Category.CUSTOMER_RELATIONSHIP]
    assert relationship.start == "later_of"
    assert {r.event for r in relationship.triggers} == {
        "customer_relationship.ended",
        "customer_relationship.settled",
    }
    assert relationship.may_become_outdated

    assert rows[Category.AML].retention.total_months == 60
    assert rows[Category.MARKETING].retention.total_months == 36
    assert rows[Category.BOOKKEEPING].retention.calendar_years_after == 7
    assert rows[Category.BOOKKEEPING].retention.anchor == "fiscal_year_end"
    assert all(row.legal_basis and row.retention_ground for row in rows.values())

    assert policy.immediate_erasure["newsletter.unsubscribed"] == [Category.MARKETING]
    assert policy.immediate_erasure["dsr.objection"] == [Category.MARKETING]
    assert policy.immediate_erasure["consent.withdrawn"] == [Category.MARKETING]
    assert policy.immediate_erasure["dsr.erasure_requested"] == [Category.MARKETING]
    assert policy.immediate_erasure["controller.erasure_instructed"] == [
        Category.INVOICE_ADMINISTRATION
    ]


def test_a_misspelt_field_is_refused_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("retention: {years: 5}", "retention: {yeras: 5}")
    line = line_of(text, "yeras")
    assert problems_of(text, tmp_path) == [
        f"{tmp_path}/policy.yaml:{line}: categories.aml.retention.yeras: "
        "Extra inputs are not permitted",
    ]


def test_a_retention_needs_exactly_one_length(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("retention: {years: 5}", "retention: {years: 5, months: 3}")
    assert problems_of(text, tmp_path) == [
        f"{tmp_path}/policy.yaml:{line_of(text, 'years: 5, months: 3')}: categories.aml.retention: "
        "give exactly one of months, years or calendar_years_after; got months, years"
    ]


def test_an_unknown_event_type_is_refused_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("triggers: [marketing.contact]", "triggers: [marketing.kontakt]")
    [problem] = problems_of(text, tmp_path)
    assert problem.startswith(
        f"{tmp_path}/policy.yaml:{line_of(text, 'kontakt')}: "
        "categories.marketing.triggers.0.event: Input should be"
    )


def test_a_missing_category_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("  marketing:\n", "  marketing_old:\n")
    problems = problems_of(text, tmp_path)
    assert any("categories.marketing_old" in problem for problem in problems)


def test_every_category_needs_a_row(tmp_path: Path) -> None:
    start = DEFAULT_TEXT.index("  invoice_administration:")
    end = DEFAULT_TEXT.index("# Immediate triggers")
    [problem] = problems_of(DEFAULT_TEXT[:start] + DEFAULT_TEXT[end:], tmp_path)
    assert problem.endswith(
        "categories: every category needs a row; missing: invoice_administration"
    )


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("timezone: Europe/Stockholm", "timezone: Europe/Stokholm")
    assert problems_of(text, tmp_path) == [
        f"{tmp_path}/policy.yaml:{line_of(text, 'Stokholm')}: timezone: "
        "unknown IANA time zone 'Europe/Stokholm'"
    ]


def test_a_trigger_limited_to_a_scope_the_category_lacks_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("scope: [measure_id, relationship_id]", "scope: [relationship_id]")
    [problem] = problems_of(text, tmp_path)
    assert "categories.aml: aml.measure_performed is limited to scope measure_id" in problem


def test_client_overrides_only_where_clocks_are_kept_per_client(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "    triggers: [marketing.contact]\n",
        "    triggers: [marketing.contact]\n"
        "    client_overrides: {K-1: {retention: {months: 1}}}\n",
    )
    [problem] = problems_of(text, tmp_path)
    assert problem.endswith(
        "categories.marketing: client_overrides need a category kept per client_id"
    )


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    [problem] = problems_of("version: 1\ncategories: [\n", tmp_path)
    assert problem.startswith(f"{tmp_path}/policy.yaml:3: not valid YAML")


def test_a_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read it: No such file or directory"):
        load_policy(tmp_path / "absent.yaml")


def test_per_client_overrides_for_invoice_administration(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "    client_overrides: {}",
        '    client_overrides:\n      K-1001: {retention: {months: 18}, legal_basis: "DPA K-1001"}',
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    rows = load_policy(path).categories[Category.INVOICE_ADMINISTRATION]
    retention, legal_basis, client = rows.retention_for("K-1001")
    assert (retention.total_months, legal_basis, client) == (18, "DPA K-1001", "K-1001")
    retention, legal_basis, client = rows.retention_for("K-2002")
    assert (retention.total_months, client) == (36, None)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "    retention: {months: 36}\n    triggers: [collection_case.closed]",
        "    retention: {months: 36}\n    triggers: [collection_case.closed]\n"
        "    retention: {months: 1}",
    )
    assert problems_of(text, tmp_path) == [
        f"{tmp_path}/policy.yaml:{line_of(text, 'retention: {months: 1}')}: retention: given "
        "twice; remove one (YAML would silently keep the last)"
    ]


def test_a_fiscal_year_anchor_needs_triggers_that_carry_one(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "    retention: {months: 36}\n    triggers: [marketing.contact]",
        "    retention: {calendar_years_after: 1, anchor: fiscal_year_end}\n"
        "    triggers: [marketing.contact]",
    )
    [problem] = problems_of(text, tmp_path)
    assert problem.endswith(
        "categories.marketing: anchor: fiscal_year_end needs triggers that carry "
        "data.fiscal_year_end (bookkeeping.recorded)"
    )


@pytest.mark.parametrize("event_type", ["legal_hold.placed", "data.outdated", "data.disclosed"])
def test_events_with_a_fixed_meaning_cannot_be_triggers(tmp_path: Path, event_type: str) -> None:
    text = DEFAULT_TEXT.replace(
        "triggers: [marketing.contact]", f"triggers: [marketing.contact, {event_type}]"
    )
    [problem] = problems_of(text, tmp_path)
    assert f"categories.marketing: {event_type} has a fixed meaning" in problem


def test_a_client_override_keeps_the_categorys_anchor(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        "    client_overrides: {}",
        "    client_overrides:\n"
        "      K-1: {retention: {calendar_years_after: 1, anchor: fiscal_year_end}}",
    )
    [problem] = problems_of(text, tmp_path)
    assert problem.endswith(
        "categories.invoice_administration: client_overrides.K-1: anchor must stay occurred_at"
    )


def test_client_ids_and_legal_bases_must_fit_what_clocks_and_proofs_keep(tmp_path: Path) -> None:
    long_client = "K-" + "9" * 60
    text = DEFAULT_TEXT.replace(
        "    client_overrides: {}",
        f"    client_overrides:\n      {long_client}: {{retention: {{months: 18}}, "
        f'legal_basis: "{"x" * 301}"}}',
    )
    problems = problems_of(text, tmp_path)
    assert len(problems) == 2
    assert any("at most 60 characters" in problem for problem in problems)
    assert any("at most 300 characters" in problem for problem in problems)


def test_the_default_policy_brakes_every_category_at_10000_erasures_a_day() -> None:
    for rules in load_default_policy().categories.values():
        assert (rules.review.max_per_day, rules.review.first_erasure) == (10_000, False)
        assert rules.review.auto_approve_after_days is None


def test_a_category_without_review_limits_has_no_brake(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT_TEXT.replace("    review: {max_per_day: 10000}\n", ""))
    assert not any(rules.review.brakes for rules in load_policy(path).categories.values())


def test_review_limits_are_checked(tmp_path: Path) -> None:
    zero = DEFAULT_TEXT.replace(
        "    retention: {years: 5}\n", "    retention: {years: 5}\n    review: {max_per_day: 0}\n"
    ).replace("    review: {max_per_day: 10000}\n\n  marketing:", "\n  marketing:")
    [problem] = problems_of(zero, tmp_path)
    assert problem == (
        f"{tmp_path}/policy.yaml:{line_of(zero, 'max_per_day: 0')}: "
        "categories.aml.review.max_per_day: Input should be greater than 0"
    )
    unbraked = DEFAULT_TEXT.replace(
        "    triggers: [marketing.contact]\n    retention_ground: it rests on legitimate interest "
        "in marketing, which an objection ends\n    review: {max_per_day: 10000}\n",
        "    triggers: [marketing.contact]\n    retention_ground: it rests on legitimate interest "
        "in marketing, which an objection ends\n    review: {auto_approve_after_days: 3}\n",
    )
    [problem] = problems_of(unbraked, tmp_path)
    assert problem.endswith(
        "categories.marketing.review: auto_approve_after_days approves reviews, which only "
        "first_erasure or max_per_day open"
    )
