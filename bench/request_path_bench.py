"""CPU time of the single-event intake's request path in process, against the hello-world app.

``bench/api_bench.py`` is what the issue's targets are checked by, but on a busy machine its rounds
move by a tenth or more. This one calls both ASGI applications directly, one request at a time,
with no server, no load generator, the relay off and a writer that stores nothing: what is left is
the request path itself (middleware, routing, validation, pseudonymisation, the answer), and its
figure moves by a few per cent. Use it to tell whether a change to that path helps.

    .venv/bin/python -m bench.request_path_bench [--requests 3000] [--repeats 7]
"""

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message

from bench.api_bench import bench_database, create_key, event_json
from services.api.events import service
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
    args = parser.parse_args()
    with bench_database() as database_url:
        upgrade(database_url)
        hello, single = asyncio.run(measure(database_url, args.requests, args.repeats))
    print(f"hello-world:  {hello:6.1f} us/request of CPU")
    print(f"single event: {single:6.1f} us/request of CPU (writer and relay left out)")


async def measure(database_url: str, requests: int, repeats: int) -> tuple[float, float]:
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
    return hello, single


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
