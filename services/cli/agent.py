"""``gallring agent check FILE``: validate an agent's dataset file offline, as ``gallring
policy check`` validates a policy."""

from pathlib import Path
from typing import TextIO

from services.agent.dataset_file import DatasetError, load_dataset

EXIT_INVALID_INPUT = 2


def check_file(path: Path, *, out: TextIO, err: TextIO) -> int:
    try:
        dataset = load_dataset(path)
    except DatasetError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    categories = ", ".join(
        f"{category.value} ({len(spec.tables)} table{'s' if len(spec.tables) != 1 else ''})"
        for category, spec in dataset.categories.items()
    )
    print(f"{path}: valid; system {dataset.system}; categories: {categories}", file=out)
    return 0
