"""The hold register's pure parts: the shapes of what a hold covers, the review thresholds, and
what personal data its free text is refused for."""

import pytest
from pydantic import TypeAdapter, ValidationError

from services.api.holds.schemas import Covers, HoldCoverage, HoldId
from services.api.holds.standing import belongs, hold_of
from shared.domain.contract.errors import describe
from shared.domain.contract.events import HoldPlacedData, HoldReleasedData
from shared.domain.contract.hold_messages import review_threshold
from shared.domain.contract.vocabulary import (
    IDENTIFIER_PATTERN,
    PLACEMENT_SEPARATOR,
    WRITTEN_BY_GALLRING,
)
from shared.domain.personal_data import personal_data_in

SUBJECT = {"ref": "crm:4711"}


@pytest.mark.parametrize(
    ("covers", "kind"),
    [
        ({"subject": SUBJECT}, HoldCoverage.SUBJECT),
        ({"subject": SUBJECT, "category": "aml"}, HoldCoverage.SUBJECT_CATEGORY),
        ({"subject": SUBJECT, "case_ids": ["C-1"]}, HoldCoverage.SUBJECT_CASES),
        ({"case_ids": ["C-1", "C-2"]}, HoldCoverage.CASES),
        ({"category": "collection_case"}, HoldCoverage.CATEGORY),
        ({"client_id": "K-1"}, HoldCoverage.CLIENT),
    ],
)
def test_each_shape_a_hold_may_cover(covers: dict, kind: HoldCoverage) -> None:
    assert Covers.model_validate(covers).kind is kind


@pytest.mark.parametrize(
    "covers",
    [
        {},
        {"subject": SUBJECT, "client_id": "K-1"},
        {"case_ids": ["C-1"], "category": "aml"},
        {"category": "aml", "client_id": "K-1"},
        {"case_ids": []},
        {"case_ids": ["C-19811218-9876"]},
    ],
)
def test_other_shapes_are_refused(covers: dict) -> None:
    with pytest.raises(ValidationError):
        Covers.model_validate(covers)


@pytest.mark.parametrize(
    ("days_left", "threshold"),
    [
        (45, None),
        (31, None),
        (30, "30d"),
        (8, "30d"),
        (7, "7d"),
        (2, "7d"),
        (1, "1d"),
        (0, "1d"),
        (-1, "past"),
        (-400, "past"),
    ],
)
def test_a_review_is_at_the_most_urgent_threshold_it_is_within(
    days_left: int, threshold: str | None
) -> None:
    assert review_threshold(days_left) == threshold


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("the debtor 8112189876 disputes the claim", "a personal identity or coordination number"),
        ("born 19811218-9876", "a personal identity or coordination number"),
        ("write to anna.svensson@example.se", "an e-mail address"),
        ("the claim is disputed at the district court, T 1234-26", None),
        ("matter 2026-0412 (see the ticket @legal)", None),
    ],
)
def test_what_personal_data_free_text_holds_is_told_by_its_kind(
    text: str, found: str | None
) -> None:
    assert personal_data_in(text) == found


def test_a_holds_placements_belong_to_it_and_no_other() -> None:
    assert belongs("H-1", "H-1") and belongs("H-1~C-7", "H-1")
    assert not belongs("H-10", "H-1") and not belongs("H-1~C-7", "H-1~C")
    # '#' is an upstream id's character: H-1#court is a hold of its own.
    assert not belongs("H-1#court", "H-1") and not belongs("H-1#C-7", "H-1")
    assert hold_of("H-1~C-7", {"H-1"}) == "H-1"
    assert hold_of("H-1#court", {"H-1"}) == "H-1#court"
    assert hold_of("UP#9", {"H-1"}) == "UP#9"


@pytest.mark.parametrize("event_type", [HoldPlacedData, HoldReleasedData])
def test_the_registers_separator_is_refused_from_upstream_and_read_from_gallring(
    event_type: type[HoldPlacedData] | type[HoldReleasedData],
) -> None:
    """An upstream system's hold id is an Identifier, '#' and all; '~' only Gallring writes,
    in the register's placement ids, and its contract's schema does not offer it."""
    with pytest.raises(ValidationError) as refused:
        event_type.model_validate({"hold_id": "H-1~C-7"})
    [error] = describe(refused.value)
    assert (error.field, error.message) == (
        "hold_id",
        f"String should match pattern '{IDENTIFIER_PATTERN}'",
    )
    assert event_type.model_validate({"hold_id": "UP#9"}).hold_id == "UP#9"
    written = event_type.model_validate({"hold_id": "H-1~C-7"}, context=WRITTEN_BY_GALLRING)
    assert written.hold_id == "H-1~C-7"
    schema = event_type.model_json_schema()["properties"]["hold_id"]
    assert schema["pattern"] == IDENTIFIER_PATTERN and PLACEMENT_SEPARATOR not in schema["pattern"]


@pytest.mark.parametrize("hold_id", ["H/1", "H#1", "H~1", "a/b#c"])
def test_a_registers_hold_id_has_no_character_a_url_path_or_a_placement_would_mistake(
    hold_id: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        TypeAdapter(HoldId).validate_python(hold_id)
    [error] = describe(refused.value)
    assert error.message.startswith("must not contain '")
    assert "URL paths" in error.message
