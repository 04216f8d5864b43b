"""``gallring agent check FILE``: validate an agent's dataset file offline, as ``gallring
policy check`` validates a policy; with ``--connect``, also against the database it names.
``gallring agent run``: the agent's process (services/agent/main.py). ``gallring agent
restore-check``: what Gallring erased since a backup, erased again (services/agent/restore.py)."""

from datetime import datetime
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


def restore_check(*, since: datetime, dry_run: bool, out: TextIO, err: TextIO) -> int:
    """Erase again what Gallring erased since ``since``; 1 if the API did not give the proofs
    or an erasure failed, 2 for a dataset file or database it cannot use."""
    from services.agent import index  # the agent's imports, for this command only
    from services.agent.restore import ProofsUnavailable, fetch_proofs
    from services.agent.restore import restore_check as check
    from services.agent.settings import AgentSettings

    settings = load_settings(AgentSettings)
    path = settings.agent_dataset_file
    try:
        dataset = load_dataset(path)
        system = open_database(dataset.database.url())
    except DatasetError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    except LookupError as error:  # the dataset's database variable or file is missing
        print(f"gallring: {path}: database: {error}", file=err)
        return EXIT_INVALID_INPUT
    own = dataset.index_database
    index_engine = open_database(own.url()) if own else system
    try:
        with system.connect() as connection:
            bound = bind(dataset, connection, source=str(path))
        index.create_index_tables(index_engine)
        proofs = list(
            fetch_proofs(
                settings.agent_api_url,
                settings.agent_api_key,
                since,
                [category.value for category in bound.categories],
                timeout=settings.agent_api_timeout_seconds,
            )
        )
        report = check(
            bound,
            proofs,
            system=system,
            index_engine=index_engine,
            pseudonymiser=settings.pseudonymiser(),
            since=since,
            dry_run=dry_run,
        )
    except DatasetError as error:
        print(str(error), file=err)
        return EXIT_INVALID_INPUT
    except ProofsUnavailable as error:
        print(f"gallring: nothing erased: {error}", file=err)
        return 1
    finally:
        system.dispose()
        if index_engine is not system:
            index_engine.dispose()
    report.write(out)
    return 1 if report.failed else 0


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
