"""The publishing lease: one outbox relay at a time publishes, so each key keeps its order, and a
dead holder's lease passes on at once.

A lease that lapses after a time leaves the outbox unpublished for that whole time when its
holder dies, and the time cannot be short: a holder must finish a publishing round within it,
and a round with a slow broker may take seconds. So the lease is a lock that ends with its
holder, whichever way it ends:

- On PostgreSQL, a session advisory lock (``pg_try_advisory_lock``) taken on a connection the
  holder keeps checked out of its pool (behind a pooler, session pooling only: deploy/README.md).
  The server releases it when that session ends: a killed process's socket closes, and its
  backend ends at once. A holder whose machine vanished without
  closing the socket is found by TCP keepalives set on that session (:data:`KEEPALIVE`: in
  about 11 s). Every round the holder asks that connection first: a broken one has lost the lock
  (another relay may hold it now), so the holder stops and tries again the round after.
- On SQLite (the embedded default: every process on one host) an exclusive ``flock`` of a file
  beside the database (``gallring.db-relay-lock``, empty), which the kernel releases when the
  process ends, however it ends. The holder checks every round that the path still names the
  file it locked: one removed or replaced would let a second relay lock a new one. Not a short
  lease renewed every round: rounds would have to end within a second or so, or the lease be
  renewed during a round by a write that SQLite's single writer lock can hold back for seconds.
- A database in memory belongs to one process: a lock in that process serves.

The ``relay_lease`` row still names the holder, for operators, and for relays of an older
release during a rolling upgrade, which go by its expiry: the holder renews it every third of
``lease_seconds`` (it then expires ``lease_seconds`` after the last renewal), and a graceful
release ends it at once. What ``lease_seconds`` still bounds is a publishing round (half of it,
``OutboxRelay.publish_once``): a holder that lost its connection in the middle of a round stops
soon after, while the next holder starts; messages they both send arrive twice, which consumers
dedupe by event id, and in order per key, as each relay sends the outbox's rows oldest first.
"""

import fcntl
import logging
import os
import threading
import weakref
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.storage.tables.outbox import RelayLease
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
LEASE_NAME = "outbox"
#: The advisory lock of the lease on PostgreSQL: any number, the same in every release (and not
#: ``shared.storage.migrate.MIGRATION_LOCK``).
RELAY_LOCK = 7_346_201_905_119
#: Beside a SQLite database file, the file whose lock is the lease.
LOCK_FILE_SUFFIX = "-relay-lock"
#: Set on the lease holder's PostgreSQL session, so that the server ends it (and frees the lock)
#: once the holder's machine stops answering: probes after 5 s of silence, every 2 s, given up
#: after 3 unanswered, or after 10 s with data unacknowledged.
KEEPALIVE = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # milliseconds
}
_lease = table_of(RelayLease)


class _Lock(Protocol):
    @property
    def holding(self) -> bool:
        """Whether this relay took the lock and has not found it lost since (no I/O)."""

    def take(self) -> bool:
        """Whether this relay holds the lock now: taken if free, checked if held."""

    def release(self) -> None:
        """Give the lock up, if held."""


class PublishingLease:
    """The lease of one relay (``holder``). Synchronous: relays call it in a thread."""

    def __init__(self, db: Engine, holder: str, lease_seconds: float) -> None:
        self.holder = holder
        self._row = LeaseRow(db, holder, lease_seconds)
        self._lock = _lock_for(db)
        # A round cancelled while it asks for the lease leaves its thread running: a release
        # meanwhile must wait for it rather than share the connection.
        self._serial = threading.Lock()

    def hold(self) -> bool:
        """Whether this relay may publish now: it holds the lease (taking it if free)."""
        with self._serial:
            if not self._lock.take():
                self._row.forget()
                return False
            self._row.renew()
            return True

    def release(self) -> None:
        """Hand the lease on (at once: the next relay's next round takes it)."""
        with self._serial:
            try:
                if self._lock.holding:
                    self._row.end()
            finally:
                self._lock.release()


