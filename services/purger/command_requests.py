"""Publishing an executed erasure's command again, for one system, when an admin asks through the
API (``POST /v1/erasures/{id}/commands/{system}``, passed on as ``erasure.command_requested`` on
``gallring.erasure-confirmations.v1``). The purger owns erasures and is the one producer of
``gallring.erasure-commands.v1``, so it publishes, from the proof.

The proof keeps no scope and no pseudonym (nothing that leads back to the person), so the command
published again has no scope (``None``) and is keyed by the subject hash; it carries the proof's
``subject_hash`` and ``clock_hash``, by which a system that knows its own rows' pseudonyms and
scopes finds them. A request for an erasure with no proof (not executed) is logged and dropped:
the API answers 409 for those, so it comes only from a race or a hand-made message."""

import logging
from typing import Any
from uuid import uuid4

from sqlalchemy import select

from services.purger.batch import PurgerBatch
from shared.domain.contract.erasure_messages import SCHEMA_VERSION, CommandRequested, ErasureCommand
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_PROOFS = table_of(ErasureProof)
_OUTBOX = table_of(OutboxMessage)


def publish_commands_again(batch: PurgerBatch, requests: list[CommandRequested]) -> None:
    """The purger's handler of command requests: one addressed command per request."""
    connection = batch.connection
    proofs = {
        row.erasure_id: row
        for row in connection.execute(
            select(_PROOFS).where(
                one_of(connection, _PROOFS.c.erasure_id, {r.erasure_id for r in requests})
            )
        )
    }
    outbox: list[dict[str, Any]] = []
    for request in requests:
        proof = proofs.get(request.erasure_id)
        if proof is None:
            log.warning(
                "purger: %s asked for erasure %s's command again, which is not executed; ignored",
                request.requested_by,
                request.erasure_id,
            )
            continue
        command = ErasureCommand(
            event_id=uuid4(),
            erasure_id=proof.erasure_id,
            category=proof.category,
            scope=None,
            rule=proof.rule,
            legal_basis=proof.legal_basis,
            due_at=proof.due_at,
            system=request.system,
            subject_hash=proof.subject_hash,
            clock_hash=proof.clock_hash,
        )
        outbox.append(
            outbox_row(
                topics.ERASURE_COMMANDS,
                key=proof.subject_hash,
                value=command.model_dump_json(),
                event_type=command.type,
                event_id=command.event_id,
                schema_version=SCHEMA_VERSION,
                now=batch.now,
            )
        )
        log.info(
            "purger: erasure %s's command published again for %s, as %s asked",
            request.erasure_id,
            request.system,
            request.requested_by,
        )
    insert_rows(connection, _OUTBOX, outbox)
