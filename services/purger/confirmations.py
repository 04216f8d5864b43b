"""Recording the company's systems' confirmations that they erased their copies, which the API
passes on (``gallring.erasure-confirmations.v1``), and telling ops and the notifier with an
``erasure.confirmed`` message on ``gallring.erasures.v1`` (keyed by the erasure id: the proof
keeps no pseudonym). A repeat, or a redelivered report, records nothing new.

A confirmation also marks the system's row in ``erasure_expected_system`` confirmed, when the
erasure expected it. One from a system the register (``company_system``) does not know is
recorded all the same, and logged: the API flags it in the erasure's view and its metrics."""

import logging
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import bindparam, select, update

from services.purger.batch import PurgerBatch
from shared.domain.contract.erasure_messages import (
    SCHEMA_VERSION,
    ConfirmationReported,
    ErasureConfirmed,
)
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import (
    UNCONFIRMED,
    ErasureConfirmation,
    ErasureExpectedSystem,
    ErasureProof,
)
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CONFIRMATIONS = table_of(ErasureConfirmation)
_PROOFS = table_of(ErasureProof)
_OUTBOX = table_of(OutboxMessage)
_EXPECTED = table_of(ErasureExpectedSystem)
_SYSTEMS = table_of(CompanySystem)
#: An expected system's confirmation, once per (erasure, system): the first one stands.
_MARK_CONFIRMED = (
    update(_EXPECTED)
    .where(
        _EXPECTED.c.erasure_id == bindparam("erasure"),
        _EXPECTED.c.system == bindparam("of_system"),
        UNCONFIRMED,
    )
    .values(confirmed_at=bindparam("at"))
)


def record_confirmations(batch: PurgerBatch, reports: list[ConfirmationReported]) -> None:
    """The purger's handler of confirmation reports: record the new confirmations of executed
    erasures."""
    connection = batch.connection
    erasure_ids = {report.erasure_id for report in reports}
    executed = set(
        connection.execute(
            select(_PROOFS.c.erasure_id).where(
                one_of(connection, _PROOFS.c.erasure_id, erasure_ids)
            )
        ).scalars()
    )
    known: set[tuple[UUID, str]] = set(
        connection.execute(
            select(_CONFIRMATIONS.c.erasure_id, _CONFIRMATIONS.c.system).where(
                one_of(connection, _CONFIRMATIONS.c.erasure_id, erasure_ids)
            )
        ).all()
    )
    confirmations: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for report in reports:
        key = (report.erasure_id, report.system)
        if report.erasure_id not in executed:
            log.warning(
                "purger: %s confirmed erasure %s, which is not executed; ignored",
                report.system,
                report.erasure_id,
            )
            continue
        if key in known:
            continue
        known.add(key)
        confirmations.append(
            {
                "erasure_id": report.erasure_id,
                "system": report.system,
                "confirmed_at": report.reported_at,
            }
        )
        message = ErasureConfirmed(
            event_id=uuid4(),
            erasure_id=report.erasure_id,
            system=report.system,
            confirmed_at=report.reported_at,
        )
        outbox.append(
            outbox_row(
                topics.ERASURES,
                key=str(report.erasure_id),
                value=message.model_dump_json(),
                event_type=message.type,
                event_id=message.event_id,
                schema_version=SCHEMA_VERSION,
                now=batch.now,
            )
        )
    insert_rows(connection, _CONFIRMATIONS, confirmations)
    insert_rows(connection, _OUTBOX, outbox)
    if confirmations:
        connection.execute(
            _MARK_CONFIRMED,
            [
                {"erasure": c["erasure_id"], "of_system": c["system"], "at": c["confirmed_at"]}
                for c in confirmations
            ],
        )
        batch.unregistered_confirmations += _flag_unregistered(connection, confirmations)
    batch.confirmations += len(confirmations)


def _flag_unregistered(connection: Any, confirmations: list[dict[str, Any]]) -> int:
    """Log the confirmations from systems the register does not know; how many."""
    systems = {c["system"] for c in confirmations}
    registered = set(
        connection.execute(
            select(_SYSTEMS.c.system_id).where(one_of(connection, _SYSTEMS.c.system_id, systems))
        ).scalars()
    )
    unregistered = [c for c in confirmations if c["system"] not in registered]
    for confirmation in unregistered:
        log.warning(
            "purger: %s, which is not in the register of systems, confirmed erasure %s; "
            "recorded, and flagged in the erasure's view (register it with POST /v1/systems)",
            confirmation["system"],
            confirmation["erasure_id"],
        )
    return len(unregistered)
