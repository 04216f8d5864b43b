"""The ``GALLRING_…`` variables the code reads, derived from the settings classes themselves, so
that a deployment file naming one the code does not read (a typo) is caught, and so is a
variable the README's settings table leaves out."""

import importlib
import inspect
import re
from pathlib import Path

from pydantic_settings import BaseSettings

#: Where the settings classes live (see the README's settings section).
SETTINGS_MODULES = (
    "shared.runtime.settings",
    "services.api.settings",
    "services.purger.settings",
    "services.notifier.settings",
    "services.agent.settings",
)

#: Where the secret settings' files are: read with os.environ by the settings classes.
SECRETS_DIR_VARIABLE = "GALLRING_SECRETS_DIR"

#: Read with os.environ, not as a settings field. Each is checked to appear in its file.
ENVIRONMENT_VARIABLES = {
    SECRETS_DIR_VARIABLE: "shared/runtime/settings.py",
    "GALLRING_EMBEDDED_BROKER_PORT": "services/cli/up.py",  # `gallring up` only
    "GALLRING_DEMO_API_KEY": "services/cli/main.py",  # `gallring demo` only
    "GALLRING_QUIET_LIBRARIES": "shared/runtime/logs.py",  # every process, at its entry point
    "GALLRING_TEST_POSTGRES_URL": "tests/conftest.py",  # the test suite only
    "GALLRING_TEST_MARIADB_URL": "tests/integration/agent/conftest.py",  # the agent's tests
}

#: A variable's whole name (not the start of a longer one, nor of a family: `GALLRING_API_…`).
_VARIABLE = re.compile(r"\bGALLRING_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])")
#: A family of variables, named by their common start: `GALLRING_API_…` (`GALLRING_API_`).
_PREFIX = re.compile(r"\bGALLRING_(?:[A-Z0-9]+_)*(?![A-Z0-9_])")


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class defined in the settings modules."""
    classes: list[type[BaseSettings]] = []
    for name in SETTINGS_MODULES:
        module = importlib.import_module(name)
        classes += [
            member
            for _, member in inspect.getmembers(module, inspect.isclass)
            if issubclass(member, BaseSettings) and member.__module__ == name
        ]
    return classes


def variables_of(settings_class: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads: its env_prefix and each field's name (or alias),
    and, for a field that is itself a settings class (``kafka``, ``relay``), that class's
    variables under its own prefix."""
    prefix = settings_class.model_config.get("env_prefix", "")
    variables: set[str] = set()
    for name, field in settings_class.model_fields.items():
        if inspect.isclass(field.annotation) and issubclass(field.annotation, BaseSettings):
            variables |= variables_of(field.annotation)
            continue
        alias = field.validation_alias or field.alias
        variables.add((alias if isinstance(alias, str) else prefix + name).upper())
    return variables


def settings_variables() -> set[str]:
    """What the settings classes read, and where the secret files are."""
    variables = {SECRETS_DIR_VARIABLE}
    for settings_class in settings_classes():
        variables |= variables_of(settings_class)
    return variables


def variables_read_by_code() -> set[str]:
    return settings_variables() | set(ENVIRONMENT_VARIABLES)


def variables_named_in_code(root: Path) -> set[str]:
    """Every variable the services' and shared code name, read or documented."""
    return {
        variable
        for package in ("services", "shared")
        for source in sorted((root / package).rglob("*.py"))
        for variable in variables_named_in(source.read_text())
    }


def variables_named_in(text: str) -> set[str]:
    return set(_VARIABLE.findall(text))


def prefixes_named_in(text: str) -> set[str]:
    """The families of variables a text names by their common start: `GALLRING_KAFKA_…`."""
    return set(_PREFIX.findall(text))


def readme_settings_table(readme: str) -> set[str]:
    """The variables named in the first column of the README's settings table."""
    section = readme.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    return {
        variable
        for line in section.splitlines()
        if line.startswith("|")
        for variable in variables_named_in(line.split("|")[1])
    }


def environment_variable_read_in(variable: str, repo: Path) -> bool:
    """Whether the file ENVIRONMENT_VARIABLES names for ``variable`` still names it."""
    return variable in (repo / ENVIRONMENT_VARIABLES[variable]).read_text()
