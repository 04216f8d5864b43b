"""Sharing the publishing among relays (``GALLRING_RELAY_SHARDED``, PostgreSQL): each relay holds
the leases of some of the outbox's buckets and publishes only their messages.

One relay publishing the whole outbox has a ceiling (about 33,000 messages/s measured with
``bench/relay_bench.py``): a deployment whose API replicas together accept more needs more
relays. A subject's messages must still go out in order, so they must go out through one relay
at a time: every key falls in one of :data:`BUCKETS` buckets (``bucket_of``, an expression of the
key), and a bucket is published by the relay holding its lease. (Buckets of keys rather than
Kafka partitions: a partition depends on a topic's partition count, which the database does not
know, while a key's bucket is one SQL expression every writer of the outbox gets for free.)

The leases are PostgreSQL advisory locks on a session the relay keeps, as the single lease's
(:mod:`shared.messaging.outbox.lease`): they end with the relay, however it ends. The relays
balance themselves without a coordinator: each holds a *shared* lock on the single lease's key
(so a relay not sharing, which takes it exclusively, and sharing ones never publish at once),
counts the relays holding it, and keeps its fair share of buckets, ``ceil(BUCKETS / relays)``:
it takes free buckets while it holds fewer, and hands on the surplus when a relay joins. A bucket
changes hands only between rounds: what a relay sent of it was acknowledged and moved out of the
outbox, or is sent again, oldest first, by the next holder, and consumers skip what they had by
event id. (Not after a round that failed: its producer may still be delivering, so the relay
keeps its buckets until a round succeeds or it stops.)

The holder of bucket 0 keeps the ``relay_lease`` row naming it, as the single lease's holder
does, so that relays of a release before sharing, which go by that row, stay off.
"""

import logging
import math
import random
import threading
from contextlib import suppress

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from shared.messaging.outbox.lease import KEEPALIVE, RELAY_LOCK, LeaseRow, end_session
from shared.storage.tables.outbox import BUCKETS

log = logging.getLogger(__name__)
#: The first key of the buckets' two-key advisory locks (their second key is the bucket);
#: two-key locks never collide with the one-key :data:`RELAY_LOCK`.
BUCKET_LOCK_CLASS = 734_620_190
#: How often a relay holding less than its share looks for buckets to take.
REBALANCE_SECONDS = 1.0

#: How many relays share the publishing: the sessions holding the shared lock on the lease's key
#: in this database (advisory locks are per database; a one-key lock shows as its two halves).
_SHARING_RELAYS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND mode = 'ShareLock' AND objsubid = 1 AND classid = :high AND objid = :low "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
).bindparams(high=RELAY_LOCK >> 32, low=RELAY_LOCK & 0xFFFF_FFFF)
#: Takes every bucket of the candidates that is free; the ones taken.
_TAKE_FREE = text(
    "SELECT bucket FROM unnest(CAST(:candidates AS integer[])) AS bucket "
    "WHERE pg_try_advisory_lock(:class, bucket)"
).bindparams(bindparam("class", BUCKET_LOCK_CLASS))
_HAND_ON = text(
    "SELECT pg_advisory_unlock(:class, bucket) FROM unnest(CAST(:buckets AS integer[])) AS bucket"
).bindparams(bindparam("class", BUCKET_LOCK_CLASS))


class BucketLeases:
    """The bucket leases of one relay (``holder``). Synchronous: relays call it in a thread."""

    def __init__(self, db: Engine, holder: str, lease_seconds: float) -> None:
        self._db = db
        self.holder = holder
        self._row = LeaseRow(db, holder, lease_seconds)  # kept by the holder of bucket 0
        self._connection: Connection | None = None
        self._held: frozenset[int] = frozenset()
        self._next_look = 0.0
        # Where this relay starts looking for free buckets: relays starting at once take
        # different ones rather than all trying the same.
        self._start = random.randrange(BUCKETS)  # noqa: S311 - spreads load; not a secret
        self._serial = threading.Lock()

    @property
    def held(self) -> frozenset[int]:
        """The buckets this relay held at its last :meth:`hold` (no I/O)."""
        return self._held

    def hold(self, *, now: float, may_hand_on: bool = True) -> frozenset[int]:
        """The buckets this relay may publish now (none if it cannot share), after taking free
        ones while it holds fewer than its share, or handing on those above it unless
        ``may_hand_on`` is false (its last round failed). ``now``: a monotonic time, for how
        often it looks for free buckets."""
        with self._serial:
            connection = self._session()
            if connection is None:
                return self._held
            try:
                self._balance(connection, now, may_hand_on)
                if 0 in self._held:
                    self._row.renew()
            except Exception as error:  # noqa: BLE001 - whatever broke it, the locks are gone
                log.warning(
                    "outbox relay: the bucket leases' database connection broke (%s); trying again",
                    type(error).__name__,
                )
                self._end()
            return self._held

    def release(self) -> None:
        """Hand every bucket on (at once: the other relays' next rounds take them)."""
        with self._serial:
            if 0 in self._held:
                self._row.end()
            if self._connection is not None:
                with suppress(Exception):  # if the session is gone, so are its locks
                    self._connection.execute(select(func.pg_advisory_unlock_all()))
            self._end()

    def _session(self) -> Connection | None:
        """The session holding this relay's locks, opened (and the shared lock taken) if none;
        None if a relay not sharing holds the lease."""
        if self._connection is not None:
            return self._connection
        connection = self._db.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            sharing = connection.execute(
                select(func.pg_try_advisory_lock_shared(RELAY_LOCK))
            ).scalar_one()
            if sharing:
                for setting, value in KEEPALIVE.items():
                    connection.execute(select(func.set_config(setting, value, False)))
        except BaseException:
            end_session(connection)
            raise
        if not sharing:
            connection.close()
            log.debug("outbox relay: a relay not sharing the publishing holds the lease")
            return None
        self._connection = connection
        self._next_look = 0.0
        return connection

    def _balance(self, connection: Connection, now: float, may_hand_on: bool) -> None:
        # Asked every round: it also finds a broken session (whose locks are gone) at once.
        relays = connection.execute(_SHARING_RELAYS).scalar_one()
        share = math.ceil(BUCKETS / max(relays, 1))
        held = sorted(self._held)
        if len(held) > share and may_hand_on:
            # The surplus goes from the end of what it holds, so that what it keeps stays put.
            surplus = held[share:]
            connection.execute(_HAND_ON, {"buckets": surplus})
            self._held = frozenset(held[:share])
            log.info(
                "outbox relay: %d relays share the publishing; handed on %d bucket(s), holding %d",
                relays,
                len(surplus),
                len(self._held),
            )
        elif len(held) < share and now >= self._next_look:
            self._next_look = now + REBALANCE_SECONDS
            candidates = [
                bucket
                for step in range(BUCKETS)
                if (bucket := (self._start + step) % BUCKETS) not in self._held
            ]
            taken = list(connection.execute(_TAKE_FREE, {"candidates": candidates}).scalars())
            # All the free ones were taken in one statement; those above the share go back.
            keep, beyond = taken[: share - len(held)], taken[share - len(held) :]
            if beyond:
                connection.execute(_HAND_ON, {"buckets": beyond})
            if keep:
                self._held = self._held | frozenset(keep)
                log.info(
                    "outbox relay: %d relays share the publishing; took %d bucket(s), holding %d",
                    relays,
                    len(keep),
                    len(self._held),
                )

    def _end(self) -> None:
        connection, self._connection = self._connection, None
        self._held = frozenset()
        self._row.forget()
        if connection is not None:
            end_session(connection)
