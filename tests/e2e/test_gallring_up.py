"""``gallring up`` as a newcomer runs it: a real process on the embedded default (SQLite under
``./var/``, its own Tansu broker). Stopped with Ctrl-C as a terminal sends it (SIGINT to the
whole process group), a hang-up or SIGTERM, then started again on the same data; and the whole
way through it, from posted events to a confirmed webhook, with no identifier left anywhere."""

import contextlib
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy import Connection, func, insert, select

from services.agent.database import open_database
from services.agent.sample import CASES, DEBTORS, LETTERS, with_check_digit
from services.api.api_keys import KeyStore, Scope
from shared.domain.contract.examples import EXAMPLES
from shared.messaging import topics
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.conftest import SECRET, RunningApi
from tests.integration.notifier.helpers import Subject, confirm, disclose, register
from tests.kafka_reading import read_to_the_end, read_topic
from tests.polling import eventually, wait_until
from tests.webhook_receiver import webhook_receiver

GALLRING = str(Path(sys.executable).parent / "gallring")
FIRST_KEY = "(shown this once: store it"
NATIONAL_ID = "19811218-9876"  # a test personnummer, as upstream systems write it
DEBTOR_ID = with_check_digit("900214123")  # another, as the sample collection system writes it
PORTS = ("api", "broker", "purger_metrics", "notifier_metrics", "agent_status")


def start(workdir: Path, ports: dict[str, int], **settings: str) -> subprocess.Popen[str]:
    """``gallring up`` in ``workdir``, its output to ``workdir/up.log``; ``settings`` are more
    ``GALLRING_…`` variables, without the prefix."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GALLRING_")}
    env.update({f"GALLRING_{name.upper()}": value for name, value in settings.items()})
    env.update(
        GALLRING_API_PORT=str(ports["api"]),
        GALLRING_EMBEDDED_BROKER_PORT=str(ports["broker"]),
        GALLRING_PURGER_METRICS_PORT=str(ports["purger_metrics"]),
        GALLRING_NOTIFIER_METRICS_PORT=str(ports["notifier_metrics"]),
        GALLRING_AGENT_STATUS_PORT=str(ports["agent_status"]),
        GALLRING_KAFKA_SESSION_TIMEOUT_MS="2000",
        GALLRING_KAFKA_HEARTBEAT_INTERVAL_MS="500",
    )
    return subprocess.Popen(
        [GALLRING, "up"],
        cwd=workdir,
        env=env,
        stdout=(workdir / "up.log").open("w"),  # a file: a pipe would fill up in a long run
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )


def log_of(workdir: Path) -> str:
    return (workdir / "up.log").read_text()


def wait_until_running(
    workdir: Path, ports: dict[str, int], process: subprocess.Popen[str], *, workers: bool = True
) -> None:
    """The API ready and, with ``workers``, the workers ready (the purger, the notifier and the
    sample collection system's agent): their consumers have joined their groups (a worker's
    ``/readyz`` is 503 until then)."""
    paths = [(ports["api"], "/readyz")]
    if workers:
        paths += [(ports[name], "/readyz") for name in PORTS if name not in ("api", "broker")]
    for port, path in paths:

        def answers(port: int = port, path: str = path) -> bool:
            assert process.poll() is None, log_of(workdir)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                    return True
            except OSError:
                return False

        # Polled often: the sooner a start is seen, the sooner the test goes on.
        wait_until(
            answers, timeout=60, interval=0.1, context=lambda port=port, path=path: f"{port}{path}"
        )


def stop(
    workdir: Path,
    ports: dict[str, int],
    process: subprocess.Popen[str],
    signum: int,
    *,
    broker_was_away: bool = False,
) -> str:
    """``signum`` to the process group, as a terminal sends Ctrl-C (SIGINT) or its hang-up
    (SIGHUP), or as kill sends SIGTERM; what it printed. Everything it started is gone after
    it, and nothing went wrong (but for the Kafka client's complaints, if ``broker_was_away``)."""
    os.killpg(process.pid, signum)
    process.wait(timeout=60)
    output = log_of(workdir)
    assert process.returncode == 0, output
    errors = [
        line
        for line in output.splitlines()
        if " ERROR " in line and not (broker_was_away and " ERROR aiokafka" in line)
    ]
    assert not errors and "Traceback" not in output, output
    for port in ports.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still taken"
    return output


def run_once(
    workdir: Path, ports: dict[str, int], signum: int, *, workers_running: bool = True
) -> str:
    process = start(workdir, ports)
    try:
        wait_until_running(workdir, ports, process, workers=workers_running)
        return stop(workdir, ports, process, signum)
    finally:
        kill_session(process.pid)  # after a failure: it, and what it started, gone


def kill_session(session: int) -> None:
    """SIGKILL to every process of ``session``: ``gallring up`` leads it, and its broker and
    workers stay in it (in process groups of their own)."""
    for process_stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = process_stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[3]) == session:  # after the command: state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process_stat.parent.name), signal.SIGKILL)


