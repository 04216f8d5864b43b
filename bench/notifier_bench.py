"""Notifier delivery throughput against bare client loops posting the same bodies, in the same
run, to the same loopback receiver (bench/webhook_sink.py, 1 % of answers 500).

The notifier's delivery loop runs in a process of its own on PostgreSQL, with the default
concurrency, until every seeded notification is delivered (the failed 1 % retried); its rate is
deliveries over the span from its first attempt to its last delivery, as the database recorded
them. Each bare loop posts the same number of bodies with the same concurrency and no retries:
one with httpx (the issue's yardstick), one with aiohttp (the client the notifier posts with).
All three run on the event loop `gallring notifier` runs on (uvloop).
Targets (issue 6): at least 50 % of the bare loop, and at least 2,000 deliveries/s; issue 23:
at least 60 % of the bare aiohttp loop.

With ``--profile`` the notifier runs under cProfile (slower: its rate is not comparable then)
and the functions with most time of their own are printed: where a delivery's time goes.

    .venv/bin/python -m bench.notifier_bench [--notifications 20000] [--recipients 8] [--profile]
"""

import argparse
import asyncio
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import psycopg

from bench.api_bench import ROOT, UVICORN_FLAGS, bench_database
from bench.cpu_budget import process_tree_seconds
from services.api.api_keys import Principal
from services.api.recipients import service as recipients
from services.api.recipients.schemas import NewRecipient
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import notification_body, signed_headers
from shared.domain.contract.vocabulary import Category
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.worker_process import run_event_loop
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.webhooks.signing_secrets import new_signing_secret