class LeaseRow:
    """The ``relay_lease`` row, naming the relay that publishes (for operators, and for relays
    of older releases, which go by its expiry). Written only by a relay that holds the lock."""

    def __init__(self, db: Engine, holder: str, lease_seconds: float) -> None:
        self._db = db
        self._holder = holder
        self._lease = timedelta(seconds=lease_seconds)
        self._renewed_at: datetime | None = None  # None: the row not written since taken

    def renew(self) -> None:
        """Name this holder until ``lease_seconds`` from now, if a third of it has passed."""
        now = datetime.now(UTC)
        if self._renewed_at is None or now - self._renewed_at >= self._lease / 3:
            self._name_holder(until=now + self._lease)
            self._renewed_at = now

    def forget(self) -> None:
        """The lock is lost: the next :meth:`renew` writes the row whatever the time."""
        self._renewed_at = None

    def end(self) -> None:
        """The row expires now: relays of older releases take over at once."""
        self._renewed_at = None
        try:
            with self._db.begin() as connection:
                connection.execute(
                    update(_lease)
                    .where(_lease.c.name == LEASE_NAME, _lease.c.holder == self._holder)
                    .values(expires_at=datetime.now(UTC))
                )
        except Exception:  # noqa: BLE001 - the lock is the lease; the row informs
            log.warning("outbox relay: could not mark the lease row as ended")

    def _name_holder(self, until: datetime) -> None:
        """The row names this holder: taken over whoever it named, as this relay has the lock."""
        with self._db.begin() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(_lease).values(
                name=LEASE_NAME, holder=self._holder, expires_at=until
            )
            connection.execute(
                insert.on_conflict_do_update(
                    index_elements=[_lease.c.name],
                    set_={
                        "holder": insert.excluded.holder,
                        "expires_at": insert.excluded.expires_at,
                    },
                )
            )


def _lock_for(db: Engine) -> _Lock:
    if db.dialect.name == "postgresql":
        return _SessionLock(db)
    name = db.url.database
    if not name or name == ":memory:" or "mode=memory" in str(db.url):
        return _ProcessLock(db)
    if name.startswith("file:"):  # a URI filename (?uri=true)
        name = urlparse(name).path
    return _FileLock(Path(name + LOCK_FILE_SUFFIX))


class _SessionLock:
    """PostgreSQL: an advisory lock of a session this relay keeps while it holds it."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._connection: Connection | None = None

    @property
    def holding(self) -> bool:
        return self._connection is not None

    def take(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(select(1)).scalar_one()  # the session, so the lock, lives
            except Exception as error:  # noqa: BLE001 - whatever broke it, the lock is gone
                log.warning(
                    "outbox relay: the lease's database connection broke (%s); trying again",
                    type(error).__name__,
                )
                self._end_session()
                return False
            return True
        # Autocommit: the session never idles in a transaction, which a server's
        # idle_in_transaction_session_timeout would end, and the lock with it.
        connection = self._db.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = connection.execute(select(func.pg_try_advisory_lock(RELAY_LOCK))).scalar_one()
            if taken:
                for setting, value in KEEPALIVE.items():
                    connection.execute(select(func.set_config(setting, value, False)))
        except BaseException:
            end_session(connection)  # it may hold the lock: it must not go back to the pool
            raise
        if not taken:
            connection.close()  # back to the pool, holding nothing
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        with suppress(Exception):  # if the session is gone, so is the lock
            self._connection.execute(select(func.pg_advisory_unlock(RELAY_LOCK)))
        self._end_session()

    def _end_session(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            end_session(connection)


def end_session(connection: Connection) -> None:
    """Close ``connection`` for good (not back to the pool), ending its session and its locks."""
    with suppress(Exception):
        connection.invalidate()
    with suppress(Exception):
        connection.close()


class _FileLock:
    """SQLite: an exclusive ``flock`` of ``path``, held through an open descriptor."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    @property
    def holding(self) -> bool:
        return self._fd is not None

    def take(self) -> bool:
        if self._fd is not None:
            if self._still_locked():
                return True
            log.warning("outbox relay: the lease's lock file was removed or replaced; trying again")
            self.release()
            return False
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not self._still_locked():  # removed between opening and locking it
            self.release()
            return False
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the lock goes with the last descriptor of the open file

    def _still_locked(self) -> bool:
        """Whether the path still names the file this relay locked."""
        assert self._fd is not None
        try:
            named = os.stat(self._path)
        except FileNotFoundError:
            return False
        locked = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (locked.st_dev, locked.st_ino)


_PROCESS_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.Lock]" = weakref.WeakKeyDictionary()
_PROCESS_LOCKS_GUARD = threading.Lock()


class _ProcessLock:
    """A database in memory: the relays of this process, on this engine, share one lock."""

    def __init__(self, db: Engine) -> None:
        with _PROCESS_LOCKS_GUARD:
            self._lock = _PROCESS_LOCKS.setdefault(db, threading.Lock())
        self._held = False

    @property
    def holding(self) -> bool:
        return self._held

    def take(self) -> bool:
        if not self._held:
            self._held = self._lock.acquire(blocking=False)
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
