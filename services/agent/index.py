"""The agent's index: subject pseudonym -> the keys (and scope values) of the rows about them.

Gallring never sends an identifier, only the pseudonym, ``HMAC-SHA256(secret, kind:normalised
identifier)``. The agent holds the secret, so it computes each row's pseudonym as the API
computes it from what upstream sends (:mod:`shared.domain.pseudonym`), once, and keeps it here:
an erasure is then one indexed lookup, not a scan of every table.

The index lives in ``gallring_agent_index`` in the system's own database (where an erasure
removes its entries in its own transaction), or in a database of the agent's own when the
dataset file names one. Entries are keyed by table and row key; looked up by the SHA-256 of the
pseudonym, which is also what an erasure's proof keeps (a command re-applied after a backup
restore names the subject by that hash alone).

:func:`index_pass` keeps it current: the first pass reads every table (streamed, in batches);
each later one only the rows whose ``changed`` column, or that of a table they reach the person
through, moved since the pass before (``>=`` the last value seen, so a row written in the same
instant as the last one read is read again, not missed). Rows deleted from a table are dropped
by :func:`forget_deleted_rows`, and by the erasures that find them gone.

A row written by a transaction that commits after a pass began, with a ``changed`` value
earlier than the one that pass recorded, is missed until it changes again: keep transactions
that write these tables short, or let a full pass (``full=True``) run now and then.
"""

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite

from services.agent.schema import FEW_KEYS, BoundDataset, BoundTable, key_parameters, keys_among
from services.agent.writes import Write
from shared.domain.national_id import InvalidNationalIdError, normalise_national_id
from shared.domain.pseudonym import Pseudonymiser, subject_hash

log = logging.getLogger(__name__)

INDEX_METADATA = MetaData()


def _exact_text(length: int) -> String:
    """Text compared byte for byte: MariaDB's and MySQL's default collations ignore case, which
    would make the keys ``["a"]`` and ``["A"]`` of two rows one entry."""
    binary = mysql.VARCHAR(length, collation="utf8mb4_bin")
    return String(length).with_variant(binary, "mysql", "mariadb")


