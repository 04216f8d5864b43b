"""CPU time of the single-event intake's request path in process, against the hello-world app.

``bench/api_bench.py`` is what the issue's targets are checked by, but on a busy machine its rounds
move by a tenth or more. This one calls both ASGI applications directly, one request at a time,
with no server, no load generator, the relay off and a writer that stores nothing: what is left is
the request path itself (middleware, routing, validation, pseudonymisation, the answer), and its
figure moves by a few per cent. Use it to tell whether a change to that path helps.

It also times batches of 1,000 events the same way (CPU per event), and with ``--profile``
prints where each path's time goes (cProfile, the functions with most time of their own): the
answer to "what would reach the target" for the single-event and batch ratios of issue 23.

    .venv/bin/python -m bench.request_path_bench [--requests 3000] [--repeats 7] [--profile]
"""

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message

from bench.api_bench import BATCH_EVENTS, batch_json, bench_database, create_key, event_json
from services.api.api_keys import Principal, Scope
from services.api.events import service
from services.api.events.router import _validate_batch
from shared.storage.migrate import upgrade


class _StoringNothing:
    """Stands in for the intake writer: every event accepted at once, nothing stored."""

    async def submit(self, intakes: Sequence[service.Intake]) -> list[service.Outcome]:
        now = datetime.now(UTC)
        return [service.Outcome(intake.event_id, "accepted", now) for intake in intakes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=7, help="the fastest repeat counts")
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args()
    with bench_database() as database_url:
        upgrade(database_url)
        hello, single, batch = asyncio.run(
            measure(database_url, args.requests, args.repeats, args.profile)
        )
    print(f"hello-world:  {hello:6.1f} us/request of CPU")
    print(f"single event: {single:6.1f} us/request of CPU (writer and relay left out)")
    print(f"batch:        {batch:6.1f} us/event of CPU, in batches of {BATCH:,} (the same)")


BATCH = BATCH_EVENTS
PROFILE_LINES = 25


async def measure(
    database_url: str, requests: int, repeats: int, profile: bool
) -> tuple[float, float, float]:
    from bench.hello_app import app as hello_app

    os.environ.update(
        {
            "GALLRING_DATABASE_URL": database_url,
            "GALLRING_PSEUDONYM_SECRET": "bench-secret-bench-secret-bench-secret",
            "GALLRING_SECRET_SEALING_KEY": "bench-sealing-key-bench-sealing-key",
            "GALLRING_RELAY_ENABLED": "false",
        }
    )
    from services.api.app import app_from_environment

    key = create_key(database_url)
    app = app_from_environment()
    async with app.router.lifespan_context(app):
        # Both measured here, after the API's start-up tuned the garbage collector, which would
        # otherwise collect during one measurement and not the other.
        hello = await cpu_per_request(hello_app, "/hello", [b"{}"] * requests, "", repeats)
        app.state.intake_writer = _StoringNothing()
        events = [event_json().encode() for _ in range(requests)]
        single = await cpu_per_request(app, "/v1/events", events, key, repeats)
        batches = [batch_json().encode() for _ in range(max(requests // BATCH, 3))]
        batch = await cpu_per_request(app, "/v1/events/batch", batches, key, repeats) / BATCH
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await cpu_per_request(app, "/v1/events", events, key, 1)
            profiler.disable()
            _print_profile("the single-event request", profiler)
            # A batch is validated in a worker thread, which cProfile does not see: here, on
            # this one, as the route calls it.
            actor = Principal("bench", "bench", frozenset({Scope.EVENTS_WRITE}))
            profiler = cProfile.Profile()
            profiler.enable()
            for body in batches:
                _validate_batch(body, BATCH, app.state.pseudonymiser, actor)
            profiler.disable()
            _print_profile(f"a batch of {BATCH:,}'s validation (its worker thread)", profiler)
    return hello, single, batch


def _print_profile(name: str, profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    print(f"\n=== where {name}'s time goes (own time, cProfile) ===")
    print(out.getvalue().split("\n", 4)[-1].rstrip() + "\n")


async def cpu_per_request(
    app: ASGIApp, path: str, bodies: list[bytes], key: str, repeats: int
) -> float:
    """The fastest of ``repeats`` passes over ``bodies``, in microseconds of CPU per request."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))

    async def request(body: bytes) -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] not in (200, 202):
                raise RuntimeError(f"{path} answered {message['status']}")

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await app(scope, receive, send)

    fastest = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for body in bodies:
            await request(body)
        fastest = min(fastest, (time.process_time() - started) / len(bodies))
    return fastest * 1e6


if __name__ == "__main__":
    main()
