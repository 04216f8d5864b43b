"""How fast the engine evaluates one subject, for subjects with 1, 10 and 100 events.

Target (issue 3): at least 100,000 single-event evaluations per second on one core. Events are
parsed before timing starts: this measures the engine, not the contract's validation. Each figure
is the best of several rounds, as timeit reports, since a shared machine only ever slows a round
down; the median is printed beside it.

    .venv/bin/python bench/policy_bench.py [--seconds 1] [--rounds 5]
"""

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from shared.domain.contract import LifecycleEvent, parse_event
from shared.domain.engine import RetentionEngine
from shared.domain.policy import load_default_policy

TARGET_SINGLE_EVENT_PER_SECOND = 100_000
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def history(size: int, rng: random.Random) -> list[LifecycleEvent]:
    """A realistic mix: cases closing and reopening, contacts, fiscal years, a hold."""
    kinds = [
        ("collection_case.closed", lambda: {"case_id": f"C-{rng.randrange(5)}"}, {}),
        ("collection_case.reopened", lambda: {"case_id": f"C-{rng.randrange(5)}"}, {}),
        ("customer_relationship.ended", lambda: {"client_id": "K-1"}, {}),
        ("customer_relationship.settled", lambda: {"client_id": "K-1"}, {}),
        ("marketing.contact", dict, {}),
        ("bookkeeping.recorded", dict, {"fiscal_year_end": "2024-12-31"}),
        (
            "data.disclosed",
            lambda: {"case_id": "C-1"},
            {
                "recipient_id": "print-vendor",
                "category": "collection_case",
                "recipient_ref": "PV-1",
            },
        ),
        ("legal_hold.placed", dict, {"hold_id": "H-1", "case_id": "C-2"}),
    ]
    events = []
    for index in range(size):
        event_type, scope, data = kinds[0] if index == 0 else rng.choice(kinds)
        at = datetime(2016, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(10 * 525_600))
        events.append(
            parse_event(
                {
                    "event_id": str(uuid.uuid4()),
                    "type": event_type,
                    "occurred_at": at.isoformat(),
                    "subject": {"ref": "crm:bench"},
                    "scope": scope(),
                    "data": data,
                },
                now=NOW,
            )
        )
    return events


def best_and_median(
    engine: RetentionEngine, events: list[LifecycleEvent], seconds: float, rounds: int
) -> tuple[float, float]:
    rates = sorted(evaluations_per_second(engine, events, seconds) for _ in range(rounds))
    return rates[-1], statistics.median(rates)


def evaluations_per_second(
    engine: RetentionEngine, events: list[LifecycleEvent], seconds: float
) -> float:
    count = 0
    batch = 1_000
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(batch):
            engine.evaluate("subject", events, NOW)
        count += batch
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure")
    args = parser.parse_args()
    engine = RetentionEngine(load_default_policy())
    rng = random.Random(3)
    print(f"{'events/subject':>15} {'evaluations/s':>14} {'median':>10} {'events/s':>12}")
    for size in (1, 10, 100):
        best, median = best_and_median(engine, history(size, rng), args.seconds, args.rounds)
        print(f"{size:>15} {best:>14,.0f} {median:>10,.0f} {best * size:>12,.0f}")
        if size == 1:
            single = best
    print(
        f"single-event target {TARGET_SINGLE_EVENT_PER_SECOND:,}/s: "
        f"ratio {single / TARGET_SINGLE_EVENT_PER_SECOND:.2f} "
        f"({'met' if single >= TARGET_SINGLE_EVENT_PER_SECOND else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
