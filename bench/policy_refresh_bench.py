"""How fast the purger brings clocks stored under another policy up to the one running now.

Seeds that many subjects (one due clock and its fact each, as ``bench/sweep_bench.py`` does) into
a fresh PostgreSQL database, their verdicts reached under another policy, then runs the policy
refresh (``services/purger/policy_refresh.py``) over them and prints subjects/s: how long a policy
change, or a release that raises ``ENGINE_REVISION``, keeps the refresh busy.

    .venv/bin/python -m bench.policy_refresh_bench [--subjects 50000] [--batch 500]
"""

import argparse
import time

from bench.api_bench import bench_database
from bench.sweep_bench import seed
from services.purger.policy_refresh import refresh_stale_verdicts
from shared.domain.engine import RetentionEngine
from shared.domain.policy import load_default_policy
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    retention = RetentionEngine(load_default_policy())

    with bench_database() as url:
        upgrade(url)
        seed(url.replace("postgresql+psycopg://", "postgresql://"), args.subjects, "an old policy")
        engine = make_engine(url)
        try:
            started = time.perf_counter()
            refreshed = refresh_stale_verdicts(engine, retention, args.batch)
            seconds = time.perf_counter() - started
        finally:
            engine.dispose()

    print(f"subjects refreshed: {refreshed.subjects:>10,} (one clock each)")
    print(f"refresh:            {refreshed.subjects / seconds:>10,.0f} subjects/s")


if __name__ == "__main__":
    main()
