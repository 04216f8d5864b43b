"""The agent's dataset file: what it accepts, and each mistake refused with its line."""

import os
from pathlib import Path

import pytest

from services.agent.dataset import ColumnErasure
from services.agent.dataset_file import DatasetError, load_dataset, parse_dataset
from services.agent.sample import SAMPLE_DATASET
from services.cli.main import main
from shared.domain.contract.vocabulary import Category


def problems_of(text: str) -> list[str]:
    with pytest.raises(DatasetError) as refused:
        parse_dataset(text, source="d.yaml")
    return refused.value.problems


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    return lines[occurrence - 1]


def test_the_sample_dataset_reads_with_its_ways_to_the_person() -> None:
    dataset = parse_dataset(SAMPLE_DATASET, source="sample")
    assert dataset.system == "collection"
    assert dataset.database.url_env == "COLLECTION_DATABASE_URL"
    assert dataset.index_database is None
    assert dataset.path("letters") == ["letters", "cases", "debtors"]
    assert dataset.scope_keys(Category.COLLECTION_CASE) == {"case_id"}
    assert dataset.scope_keys(Category.MARKETING) == set()
    debtors = dataset.categories[Category.COLLECTION_CASE].tables[-1].erase
    assert isinstance(debtors, ColumnErasure)
    assert debtors.mask == ["national_id"] and debtors.null == ["name", "address", "phone"]
    subscribers = dataset.tables["newsletter_subscribers"].identity
    assert subscribers is not None and (subscribers.kind, subscribers.prefix) == ("ref", "crm:")


@pytest.mark.parametrize(
    "database",
    [
        "database: postgresql://collector:hunter2@db/collection",
        "database:\n  url: postgresql://collector:hunter2@db/collection",
        "database:\n  url_file: postgresql://collector:hunter2@db/collection",
    ],
)
def test_a_database_url_written_in_the_file_is_refused_without_repeating_it(database) -> None:
    text = SAMPLE_DATASET.replace("database:\n  url_env: COLLECTION_DATABASE_URL", database)
    (problem,) = problems_of(text)
    assert problem.startswith("d.yaml:2: database: a database URL is not written")
    assert "hunter2" not in problem and "collector" not in problem


def test_the_url_comes_from_the_variable_or_the_file_it_names(tmp_path) -> None:
    dataset = parse_dataset(SAMPLE_DATASET, source="sample")
    assert dataset.database.url({"COLLECTION_DATABASE_URL": " sqlite:///x.db\n"}) == (
        "sqlite:///x.db"
    )
    with pytest.raises(LookupError, match="COLLECTION_DATABASE_URL is not set"):
        dataset.database.url({})
    secret = tmp_path / "url"
    secret.write_text("postgresql://u:p@h/db\n")
    text = SAMPLE_DATASET.replace("url_env: COLLECTION_DATABASE_URL", f"url_file: {secret}")
    assert parse_dataset(text, source="d").database.url({}) == "postgresql://u:p@h/db"


def test_each_mistake_is_named_with_its_line() -> None:
    text = (
        SAMPLE_DATASET.replace("kind: national_id}", "kind: passport}")
        .replace("- {table: letters, erase: delete}", "- {table: letters, erase: remove}")
        .replace('"null": [case_id, payer_name]', '"null": [case_id], mask: [case_id]')
        .replace("\n  letters:", "\n    colour: red\n  letters:")
    )
    assert problems_of(text) == [
        f"d.yaml:{line_of(text, 'kind: passport')}: tables.debtors.identity.kind: "
        "Input should be 'national_id' or 'ref'",
        f"d.yaml:{line_of(text, 'colour')}: tables.cases.colour: Extra inputs are not permitted",
        f"d.yaml:{line_of(text, 'erase: remove')}: categories.collection_case.tables.0: "
        "erase: expected delete, or the columns to erase: {null: [...], mask: [...]}",
        f"d.yaml:{line_of(text, 'mask: [case_id]')}: "
        "categories.collection_case.tables.1.erase: case_id: both nulled and masked; choose one",
    ]


def test_a_table_must_reach_the_person_one_way() -> None:
    text = SAMPLE_DATASET.replace(
        "    references: {column: case_id, table: cases, to: id}\n    changed: updated_at\n"
        "  payments:",
        "    changed: updated_at\n  payments:",
    )
    (problem,) = problems_of(text)
    assert problem == (
        f"d.yaml:{line_of(text, '  letters:')}: tables.letters: give exactly one of identity "
        "(this table names the person) or references (the column that leads to a table that "
        "does)"
    )


def test_references_must_lead_to_declared_tables_without_a_loop() -> None:
    undeclared = SAMPLE_DATASET.replace("table: debtors, to: id}", "table: debtor, to: id}")
    assert problems_of(undeclared) == [
        f"d.yaml:{line_of(undeclared, 'table: debtor, to')}: tables.cases.references.table: "
        "debtor is not declared under tables"
    ]
    looping = SAMPLE_DATASET.replace(
        "identity: {column: national_id, kind: national_id}",
        "references: {column: id, table: letters, to: id}",
    )
    problems = problems_of(looping)
    assert (
        f"d.yaml:{line_of(looping, 'table: letters, to: id')}: tables.debtors.references: "
        "the references go round in a loop (debtors -> letters -> cases -> debtors) and never "
        "reach a table with an identity"
    ) in problems


