"""The dataset bound to the database it describes: each table reflected, every column the file
names found, each category's tables in the order they are erased (children first).

Done once when the agent starts (and by ``gallring agent check --connect``), so that a dataset
that names a column the schema does not have is refused before any command is taken, not
half-way through one.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Column, Connection, MetaData, Table, and_, bindparam, inspect, or_, tuple_

from services.agent.dataset import CategorySpec, ColumnErasure, Dataset, TableSpec
from services.agent.dataset_file import DatasetError
from shared.domain.contract.vocabulary import Category

Erase = Literal["delete"] | ColumnErasure
#: Up to so many keys, a statement has a parameter per key value; beyond, one expanding
#: parameter for all of them (see :func:`keys_among`).
FEW_KEYS = 16


def keys_among(columns: Sequence[Column], count: int) -> Any:
    """A condition: these columns' values are one of ``count`` keys, bound as
    :func:`key_parameters` gives them. A command names a few rows a table: a statement per count
    is compiled once and then run as it is, where an expanding parameter has SQLAlchemy render the
    statement anew at every execution (some 35 us of client CPU a statement on PostgreSQL)."""
    if count > FEW_KEYS:
        if len(columns) == 1:
            return columns[0].in_(bindparam("keys", expanding=True))
        return tuple_(*columns).in_(bindparam("keys", expanding=True))
    if len(columns) == 1:
        return columns[0].in_([bindparam(f"key_{i}_0") for i in range(count)])
    return or_(
        *(
            and_(*(column == bindparam(f"key_{i}_{j}") for j, column in enumerate(columns)))
            for i in range(count)
        )
    )


def key_parameters(keys: Sequence[tuple[object, ...]]) -> dict[str, Any]:
    """The parameters of :func:`keys_among` for these keys (each a tuple of column values)."""
    if len(keys) > FEW_KEYS:
        return {"keys": [key[0] for key in keys] if len(keys[0]) == 1 else list(keys)}
    return {f"key_{i}_{j}": value for i, key in enumerate(keys) for j, value in enumerate(key)}


@dataclass(frozen=True)
class BoundTable:
    """One table of the dataset with its reflected schema."""

    name: str
    table: Table
    key: tuple[Column, ...]
    spec: TableSpec
    #: From this table to the one with the identity, this table first.
    path: tuple[str, ...]
    #: The columns whose erasure makes the row name nobody: the identity, or the reference
    #: that leads to it.
    naming_column: str
    #: The erasure's statements, built at its first command and reused by every later one
    #: (:mod:`services.agent.erase`): building them anew at every command cost some 1.2 ms of
    #: client CPU an erasure (bench/agent_bench.py).
    statements: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def key_values(self, row_key: list[object]) -> tuple[object, ...]:
        """A row key as the index keeps it (JSON), in the key columns' Python types."""
        values = []
        for column, value in zip(self.key, row_key, strict=True):
            try:
                python_type = column.type.python_type
            except NotImplementedError:
                python_type = object
            if value is not None and python_type not in (int, str, object, float, bool):
                value = python_type(value)
            values.append(value)
        return tuple(values)


@dataclass(frozen=True)
class CategoryPlan:
    """How one category is erased: its tables children first, each with its strategy."""

    category: Category
    steps: tuple[tuple[BoundTable, Erase], ...]
    scope_keys: frozenset[str]


@dataclass(frozen=True)
class BoundDataset:
    dataset: Dataset
    tables: dict[str, BoundTable]
    categories: dict[Category, CategoryPlan]

    def holds(self, category: str) -> bool:
        return category in self.categories

    def erased_tables(self) -> list[BoundTable]:
        """The tables some category erases: those the index keeps entries for (a table only on
        the way to the person, such as a parent no category erases, needs none)."""
        names = {table.name for plan in self.categories.values() for table, _ in plan.steps}
        return [table for name, table in self.tables.items() if name in names]


