"""docker-compose.yml against the Compose Specification's JSON Schema (the one `docker compose`
validates with), read offline from the check-jsonschema package, which vendors it from the
compose-spec repository; and its secrets kept out of git."""

import json
import subprocess
from functools import cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deployment import files

SECRETS_DIR = "deploy/secrets"


@cache
def compose_schema() -> dict[str, Any]:
    vendored = package_files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def schema_problems(root: Path) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(files.compose(root)), key=str)
    ]


def secret_file_problems(root: Path) -> list[str]:
    """Secret files must lie where git ignores them."""
    problems = []
    for name, secret in files.compose(root).get("secrets", {}).items():
        path = Path(secret.get("file", "")).as_posix()
        if not path.removeprefix("./").startswith(SECRETS_DIR + "/"):
            problems.append(f"secret {name}: {path} is not under {SECRETS_DIR}/")
    return problems


def test_the_schema_knows_the_features_the_compose_file_uses() -> None:
    """A schema too old for them would refuse a valid file, or pass anything under them."""
    validator = jsonschema.Draft202012Validator(compose_schema())
    service = {
        "image": "gallring:0.1.0",
        "profiles": ["ops"],
        "deploy": {"replicas": 2},
        "depends_on": {"migrate": {"condition": "service_completed_successfully"}},
        "secrets": ["gallring_database_url"],
        "stop_grace_period": "30s",
        "healthcheck": {"disable": True},
    }
    document = {
        "name": "gallring",
        "x-anything": {"GALLRING_API_HOST": "0.0.0.0"},
        "services": {"api": service, "migrate": {"image": "gallring:0.1.0"}},
        "secrets": {"gallring_database_url": {"file": "./deploy/secrets/gallring_database_url"}},
    }
    assert list(validator.iter_errors(document)) == []
    service["depends_on"]["migrate"]["condition"] = "service_done"
    service["deploy"]["replica"] = 2
    assert len(list(validator.iter_errors(document))) >= 2


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert schema_problems(files.REPO) == []


def test_the_compose_secrets_lie_where_git_ignores_them() -> None:
    assert secret_file_problems(files.REPO) == []
    for secret in files.compose(files.REPO)["secrets"].values():
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", secret["file"]], cwd=files.REPO
        )
        assert ignored.returncode == 0, f"git would not ignore {secret['file']}"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    deploy:\n      replicas: 2", "    deploy:\n      replica: 2"),
        ("condition: service_completed_successfully", "condition: service_completed"),
        ("profiles: [ops]", "profile: [ops]"),
        ("stop_grace_period: 30s", "stop_grace_period: [30s]"),
        ("      start_period: 30s", "      start_periods: 30s"),
        ("secrets:\n  # Created", "secret:\n  # Created"),
    ],
)
def test_a_compose_file_off_the_specification_is_caught(
    deployment_copy: Path, old: str, new: str
) -> None:
    files.break_file(deployment_copy, files.COMPOSE_FILE, old, new)
    assert schema_problems(deployment_copy)


def test_a_secret_file_outside_the_ignored_directory_is_caught(deployment_copy: Path) -> None:
    old = "file: ./deploy/secrets/postgres_password"
    files.break_file(deployment_copy, files.COMPOSE_FILE, old, "file: ./postgres_password")
    assert secret_file_problems(deployment_copy)
