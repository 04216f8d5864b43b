"""API intake throughput against PostgreSQL, compared with a bare FastAPI hello-world.

Both servers run as uvicorn processes with the same settings (``--workers``, default one; no
access log); the same load generator (bench/load.py) drives both from a second process on
loopback. Targets (issue 4): single-event POST at least 40 % of hello-world; batch intake at
least 20,000 events/s.

    .venv/bin/python bench/api_bench.py [--seconds 10] [--connections 16] [--workers 1]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.api.api_keys import KeyStore, Scope
from shared.contract.examples import EXAMPLES
from shared.database import make_engine
from shared.embedded_broker import EmbeddedBroker, free_loopback_port
from shared.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "GALLRING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
UVICORN_FLAGS = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()

    with bench_database() as database_url, EmbeddedBroker() as broker:
        upgrade(database_url)
        key = create_key(database_url)
        hello_port, api_port = free_loopback_port(), free_loopback_port()
        env = {
            **os.environ,
            "GALLRING_DATABASE_URL": database_url,
            "GALLRING_PSEUDONYM_SECRET": "bench-secret-bench-secret-bench-secret",
            "GALLRING_KAFKA_BOOTSTRAP": broker.bootstrap_servers,
            "GALLRING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
        servers = [
            start_server(["bench.hello_app:app"], hello_port, env, args.workers),
            start_server(
                ["--factory", "services.api.app:app_from_environment"], api_port, env, args.workers
            ),
        ]
        try:
            with tempfile.TemporaryDirectory() as scratch:
                hello = drive(
                    "/hello",
                    hello_port,
                    bodies(scratch, "hello", ["{}"] * 400_000),
                    args,
                    server=servers[0],
                )
                single = drive(
                    "/v1/events",
                    api_port,
                    bodies(scratch, "events", (event_json() for _ in range(150_000))),
                    args,
                    key,
                    server=servers[1],
                )
                batch = drive(
                    "/v1/events/batch",
                    api_port,
                    bodies(
                        scratch,
                        "batches",
                        (
                            "[" + ",".join(event_json() for _ in range(1000)) + "]"
                            for _ in range(400)
                        ),
                    ),
                    args,
                    key,
                    connections=2,
                    server=servers[1],
                )
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)

    hello_rps = hello["requests"] / hello["seconds"]
    single_rps = single["requests"] / single["seconds"]
    batch_events = batch["statuses"].get("200", 0) * 1000 / batch["seconds"]
    print(f"uvicorn workers: {args.workers} each")
    print(f"hello-world POST:     {hello_rps:>10,.0f} requests/s  {hello['statuses']}")
    print(f"single-event POST:    {single_rps:>10,.0f} requests/s  {single['statuses']}")
    print(f"  ratio to hello-world: {single_rps / hello_rps:.2f} (target >= 0.40)")
    print(f"batch intake (1,000): {batch_events:>10,.0f} events/s    {batch['statuses']}")
    print(f"  ratio to target 20,000 events/s: {batch_events / 20_000:.2f}")
    # Throughput moves with whatever else the machine runs; the servers' own CPU time per
    # request moves less, so it is printed too.
    hello_cpu = hello["server_cpu"] / hello["requests"]
    single_cpu = single["server_cpu"] / single["requests"]
    batch_cpu = batch["server_cpu"] / max(batch["statuses"].get("200", 0) * 1000, 1)
    print(
        f"server CPU: hello-world {hello_cpu * 1e6:,.0f} us/request, single event "
        f"{single_cpu * 1e6:,.0f} us/request (ratio {hello_cpu / single_cpu:.2f}), "
        f"batch {batch_cpu * 1e6:,.0f} us/event"
    )


class bench_database:  # noqa: N801 - used as a context manager, reads as a phrase
    """A PostgreSQL database created for this run and dropped after it."""

    def __enter__(self) -> str:
        admin = make_url(POSTGRES_ADMIN_URL)
        self.name = f"gallring_bench_{uuid.uuid4().hex[:8]}"
        self.conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        return admin.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def create_key(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        return KeyStore(engine).create("bench", {Scope.EVENTS_WRITE})
    finally:
        engine.dispose()


def start_server(
    target: list[str], port: int, env: dict[str, str], workers: int
) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", *target, "--port", str(port), *UVICORN_FLAGS),
            *("--workers", str(workers)),
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"server on port {port} did not start")


def event_json() -> str:
    event = {**EXAMPLES["collection_case.closed"], "event_id": str(uuid.uuid4())}
    event["scope"] = {"case_id": f"C-{uuid.uuid4().hex[:10]}"}
    return json.dumps(event)


def bodies(scratch: str, name: str, lines) -> str:
    path = Path(scratch) / f"{name}.jsonl"
    with path.open("w") as out:
        for line in lines:
            out.write(line + "\n")
    return str(path)


def drive(path, port, bodies_file, args, key="", connections=None, *, server) -> dict:
    """Run the load generator; its figures, and the CPU seconds ``server`` spent meanwhile."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "load.py"),
        path,
        str(port),
        bodies_file,
        str(connections or args.connections),
        str(args.seconds),
    ] + ([key] if key else [])
    cpu_before = server_cpu_seconds(server.pid)
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return {**json.loads(result.stdout), "server_cpu": server_cpu_seconds(server.pid) - cpu_before}


def server_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a server process and its workers (Linux ``/proc``)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or its child
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
