"""A subject's clocks, evaluated now by the engine from the facts the purger keeps for it."""

from datetime import datetime

from sqlalchemy import Engine

from services.api import audit
from services.api.api_keys import Principal, Scope
from services.api.erasures import service as erasures
from services.api.erasures.schemas import ErasureView
from shared.domain.engine import RetentionClock, RetentionEngine
from shared.storage.subject_facts import load_facts


def clocks_of(
    engine: Engine, retention: RetentionEngine, pseudonym: str, *, actor: Principal, now: datetime
) -> tuple[int, list[RetentionClock], list[ErasureView] | None]:
    """How many events Gallring holds for the subject, the clocks they give as of ``now``, and,
    for a caller who may read erasures, the proofs of the subject's erasures (None for others).
    Events the purger has not consumed yet are not counted (it is seconds behind, normally).

    The lookup is audited by who asked and how much they saw, not by whom it was about: the
    audit log outlives erasures and must not link back to a person.
    """
    with engine.begin() as connection:
        messages = load_facts(connection, pseudonym)
        clocks = retention.evaluate(pseudonym, messages, now)
        erased = (
            erasures.of_subject(connection, pseudonym, now)
            if actor.may(Scope.ERASURES_READ)
            else None
        )
        audit.record(
            connection,
            actor=actor,
            action="subjects.lookup",
            at=now,
            events=len(messages),
            clocks=len(clocks),
            erasures=None if erased is None else len(erased),
        )
    return len(messages), clocks, erased
