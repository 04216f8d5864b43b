from datetime import date

import pytest

from shared.domain.national_id import (
    InvalidNationalIdError,
    contains_national_id,
    normalise_national_id,
    redact_national_ids,
)

TODAY = date(2026, 11, 25)


def with_check_digit(nine_digits: str) -> str:
    """Complete YYMMDDNNN with its Luhn digit, so tests can build any valid number."""
    total = 0
    for position, char in enumerate(nine_digits):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return nine_digits + str((10 - total % 10) % 10)


@pytest.mark.parametrize(
    "written",
    [
        "19811218-9876",
        "198112189876",
        "811218-9876",
        "8112189876",
        "19811218+9876",
        " 811218-9876 ",
    ],
)
def test_every_accepted_shape_normalises_to_the_same_twelve_digits(written: str) -> None:
    assert normalise_national_id(written, today=TODAY) == "198112189876"


def test_ten_digits_with_plus_means_a_hundred_years_or_older() -> None:
    ten = with_check_digit("121212121")
    assert normalise_national_id(f"{ten[:6]}-{ten[6:]}", today=TODAY) == "20" + ten
    assert normalise_national_id(f"{ten[:6]}+{ten[6:]}", today=TODAY) == "19" + ten


def test_ten_digits_take_the_century_that_makes_the_person_younger_than_100() -> None:
    born_2026 = with_check_digit("261101123")
    born_1927 = with_check_digit("271201123")
    assert normalise_national_id(born_2026, today=TODAY).startswith("2026")
    assert normalise_national_id(born_1927, today=TODAY).startswith("1927")


def test_coordination_number_with_day_plus_sixty_is_accepted() -> None:
    coordination = with_check_digit("811278987")  # 18 + 60 = 78
    assert normalise_national_id(coordination, today=TODAY) == "19" + coordination


def test_leap_day_is_a_date_only_in_leap_years() -> None:
    assert normalise_national_id("20" + with_check_digit("000229123"), today=TODAY)
    with pytest.raises(InvalidNationalIdError, match="the date part is not a valid date"):
        normalise_national_id("19" + with_check_digit("000229123"), today=TODAY)


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("19811218-9875", "check digit"),
        ("19" + with_check_digit("811318987"), "not a valid date of birth"),
        ("1981121-89876", "expected 10 or 12 digits"),
        ("19811218 9876", "expected 10 or 12 digits"),
        ("811218-98765", "expected 10 or 12 digits"),
        ("abc", "expected 10 or 12 digits"),
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(written: str, why: str) -> None:
    with pytest.raises(InvalidNationalIdError, match=why):
        normalise_national_id(written, today=TODAY)


@pytest.mark.parametrize("nine_digits", ["811218987", "000101000", "991231999", "450615283"])
def test_only_the_luhn_digit_passes(nine_digits: str) -> None:
    valid = with_check_digit(nine_digits)
    for check_digit in "0123456789":
        written = f"19{nine_digits}{check_digit}"
        if check_digit == valid[-1]:
            assert normalise_national_id(written, today=TODAY) == written
        else:
            with pytest.raises(InvalidNationalIdError, match="check digit"):
                normalise_national_id(written, today=TODAY)


@pytest.mark.parametrize(
    "zero", [0xFF10, 0x0660, 0x0966], ids=["full-width", "arabic-indic", "devanagari"]
)
def test_digits_of_other_scripts_are_refused(zero: int) -> None:
    # They would normalise to another twelve-digit string: one person, two pseudonyms.
    other_script = str.maketrans({str(d): chr(zero + d) for d in range(10)})
    with pytest.raises(InvalidNationalIdError, match="expected 10 or 12 digits"):
        normalise_national_id("19811218-9876".translate(other_script), today=TODAY)


@pytest.mark.parametrize("written", ["19811218-9875", "19" + with_check_digit("811318987")])
def test_error_messages_repeat_no_part_of_the_number(written: str) -> None:
    with pytest.raises(InvalidNationalIdError) as refused:
        normalise_national_id(written, today=TODAY)
    assert not any(part in str(refused.value) for part in ("1981", "9875", "1318", "81-13"))


COORDINATION = "19" + with_check_digit("811278987")  # a samordningsnummer: day 18 + 60


@pytest.mark.parametrize(
    "text",
    [
        "19811218-9876",
        "198112189876",
        "811218-9876",
        "8112189876",
        "19811218+9876",
        "C-198112189876",  # a case numbered by the debtor's personnummer
        "case:811218-9876/2",
        "x8112189876y",
        "Ombud för 811218 9876",  # free text: typed with a space
        "19811218\u20139876",  # or an en dash
        COORDINATION,
        "PV-" + COORDINATION[2:],
    ],
)
def test_a_personal_number_in_any_shape_is_found_inside_other_text(text: str) -> None:
    assert contains_national_id(text)
    assert redact_national_ids(text, "###").count("###") == 1
    assert not contains_national_id(redact_national_ids(text))


@pytest.mark.parametrize(
    "text",
    [
        "C-2023-0001",
        "crm:4711",
        "19811218-9875",  # check digit wrong
        "19811318-9876",  # no 13th month
        "1981121898761",  # thirteen digits: another number
        "51981121898761",
        "811218-98",
        "print-vendor",
        "19811218-9876-4abc-8def-0123456789ab",  # a UUID: a machine's id, whatever its digits
    ],
)
def test_ids_without_a_personal_number_pass_unchanged(text: str) -> None:
    assert not contains_national_id(text)
    assert redact_national_ids(text) == text
