"""Erasing one command's rows: every table of the category, children first, all or nothing.

The caller (the agent's consumer) gives a connection in a transaction on the system's
database, and the index's connection (the same one when the index lives in that database, as by
default: then the rows and their entries go in one transaction). :func:`erase` works inside a
savepoint (unless the transaction is the command's alone), so a command that fails leaves the
transaction as it found it, and raises :class:`ErasureFailed`; the caller commits, then
confirms.

Idempotent: the entries of erased rows go with them, so a repeated command finds nothing more;
columns masked again get the same mask (a keyed hash of the row's key, not of its value).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Executable, and_, bindparam, delete, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from services.agent import index
from services.agent.dataset import ColumnErasure
from services.agent.schema import (
    FEW_KEYS,
    BoundDataset,
    BoundTable,
    CategoryPlan,
    Erase,
    key_parameters,
    keys_among,
)
from services.agent.writes import FailedWrite, Write, run_writes
from shared.domain.pseudonym import Pseudonymiser, clock_hash, subject_hash

MASK_PURPOSE = "gallring-agent-mask"
#: What a command's statements may fail with that can be its fault (an OperationalError only
#: when it says a table or column is missing: :func:`schema_error`).
_COMMANDS_FAULTS = (IntegrityError, ProgrammingError, DataError, OperationalError)


class ErasureFailed(Exception):
    """A command that cannot be applied as the dataset says (a table or column gone, a
    constraint that refuses it): it goes to the dead-letter topic with :attr:`reason` and is not
    confirmed. The reason names tables, columns and error types, never a value."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SubjectScope:
    """An erasure command as the purger sends it: the pseudonym (the message's key) and the
    scope (``{}`` for the whole subject, or one key such as ``{"case_id": "C-1"}``)."""

    pseudonym: str
    scope: Mapping[str, str]


@dataclass(frozen=True)
class ProvenClock:
    """An erasure known by its proof alone (re-published after execution, or re-applied after a
    backup restore): the hash of the pseudonym and the clock hash of pseudonym, category and
    scope (:func:`shared.domain.pseudonym.clock_hash`)."""

    subject_hash: str
    clock_hash: str


@dataclass
class ErasureCounts:
    """Rows erased (deleted, or with columns changed) per table, in the order erased."""

    category: str
    dry_run: bool
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.tables.values())


def erase(
    bound: BoundDataset,
    connection: Connection,
    *,
    category: str,
    target: SubjectScope | ProvenClock,
    pseudonymiser: Pseudonymiser,
    index_connection: Connection | None = None,
    dry_run: bool = False,
    alone_in_transaction: bool = False,
) -> ErasureCounts:
    """Erase the rows of ``category`` that ``target`` names; per table, how many.

    ``dry_run`` does all of it inside a savepoint it then rolls back: the counts are those
    of a real run (a constraint that would refuse it raises as it would), and nothing changes.
    A category the dataset does not hold erases nothing (empty counts). A scoped command
    erases the rows that carry its scope value; rows of tables no scope reaches (the debtor, for
    a case) only a subject-wide one does.

    ``alone_in_transaction``: the caller began its transaction for this command alone and rolls
    it back when this raises (as the consumer does), so no savepoint is needed to keep its other
    work: two round trips fewer per command. A dry run keeps its savepoint."""
    counts = ErasureCounts(category=category, dry_run=dry_run)
    plan = bound.categories.get(category)  # type: ignore[call-overload]
    if plan is None:
        return counts
    _begin_at_once(connection)
    index_connection = index_connection if index_connection is not None else connection
    names = [table.name for table, _ in plan.steps]
    if isinstance(target, SubjectScope):
        hashed, pseudonym, scope = subject_hash(target.pseudonym), target.pseudonym, target.scope
        entries = index.lookup(index_connection, hashed, names)
    else:
        entries = index.lookup(index_connection, target.subject_hash, names)
        found = _scope_of_clock(entries, plan, target.clock_hash)
        if found is None:  # no row of this subject hashes to the clock: nothing left to erase
            counts.tables = dict.fromkeys(names, 0)
            return counts
        pseudonym, scope = found
    if len(scope) > 1:
        raise ErasureFailed(f"{category}: a scope has at most one key, this one has {len(scope)}")
    for key in scope:
        if key not in plan.scope_keys:
            raise ErasureFailed(f"{category}: no table of the dataset carries scope key {key}")
    wanted = [
        entry
        for entry in entries
        if entry.pseudonym == pseudonym
        and all(entry.scopes.get(key) == value for key, value in scope.items())
    ]
    if not wanted:  # erased before, or never held: nothing to do (a repeated command)
        counts.tables = dict.fromkeys(names, 0)
        return counts
    savepoint = None if alone_in_transaction and not dry_run else connection.begin_nested()
    same_index = index_connection is connection
    current = ""
    unnamed: list[tuple[str, str]] = []  # (table, row key): entries that go
    pending: list[Write] = []  # run together (writes.py), before a mask reads and at the end
    try:
        for table, erasure in plan.steps:
            current = table.name
            keys = [entry.row_key for entry in wanted if entry.table_name == table.name]
            counts.tables[table.name] = 0
            if isinstance(erasure, ColumnErasure) and erasure.mask:
                if keys:  # the mask reads the rows: what comes before it is written first
                    _count(counts, pending, run_writes(connection, pending))
                    pending = []
                erased, gone = _mask_table(table, erasure, connection, keys, pseudonymiser)
                counts.tables[table.name] = erased
            else:
                table_writes, gone = _writes_of(table, erasure, keys)
                pending += table_writes
            unnamed += [(table.name, key) for key in gone]
        if unnamed and same_index:
            pending += index.removals(unnamed)
        _count(counts, pending, run_writes(connection, pending))
        current = index.INDEX.name
        if unnamed and not same_index and not dry_run:
            run_writes(index_connection, index.removals(unnamed))
    except (FailedWrite, *_COMMANDS_FAULTS) as raised:
        if isinstance(raised, FailedWrite):
            current, error = raised.write.table, raised.error
            if not isinstance(error, _COMMANDS_FAULTS):
                raise error from None  # not the command's fault (a driver's, a file's): again
        else:
            error = raised
        if savepoint is not None:
            savepoint.rollback()
        if isinstance(error, OperationalError) and not schema_error(error):
            raise error from None  # the database away, a lock timeout: try again later
        raise ErasureFailed(_reason(category, current, error)) from None
    if savepoint is not None and dry_run:
        savepoint.rollback()
    elif savepoint is not None:
        savepoint.commit()
    return counts


