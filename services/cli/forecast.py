"""``gallring forecast --until DAY``: erasures due per month and category, as a table."""

import os
from datetime import date
from pathlib import Path
from typing import TextIO

from shared.domain.policy import load_default_policy, load_policy
from shared.storage.clock_forecast import forecast
from shared.storage.database import make_engine


def print_forecast(database_url: str, until: date, *, out: TextIO) -> int:
    policy_file = os.environ.get("GALLRING_POLICY_FILE")
    policy = load_policy(Path(policy_file)) if policy_file else load_default_policy()
    engine = make_engine(database_url)
    try:
        counts = forecast(engine, until, policy.zone)
    finally:
        engine.dispose()
    if not counts:
        print(f"No erasures fall due by {until.isoformat()}.", file=out)
        return 0
    width = max(len(category) for _, category in counts)
    print(f"{'month':<8}  {'category':<{width}}  {'erasures':>9}", file=out)
    for (month, category), count in counts.items():
        print(f"{month:<8}  {category:<{width}}  {count:>9,}", file=out)
    print(f"{'total':<8}  {'':<{width}}  {sum(counts.values()):>9,}", file=out)
    return 0