def test_ctrl_c_a_hang_up_or_kill_stop_everything_cleanly_and_a_new_start_reuses_the_data(
    tmp_path: Path,
) -> None:
    ports = {name: free_loopback_port() for name in PORTS}
    first_run = run_once(tmp_path, ports, signal.SIGINT)
    # Where to look: the API docs, the three metrics pages, and the first admin key.
    assert f"API docs   http://127.0.0.1:{ports['api']}/docs" in first_run
    assert (
        f"metrics    http://127.0.0.1:{ports['api']}/metrics, "
        f"http://127.0.0.1:{ports['purger_metrics']}/metrics (purger), "
        f"http://127.0.0.1:{ports['notifier_metrics']}/metrics (notifier)"
    ) in first_run
    assert FIRST_KEY in first_run
    # The key kept beside the secrets, for whoever lost it off the screen; and nothing on it
    # that scrolls: no access log, no scheduler line per sweep (`--verbose` for those).
    key_file = tmp_path / "var" / "first-admin-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() in first_run
    assert ' HTTP/1.1" ' not in first_run and "apscheduler" not in first_run, first_run
    # Its secrets and its database readable by their owner alone, two secrets apart.
    state = tmp_path / "var"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    kept = ("pseudonym-secret", "secret-sealing-key", "gallring.db")
    assert {name: stat.S_IMODE((state / name).stat().st_mode) for name in kept} == dict.fromkeys(
        kept, 0o600
    )
    assert (state / "pseudonym-secret").read_text() != (state / "secret-sealing-key").read_text()
    # Again on the same data (the same database, its key kept); Ctrl-C as soon as the API
    # answers, while the workers may still be starting.
    assert FIRST_KEY not in run_once(tmp_path, ports, signal.SIGINT, workers_running=False)
    run_once(tmp_path, ports, signal.SIGHUP)  # the terminal closed
    run_once(tmp_path, ports, signal.SIGTERM)  # kill, or docker stop


def test_killed_it_takes_its_broker_and_workers_with_it(tmp_path: Path) -> None:
    """Even a broker it started again, from another thread than its main one."""
    ports = {name: free_loopback_port() for name in PORTS}
    process = start(tmp_path, ports)
    try:
        wait_until_running(tmp_path, ports, process)
        os.kill(broker_of(process.pid), signal.SIGKILL)
        wait_until(
            lambda: "started it again" in log_of(tmp_path),
            interval=0.1,
            context=lambda: log_of(tmp_path),
        )
        process.kill()  # SIGKILL to it alone: no chance to stop anything itself
        process.wait(timeout=10)
        for port in ports.values():

            def free(port: int = port) -> bool:
                with socket.socket() as probe:
                    return probe.connect_ex(("127.0.0.1", port)) != 0

            wait_until(
                free, timeout=30, interval=0.2, context=lambda port=port: f"port {port} taken"
            )
    finally:
        kill_session(process.pid)


