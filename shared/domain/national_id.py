"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer).

Upstream systems write them in several shapes (``811218-9876``, ``19811218-9876``,
``198112189876``, ``121212+1212`` for someone over 100). Gallring accepts each shape, checks the
date and the Luhn digit, and reduces it to the 12 digits ``YYYYMMDDNNNC`` so that one person always
gets one pseudonym.
"""

import re
from collections.abc import Iterator
from datetime import date

# ASCII digits only: other scripts' digits (full-width, Arabic-Indic…) would otherwise pass and
# give one person a second pseudonym.
_SHAPE = re.compile(
    r"^(?P<century>\d{2})?(?P<yymmdd>\d{6})(?P<sep>[-+]?)(?P<serial>\d{4})$", re.ASCII
)
#: A personnummer or samordningsnummer inside other text: ten or twelve digits, a separator
#: allowed before the last four (in free text also a space or an en dash, as people type it),
#: and no digit on either side (a longer run of digits is another number; reading every window
#: of it would refuse one long numeric id in twenty).
_EMBEDDED = re.compile(r"(?<![0-9])(?:[0-9]{2})?[0-9]{6}[-+ \u2013]?[0-9]{4}(?![0-9])")
#: What every shape has: six digits of a date, perhaps a separator, four more. Found in a third
#: of the time of a full match, so that ids without it (most) are passed at once.
_CORE = re.compile(r"[0-9]{6}[-+ \u2013]?[0-9]{4}")
_TYPED_SEPARATORS = str.maketrans({" ": "-", "\u2013": "-"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_COORDINATION_DAY_OFFSET = 60
# Each digit to the digit sum of its double, as ASCII bytes.
_LUHN_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


class InvalidNationalIdError(ValueError):
    """The text is not a valid personnummer or samordningsnummer; the message says why."""


def normalise_national_id(text: str, *, today: date | None = None) -> str:
    """Return the 12-digit form of a personnummer or samordningsnummer, or raise why not.

    A 10-digit number has no century: it is the one that makes the person younger than 100, or,
    with a ``+`` separator, at least 100 years old, as on a Swedish ID card.
    """
    match = _SHAPE.match(text.strip())
    if match is None:
        raise InvalidNationalIdError(
            "expected 10 or 12 digits, optionally with '-' or '+' before the last four, "
            "e.g. 19811218-9876"
        )
    yymmdd, serial = match["yymmdd"], match["serial"]
    if not _luhn_valid(yymmdd + serial):
        raise InvalidNationalIdError("the check digit (the last digit) does not match")

    century = match["century"]
    year2, month, day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    if century is None:
        full_year = _infer_year(year2, centenarian=match["sep"] == "+", today=today)
    else:
        full_year = int(century + yymmdd[:2])
    if day > _COORDINATION_DAY_OFFSET:
        day -= _COORDINATION_DAY_OFFSET
    try:
        date(full_year, month, day)
    except ValueError:
        raise InvalidNationalIdError("the date part is not a valid date of birth") from None
    return f"{full_year:04d}{yymmdd[2:]}{serial}"


def contains_national_id(text: str) -> bool:
    """Whether ``text`` is or contains a valid personnummer or samordningsnummer, in any shape
    :func:`normalise_national_id` accepts.

    This is what keeps them out of ids and free text (a case numbered by the debtor's
    personnummer is a common upstream habit): such fields travel on topics, into logs and
    metrics, where only pseudonyms may. A number of that shape that is not one (a case number
    ``YYYYMMDDNNNN`` whose last digit happens to check) cannot be told apart, and is caught too;
    digits inside a UUID are a machine's and are not read (``19811218-9876-4…`` would otherwise
    refuse one UUID in forty thousand).
    """
    if _CORE.search(text) is None:  # on the intake's path: once per id of every event
        return False
    return next(_national_ids(text), None) is not None


def redact_national_ids(text: str, replacement: str = "[personal number removed]") -> str:
    """``text`` with every personnummer or samordningsnummer in it replaced: for text Gallring
    does not validate but writes down, such as the request line of an access log."""
    kept, end = [], 0
    for match in _national_ids(text):
        kept += [text[end : match.start()], replacement]
        end = match.end()
    return "".join([*kept, text[end:]])


def _national_ids(text: str) -> Iterator[re.Match[str]]:
    """Each personnummer or samordningsnummer in ``text``, outside UUIDs."""
    uuids: list[tuple[int, int]] | None = None  # found only if needed: the intake's hot path
    for match in _EMBEDDED.finditer(text):
        if not _is_national_id(match[0]):
            continue
        if uuids is None:
            uuids = [uuid.span() for uuid in _UUID.finditer(text)]
        if not any(start <= match.start() < end for start, end in uuids):
            yield match


def _is_national_id(candidate: str) -> bool:
    try:
        normalise_national_id(candidate.translate(_TYPED_SEPARATORS))
    except InvalidNationalIdError:
        return False
    return True


def _infer_year(year2: int, *, centenarian: bool, today: date | None) -> int:
    this_year = (today or date.today()).year  # noqa: DTZ011 - a birth year needs no time zone
    year = this_year - (this_year - year2) % 100
    return year - 100 if centenarian else year


def _luhn_valid(digits: str) -> bool:
    """The Luhn check over the ten digits YYMMDDNNNC: every other digit from the first doubled
    (its digit sum taken), and the total a multiple of ten."""
    ascii_digits = digits.encode()  # ASCII digits: each byte is 48 + the digit
    summed = ascii_digits[0::2].translate(_LUHN_DOUBLED) + ascii_digits[1::2]
    return (sum(summed) - 48 * len(summed)) % 10 == 0