def erase_in_transactions_of_its_own(
    bound: BoundDataset,
    system: Engine,
    index_engine: Engine,
    *,
    category: str,
    target: SubjectScope | ProvenClock,
    pseudonymiser: Pseudonymiser,
    dry_run: bool = False,
) -> ErasureCounts:
    """:func:`erase` as the consumer and restore-check apply a command: one transaction on the
    system's database; with an index database of its own, the index's transaction commits after
    the system's (entries left behind are dropped by the next erasure that finds their rows
    gone; rows left without entries would be missed)."""
    options: dict[str, Any] = {
        "category": category,
        "target": target,
        "pseudonymiser": pseudonymiser,
        "dry_run": dry_run,
        "alone_in_transaction": True,
    }
    if index_engine is system:
        with system.begin() as connection:
            return erase(bound, connection, **options)
    with index_engine.begin() as index_connection, system.begin() as connection:
        return erase(bound, connection, index_connection=index_connection, **options)


def _begin_at_once(connection: Connection) -> None:
    """On SQLite, begin the caller's transaction now, with the write lock (as
    ``shared.storage.database.begin_deciding`` does): its driver begins one only at the first
    write, so the savepoint below would otherwise be the outermost transaction, and its release
    would commit the erasure before the caller did; and the rows looked up could change before
    they are erased."""
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _scope_of_clock(
    entries: Sequence[index.Entry], plan: CategoryPlan, wanted: str
) -> tuple[str, dict[str, str]] | None:
    """The pseudonym and scope among these entries that hash to the proof's clock hash."""
    category = plan.category.value
    for pseudonym in {entry.pseudonym for entry in entries}:
        if clock_hash(pseudonym, category, "", "") == wanted:
            return pseudonym, {}
        for entry in entries:
            for key, value in entry.scopes.items():
                if (
                    entry.pseudonym == pseudonym
                    and clock_hash(pseudonym, category, key, value) == wanted
                ):
                    return pseudonym, {key: value}
    return None


def _count(counts: ErasureCounts, writes: Sequence[Write], rows: Sequence[int]) -> None:
    """Add what each write changed to its table's count (the index's entries are not counted)."""
    for write, changed in zip(writes, rows, strict=True):
        if write.table in counts.tables:
            counts.tables[write.table] += changed


def _writes_of(
    table: BoundTable, erasure: Erase, row_keys: list[str]
) -> tuple[list[Write], list[str]]:
    """The statements that delete these rows of one table, or null their columns (only rows
    with something left to null count); and the keys whose entries must go (rows deleted or
    gone, or whose way to the person was erased)."""
    if not row_keys:
        return [], []
    keys = [table.key_values(orjson.loads(text)) for text in row_keys]
    writes = [
        Write(table.name, _statement(table, erasure, len(chunk)), key_parameters(chunk))
        for chunk in _chunks(keys)
    ]
    if erasure == "delete":
        return writes, row_keys
    assert isinstance(erasure, ColumnErasure)
    return writes, (row_keys if table.naming_column in erasure.columns else [])