async def test_the_whole_way_on_gallring_up_leaves_no_identifier_anywhere(tmp_path: Path) -> None:
    ports = {name: free_loopback_port() for name in PORTS}
    process = start(tmp_path, ports, pseudonym_secret=SECRET, purger_sweep_interval_seconds="1")
    try:
        wait_until_running(tmp_path, ports, process)
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'gallring.db'}")
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api']}")
        api = RunningApi(client, None, KeyStore(engine), engine)  # type: ignore[arg-type]
        async with client, webhook_receiver() as receiver:
            vendor = await register(api, receiver)
            subject = Subject()
            await disclose(api, subject, vendor, case_id="C-2023-0001", recipient_ref="PV-88")
            closed = {
                "event_id": str(uuid.uuid4()),
                "type": "collection_case.closed",
                "occurred_at": (datetime.now(UTC) - relativedelta(months=37)).isoformat(),
                "subject": {"ref": subject.ref},
                "role": "debtor",
                "scope": {"case_id": "C-2023-0001"},
            }
            headers = api.key(Scope.EVENTS_WRITE)
            assert (await client.post("/v1/events", json=closed, headers=headers)).is_success
            await try_a_personal_number_where_an_id_belongs(api, vendor)
            # A newsletter reader known by personal identity number, who unsubscribes.
            for event_type in ("marketing.contact", "newsletter.unsubscribed"):
                event = {
                    **EXAMPLES[event_type],
                    "event_id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "subject": {"national_id": NATIONAL_ID},
                }
                assert (await client.post("/v1/events", json=event, headers=headers)).is_success

            async def reader_erased() -> bool:
                lookup = await client.post(
                    "/v1/subjects/lookup",
                    json={"national_id": NATIONAL_ID},
                    headers=api.key(Scope.SUBJECTS_READ, Scope.ERASURES_READ),
                )
                return [e["rule"] for e in lookup.json()["erasures"]] == ["marketing.immediate"]

            await eventually(reader_erased, timeout=30)
            # A debtor of the sample collection system, known there by personal identity
            # number, whose case falls due: its agent erases the rows and confirms.
            collection = open_database(f"sqlite:///{tmp_path / 'var' / 'collection.db'}")
            with collection.begin() as connection:
                write_a_debtor_with_a_case(connection, DEBTOR_ID, "C-2023-0009")
            case_closed = {
                **closed,
                "event_id": str(uuid.uuid4()),
                "subject": {"national_id": DEBTOR_ID},
                "scope": {"case_id": "C-2023-0009"},
            }
            assert (await client.post("/v1/events", json=case_closed, headers=headers)).is_success

            async def confirmed_by_the_collection_system() -> bool:
                lookup = await client.post(
                    "/v1/subjects/lookup",
                    json={"national_id": DEBTOR_ID},
                    headers=api.key(Scope.SUBJECTS_READ, Scope.ERASURES_READ),
                )
                erasures = lookup.json()["erasures"]
                if not erasures:
                    return False
                view = await client.get(
                    f"/v1/erasures/{erasures[0]['erasure_id']}",
                    headers=api.key(Scope.ERASURES_READ),
                )
                return view.json()["state"] == "confirmed" and view.json()["confirmed_by"] == [
                    "collection"
                ]

            await eventually(confirmed_by_the_collection_system, timeout=30)
            with collection.connect() as connection:
                assert connection.scalar(select(func.count()).select_from(CASES)) == 0
            collection.dispose()

            # The erasure executed, and the vendor told with a webhook the standardwebhooks
            # library verified (the receiver acts only on those), then confirming it.
            endpoint = receiver.endpoints[vendor]
            await eventually(lambda: endpoint.acted_on, timeout=60)
            [(notification_id, payload)] = endpoint.acted_on.items()
            erasure_id = payload["data"]["erasure_id"]
            body = json.dumps({"notification_id": notification_id})
            assert (await confirm(api, notification_id, body, endpoint.secret)).status_code == 202

            async def confirmed() -> bool:
                view = await client.get(
                    f"/v1/erasures/{erasure_id}", headers=api.key(Scope.ERASURES_READ)
                )
                told = view.json().get("notifications") or []
                # confirmed by the collection system too, whose agent holds none of its rows
                return view.json().get("state") == "confirmed" and [n["state"] for n in told] == [
                    "confirmed"
                ]

            await eventually(confirmed, timeout=30)
            webhooks = b"".join(r.body for r in endpoint.received)
            metrics = "".join(
                [
                    (await client.get("/metrics")).text,
                    *[
                        httpx.get(f"http://127.0.0.1:{ports[name]}/metrics").text
                        for name in ("purger_metrics", "notifier_metrics", "agent_status")
                    ],
                ]
            )
        engine.dispose()

        # The erasure command on its topic; no topic, table or log line names the subject.
        kafka = KafkaSettings(bootstrap=f"127.0.0.1:{ports['broker']}")
        commands = await read_topic(
            kafka,
            topics.ERASURE_COMMANDS,
            until=lambda records: any(erasure_id.encode() in r.value for r in records),
        )
        assert commands
        records = [r for topic in topics.ALL_TOPICS for r in await read_to_the_end(kafka, topic)]
        assert {r.topic for r in records} >= {topics.LIFECYCLE, topics.ERASURES}
        output = stop(tmp_path, ports, process, signal.SIGINT)
    finally:
        kill_session(process.pid)
    identifiers = [
        subject.ref,
        *(NATIONAL_ID, NATIONAL_ID.replace("-", "")),  # as given, normalised
        *(DEBTOR_ID, DEBTOR_ID.replace("-", "")),  # also within the 12-digit form
    ]
    for record in records:
        seen = b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers)])
        assert not any(raw.encode() in seen for raw in identifiers), record.topic
    with sqlite3.connect(tmp_path / "var" / "gallring.db") as database:
        tables = "\n".join(database.iterdump())
    assert not any(raw in tables for raw in identifiers)
    # The erased case's id and the vendor's reference are left only where README's "What Gallring
    # keeps" says: the notifier's memory of the erasure, for late disclosures (7 days), and the
    # published messages the relay keeps an hour, to publish again should the broker lose them
    # (the topics hold the same for days). The confirmed notification keeps its scope's key alone.
    left = [line for line in tables.splitlines() if "C-2023-0001" in line or "PV-88" in line]
    assert {line.split('"')[1] for line in left} == {"heard_erasure", "published_message"}, left
    assert [line.split('"')[1] for line in left].count("heard_erasure") == 1, left
    assert not any(raw in output for raw in identifiers)
    assert not any(raw in metrics for raw in identifiers)
    assert webhooks and not any(raw.encode() in webhooks for raw in identifiers)


