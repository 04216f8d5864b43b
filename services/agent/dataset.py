"""The agent's dataset file: which tables of one company database hold which category, how a row
leads to the person it is about, and how it is erased.

A shape people know from fides' dataset manifests, cut to what a retention agent needs::

    system: collection                 # the system id it confirms erasures as
    database:
      url_env: COLLECTION_DATABASE_URL # or url_file: /run/secrets/collection-database-url
    tables:                            # fides' "collections": how each table reaches the person
      debtors:
        identity: {column: national_id, kind: national_id}
        changed: updated_at
      cases:
        references: {column: debtor_id, table: debtors, to: id}
        scope: {case_id: case_number}  # Gallring's scope key -> this table's column
        changed: updated_at
      letters:
        references: {column: case_id, table: cases, to: id}
        changed: updated_at
    categories:
      collection_case:
        tables:                        # erased in this order: children first
          - {table: letters, erase: delete}
          - {table: cases, erase: delete}
          - table: debtors
            erase: {mask: [national_id], "null": [name, address]}

Nothing here is personal data, and the database URL (with its password) never is written here:
the file names the variable or the secret file that holds it.
"""

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from shared.domain.contract.scope import SCOPE_KEYS
from shared.domain.contract.vocabulary import Category

#: A table or column name as SQL writes it unquoted: what a dataset file may name. Nothing that
#: could carry SQL of its own; names are quoted by SQLAlchemy all the same.
SqlName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$", min_length=1, max_length=63)
]
#: Gallring's scope keys (``case_id``, ``client_id``…) as the events carry them: a typo would
#: match no command's scope.
ScopeKey = Literal[SCOPE_KEYS]  # type: ignore[valid-type]
SystemId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", min_length=1, max_length=64)
]

URL_REFUSED = (
    "a database URL is not written in the dataset file (it would carry the password to "
    "wherever the file goes); name the variable that holds it (url_env) or the secret file "
    "(url_file)"
)