def bind(dataset: Dataset, connection: Connection, *, source: str = "dataset") -> BoundDataset:
    """Reflect the dataset's tables through ``connection`` and check the file against them;
    :class:`DatasetError` lists every mismatch (``table.column: why``)."""
    existing = set(inspect(connection).get_table_names())
    problems: list[str] = []
    metadata = MetaData()
    reflected: dict[str, Table] = {}
    for name in dataset.tables:
        if name not in existing:
            problems.append(f"{name}: no such table in the database")
        else:
            reflected[name] = Table(name, metadata, autoload_with=connection)
    bound: dict[str, BoundTable] = {}
    for name, table in reflected.items():
        spec = dataset.tables[name]
        table_problems = _column_problems(name, table, spec, dataset, reflected)
        key_names = spec.primary_key or [column.name for column in table.primary_key.columns]
        if not key_names:
            table_problems.append(f"{name}: no primary key; name its columns under primary_key")
        problems += table_problems
        if table_problems:
            continue
        naming = spec.identity.column if spec.identity else spec.references.column  # type: ignore[union-attr]
        bound[name] = BoundTable(
            name=name,
            table=table,
            key=tuple(table.c[column] for column in key_names),
            spec=spec,
            path=tuple(dataset.path(name)),
            naming_column=naming,
        )
    for category_spec in dataset.categories.values():
        for erasure in category_spec.tables:
            if erasure.table in reflected and isinstance(erasure.erase, ColumnErasure):
                problems += _erasure_problems(reflected[erasure.table], erasure.erase, bound)
    if problems:
        raise DatasetError(source, problems)
    plans = {}
    for category, category_spec in dataset.categories.items():
        order = _order(category, category_spec, bound, problems)
        plans[category] = CategoryPlan(
            category=category,
            steps=tuple((bound[name], _erase_of(category_spec, name)) for name in order),
            scope_keys=frozenset(dataset.scope_keys(category)),
        )
    if problems:
        raise DatasetError(source, problems)
    return BoundDataset(dataset=dataset, tables=bound, categories=plans)


def _column_problems(
    name: str, table: Table, spec: TableSpec, dataset: Dataset, reflected: dict[str, Table]
) -> list[str]:
    wanted = [*(spec.primary_key or []), *spec.scope.values()]
    if spec.identity is not None:
        wanted.append(spec.identity.column)
    if spec.references is not None:
        wanted.append(spec.references.column)
        parent = reflected.get(spec.references.table)
        if parent is not None and spec.references.to not in parent.c:
            return [f"{spec.references.table}.{spec.references.to}: no such column"]
    if spec.changed is not None:
        wanted.append(spec.changed)
    return [f"{name}.{column}: no such column" for column in wanted if column not in table.c]


def _erasure_problems(
    table: Table, erasure: ColumnErasure, bound: dict[str, BoundTable]
) -> list[str]:
    problems = []
    key = {column.name for column in bound[table.name].key} if table.name in bound else set()
    for column in erasure.columns:
        if column not in table.c:
            problems.append(f"{table.name}.{column}: no such column")
        elif column in key:
            problems.append(f"{table.name}.{column}: part of the row's key; delete the row instead")
        elif column in erasure.null and not table.c[column].nullable:
            problems.append(f"{table.name}.{column}: NOT NULL, so it cannot be nulled; mask it")
        elif column in erasure.mask and not _is_text(table.c[column]):
            problems.append(f"{table.name}.{column}: not a text column, so it cannot be masked")
    return problems


def _is_text(column: Column) -> bool:
    try:
        return column.type.python_type is str
    except NotImplementedError:
        return False


def _erase_of(spec: CategorySpec, table: str) -> Erase:
    return next(erasure.erase for erasure in spec.tables if erasure.table == table)


def _order(
    category: Category, spec: CategorySpec, bound: dict[str, BoundTable], problems: list[str]
) -> list[str]:
    """The category's tables children first: as declared, or sorted by the foreign keys the
    schema has between them (and the dataset's references), ties kept in declared order."""
    declared = [erasure.table for erasure in spec.tables]
    if spec.order == "declared":
        return declared
    parents: dict[str, set[str]] = {name: set() for name in declared}
    for name in declared:
        table = bound[name]
        referenced = {fk.column.table.name for fk in table.table.foreign_keys}
        if table.spec.references is not None:
            referenced.add(table.spec.references.table)
        parents[name] = {parent for parent in referenced if parent in parents and parent != name}
    order: list[str] = []
    remaining = list(declared)
    while remaining:
        # A table goes once no remaining table references it (its children are gone).
        ready = [
            name for name in remaining if not any(name in parents[other] for other in remaining)
        ]
        if not ready:
            problems.append(
                f"categories.{category.value}: the foreign keys between "
                f"{', '.join(sorted(remaining))} form a cycle; give the order (order: declared)"
            )
            return declared
        order.append(ready[0])
        remaining.remove(ready[0])
    return order