def write_a_debtor_with_a_case(connection: Connection, national_id: str, case_number: str) -> None:
    """A debtor, a case and a letter in the sample collection system, as its staff enter them."""
    now = datetime.now(UTC).replace(tzinfo=None)  # its columns are naive
    connection.execute(
        insert(DEBTORS).values(id=1, national_id=national_id, name="Bo Berg", updated_at=now)
    )
    connection.execute(
        insert(CASES).values(
            id=1,
            case_number=case_number,
            debtor_id=1,
            amount_ore=1,
            status="closed",
            updated_at=now,
        )
    )
    connection.execute(
        insert(LETTERS).values(id=1, case_id=1, kind="demand", body="Dear Bo", updated_at=now)
    )


async def test_its_broker_killed_is_started_again_and_what_is_posted_after_reaches_the_purger(
    tmp_path: Path,
) -> None:
    """The embedded broker's process killed (the OOM killer, a stray ``kill -9``): ``gallring
    up`` says it started it again, on the same port, and an unsubscribe posted after it is
    erased by the purger. Stopped, it leaves no broker behind."""
    ports = {name: free_loopback_port() for name in PORTS}
    process = start(tmp_path, ports, pseudonym_secret=SECRET, purger_sweep_interval_seconds="1")
    restarted = (
        "gallring: the embedded broker stopped (killed by SIGKILL); started it again on "
        f"127.0.0.1:{ports['broker']} — it keeps nothing on disk, so Gallring republishes what "
        "it still holds"
    )
    try:
        wait_until_running(tmp_path, ports, process)
        killed = broker_of(process.pid)
        os.kill(killed, signal.SIGKILL)

        def said_restarted() -> bool:
            assert process.poll() is None, log_of(tmp_path)
            return restarted in log_of(tmp_path)

        wait_until(said_restarted, interval=0.1, context=lambda: log_of(tmp_path))
        assert broker_of(process.pid) != killed

        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'gallring.db'}")
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['api']}")
        api = RunningApi(client, None, KeyStore(engine), engine)  # type: ignore[arg-type]
        subject = Subject()
        async with client:
            for event_type in ("marketing.contact", "newsletter.unsubscribed"):
                event = {
                    **EXAMPLES[event_type],
                    "event_id": str(uuid.uuid4()),
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "subject": {"ref": subject.ref},
                }
                posted = await client.post(
                    "/v1/events", json=event, headers=api.key(Scope.EVENTS_WRITE)
                )
                assert posted.status_code == 202, posted.text

            async def erased() -> bool:
                lookup = await client.post(
                    "/v1/subjects/lookup",
                    json={"ref": subject.ref},
                    headers=api.key(Scope.SUBJECTS_READ, Scope.ERASURES_READ),
                )
                return [e["rule"] for e in lookup.json()["erasures"]] == ["marketing.immediate"]

            await eventually(erased, timeout=30)
        engine.dispose()
        # The broker's port free too; the Kafka clients said (ERROR) that it was away.
        output = stop(tmp_path, ports, process, signal.SIGINT, broker_was_away=True)
    finally:
        kill_session(process.pid)
    assert output.count(restarted) == 1


