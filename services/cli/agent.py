"""``gallring agent check FILE``: validate an agent's dataset file offline, as ``gallring
policy check`` validates a policy; with ``--connect``, also against the database it names.
``gallring agent run``: the agent's process (services/agent/main.py)."""

from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from services.agent.database import open_database
from services.agent.dataset_file import DatasetError, load_dataset
from services.agent.schema import bind
from shared.runtime.settings import load_settings

EXIT_INVALID_INPUT = 2


def check_file(path: Path, *, connect: bool = False, out: TextIO, err: TextIO) -> int:
    try:
        dataset = load_dataset(path)
    except DatasetError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    categories = ", ".join(
        f"{category.value} ({len(spec.tables)} table{'s' if len(spec.tables) != 1 else ''})"
        for category, spec in dataset.categories.items()
    )
    if connect:
        try:
            engine = open_database(dataset.database.url())
        except (LookupError, SQLAlchemyError) as error:
            # LookupError names the variable or file; SQLAlchemy's says the URL is malformed
            # without repeating it.
            print(f"gallring: {path}: database: {_first_line(error)}", file=err)
            return EXIT_INVALID_INPUT
        try:
            with engine.connect() as connection:
                bind(dataset, connection, source=str(path))
        except DatasetError as error:
            print(str(error), file=err)
            return EXIT_INVALID_INPUT
        finally:
            engine.dispose()
    checked = "valid, and as the database has it" if connect else "valid"
    print(f"{path}: {checked}; system {dataset.system}; categories: {categories}", file=out)
    return 0


def run_agent(*, dry_run: bool | None, err: TextIO) -> int:
    """Run the agent until SIGINT or SIGTERM; 2 for a dataset file or database it cannot use."""
    from services.agent.main import serve  # the process's imports, for this command only
    from services.agent.settings import AgentSettings

    settings = load_settings(AgentSettings)
    try:
        serve(settings, dry_run=dry_run)
    except DatasetError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    except LookupError as error:  # the dataset's database variable or file is missing
        print(f"gallring: {settings.agent_dataset_file}: database: {error}", file=err)
        return EXIT_INVALID_INPUT
    return 0


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