def test_a_declared_order_must_erase_children_first() -> None:
    text = SAMPLE_DATASET.replace("      - {table: letters, erase: delete}\n", "").replace(
        "      - {table: cases, erase: delete}\n",
        "      - {table: cases, erase: delete}\n      - {table: letters, erase: delete}\n",
    )
    (problem,) = problems_of(text)
    assert problem == (
        f"d.yaml:{line_of(text, '{table: letters, erase')}: "
        "categories.collection_case.tables.2.table: erased after cases, which it references: "
        "list children first (or order: foreign_keys)"
    )
    by_keys = text.replace("  collection_case:\n", "  collection_case:\n    order: foreign_keys\n")
    assert parse_dataset(by_keys, source="d")


def test_unknown_categories_and_tables_are_refused() -> None:
    text = SAMPLE_DATASET.replace("  marketing:", "  newsletter:").replace(
        "{table: cases, erase: delete}", "{table: case, erase: delete}"
    )
    problems = problems_of(text)
    assert (
        f"d.yaml:{line_of(text, '  newsletter:')}: categories.newsletter: Input should "
        "be 'collection_case', 'customer_relationship', 'aml', 'marketing', 'bookkeeping' or "
        "'invoice_administration'"
    ) in problems
    text = SAMPLE_DATASET.replace("{table: cases, erase: delete}", "{table: case, erase: delete}")
    assert problems_of(text) == [
        f"d.yaml:{line_of(text, 'table: case,')}: categories.collection_case.tables.2.table: "
        "case is not declared under tables"
    ]


def test_a_key_given_twice_and_bad_yaml_are_refused() -> None:
    text = SAMPLE_DATASET.replace("system: collection\n", "system: collection\nsystem: crm\n")
    assert problems_of(text) == [
        "d.yaml:2: system: given twice; remove one (YAML would silently keep the last)"
    ]
    assert problems_of("system: [collection\n")[0].startswith("d.yaml:2: not valid YAML")
    assert problems_of("- collection\n") == [
        "d.yaml:1: expected a mapping with system, database, tables, categories"
    ]


def test_agent_check_prints_what_is_valid_and_refuses_with_lines(tmp_path, capsys) -> None:
    good = tmp_path / "collection.yaml"
    good.write_text(SAMPLE_DATASET)
    assert main(["agent", "check", str(good)]) == 0
    assert capsys.readouterr().out == (
        f"{good}: valid; system collection; categories: collection_case (4 tables), "
        "marketing (1 table)\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(SAMPLE_DATASET.replace("url_env: COLLECTION_DATABASE_URL", "url: x://y"))
    assert main(["agent", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: database: a database URL is not written in the dataset file" in err
    assert main(["agent", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read it: No such file or directory" in capsys.readouterr().err


def test_load_dataset_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(SAMPLE_DATASET)
    assert load_dataset(path).system == "collection"


def test_a_scope_key_must_be_one_of_gallrings() -> None:
    text = SAMPLE_DATASET.replace("{case_id: case_number}", "{caseid: case_number}")
    assert problems_of(text) == [
        f"d.yaml:{line_of(text, 'caseid')}: tables.cases.scope.caseid: Input should be "
        "'case_id', 'client_id', 'relationship_id', 'measure_id' or 'hold_id'"
    ]


def test_agent_run_names_the_settings_it_lacks_and_refuses_a_bad_dataset_file(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [name for name in os.environ if name.startswith("GALLRING_")]:
        monkeypatch.delenv(variable)
    assert main(["agent", "run"]) == 2
    err = capsys.readouterr().err
    assert "GALLRING_AGENT_DATASET_FILE" in err and "GALLRING_AGENT_API_KEY" in err
    assert "GALLRING_PSEUDONYM_SECRET" in err
    key = "gallring_key_never_shown"
    monkeypatch.setenv("GALLRING_AGENT_API_KEY", key)
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", "s" * 40)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SAMPLE_DATASET.replace("url_env: COLLECTION_DATABASE_URL", "url: x://y"))
    monkeypatch.setenv("GALLRING_AGENT_DATASET_FILE", str(bad))
    assert main(["agent", "run", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: database: a database URL is not written in the dataset file" in err
    assert key not in err
    good = tmp_path / "good.yaml"
    good.write_text(SAMPLE_DATASET)
    monkeypatch.setenv("GALLRING_AGENT_DATASET_FILE", str(good))
    monkeypatch.delenv("COLLECTION_DATABASE_URL", raising=False)
    assert main(["agent", "run"]) == 2
    assert "COLLECTION_DATABASE_URL" in capsys.readouterr().err
