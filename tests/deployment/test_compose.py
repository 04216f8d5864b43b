"""The Compose files (docker-compose.yml, Gallring itself; deploy/compose/agent.yml, the erasure
agent beside a company's database) against the Compose Specification's JSON Schema (the one
`docker compose` validates with), read offline from the check-jsonschema package, which vendors
it from the compose-spec repository; their secrets kept out of git; their start order without a
cycle; their ports published on the host's loopback only; nginx keeping /metrics to the
network; and the agent's container read-only, without capabilities or privilege escalation."""

import json
import re
import subprocess
from functools import cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deployment import files

SECRETS_DIR = "deploy/secrets"
NGINX_CONF = "deploy/compose/nginx.conf"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_METRICS_REFUSED = re.compile(r"location\s*=\s*/metrics\s*\{\s*return\s+404\s*;\s*\}")


@cache
def compose_schema() -> dict[str, Any]:
    vendored = package_files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def schema_problems(root: Path) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [
        f"{compose_file}: {error.json_path}: {error.message}"
        for compose_file in files.COMPOSE_FILES
        for error in sorted(validator.iter_errors(files.compose(root, compose_file)), key=str)
    ]


def secret_files(root: Path) -> list[tuple[str, str, str]]:
    """(Compose file, secret, its file relative to the repository) for every file secret."""
    return [
        (compose_file, name, files.compose_path(compose_file, secret.get("file", "")).as_posix())
        for compose_file in files.COMPOSE_FILES
        for name, secret in (files.compose(root, compose_file).get("secrets") or {}).items()
    ]


def secret_file_problems(root: Path) -> list[str]:
    """Secret files must lie where git ignores them."""
    return [
        f"{compose_file}: secret {name}: {path} is not under {SECRETS_DIR}/"
        for compose_file, name, path in secret_files(root)
        if not path.startswith(SECRETS_DIR + "/")
    ]


def dependency_problems(root: Path) -> list[str]:
    """Every `depends_on` names a service of its file, and none leads back to where it started:
    Compose refuses a cycle, and a service the `x-gallring` anchor's depends_on reaches
    (`migrate`) would depend on itself if it dropped its own."""
    return [
        f"{compose_file}: {problem}"
        for compose_file in files.COMPOSE_FILES
        for problem in _dependency_problems(files.compose(root, compose_file)["services"])
    ]


def _dependency_problems(services: dict[str, Any]) -> list[str]:
    depends_on = {name: list(service.get("depends_on") or []) for name, service in services.items()}
    problems = [
        f"{name} depends on {other}, no service here"
        for name, others in depends_on.items()
        for other in others
        if other not in services
    ]
    finished: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            problems.append("depends_on goes round: " + " -> ".join(cycle))
            return
        if name in finished or name not in services:
            return
        for other in depends_on[name]:
            visit(other, [*path, name])
        finished.add(name)

    for name in services:
        visit(name, [])
    return problems


def published_port_problems(root: Path) -> list[str]:
    """Every published port is bound to the host's loopback: nginx speaks plain HTTP with API
    keys in its requests, and Kafka UI has no login. A TLS proxy in front reaches them there."""
    problems = []
    for compose_file, name, service in files.compose_services(root):
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = port.get("host_ip")
            elif str(port).startswith("["):
                host_ip = str(port)[1:].split("]", 1)[0]
            else:
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else None
            if host_ip not in LOOPBACK:
                problems.append(
                    f"{compose_file}: {name}: {port} is published on every interface of the host"
                )
    return problems


def nginx_problems(root: Path) -> list[str]:
    """The proxy answers /metrics itself, with 404: the metrics are for a Prometheus on the
    Compose network, which scrapes each replica directly."""
    if not _METRICS_REFUSED.search((root / NGINX_CONF).read_text()):
        return [f"{NGINX_CONF}: no `location = /metrics {{ return 404; }}`"]
    return []


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
    assert {compose_file for compose_file, _, _ in secret_files(files.REPO)} == set(
        files.COMPOSE_FILES
    )
    for _, _, path in secret_files(files.REPO):
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", path], cwd=files.REPO
        )
        assert ignored.returncode == 0, f"git would not ignore {path}"


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.COMPOSE_FILE, "    deploy:\n      replicas: 2", "    deploy:\n      replica: 2"),
        (
            files.COMPOSE_FILE,
            "condition: service_completed_successfully",
            "condition: service_completed",
        ),
        (files.COMPOSE_FILE, "profiles: [ops]", "profile: [ops]"),
        (files.COMPOSE_FILE, "stop_grace_period: 30s", "stop_grace_period: [30s]"),
        (files.COMPOSE_FILE, "      start_period: 30s", "      start_periods: 30s"),
        (files.COMPOSE_FILE, "secrets:\n  # Created", "secret:\n  # Created"),
        (files.AGENT_COMPOSE_FILE, "    read_only: true", "    readonly: true"),
        (
            files.AGENT_COMPOSE_FILE,
            "        target: /etc/gallring",
            "        targets: /etc/gallring",
        ),
        (files.AGENT_COMPOSE_FILE, "configs:\n  agent_dataset:", "config:\n  agent_dataset:"),
    ],
)
def test_a_compose_file_off_the_specification_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert schema_problems(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (
            files.COMPOSE_FILE,
            "file: ./deploy/secrets/postgres_password",
            "file: ./postgres_password",
        ),
        # Relative to the agent's file, in deploy/compose/: deploy/compose/secrets/, not ignored.
        (
            files.AGENT_COMPOSE_FILE,
            "file: ../secrets/gallring_agent_api_key",
            "file: ./secrets/gallring_agent_api_key",
        ),
    ],
)
def test_a_secret_file_outside_the_ignored_directory_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert secret_file_problems(deployment_copy)


def test_the_start_order_has_no_cycle() -> None:
    assert dependency_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # migrate without a depends_on of its own inherits the anchor's, which names migrate:
        (
            "      disable: true\n    depends_on:\n      postgres:\n"
            "        condition: service_healthy\n",
            "      disable: true\n",
        ),
        (
            "      - kafka-data:/var/lib/kafka/data\n",
            "      - kafka-data:/var/lib/kafka/data\n    depends_on: [kafka-ui]\n",
        ),
        ("    depends_on:\n      api:\n", "    depends_on:\n      apis:\n"),
    ],
)
def test_a_start_order_that_goes_round_is_caught(deployment_copy: Path, old: str, new: str) -> None:
    files.break_file(deployment_copy, files.COMPOSE_FILE, old, new)
    assert dependency_problems(deployment_copy)


def test_ports_are_published_on_the_loopback_only() -> None:
    assert published_port_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('      - "127.0.0.1:8000:8000"', '      - "8000:8000"'),
        ('      - "127.0.0.1:8080:8080"', '      - "0.0.0.0:8080:8080"'),
        ('      - "127.0.0.1:8000:8000"', "      - target: 8000\n        published: 8000"),
    ],
)
def test_a_port_published_on_every_interface_is_caught(
    deployment_copy: Path, old: str, new: str
) -> None:
    files.break_file(deployment_copy, files.COMPOSE_FILE, old, new)
    assert published_port_problems(deployment_copy)


def test_nginx_keeps_the_metrics_to_the_compose_network() -> None:
    assert nginx_problems(files.REPO) == []


def test_nginx_passing_the_metrics_on_is_caught(deployment_copy: Path) -> None:
    files.break_file(deployment_copy, NGINX_CONF, "return 404;", "proxy_pass http://api:8000;")
    assert nginx_problems(deployment_copy)
