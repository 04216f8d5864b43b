"""A small HTTP/1.1 load generator (keep-alive connections, one request in flight each).

Run as its own process so that the server under test has a core to itself:
``python bench/load.py URL_PATH PORT BODIES_FILE CONNECTIONS SECONDS [AUTH] [--rate R]``
prints JSON. Each request takes the next body from BODIES_FILE (one JSON document per line), so
that every event id is new.

Without ``--rate`` it is closed-loop: each connection sends its next request as soon as the
last one is answered, for SECONDS; it prints the request count, the status counts and the
elapsed time (throughput).

With ``--rate R`` it is open-loop, as an upstream system sends: request i is due at
start + i/R, whatever the server is doing, for SECONDS. A due request takes a free connection
from a pool of CONNECTIONS keep-alive connections, or waits for one. Its latency runs from its
due time, not from when it was sent, to its answer: a server that stalls keeps the pool busy,
the requests due meanwhile wait, and that wait is counted (measured from the send, a stall would
be hidden behind the few requests that were in flight: coordinated omission). It prints the
counts, statuses, p50/p95/p99/max latency in ms, and how many requests the generator itself
handed over more than ``--late-ms`` after they were due (its own loop falling behind; if that
count is more than a few, the run measured the generator, not the server).
"""

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections import Counter

# After the last request is due, how long those still unanswered are waited for; the ones
# that are not answered by then are counted as sent but not answered.
DRAIN_SECONDS = 30.0


async def worker(
    port: int, requests: list[bytes], cursor: list[int], deadline: float, statuses: Counter
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            writer.write(request)
            statuses[await answer(reader)] += 1
    finally:
        writer.close()


async def answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer (the API and uvicorn always send Content-Length); its status."""
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def closed_loop(args: argparse.Namespace, requests: list[bytes]) -> dict[str, object]:
    statuses: Counter = Counter()
    cursor = [0]
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(worker(args.port, requests, cursor, deadline, statuses) for _ in range(args.connections))
    )
    elapsed = time.perf_counter() - started
    return {"requests": sum(statuses.values()), "statuses": statuses, "seconds": elapsed}


async def open_loop(args: argparse.Namespace, requests: list[bytes]) -> dict[str, object]:
    """Send request i at its due time start + i/rate over a pool of connections; latency from
    the due time to the answer."""
    count = min(int(args.rate * args.seconds), len(requests))
    # Due requests wait here, in order, for a free connection: (due time, request).
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    latencies: list[float] = []
    statuses: Counter = Counter()
    late, most_behind = 0, 0.0
    late_seconds = args.late_ms / 1000

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            while True:
                due, request = await queue.get()
                writer.write(request)
                status = await answer(reader)
                latencies.append(time.perf_counter() - due)
                statuses[status] += 1
                queue.task_done()
        finally:
            writer.close()

    pool = [asyncio.create_task(connection()) for _ in range(args.connections)]
    await asyncio.sleep(0.2)  # the connections are opened before the clock starts
    started = time.perf_counter()
    for i in range(count):
        due = started + i / args.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        # Handed over later than its due time plus the tolerance: the generator fell behind.
        behind = time.perf_counter() - due
        most_behind = max(most_behind, behind)
        if behind > late_seconds:
            late += 1
        queue.put_nowait((due, requests[i]))
    with contextlib.suppress(TimeoutError):  # the ones left are reported as not answered
        await asyncio.wait_for(queue.join(), timeout=DRAIN_SECONDS)
    elapsed = time.perf_counter() - started
    for task in pool:
        task.cancel()
    await asyncio.gather(*pool, return_exceptions=True)
    ordered = sorted(latencies)
    return {
        "rate": args.rate,
        "sent": count,
        "requests": len(ordered),
        "statuses": statuses,
        "seconds": elapsed,
        "late": late,
        "late_ms": args.late_ms,
        "most_behind_ms": most_behind * 1000,
        "latency_ms": {
            name: percentile(ordered, share) * 1000
            for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
    }


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (no interpolation: a latency that was
    measured); NaN when nothing was answered."""
    if not ordered:
        return math.nan
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def read_requests(path: str, port: int, bodies_file: str, auth: str) -> list[bytes]:
    headers = f"Authorization: Bearer {auth}\r\n" if auth else ""
    requests = []
    with open(bodies_file, "rb") as bodies:
        for body in bodies:
            body = body.rstrip(b"\n")
            requests.append(
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body
            )
    return requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("port", type=int)
    parser.add_argument("bodies_file")
    parser.add_argument("connections", type=int, help="connections (the pool, with --rate)")
    parser.add_argument("seconds", type=float)
    parser.add_argument("auth", nargs="?", default="", help="a bearer token")
    parser.add_argument("--rate", type=float, help="requests/s, open-loop (latency)")
    parser.add_argument(
        "--late-ms", type=float, default=2.0, help="handed over later than this: the run is void"
    )
    args = parser.parse_args()
    requests = read_requests(args.path, args.port, args.bodies_file, args.auth)
    result = await (open_loop(args, requests) if args.rate else closed_loop(args, requests))
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
