"""The SQLAlchemy Core table behind a SQLModel table model, typed.

Much of Gallring writes and reads with Core statements (bulk inserts, ``UPDATE ... RETURNING``,
upserts) on ``Model.__table__``. SQLModel sets ``__table__`` on every ``table=True`` model at
class creation but does not declare it for type checkers, so each use needed its own
``# type: ignore``; this helper reads it, checked, and gives callers a ``Table``.
"""

from sqlalchemy import Table
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> Table:
    """``model``'s table; a ``TypeError`` for a model that is not a table (no ``table=True``)."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table