SECRET = "bench-secret-bench-secret-bench-secret"
SEALING_KEY = "bench-sealing-key-bench-sealing-key"
DELIVERER = """
import os
profile_path = os.environ.get("BENCH_NOTIFIER_PROFILE")
if profile_path:  # written when the bench stops it (SIGTERM)
    import cProfile, signal
    profiler = cProfile.Profile()
    def _dump(*_):
        profiler.disable()
        profiler.dump_stats(profile_path)
        os._exit(0)
    signal.signal(signal.SIGTERM, _dump)
    profiler.enable()
from services.notifier.delivery_loop import DeliveryLoop
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from shared.storage.database import make_engine
from shared.runtime.gc_tuning import tune_garbage_collection
from shared.runtime.worker_process import run_event_loop
settings = NotifierSettings()
db = make_engine(settings.database_url)
tune_garbage_collection()  # as `gallring notifier` does once started
run_event_loop(DeliveryLoop(db, settings, NotifierMetrics(db)).run())  # as `gallring notifier`
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--recipients", type=int, default=8)
    parser.add_argument(
        "--recipient-concurrency",
        type=int,
        default=NotifierSettings.model_fields["notifier_recipient_concurrency"].default,
    )
    parser.add_argument("--profile", action="store_true", help="print where its time goes")
    args = parser.parse_args()
    profile = Path(tempfile.mkdtemp(prefix="notifier-bench-")) / "notifier.prof"

    port = free_loopback_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.webhook_sink:app",
            "--port",
            str(port),
            *UVICORN_FLAGS,
        ],
        cwd=ROOT,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/")
        with bench_database() as url:
            upgrade(url)
            settings = NotifierSettings(
                pseudonym_secret=SECRET,
                secret_sealing_key=SEALING_KEY,
                database_url=url,
                webhook_allow_loopback=True,
                notifier_retry_base_seconds=0.05,
                notifier_retry_max_seconds=0.2,
                notifier_recipient_concurrency=args.recipient_concurrency,
            )
            urls = seed(settings, port, args.notifications, args.recipients)
            notifier_rate, cpu_per_delivery = run_notifier(
                settings, profile if args.profile else None
            )
        httpx_rate = run_event_loop(bare_httpx_loop(urls, args.notifications, settings))
        aiohttp_rate = run_event_loop(bare_aiohttp_loop(urls, args.notifications, settings))
    finally:
        sink.terminate()
        sink.wait()

    print(
        f"notifications:      {args.notifications:>10,} to {args.recipients} recipients, "
        f"{args.recipient_concurrency} in flight to each"
    )
    print(f"notifier delivery:  {notifier_rate:>10,.0f} deliveries/s")
    print(f"  notifier process CPU: {cpu_per_delivery:,.0f} µs per delivery")
    print(f"bare httpx loop:    {httpx_rate:>10,.0f} posts/s")
    print(f"bare aiohttp loop:  {aiohttp_rate:>10,.0f} posts/s")
    print(
        f"  ratio to httpx {notifier_rate / httpx_rate:.2f}, "
        f"to aiohttp {notifier_rate / aiohttp_rate:.2f} (target: >= 0.60 of aiohttp, issue 23)"
    )
    if args.profile:
        print(f"\n=== where the notifier's time goes (own time, cProfile; {profile}) ===")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)


def seed(settings: NotifierSettings, port: int, count: int, recipient_count: int) -> list[str]:
    """Recipients (one path each on the sink) and ``count`` pending notifications, by COPY."""
    db = make_engine(settings.database_url)
    box, urls, ids = settings.secret_box(), [], []
    now = datetime.now(UTC)
    for n in range(recipient_count):
        recipient_id = f"vendor-{n}"
        url = f"http://127.0.0.1:{port}/hooks/{recipient_id}"
        recipients.create(
            db,
            NewRecipient(
                recipient_id=recipient_id,
                name=f"Vendor {n}",
                kind="processor",
                country="SE",
                webhook_url=url,
                categories=[Category.COLLECTION_CASE],
            ),
            box,
            actor=Principal("bench", "bench", frozenset()),
            now=now,
        )
        urls.append(url)
        ids.append(recipient_id)
    db.dispose()
    conninfo = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    columns = (
        "notification_id, erasure_id, recipient_id, type, category, scope, recipient_ref, "
        "legal_basis, respond_by, state, attempts, next_attempt_at, give_up_at, created_at"
    )
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY notification ({columns}) FROM STDIN") as copy:
            for n in range(count):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        uuid.uuid4(),
                        ids[n % recipient_count],
                        "erasure.requested",
                        "collection_case",
                        json.dumps({"case_id": f"C-{n}"}),
                        f"PV-{n}",
                        "GDPR art. 17(1)(a)",
                        now + timedelta(days=30),
                        "pending",
                        0,
                        now,
                        now + timedelta(days=3),
                        now,
                    )
                )
        connection.execute("ANALYZE notification")
    return urls


def run_notifier(settings: NotifierSettings, profile: Path | None) -> tuple[float, float]:
    """Deliveries per second, and the notifier process's CPU time per delivery in µs, its
    start-up included (steadier than the rate on a busy machine); under cProfile, writing
    ``profile``, if given."""
    env = {
        **os.environ,
        "GALLRING_PSEUDONYM_SECRET": SECRET,
        "GALLRING_SECRET_SEALING_KEY": SEALING_KEY,
        "GALLRING_DATABASE_URL": settings.database_url,
        "GALLRING_WEBHOOK_ALLOW_LOOPBACK": "true",
        "GALLRING_NOTIFIER_RETRY_BASE_SECONDS": str(settings.notifier_retry_base_seconds),
        "GALLRING_NOTIFIER_RETRY_MAX_SECONDS": str(settings.notifier_retry_max_seconds),
        "GALLRING_NOTIFIER_RECIPIENT_CONCURRENCY": str(settings.notifier_recipient_concurrency),
        **({"BENCH_NOTIFIER_PROFILE": str(profile)} if profile else {}),
    }
    deliverer = subprocess.Popen([sys.executable, "-c", DELIVERER], cwd=ROOT, env=env)
    conninfo = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            while connection.execute(
                "SELECT count(*) FROM notification WHERE state <> 'delivered'"
            ).fetchone() != (0,):
                time.sleep(0.2)
            row = connection.execute(
                "SELECT (SELECT min(attempted_at) FROM delivery_attempt), max(delivered_at), "
                "count(*) FROM notification"
            ).fetchone()
            assert row is not None  # an aggregate without GROUP BY answers one row
            first, last, delivered = row
            cpu_seconds = process_tree_seconds(deliverer.pid)
    finally:
        deliverer.terminate()
        deliverer.wait()
    return delivered / (last - first).total_seconds(), cpu_seconds / delivered * 1e6


def _bodies(count: int, settings: NotifierSettings) -> list[tuple[bytes, dict[str, str]]]:
    """Signed bodies as the notifier builds them (signing is not timed: both loops get them)."""
    from standardwebhooks import Webhook

    signer = [Webhook(new_signing_secret())]
    now = datetime.now(UTC)
    bodies = []
    for n in range(count):
        notification_id = uuid.uuid4()
        body = notification_body(
            notification_type="erasure.requested",
            notification_id=notification_id,
            erasure_id=uuid.uuid4(),
            event_id=None,
            category="collection_case",
            scope={"case_id": f"C-{n}"},
            recipient_ref=f"PV-{n}",
            legal_basis="GDPR art. 17(1)(a)",
            respond_by=now,
            public_api_url=settings.notifier_public_api_url,
            now=now,
        )
        bodies.append((body.encode(), signed_headers(str(notification_id), body, signer, now)))
    return bodies


async def bare_httpx_loop(urls: list[str], count: int, settings: NotifierSettings) -> float:
    """The same bodies and headers, posted with the same concurrency and a connection pool
    per recipient like the notifier's (httpx slows down as one pool grows), nothing recorded."""
    bodies = _bodies(count, settings)
    size = settings.notifier_recipient_concurrency
    clients = [
        httpx.AsyncClient(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))
        for _ in urls
    ]
    limit = asyncio.Semaphore(settings.notifier_concurrency)

    async def post(n: int) -> None:
        async with limit:
            body, headers = bodies[n]
            await clients[n % len(urls)].post(urls[n % len(urls)], content=body, headers=headers)

    started = time.perf_counter()
    await asyncio.gather(*(post(n) for n in range(count)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return count / elapsed


async def bare_aiohttp_loop(urls: list[str], count: int, settings: NotifierSettings) -> float:
    """As :func:`bare_httpx_loop`, with aiohttp: a session per recipient, the answer read."""
    bodies = _bodies(count, settings)
    size = settings.notifier_recipient_concurrency
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=size)) for _ in urls]
    limit = asyncio.Semaphore(settings.notifier_concurrency)

    async def post(n: int) -> None:
        async with limit:
            body, headers = bodies[n]
            session = sessions[n % len(urls)]
            async with session.post(urls[n % len(urls)], data=body, headers=headers) as answer:
                await answer.read()

    started = time.perf_counter()
    await asyncio.gather(*(post(n) for n in range(count)))
    elapsed = time.perf_counter() - started
    for session in sessions:
        await session.close()
    return count / elapsed


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()
