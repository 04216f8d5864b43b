"""Recording the company's systems' confirmations that they erased their copies, which the API
passes on (``gallring.erasure-confirmations.v1``), and telling ops and the notifier with an
``erasure.confirmed`` message on ``gallring.erasures.v1`` (keyed by the erasure id: the proof
keeps no pseudonym). A repeat, or a redelivered report, records nothing new."""

import logging
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select

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
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import ErasureConfirmation, ErasureProof
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CONFIRMATIONS = table_of(ErasureConfirmation)
_PROOFS = table_of(ErasureProof)
_OUTBOX = table_of(OutboxMessage)


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
    batch.confirmations += len(confirmations)
