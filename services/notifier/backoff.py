"""When to try a notification again: exponential backoff with jitter, or what the recipient
asked for with ``Retry-After``."""

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

#: A Retry-After beyond this is taken as this (the retry horizon ends the notification anyway).
MAX_RETRY_AFTER = timedelta(days=30)
_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: "²".isdigit() is true, float() fails


def retry_delay(
    attempts: int,
    *,
    base_seconds: float,
    max_seconds: float,
    retry_after: str | None,
    now: datetime,
    rng: random.Random = random._inst,
) -> timedelta:
    """The wait after the ``attempts``-th failed attempt. ``Retry-After`` (seconds or an HTTP
    date) wins when given: the recipient knows best when it is back (the retry horizon still
    ends it), but never sooner than ``base_seconds`` nor later than ``MAX_RETRY_AFTER``.
    Otherwise ``base * 2^(attempts-1)``, capped at ``max_seconds``, with "equal jitter" (half
    fixed, half random), so that a recipient coming back is not hit by every waiting
    notification at once."""
    asked = _retry_after_seconds(retry_after, now)
    if asked is not None:
        return timedelta(seconds=min(max(asked, base_seconds), MAX_RETRY_AFTER.total_seconds()))
    ceiling = min(max_seconds, base_seconds * 2 ** min(attempts - 1, 40))
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # not a form RFC 9110 allows: ignored, the usual backoff applies
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
