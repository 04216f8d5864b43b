"""A small HTTP/1.1 load generator (keep-alive connections, one request in flight each).

Run as its own process so that the server under test has a core to itself:
``python bench/load.py URL_PATH PORT BODIES_FILE CONNECTIONS SECONDS [AUTH]`` prints JSON with
the request count, status counts and the elapsed time. Each request takes the next body from
BODIES_FILE (one JSON document per line), so that every event id is new.
"""

import asyncio
import json
import sys
import time
from collections import Counter


async def worker(
    port: int, requests: list[bytes], cursor: list[int], deadline: float, statuses: Counter
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            statuses[int(status_line.split()[1])] += 1
    finally:
        writer.close()


async def main() -> None:
    path, port, bodies_file, connections, seconds = sys.argv[1:6]
    auth = sys.argv[6] if len(sys.argv) > 6 else ""
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
    statuses: Counter = Counter()
    cursor = [0]
    started = time.perf_counter()
    deadline = started + float(seconds)
    await asyncio.gather(
        *(worker(int(port), requests, cursor, deadline, statuses) for _ in range(int(connections)))
    )
    elapsed = time.perf_counter() - started
    print(
        json.dumps({"requests": sum(statuses.values()), "statuses": statuses, "seconds": elapsed})
    )


if __name__ == "__main__":
    asyncio.run(main())