#: One entry per indexed row: which table, its key (a JSON array of the key columns' values),
#: the pseudonym of the person it is about, its hash (looked up) and the scope values it carries
#: (a JSON object, ``{"case_id": "C-1"}``).
INDEX = Table(
    "gallring_agent_index",
    INDEX_METADATA,
    Column("table_name", _exact_text(63), primary_key=True),
    Column("row_key", _exact_text(255), primary_key=True),
    Column("subject_hash", String(64), nullable=False),
    Column("pseudonym", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Index("gallring_agent_index_subject_hash", "subject_hash"),
)
#: Per table, the greatest ``changed`` value the last pass saw (as ISO text): where the next
#: pass starts reading.
MARKS = Table(
    "gallring_agent_index_mark",
    INDEX_METADATA,
    Column("table_name", _exact_text(63), primary_key=True),
    Column("changed_through", String(64), nullable=False),
    Column("passed_at", DateTime(), nullable=False),
)
DEFAULT_BATCH_SIZE = 1_000


def create_index_tables(index: Engine) -> None:
    """Create the index's two tables where they do not exist yet."""
    INDEX_METADATA.create_all(index, checkfirst=True)


@dataclass
class IndexPass:
    """What one pass did, per table: rows read and, of those, rows that name nobody (no valid
    identifier, or no way to the table that holds it)."""

    read: dict[str, int] = field(default_factory=dict)
    unnamed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One index entry as an erasure reads it."""

    table_name: str
    row_key: str
    pseudonym: str
    scopes: dict[str, str]


def index_pass(
    bound: BoundDataset,
    *,
    system: Engine,
    index: Engine,
    pseudonymiser: Pseudonymiser,
    batch_size: int = DEFAULT_BATCH_SIZE,
    full: bool = False,
) -> IndexPass:
    """Bring the index up to date with the system's tables; ``full`` reads every row again.

    Rows are streamed from ``system`` (a server-side cursor on PostgreSQL and MariaDB) and
    written to ``index`` one batch per transaction, so a first build of a large table holds no
    long transaction and little memory. The marks move only once every table was read: a pass
    that stops half-way is done again from where the last complete one ended."""
    with index.connect() as connection:
        marks = {} if full else _marks(connection)
    new_marks = _new_marks(bound, system)
    result = IndexPass()
    for table in bound.erased_tables():
        read = unnamed = 0
        for query in _queries(bound, table, marks):
            for batch in _batches(system, table, query, batch_size):
                entries, keys = _entries(bound, table, batch, pseudonymiser)
                read += len(keys)
                unnamed += len(keys) - len(entries)
                with index.begin() as writing:
                    _replace(writing, table.name, keys, entries)
        result.read[table.name], result.unnamed[table.name] = read, unnamed
    with index.begin() as connection:
        for name, mark in new_marks.items():
            connection.execute(delete(MARKS).where(MARKS.c.table_name == name))
            connection.execute(
                insert(MARKS).values(
                    table_name=name, changed_through=mark, passed_at=datetime.now(UTC)
                )
            )
    log.debug("index pass: rows read %s, of which naming nobody %s", result.read, result.unnamed)
    return result


def forget_deleted_rows(
    bound: BoundDataset, *, system: Engine, index: Engine, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, int]:
    """Drop the entries of rows no longer in their table; per table, how many. Reads the index
    in key order, a batch at a time, and asks the table which of the batch's keys it still has."""
    forgotten: dict[str, int] = {}
    for table in bound.erased_tables():
        after, count = "", 0
        while True:
            with index.connect() as connection:
                keys = list(
                    connection.scalars(
                        select(INDEX.c.row_key)
                        .where(INDEX.c.table_name == table.name, INDEX.c.row_key > after)
                        .order_by(INDEX.c.row_key)
                        .limit(batch_size)
                    )
                )
            if not keys:
                break
            after = keys[-1]
            values = {key: table.key_values(json.loads(key)) for key in keys}
            with system.connect() as connection:
                present = {
                    tuple(row)
                    for row in connection.execute(
                        select(*table.key).where(key_in(table, list(values.values())))
                    )
                }
            gone = [key for key, value in values.items() if value not in present]
            if gone:
                with index.begin() as connection:
                    connection.execute(
                        delete(INDEX).where(
                            INDEX.c.table_name == table.name, INDEX.c.row_key.in_(gone)
                        )
                    )
            count += len(gone)
        forgotten[table.name] = count
    return forgotten


def lookup(connection: Connection, hashed_subject: str, tables: Iterable[str]) -> list[Entry]:
    """The entries of one subject (by the SHA-256 of its pseudonym) in these tables.

    The tables are picked here, not in the query: with ``table_name IN (…)`` beside the hash,
    PostgreSQL, before it had statistics of a freshly built index, also read the primary key
    for every entry of those tables (a ``BitmapAnd``): 19 ms a lookup at 180,000 entries, not
    0.06 ms (bench/agent_bench.py). A subject has few entries."""
    wanted = set(tables)
    rows = connection.execute(_LOOKUP, {"subject_hash": hashed_subject})
    return [
        Entry(table_name, row_key, pseudonym, orjson.loads(scopes))
        for table_name, row_key, pseudonym, scopes in rows
        if table_name in wanted
    ]


#: Built once, as each command runs them (SQLAlchemy finds them compiled in its cache).
_LOOKUP = select(INDEX.c.table_name, INDEX.c.row_key, INDEX.c.pseudonym, INDEX.c.scopes).where(
    INDEX.c.subject_hash == bindparam("subject_hash")
)
_REMOVALS: dict[int, Any] = {}  # per count of entries (FEW_KEYS + 1: any more)


def remove(connection: Connection, table_name: str, row_keys: Sequence[str]) -> None:
    for start in range(0, len(row_keys), DEFAULT_BATCH_SIZE):
        chunk = row_keys[start : start + DEFAULT_BATCH_SIZE]
        connection.execute(
            delete(INDEX).where(INDEX.c.table_name == table_name, INDEX.c.row_key.in_(chunk))
        )


def removals(entries: Sequence[tuple[str, str]]) -> list[Write]:
    """The statements that remove these (table, row key) entries: one for a command's rows."""
    writes = []
    for start in range(0, len(entries), DEFAULT_BATCH_SIZE // 2):
        chunk = entries[start : start + DEFAULT_BATCH_SIZE // 2]
        count = min(len(chunk), FEW_KEYS + 1)
        statement = _REMOVALS.get(count)
        if statement is None:
            statement = _REMOVALS[count] = delete(INDEX).where(
                keys_among((INDEX.c.table_name, INDEX.c.row_key), count)
            )
        writes.append(Write(INDEX.name, statement, key_parameters(chunk)))
    return writes


def row_key_text(values: Sequence[object]) -> str:
    """A row's key as the index keeps it: a JSON array (text for types JSON lacks)."""
    return orjson.dumps(list(values), default=str).decode()


def key_in(table: BoundTable, keys: Sequence[tuple[object, ...]]) -> Any:
    """A condition: the row's key is one of ``keys``."""
    if len(table.key) == 1:
        return table.key[0].in_([key[0] for key in keys])
    return tuple_(*table.key).in_(keys)


def _batches(
    system: Engine, table: BoundTable, query: Select[Any], batch_size: int
) -> Iterator[Sequence[Any]]:
    """The query's rows, ``batch_size`` at a time. Streamed from a server-side cursor on
    PostgreSQL and MariaDB; on SQLite, whose open read would keep the writer of each batch from
    committing (unless in WAL mode), a page at a time in key order."""
    if system.dialect.name != "sqlite":
        with system.connect() as reading:
            streaming = reading.execution_options(stream_results=True, yield_per=batch_size)
            yield from streaming.execute(query).partitions()
        return
    page = query.order_by(*table.key).limit(batch_size)
    after: tuple[object, ...] | None = None
    while True:
        with system.connect() as reading:
            rows = reading.execute(page if after is None else page.where(_after(table, after)))
            batch = rows.all()
        if not batch:
            return
        yield batch
        after = tuple(batch[-1][: len(table.key)])


def _after(table: BoundTable, key: tuple[object, ...]) -> Any:
    """A condition: the row's key comes after ``key``."""
    if len(table.key) == 1:
        return table.key[0] > key[0]
    values = (
        bindparam(None, value, type_=column.type)
        for column, value in zip(table.key, key, strict=True)
    )
    return tuple_(*table.key) > tuple_(*values)


def _marks(connection: Connection) -> dict[str, str]:
    if not connection.dialect.has_table(connection, MARKS.name):
        return {}
    rows = connection.execute(select(MARKS.c.table_name, MARKS.c.changed_through))
    return {row.table_name: row.changed_through for row in rows}


def _new_marks(bound: BoundDataset, system: Engine) -> dict[str, str]:
    """Each table's greatest ``changed`` value now, read before its rows are."""
    marks = {}
    with system.connect() as connection:
        for table in bound.tables.values():
            if table.spec.changed is None:
                continue
            value = connection.scalar(select(func.max(table.table.c[table.spec.changed])))
            if value is not None:
                marks[table.name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return marks


def _queries(bound: BoundDataset, table: BoundTable, marks: dict[str, str]) -> list[Select[Any]]:
    """The reads that find this table's new and changed rows: all of them when the table has no
    mark (first pass, or no ``changed`` column); else one per table on its way to the person
    whose rows changed (a debtor whose personnummer was corrected moves their letters too)."""
    path = [bound.tables[name] for name in table.path]
    identity = path[-1]
    assert identity.spec.identity is not None
    columns = [*table.key, identity.table.c[identity.spec.identity.column]]
    scope_columns = [
        step.table.c[column].label(f"scope__{key}")
        for step in path
        for key, column in step.spec.scope.items()
    ]
    joined: Any = table.table
    for child, parent in itertools.pairwise(path):
        reference = child.spec.references
        assert reference is not None
        joined = joined.outerjoin(
            parent.table, child.table.c[reference.column] == parent.table.c[reference.to]
        )
    base = select(*columns, *scope_columns).select_from(joined)
    if table.spec.changed is None or table.name not in marks:
        return [base]
    queries = []
    for step in path:
        if step.spec.changed is None:
            continue
        if step.name not in marks:
            return [base]
        changed = step.table.c[step.spec.changed]
        queries.append(base.where(changed >= _typed_mark(changed, marks[step.name])))
    return queries


def _typed_mark(column: Column, text: str) -> object:
    """A mark read back in its column's type, so that the database compares like with like."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    if python_type is datetime:
        return datetime.fromisoformat(text)
    if python_type is date:
        return date.fromisoformat(text)
    if python_type in (int, float):
        return python_type(text)
    return text


def _entries(
    bound: BoundDataset, table: BoundTable, rows: Sequence[Any], pseudonymiser: Pseudonymiser
) -> tuple[list[dict[str, str]], list[str]]:
    """The index entries of these rows (those that name someone), and every row's key."""
    identity = bound.tables[table.path[-1]].spec.identity
    assert identity is not None
    width = len(table.key)
    scope_keys = [key for name in table.path for key in bound.tables[name].spec.scope]
    entries, keys = [], []
    for row in rows:
        key = row_key_text(row[:width])
        keys.append(key)
        pseudonym = _pseudonym(identity.kind, identity.prefix, row[width], pseudonymiser)
        if pseudonym is None:
            continue
        scopes = {
            scope_key: str(value)
            for scope_key, value in zip(scope_keys, row[width + 1 :], strict=True)
            if value is not None
        }
        entries.append(
            {
                "table_name": table.name,
                "row_key": key,
                "subject_hash": subject_hash(pseudonym),
                "pseudonym": pseudonym,
                "scopes": orjson.dumps(scopes, option=orjson.OPT_SORT_KEYS).decode(),
            }
        )
    return entries, keys


def _pseudonym(kind: str, prefix: str, value: object, pseudonymiser: Pseudonymiser) -> str | None:
    """The pseudonym the API gives the person this value names, or None if it names nobody."""
    if value is None:
        return None
    text = str(value).strip()
    if kind == "national_id":
        try:
            return pseudonymiser.pseudonym("national_id", normalise_national_id(text))
        except InvalidNationalIdError:
            return None
    return pseudonymiser.pseudonym("ref", prefix + text) if text else None


def _replace(
    connection: Connection, table_name: str, keys: list[str], entries: list[dict[str, str]]
) -> None:
    """Put these rows' entries in place of what the index had for them: written over (an
    upsert, found through the primary key), and removed for rows that name nobody now. Not a
    delete of every key first: on a table that grew since the planner last looked, PostgreSQL
    took the delete's thousand keys for a sequential scan, and a first build of 100,000 rows
    ran at some 450 rows/s."""
    if entries:
        connection.execute(_upsert(connection), entries)
    named = {entry["row_key"] for entry in entries}
    unnamed = [key for key in keys if key not in named]
    if unnamed:
        remove(connection, table_name, unnamed)


def _upsert(connection: Connection) -> Any:
    """``INSERT`` of index entries that writes over an entry of the same row, in each dialect."""
    dialect = connection.dialect.name
    if dialect == "mysql":  # MariaDB too
        statement = mysql.insert(INDEX)
        return statement.on_duplicate_key_update(
            {name: statement.inserted[name] for name in _WRITTEN_OVER}
        )
    upsert = postgresql.insert(INDEX) if dialect == "postgresql" else sqlite.insert(INDEX)
    return upsert.on_conflict_do_update(
        index_elements=[INDEX.c.table_name, INDEX.c.row_key],
        set_={name: upsert.excluded[name] for name in _WRITTEN_OVER},
    )


_WRITTEN_OVER = ("subject_hash", "pseudonym", "scopes")
