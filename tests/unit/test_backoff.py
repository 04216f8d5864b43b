"""Retry waits: exponential with jitter and a cap, or what Retry-After asks."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from services.notifier.backoff import retry_delay

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _delay(attempts: int, retry_after: str | None = None, seed: int = 1) -> float:
    return retry_delay(
        attempts,
        base_seconds=5,
        max_seconds=3600,
        retry_after=retry_after,
        now=NOW,
        rng=random.Random(seed),
    ).total_seconds()


def test_waits_double_per_attempt_within_their_jitter_band() -> None:
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640)]:
        waits = [_delay(attempts, seed=seed) for seed in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1  # jittered, not in lockstep


def test_waits_stop_growing_at_the_cap() -> None:
    assert all(1800 <= _delay(60, seed=seed) <= 3600 for seed in range(20))


def test_retry_after_in_seconds_or_as_a_date_wins() -> None:
    assert _delay(1, "120") == 120
    assert _delay(1, format_datetime(NOW + timedelta(minutes=5), usegmt=True)) == 300
    assert _delay(1, format_datetime(NOW - timedelta(minutes=5), usegmt=True)) == 5  # the base


def test_a_retry_after_that_is_not_valid_is_ignored() -> None:
    assert 2.5 <= _delay(1, "soon") <= 5


def test_a_retry_after_of_no_wait_or_an_absurd_one_is_kept_within_bounds() -> None:
    assert _delay(1, "0") == 5  # never a hot loop
    assert 2.5 <= _delay(1, "99999999999999") <= 5  # not a Retry-After value: ignored
    assert _delay(1, "9999999999") == 30 * 24 * 3600
    assert 2.5 <= _delay(1, "²") <= 5  # a digit, but not an ASCII one: ignored
