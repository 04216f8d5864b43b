"""The Alembic migrations, on both databases: they build exactly the schema the models declare."""

import json
import logging
import multiprocessing
import threading
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text

from shared.domain.contract.examples import EXAMPLES
from shared.storage.database import make_engine
from shared.storage.migrate import MIGRATION_LOCK, downgrade, upgrade
from shared.storage.tables import metadata
from shared.storage.tables.notifier import Notification
from shared.storage.tables.table import table_of
from tests.conftest import new_postgres_database
from tests.polling import wait_until


@pytest.fixture
def empty_database_url(database_url: str) -> str:
    downgrade(database_url, "base")
    return database_url


# The outbox's bucket index is PostgreSQL's alone (an expression, which Alembic compares there).
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_upgrade_builds_the_declared_schema_and_downgrade_removes_it(empty_database_url) -> None:
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            assert compare_metadata(context, metadata) == []
        downgrade(empty_database_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
        upgrade(empty_database_url)


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)


def test_services_starting_together_on_an_empty_postgresql_database_all_migrate_it() -> None:
    """A deployment's replicas each migrate at their start, at the same moment (processes, as
    in a deployment: Alembic's migration context is one per process)."""
    spawn = multiprocessing.get_context("spawn")
    with new_postgres_database() as url, spawn.Manager() as manager:
        together = manager.Barrier(4)
        with spawn.Pool(4) as pool:
            pool.starmap(_upgrade_when_all_are_ready, [(url, together)] * 4)
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection)
                assert compare_metadata(context, metadata) == []
        finally:
            engine.dispose()


def test_a_service_waiting_for_another_ones_migration_says_so(caplog) -> None:
    with new_postgres_database() as url:
        holder = make_engine(url)
        try:
            with holder.connect() as other, caplog.at_level(logging.INFO, "gallring.migrate"):
                other.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                waiting = threading.Thread(target=upgrade, args=(url,))
                waiting.start()

                def says_it_waits() -> bool:
                    assert waiting.is_alive(), "the migration did not wait"
                    return "waiting for it to finish" in caplog.text

                wait_until(says_it_waits, timeout=30)
                other.commit()  # the other migration is done
                waiting.join(timeout=60)
            assert not waiting.is_alive()
        finally:
            holder.dispose()
    assert caplog.text.count("another process is migrating the database") == 1


def _upgrade_when_all_are_ready(url: str, together: Any) -> None:
    together.wait(timeout=60)
    upgrade(url)


def test_facts_stored_before_event_types_were_kept_get_theirs(empty_database_url) -> None:
    upgrade(empty_database_url, "0005")
    engine = make_engine(empty_database_url)
    message = {**EXAMPLES["newsletter.unsubscribed"], "subject": "ab" * 32, "schema_version": 1}
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO subject_fact (event_id, subject_pseudonym, message)"
                    " VALUES (:event_id, :subject, :message)"
                ),
                {
                    "event_id": message["event_id"].replace("-", "")
                    if engine.dialect.name == "sqlite"
                    else message["event_id"],
                    "subject": message["subject"],
                    "message": json.dumps(message),
                },
            )
        upgrade(empty_database_url)
        with engine.connect() as connection:
            event_types = connection.execute(text("SELECT event_type FROM subject_fact")).all()
        assert event_types == [("newsletter.unsubscribed",)]
    finally:
        engine.dispose()
        downgrade(empty_database_url, "base")
        upgrade(empty_database_url)


def test_confirmed_notifications_of_one_erasure_and_recipient_survive_a_downgrade(
    empty_database_url,
) -> None:
    # Confirmed, both gave up their reference; 0009's unique constraint wants them apart.
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    now, erasure_id = datetime.now(UTC), uuid4()
    row = {
        "erasure_id": erasure_id,
        "recipient_id": "print-vendor",
        "type": "erasure.requested",
        "category": "collection_case",
        "scope": "{}",
        "recipient_ref": "",
        "legal_basis": "GDPR art. 17",
        "state": "delivered",
        **dict.fromkeys(("respond_by", "next_attempt_at", "give_up_at", "created_at"), now),
        **dict.fromkeys(("delivered_at", "confirmed_at"), now),
    }
    notifications = table_of(Notification)
    try:
        with engine.begin() as connection:
            for _ in range(2):
                connection.execute(insert(notifications).values(notification_id=uuid4(), **row))
        downgrade(empty_database_url, "0009")
        with engine.connect() as connection:
            refs = connection.execute(text("SELECT recipient_ref FROM notification")).scalars()
            assert len(set(refs) - {""}) == 2
    finally:
        engine.dispose()
        downgrade(empty_database_url, "base")
        upgrade(empty_database_url)


def test_proofs_are_found_by_subject_through_a_hash_index_on_postgresql(database_url) -> None:
    # A B-tree of the 64-character hashes outgrew memory at a million proofs: the migration must
    # build the hash index the model declares, which Alembic's comparison does not check.
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has B-trees only")
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            definition = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_erasure_subject_hash'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert "USING hash (subject_hash)" in definition


def test_disclosures_are_found_by_recipient_and_waiting_notifications_by_a_partial_index(
    migrated_url,
) -> None:
    # GET /v1/unregistered-recipients pages disclosures by recipient; the notifier's
    # housekeeping and metrics look up the few notifications that wait for their recipient.
    engine = make_engine(migrated_url)
    try:
        inspector = inspect(engine)
        disclosure = {i["name"]: i["column_names"] for i in inspector.get_indexes("disclosure")}
        notification = {i["name"]: i for i in inspector.get_indexes("notification")}
    finally:
        engine.dispose()
    assert disclosure["ix_disclosure_recipient_id"] == ["recipient_id"]
    awaiting = notification["ix_notification_awaiting"]
    assert awaiting["column_names"] == ["recipient_id"]
    where = awaiting.get("dialect_options", {})
    assert "awaiting_recipient" in str(where.get("postgresql_where", where.get("sqlite_where")))


def test_immediate_lane_messages_waiting_at_the_upgrade_are_published_first(
    empty_database_url,
) -> None:
    """Left behind a back-fill, they would be overtaken by their subjects' newer messages."""
    upgrade(empty_database_url, "0014")
    engine = make_engine(empty_database_url)
    row = "(:event_id, :topic, 'key', '{}', '{}', :now)"
    try:
        with engine.begin() as connection:
            for topic in ("gallring.lifecycle.v1", "gallring.lifecycle-immediate.v1"):
                event_id = uuid4()
                connection.execute(
                    text(
                        "INSERT INTO outbox_message"
                        f" (event_id, topic, message_key, value, headers, created_at) VALUES {row}"
                    ),
                    {
                        "event_id": event_id.hex if engine.dialect.name == "sqlite" else event_id,
                        "topic": topic,
                        "now": datetime.now(UTC),
                    },
                )
        upgrade(empty_database_url)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT topic, urgent FROM outbox_message"))
            urgent = {topic: bool(flag) for topic, flag in rows}
        assert urgent == {"gallring.lifecycle.v1": False, "gallring.lifecycle-immediate.v1": True}
    finally:
        engine.dispose()
        downgrade(empty_database_url, "base")
        upgrade(empty_database_url)
