"""table_of: a table model's Core table, and a clear error for a model that is no table."""

import pytest
from sqlalchemy import Table
from sqlmodel import SQLModel

from shared.storage.tables.api import ApiKey
from shared.storage.tables.table import table_of


class _NotATable(SQLModel):
    name: str


def test_a_table_model_gives_its_table() -> None:
    table = table_of(ApiKey)
    assert isinstance(table, Table)
    assert table.name == "api_key"
    assert "key_id" in table.c


def test_a_model_without_a_table_is_refused() -> None:
    with pytest.raises(TypeError, match="_NotATable is not a table model"):
        table_of(_NotATable)
