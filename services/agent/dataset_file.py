"""Reading a dataset file, and refusing a bad one with ``file:line: field: what is wrong``, as
the policy file is refused."""

from pathlib import Path

from pydantic import ValidationError

from services.agent.dataset import Dataset, cross_problems
from shared.domain.yaml_document import (
    YamlDocumentError,
    line_of,
    read_yaml,
    validation_problems,
)


class DatasetError(ValueError):
    """The dataset file, or the database it describes, cannot be used; ``problems`` lists each
    as ``file:line: field: why`` (or ``table.column: why`` for what the schema says)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid dataset {source}:\n  " + "\n  ".join(problems))


def load_dataset(path: Path) -> Dataset:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DatasetError(str(path), [f"cannot read it: {error.strerror}"]) from None
    except UnicodeDecodeError:
        raise DatasetError(str(path), [f"{path}: not UTF-8 text"]) from None
    return parse_dataset(text, source=str(path))


def parse_dataset(text: str, *, source: str) -> Dataset:
    try:
        root, document = read_yaml(text, source=source)
    except YamlDocumentError as error:
        raise DatasetError(source, error.problems) from None
    if not isinstance(document, dict):
        raise DatasetError(
            source, [f"{source}:1: expected a mapping with system, database, tables, categories"]
        )
    try:
        dataset = Dataset.model_validate(document)
    except ValidationError as error:
        raise DatasetError(source, validation_problems(error, root, source)) from None
    problems = [
        f"{source}:{line_of(root, where)}: {'.'.join(map(str, where))}: {why}"
        for where, why in cross_problems(dataset)
    ]
    if problems:
        raise DatasetError(source, problems)
    return dataset