def _mask_table(
    table: BoundTable,
    erasure: ColumnErasure,
    connection: Connection,
    row_keys: list[str],
    pseudonymiser: Pseudonymiser,
) -> tuple[int, list[str]]:
    """Mask these rows' columns (and null those the erasure nulls): the rows are read first,
    locked, and only those not masked yet are written. How many changed, and the keys whose
    entries must go."""
    if not row_keys:
        return 0, []
    keys = {text: table.key_values(orjson.loads(text)) for text in row_keys}
    names_nobody = table.naming_column in erasure.columns
    present: dict[tuple[object, ...], Any] = {}
    for chunk in _chunks(list(keys.values())):
        query = _statement(table, erasure, len(chunk))
        for row in connection.execute(query, key_parameters(chunk)):
            present[tuple(row[: len(table.key)])] = row
    changes = []
    width = len(table.key)
    for text, key in keys.items():
        if key not in present:
            continue
        current = present[key]
        new = {name: None for name in erasure.null} | {
            name: _mask(pseudonymiser, table, name, text) for name in erasure.mask
        }
        old = dict(zip(erasure.columns, current[width:], strict=True))
        if any(old[name] != new[name] for name in erasure.columns):
            changes.append(
                {f"key_{i}": value for i, value in enumerate(key)}
                | {f"new_{name}": value for name, value in new.items()}
            )
    if changes:
        connection.execute(_statement(table, erasure, 0, masking=True), changes)
    gone = [text for text, key in keys.items() if key not in present]
    return len(changes), (row_keys if names_nobody else gone)


def _statement(
    table: BoundTable, erasure: Erase, count: int, *, masking: bool = False
) -> Executable:
    """The statement of this erasure of the table for ``count`` keys, built once and kept on
    the table: a delete or a nulling update of the rows whose keys are bound as
    :func:`key_parameters` gives them; for a mask, the read of the rows (locked) or, ``masking``,
    the update of one row (``key_i``, ``new_<column>``)."""
    count = min(count, FEW_KEYS + 1)  # beyond FEW_KEYS, one statement for any count
    if erasure == "delete":
        cache_key: tuple[object, ...] = ("delete", count)
    else:
        assert isinstance(erasure, ColumnErasure)
        cache_key = (tuple(erasure.null), tuple(erasure.mask), masking, count)
    statement = table.statements.get(cache_key)
    if statement is not None:
        return statement
    if erasure == "delete":
        statement = delete(table.table).where(keys_among(table.key, count))
    else:
        assert isinstance(erasure, ColumnErasure)
        columns = [table.table.c[name] for name in erasure.columns]
        if not erasure.mask:
            statement = (
                update(table.table)
                .where(
                    keys_among(table.key, count), or_(*(column.is_not(None) for column in columns))
                )
                .values(dict.fromkeys(erasure.null))
            )
        elif not masking:
            statement = (
                select(*table.key, *columns).where(keys_among(table.key, count)).with_for_update()
            )
        else:
            statement = (
                update(table.table)
                .where(
                    and_(*(column == bindparam(f"key_{i}") for i, column in enumerate(table.key)))
                )
                .values({name: bindparam(f"new_{name}") for name in erasure.columns})
            )
    table.statements[cache_key] = statement
    return statement


def _mask(pseudonymiser: Pseudonymiser, table: BoundTable, column: str, row_key: str) -> str:
    """A keyed hash of the row's key and column, cut to the column's length: it names nobody,
    differs from row to row (a unique column stays unique) and is the same each time."""
    digest = pseudonymiser.digest(MASK_PURPOSE, f"{table.name}\0{column}\0{row_key}".encode())
    length = getattr(table.table.c[column].type, "length", None)
    return digest[:length] if length else digest


def _chunks(values: list[tuple[object, ...]], size: int = 500) -> list[list[tuple[object, ...]]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


def schema_error(error: OperationalError) -> bool:
    """SQLite says a missing table or column with an OperationalError, as it says a locked
    database: told apart by its message."""
    text = str(error.orig).lower()
    return "no such table" in text or "no such column" in text


def _reason(category: str, table: str, error: Exception) -> str:
    """A dead-letter reason: what failed, where, and the driver's error type; the driver's
    message is left out, as it may quote the row's values."""
    orig = getattr(error, "orig", error)
    if isinstance(error, IntegrityError):
        what = "a constraint refused it"
    elif isinstance(error, DataError):
        what = "a value did not fit"
    else:
        return schema_reason(category, table, type(orig).__name__)
    return f"{category}: erasing from table {table} failed: {what} ({type(orig).__name__})"


def schema_reason(category: str, table: str, error_type: str) -> str:
    """The dead-letter reason of a table or column gone: ``error_type`` is the driver's."""
    return (
        f"{category}: erasing from table {table} failed: the table or a column is not as the "
        f"dataset says ({error_type})"
    )
