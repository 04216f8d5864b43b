"""A disclosure read after the notifier has forgotten its erasure (a replay, a consumer group
reset, an upstream system posting it again) is recognised through the purger's proof: the
recipient is told at once (or was already), and the disclosure is not kept waiting for an
erasure that already happened."""

from datetime import timedelta
from uuid import uuid4

from sqlalchemy import Engine, insert, select

from services.notifier.handlers import handle_batch
from services.notifier.prune import prune
from shared.domain.pseudonym import clock_hash, subject_hash
from shared.runtime.settings import KafkaSettings
from shared.storage.tables.notifier import Disclosure, HeardErasure, Notification
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of
from tests.integration.notifier.helpers import Subject
from tests.integration.notifier.running import notifier_settings
from tests.integration.notifier.test_apply import NOW, disclosed, erased
from tests.integration.notifier.test_awaiting_recipient import _url

_DISCLOSURES = table_of(Disclosure)
_NOTIFICATIONS = table_of(Notification)


def _prove(db: Engine, subject: Subject, erasure, scope: tuple[str, str]) -> None:
    """The proof the purger's sweep left of ``erasure`` (a HeardExecuted)."""
    message = erasure.message
    with db.begin() as connection:
        connection.execute(
            insert(table_of(ErasureProof)).values(
                erasure_id=message.erasure_id,
                subject_hash=subject_hash(subject.pseudonym),
                clock_hash=clock_hash(subject.pseudonym, message.category.value, *scope),
                category=message.category.value,
                rule=message.rule,
                legal_basis=message.legal_basis,
                due_at=message.due_at,
                executed_at=message.executed_at,
            )
        )


def _kept(db: Engine, subject: Subject) -> list:
    with db.connect() as connection:
        return connection.execute(
            select(_DISCLOSURES.c.scope_value).where(
                _DISCLOSURES.c.subject_pseudonym == subject.pseudonym
            )
        ).all()


def _notified(db: Engine, recipient: str) -> list:
    with db.connect() as connection:
        return connection.execute(
            select(_NOTIFICATIONS.c.erasure_id, _NOTIFICATIONS.c.scope).where(
                _NOTIFICATIONS.c.recipient_id == recipient
            )
        ).all()


def test_a_disclosure_read_after_its_erasure_was_forgotten_is_matched_through_the_proof(
    fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    db = fresh_db
    settings = notifier_settings(_url(db), kafka_settings)
    subject, vendor, late = Subject(), f"v-{uuid4().hex[:8]}", f"l-{uuid4().hex[:8]}"
    before = NOW - timedelta(days=30)
    disclosure, erasure = disclosed(subject, vendor, before), erased(subject)
    _prove(db, subject, erasure, ("case_id", "C-1"))
    assert handle_batch(db, settings, [disclosure, erasure], NOW) == 1
    assert _kept(db, subject) == []

    # Past the late-disclosure window the notifier forgets the erasure; the proof stays.
    later = NOW + timedelta(days=settings.notifier_late_disclosure_days + 1)
    prune(db, settings, later)
    with db.connect() as connection:
        assert not connection.execute(select(table_of(HeardErasure))).all()

    # The same disclosure replayed: the recipient was told already, nothing is kept.
    assert handle_batch(db, settings, [disclosure], later) == 0
    assert _kept(db, subject) == []
    assert len(_notified(db, vendor)) == 1

    # A disclosure first read now, made before the erasure: told at once, of that case.
    assert handle_batch(db, settings, [disclosed(subject, late, before)], later) == 1
    [(erasure_id, scope)] = _notified(db, late)
    assert (erasure_id, scope) == (erasure.message.erasure_id, '{"case_id": "C-1"}')
    assert _kept(db, subject) == []

    # Another case's data, or data disclosed after the erasure, is no concern of that proof.
    other_case = disclosed(subject, late, before, case_id="C-2")
    after = disclosed(subject, f"a-{uuid4().hex[:8]}", later)
    assert handle_batch(db, settings, [other_case, after], later) == 0
    assert sorted(_kept(db, subject)) == [("C-1",), ("C-2",)]


def test_a_subject_wide_proof_covers_a_disclosure_of_any_scope_of_its_category(
    fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    db = fresh_db
    settings = notifier_settings(_url(db), kafka_settings)
    subject, vendor = Subject(), f"v-{uuid4().hex[:8]}"
    erasure = erased(subject)
    _prove(db, subject, erasure, ("", ""))
    prune(db, settings, NOW)  # nothing remembered: the notifier never heard this erasure
    assert (
        handle_batch(db, settings, [disclosed(subject, vendor, NOW - timedelta(days=3))], NOW) == 1
    )
    [(erasure_id, scope)] = _notified(db, vendor)
    assert (erasure_id, scope) == (erasure.message.erasure_id, "{}")
    assert _kept(db, subject) == []
