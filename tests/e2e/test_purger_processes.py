"""Real purger processes (``gallring purger``), on PostgreSQL and SQLite: killed in the middle
of a sweep, and two at once. Every due clock is erased exactly once either way; on PostgreSQL the
two share the work."""

import subprocess
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from services.purger.handlers import handle_batch
from shared.domain.pseudonym import subject_hash
from shared.messaging import topics
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.settings import KafkaSettings
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of
from tests.integration.conftest import start_worker
from tests.integration.purger.helpers import RETENTION, Subject, ago, clocks_of
from tests.polling import wait_until

CLOCKS = 400
SHARED_CLOCKS = 1_000


def due_subjects(db: Engine, count: int) -> list[Subject]:
    subjects = [Subject() for _ in range(count)]
    messages = [
        s.message("collection_case.closed", ago(months=37), {"case_id": "C-1"}) for s in subjects
    ]
    handle_batch(db, RETENTION, messages, datetime.now(UTC))
    return subjects


def purger(
    database_url: str, kafka: KafkaSettings, batch_size: int, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    """``gallring purger`` with its relay off, so that its erasure commands stay countable."""
    return start_worker(
        "purger",
        database_url,
        kafka,
        purger_consumer_group=f"purger-test-{uuid.uuid4().hex[:8]}",
        purger_sweep_batch_size=str(batch_size),
        purger_sweep_interval_seconds="0.5",
        relay_enabled="false",
        purger_metrics_port=str(metrics_port),
    )


def erased_by(metrics_port: int) -> float:
    """The clocks a running purger says it erased (``/metrics``); OSError until it serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("gallring_purger_erasures_total "):
                return float(line.split()[1])
    raise AssertionError("no gallring_purger_erasures_total")


def wait_until_serving(metrics_port: int) -> None:
    def serving() -> bool:
        try:
            erased_by(metrics_port)
        except OSError:
            return False
        return True

    wait_until(serving, timeout=60, interval=0.1)


def wait_for_erasures(db: Engine, subjects: list[Subject], at_least: int) -> None:
    def erased_enough() -> bool:
        return sum(erasures_per_subject(db, subjects)[0].values()) >= at_least

    wait_until(erased_enough, timeout=60, interval=0.01)


def erasures_per_subject(db: Engine, subjects: list[Subject]) -> tuple[Counter, Counter]:
    """(proofs, erasure commands in the outbox) per subject."""
    hashes = {subject_hash(s.pseudonym): s.pseudonym for s in subjects}
    proofs, outbox = table_of(ErasureProof), table_of(OutboxMessage)
    with db.connect() as connection:
        proof_rows = connection.execute(
            select(proofs.c.subject_hash).where(proofs.c.subject_hash.in_(hashes))
        ).scalars()
        command_rows = connection.execute(
            select(outbox.c.message_key).where(
                outbox.c.topic == topics.ERASURE_COMMANDS,
                outbox.c.message_key.in_(hashes.values()),
            )
        ).scalars()
        return Counter(hashes[h] for h in proof_rows), Counter(command_rows)


def assert_each_erased_once(db: Engine, subjects: list[Subject]) -> None:
    proofs, commands = erasures_per_subject(db, subjects)
    everyone_once = Counter({s.pseudonym: 1 for s in subjects})
    assert proofs == everyone_once
    assert commands == everyone_once
    assert all(clocks_of(db, s) == {} for s in subjects)


def test_a_purger_killed_mid_sweep_and_restarted_erases_each_clock_once(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    subjects = due_subjects(db, CLOCKS)
    process = purger(migrated_url, kafka_settings, batch_size=5)
    wait_for_erasures(db, subjects, at_least=1)
    process.kill()  # SIGKILL: no cleanup, a transaction may be cut off in flight
    process.wait()
    erased_before_restart = sum(erasures_per_subject(db, subjects)[0].values())
    assert erased_before_restart < CLOCKS, "kill it in the middle, not after"

    restarted = purger(migrated_url, kafka_settings, batch_size=50)
    try:
        wait_for_erasures(db, subjects, at_least=CLOCKS)
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    assert_each_erased_once(db, subjects)


def test_two_purgers_at_once_share_the_work_and_erase_each_clock_once(
    fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    """On a database of its own, which only these two purgers write: each proof in it is one of
    their erasures (some of clocks they made from other tests' events on the topic)."""
    db, url = fresh_db, fresh_db.url.render_as_string(hide_password=False)
    ports = [free_loopback_port(), free_loopback_port()]
    processes = [purger(url, kafka_settings, 2, port) for port in ports]
    try:
        for port in ports:
            wait_until_serving(port)
        # Due only once both sweep every half second: more work than one gets through in that.
        subjects = due_subjects(db, SHARED_CLOCKS)
        wait_for_erasures(db, subjects, at_least=SHARED_CLOCKS)
        shares: list[int] = []

        def all_counted() -> bool:  # a sweep counts once it is over
            shares[:] = [erased_by(port) for port in ports]
            return sum(shares) == proof_count(db)

        wait_until(all_counted, timeout=30, interval=0.1, context=lambda: shares)
    finally:
        for process in processes:
            process.terminate()
        assert [process.wait(timeout=30) for process in processes] == [0, 0]
    assert_each_erased_once(db, subjects)
    if db.dialect.name == "postgresql":  # on SQLite one writer at a time: one may do it all
        assert min(shares) > 0, shares


def proof_count(db: Engine) -> int:
    with db.connect() as connection:
        return connection.execute(select(func.count()).select_from(ErasureProof)).scalar_one()