class _Strict(BaseModel):
    """A typo in a key must not pass unnoticed: an unknown key could be a strategy misspelt,
    and a column left standing that should have been erased."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSource(_Strict):
    """Where the database URL comes from: exactly one of an environment variable's name or a
    secret file's path (as Docker and Kubernetes mount secrets). Never the URL itself."""

    url_env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    url_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_url_here(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, dict) and "url" in value):
            raise ValueError(URL_REFUSED)
        if isinstance(value, dict) and "://" in str(value.get("url_file", "")):
            raise ValueError(URL_REFUSED)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give exactly one of url_env (a variable's name) or url_file")
        return self

    def url(self, environ: dict[str, str] | None = None) -> str:
        """The URL, read now from the variable or the file; :class:`LookupError` saying which
        is missing (never the URL)."""
        if self.url_env is not None:
            value = (os.environ if environ is None else environ).get(self.url_env, "").strip()
            if not value:
                raise LookupError(f"the variable {self.url_env} is not set")
            return value
        assert self.url_file is not None
        try:
            value = self.url_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise LookupError(f"cannot read {self.url_file}: {error.strerror}") from None
        if not value:
            raise LookupError(f"{self.url_file} is empty")
        return value


class Identity(_Strict):
    """The column that names the person, and which kind of identifier it holds: the pseudonym
    is the HMAC of the *normalised* identifier, so the agent must normalise as the API does (a
    personnummer in any of its shapes to 12 digits; a ``ref`` as it is, after ``prefix``)."""

    column: SqlName
    kind: Literal["national_id", "ref"]
    #: For ``ref``: what upstream systems put before the column's value when they send it
    #: (``crm:`` for a column holding ``4711`` that events name ``crm:4711``).
    prefix: Annotated[str, StringConstraints(max_length=64)] = ""

    @model_validator(mode="after")
    def _prefix_for_refs(self) -> Self:
        if self.prefix and self.kind != "ref":
            raise ValueError("prefix: only for kind ref (a personnummer is normalised as it is)")
        return self


class Reference(_Strict):
    """How a table that does not hold the identity reaches one that does: this table's
    ``column`` equals ``table``'s ``to`` (``letters.case_id -> cases.id``), as fides'
    ``references``. Followed, table by table, up to a table with an identity."""

    column: SqlName
    table: SqlName
    to: SqlName


class TableSpec(_Strict):
    """One table: its key, how its rows reach the person, the scope columns it carries and the
    column that says a row changed (for the index's incremental passes)."""

    #: The columns that identify a row; read from the schema when left out.
    primary_key: Annotated[list[SqlName], Field(min_length=1)] | None = None
    identity: Identity | None = None
    references: Reference | None = None
    #: Gallring's scope key to this table's column: ``{case_id: case_number}``. Rows of tables
    #: that reach this one through ``references`` carry its scope too.
    scope: dict[ScopeKey, SqlName] = Field(default_factory=dict)
    #: A column every insert and update sets to a later value (a timestamp or a version): each
    #: index pass reads only the rows changed since the last one. Without it, the whole table is
    #: read at every pass (fine for small tables only).
    changed: SqlName | None = None

    @model_validator(mode="after")
    def _one_way_to_the_person(self) -> Self:
        if (self.identity is None) == (self.references is None):
            raise ValueError(
                "give exactly one of identity (this table names the person) or references "
                "(the column that leads to a table that does)"
            )
        return self


class ColumnErasure(_Strict):
    """Erase columns and keep the row: ``null`` sets them to NULL; ``mask`` writes a keyed hash
    of the row's key in their place (for columns that may not be NULL or must stay unique), the
    same at every application, so a repeated command changes nothing more."""

    null: list[SqlName] = Field(default_factory=list)
    mask: list[SqlName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_disjoint_columns(self) -> Self:
        if not self.null and not self.mask:
            raise ValueError("name the columns to erase under null or mask (or erase: delete)")
        both = set(self.null) & set(self.mask)
        if both:
            raise ValueError(f"{', '.join(sorted(both))}: both nulled and masked; choose one")
        if len(set(self.null)) != len(self.null) or len(set(self.mask)) != len(self.mask):
            raise ValueError("a column is named twice")
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.null, *self.mask]


class TableErasure(_Strict):
    """What an erasure of the category does to one table: ``delete`` its rows, or erase some
    of their columns."""

    table: SqlName
    # One branch chosen by the value's shape, so that a mistake gets one message, not one per
    # branch; the tags are bracketed so that error locations leave them out, as validators' names.
    erase: Annotated[
        Annotated[Literal["delete"], Tag("[delete]")] | Annotated[ColumnErasure, Tag("[columns]")],
        Discriminator(lambda value: "[delete]" if isinstance(value, str) else "[columns]"),
    ]

    @model_validator(mode="before")
    @classmethod
    def _one_message_for_a_wrong_word(cls, value: Any) -> Any:
        erase = value.get("erase") if isinstance(value, dict) else None
        if erase is not None and not isinstance(erase, dict) and erase != "delete":
            raise ValueError(
                "erase: expected delete, or the columns to erase: {null: [...], mask: [...]}"
            )
        return value


class CategorySpec(_Strict):
    """The tables that hold one category, erased children first: in the order written
    (``declared``), or in the order the schema's foreign keys give (``foreign_keys``, read from
    the database when the agent starts; a cycle is refused)."""

    order: Literal["declared", "foreign_keys"] = "declared"
    tables: Annotated[list[TableErasure], Field(min_length=1)]

    @model_validator(mode="after")
    def _each_table_once(self) -> Self:
        names = [table.table for table in self.tables]
        if len(set(names)) != len(names):
            raise ValueError("a table is listed twice; give it one erase")
        return self


class Dataset(_Strict):
    """One company system as the agent sees it. Read with
    :func:`services.agent.dataset_file.load_dataset`, which also checks that the parts agree
    (:func:`cross_problems`)."""

    system: SystemId
    database: DatabaseSource
    #: A database of the agent's own for its index; by default the index is a table in the
    #: system's database (``gallring_agent_index``), where an erasure updates it in its own
    #: transaction.
    index_database: DatabaseSource | None = None
    tables: Annotated[dict[SqlName, TableSpec], Field(min_length=1)]
    categories: Annotated[dict[Category, CategorySpec], Field(min_length=1)]

    def path(self, table: str) -> list[str]:
        """The tables from ``table`` to the one with the identity, following ``references``
        (valid only for a dataset without :func:`cross_problems`)."""
        names = [table]
        while (reference := self.tables[names[-1]].references) is not None:
            names.append(reference.table)
        return names

    def scope_keys(self, category: Category) -> set[str]:
        """The scope keys the category's tables can be erased by."""
        return {
            key
            for erasure in self.categories[category].tables
            for name in self.path(erasure.table)
            for key in self.tables[name].scope
        }


def cross_problems(dataset: Dataset) -> list[tuple[list[str | int], str]]:
    """What the parts of a dataset say against each other, each with the location (as Pydantic
    gives them) of the field to fix: a table a category names but ``tables`` does not declare, a
    reference to an undeclared table or in a loop, a declared order that erases a parent before
    its child, a column erased that holds the way to the person while its table keeps rows."""
    problems: list[tuple[list[str | int], str]] = []
    for name, spec in dataset.tables.items():
        if spec.references is None:
            continue
        seen = [name]
        reference: Reference | None = spec.references
        while reference is not None:
            if reference.table not in dataset.tables:
                where: list[str | int] = ["tables", seen[-1], "references", "table"]
                problem = (where, f"{reference.table} is not declared under tables")
                if problem not in problems:  # once, not for every table whose way passes it
                    problems.append(problem)
                break
            if reference.table in seen:
                problems.append(
                    (
                        ["tables", name, "references"],
                        "the references go round in a loop ("
                        + " -> ".join([*seen, reference.table])
                        + ") and never reach a table with an identity",
                    )
                )
                break
            seen.append(reference.table)
            reference = dataset.tables[reference.table].references
    if problems:
        return problems
    for category, category_spec in dataset.categories.items():
        listed = [erasure.table for erasure in category_spec.tables]
        for position, erasure in enumerate(category_spec.tables):
            where = ["categories", category.value, "tables", position, "table"]
            if erasure.table not in dataset.tables:
                problems.append((where, f"{erasure.table} is not declared under tables"))
                continue
            if category_spec.order != "declared":
                continue
            for parent in dataset.path(erasure.table)[1:]:
                if parent in listed and listed.index(parent) < position:
                    problems.append(
                        (
                            where,
                            f"erased after {parent}, which it references: list children first "
                            "(or order: foreign_keys)",
                        )
                    )
    return problems