def test_a_broker_that_keeps_dying_stops_it_with_a_reason(tmp_path: Path) -> None:
    """Started again five times within a minute, the sixth death is one too many: it says so and
    stops everything, with an exit code that tells a script it did not end well."""
    ports = {name: free_loopback_port() for name in PORTS}
    process = start(tmp_path, ports)
    try:
        wait_until_running(tmp_path, ports, process)
        for deaths in range(1, 7):
            os.kill(broker_of(process.pid), signal.SIGKILL)
            restarts = min(deaths, 5)
            wait_until(
                lambda: log_of(tmp_path).count("started it again") >= restarts,  # noqa: B023
                context=lambda: log_of(tmp_path),
            )
        process.wait(timeout=60)
        output = log_of(tmp_path)
        assert process.returncode == 1, output
        assert (
            "gallring: the embedded broker stopped (killed by SIGKILL) 6 times within 60 s; not "
            "starting it again. Stopping Gallring: run `gallring up` again, or set "
            "GALLRING_KAFKA_BOOTSTRAP to a broker of your own."
        ) in output
        assert "Traceback" not in output, output
        for port in ports.values():
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still taken"
    finally:
        kill_session(process.pid)


def broker_of(up: int) -> int:
    """The process id of the embedded broker that ``gallring up`` (process ``up``) started:
    its child whose command line is Tansu's."""
    found = []
    for process_stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(process_stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (process_stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if parent == up and b"--storage-engine" in command:
            found.append(int(process_stat.parent.name))
    [broker] = found
    return broker


async def try_a_personal_number_where_an_id_belongs(api: RunningApi, recipient_id: str) -> None:
    """What a careless upstream system does, as the outside audit did: a personnummer as a case
    id, a recipient's reference, a recipient's id or name, a confirming system, in a URL. Each
    is refused, so that the scans after the erasure find it nowhere, not even in the log."""
    short = NATIONAL_ID[2:]  # without century
    event = {
        **EXAMPLES["data.disclosed"],
        "event_id": str(uuid.uuid4()),
        "scope": {"case_id": f"C-{NATIONAL_ID}"},
    }
    as_ref = {**event, "scope": {}, "data": {**event["data"], "recipient_ref": short}}
    attempts = [
        api.client.post("/v1/events", json=event, headers=api.key(Scope.EVENTS_WRITE)),
        api.client.post("/v1/events", json=as_ref, headers=api.key(Scope.EVENTS_WRITE)),
        api.client.patch(
            f"/v1/recipients/{recipient_id}",
            json={"name": f"Inkasso {NATIONAL_ID}"},
            headers=api.key(Scope.ADMIN),
        ),
        api.client.get(f"/v1/recipients/{NATIONAL_ID}", headers=api.key(Scope.ADMIN)),
        api.client.post(
            f"/v1/erasures/{uuid.uuid4()}/confirmations",
            json={"system": short},
            headers=api.key(Scope.ERASURES_CONFIRM),
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 422, response.text


def test_the_demo_shows_erasures_executed_and_recipients_told_and_can_be_run_again(
    tmp_path: Path,
) -> None:
    """``gallring demo`` beside ``gallring up``, as a newcomer runs them in two terminals; the
    second run finds its recipients registered and takes them over."""
    ports = {name: free_loopback_port() for name in PORTS}
    process = start(tmp_path, ports)
    try:
        wait_until_running(tmp_path, ports, process)
        environment = {**os.environ, "GALLRING_API_PORT": str(ports["api"])}
        environment.pop("GALLRING_DATABASE_URL", None)  # the demo's key goes into var/
        for _ in range(2):
            demo = subprocess.run(
                [GALLRING, "demo", "--timeout", "60"],
                cwd=tmp_path,
                env=environment,
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr
            # The story: four subjects' due data erased (one of them at once, on unsubscribe),
            # one held, two kept; the print vendor and the agent abroad told and confirming.
            summary = "4 erasures executed, 2 deletion webhooks verified by their recipients, 2 "
            assert summary + "confirmed" in demo.stdout, demo.stdout
            assert "collection_case.legal_hold" in demo.stdout  # the held clock's rule
            assert "pending until" in demo.stdout  # the case closed today
            for erased in ("collection_case", "customer_relationship", "marketing", "aml"):
                assert f"erased: {erased} " in demo.stdout
            # The company's side: the overdue case's rows and the reader gone from the sample
            # collection system, each erasure confirmed by its agent; the other cases kept.
            gone = "case C-{}-101: no cases, no letters, no linked payments".format(
                demo.stdout.split("case C-")[1].split("-")[0]
            )
            assert gone in demo.stdout, demo.stdout
            assert "(erasure confirmed): off the newsletter list" in demo.stdout
            assert "confirmed 2 of 2 erasures it owed" in demo.stdout
            untouched = demo.stdout.split("the cases not due are untouched:")[1]
            assert untouched.count("1 case, 2 letters, 1 linked payment") == 2, untouched
            assert where_the_demo_tells(demo.stdout) == where_the_demo_tells(readme_sample())
        # Then the tour's next step, its commands word for word: the debtor's case held, the
        # bookkeeping pending, as `gallring policy evaluate` tells of the same file offline.
        (tmp_path / "docs").symlink_to(Path(__file__).parents[2] / "docs")
        offline = json.loads(
            subprocess.run(
                [GALLRING, "policy", "evaluate", "docs/examples/events.jsonl"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        told_offline = {
            (c["category"], c["state"])
            for c in offline
            if c["subject"] == {"national_id": "19811218-9876"}
        }
        assert told_offline == {("collection_case", "held"), ("bookkeeping", "pending")}
        deadline = time.monotonic() + 30
        while True:  # the purger reads the batch within a second or so
            batch, lookup = run_the_tours_commands(tmp_path, ports["api"])
            assert batch["rejected"] == 0, batch
            told = {(c["category"], c["state"]) for c in lookup["clocks"]}
            if told == told_offline or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert told == told_offline
        stop(tmp_path, ports, process, signal.SIGINT)
    finally:
        kill_session(process.pid)


#: The demo's sections, by the start of their headings.
DEMO_SECTIONS = (
    "The company's collection system",
    "Their retention clocks",
    "Waiting for the purger's sweep",
    "In ",
)


def where_the_demo_tells(output: str) -> dict[str, set[str]]:
    """Which kinds of line (a clock, a webhook) stand under which of the demo's sections: the
    shape that the demo's output and README's sample of it must share."""
    kinds: dict[str, set[str]] = {}
    section = None
    for line in output.splitlines():
        heading = next((h for h in DEMO_SECTIONS if line.strip().startswith(h)), None)
        if heading:
            section = heading
            continue
        if section is None:
            continue
        if "verified a signed deletion webhook" in line:
            kinds.setdefault(section, set()).add("webhook")
        elif "the collection system's agent erased and confirmed" in line:
            kinds.setdefault(section, set()).add("confirmed by the system")
        elif "linked payment" in line:
            kinds.setdefault(section, set()).add("a case's rows")
        elif "pending until" in line or " held " in line:
            kinds.setdefault(section, set()).add("clock")
    return kinds


def readme_sample() -> str:
    """The demo's output as README's tour shows it."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    tour = readme[readme.index("## A five-minute tour") :]
    return tour[tour.index("```\n") + 4 : tour.index("\n   ```", tour.index("```\n"))]


def run_the_tours_commands(workdir: Path, port: int) -> list[dict]:
    """README's tour's shell commands, as written but for the API's port, where `make run`
    runs: the answers of the two calls."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    tour = readme[readme.index("## A five-minute tour") :]
    start = tour.index("```sh\n") + len("```sh\n")
    commands = tour[start : tour.index("```", start)].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    output = subprocess.run(
        ["bash", "-c", commands], cwd=workdir, capture_output=True, text=True, check=True
    ).stdout
    decoder, answers, at = json.JSONDecoder(), [], 0
    while output[at:].strip():
        at += len(output[at:]) - len(output[at:].lstrip())
        answer, at = decoder.raw_decode(output, at)
        answers.append(answer)
    return answers
