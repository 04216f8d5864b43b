"""What the health checks and probes ask for: the API's own probe routes (read from its health
router), and of the purger and the notifier their status server's (shared/runtime/status_server.py,
asked in-process), so that a renamed route or a misspelt path is caught. Never /metrics: it is for
Prometheus, and the workers' counts rows in the database at every request. Each worker's
readiness check asks a route that follows its database."""

import functools
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine

from services.api.health import router
from shared.runtime.status_server import Heartbeat, Readiness, status_app
from tests.deployment import files
from tests.deployment.workloads import default_command, is_gallring_image

METRICS_PATH = "/metrics"
#: The API's routes a probe may ask: its health router's, but the metrics.
PROBE_ROUTES = frozenset(route.path for route in router.routes) - {METRICS_PATH}
#: The subcommands whose status port (shared/runtime/status_server.py, status_server) is probed:
#: the erasure agent's (`gallring agent run`) is the same server.
WORKERS = frozenset({"purger", "notifier", "agent"})
#: A worker's readiness check: Kubernetes' readinessProbe, and the Compose health check (which
#: `depends_on: condition: service_healthy` and `docker compose ps` read as readiness).
READINESS_KINDS = frozenset({"readinessProbe", "healthcheck"})
#: A path in a health check's command: after a URL's host (`http://127.0.0.1:8000/readyz`), or
#: a quoted string of its own (`… + '/healthz'`).
_PATH = re.compile(r"""(?:https?://[^/\s'"]+|['"])(/[A-Za-z0-9_./-]*)""")


@dataclass(frozen=True)
class Probe:
    where: str
    #: The `gallring` subcommand that answers it; a proxy in front of the API counts as "api".
    serves: str
    #: startupProbe, readinessProbe, livenessProbe, or a Docker healthcheck.
    kind: str
    http: bool
    #: The HTTP paths it asks for (none found in an HTTP check is itself a problem).
    paths: tuple[str, ...]


@functools.cache
def worker_status(path: str, database_answers: bool = True) -> int:
    """The status code the workers' status server answers ``GET path`` with, its database a
    SQLite file in a temporary directory, or (``database_answers`` false) one in a directory that
    does not exist, which cannot be opened."""
    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / ("status.db" if database_answers else "absent/status.db")
        db = create_engine(f"sqlite:///{database}")
        try:
            environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
            setup_testing_defaults(environ)
            statuses: list[str] = []
            body = status_app(CollectorRegistry(), Readiness(db), Heartbeat())(
                environ, lambda status, headers, exc_info=None: statuses.append(status)
            )
            b"".join(body)
        finally:
            db.dispose()
    return int(statuses[0].split()[0])


def _command_probe(where: str, serves: str, command: str) -> Probe:
    http = "http://" in command or "https://" in command
    paths = tuple(_PATH.findall(command)) if http else ()
    return Probe(where, serves, "healthcheck", http, paths)


def _compose_serves(root: Path, service: dict[str, Any]) -> str | None:
    """The subcommand a Compose service's health check reaches; None: not Gallring's."""
    if is_gallring_image(service.get("image", "")) or "build" in service:
        return str((service.get("command") or default_command(root) or [""])[0])
    if "api" in (service.get("depends_on") or []):
        return "api"  # the proxy: what it is asked, it asks the API
    return None  # Kafka, PostgreSQL: their own checks


def probes(root: Path) -> list[Probe]:
    """The Dockerfile's HEALTHCHECK, the Compose files' health checks, the manifests' probes."""
    found = []
    instructions = files.dockerfile_instructions(root)
    for instruction in [i for i in instructions if i.cmd == "HEALTHCHECK"][-1:]:
        serves = (default_command(root) or ("",))[0]
        found.append(_command_probe("Dockerfile: HEALTHCHECK", serves, " ".join(instruction.value)))
    for compose_file, name, service in files.compose_services(root):
        healthcheck = service.get("healthcheck") or {}
        serves = _compose_serves(root, service)
        if serves is None or healthcheck.get("disable") or not healthcheck.get("test"):
            continue
        test = healthcheck["test"]
        command = " ".join(test) if isinstance(test, list) else test
        found.append(_command_probe(f"{compose_file}: {name}", serves, command))
    for path, container in _gallring_containers(root):
        serves = (container.get("args") or ["api"])[0]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe: dict[str, Any] = container.get(kind) or {}
            if probe:
                where = f"{path.relative_to(root)}: {container['name']} {kind}"
                http_get = probe.get("httpGet")
                paths = (http_get.get("path", "/"),) if http_get else ()
                found.append(Probe(where, serves, kind, http_get is not None, paths))
    return found


def _gallring_containers(root: Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    for path, manifest in files.kubernetes_manifests(root):
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if is_gallring_image(container.get("image", "")):
                yield path, container


def workers_without_readiness(root: Path) -> list[str]:
    """Where a purger, a notifier or an agent runs with no readiness check at all."""
    missing = [
        f"{compose_file}: {name}: no health check"
        for compose_file, name, service in files.compose_services(root)
        if _compose_serves(root, service) in WORKERS
        and ((service.get("healthcheck") or {}).get("disable") or not service.get("healthcheck"))
    ]
    missing += [
        f"{path.relative_to(root)}: {container['name']}: no readinessProbe"
        for path, container in _gallring_containers(root)
        if (container.get("args") or ["api"])[0] in WORKERS and not container.get("readinessProbe")
    ]
    return missing


def probe_problems(root: Path) -> list[str]:
    problems = workers_without_readiness(root)
    for probe in probes(root):
        if probe.serves in WORKERS:
            problems += _worker_probe_problems(probe)
            continue
        if not probe.http:
            continue
        if probe.serves != "api":
            problems.append(
                f"{probe.where}: an HTTP check of the {probe.serves}, which serves none"
            )
            continue
        if not probe.paths:
            problems.append(f"{probe.where}: an HTTP check whose path this test cannot find")
        problems += [
            f"{probe.where}: asks {path}, not one of the API's probe routes {sorted(PROBE_ROUTES)}"
            + (" (/metrics is for Prometheus)" if path == METRICS_PATH else "")
            for path in probe.paths
            if path not in PROBE_ROUTES
        ]
    return problems


def _worker_probe_problems(probe: Probe) -> list[str]:
    """A worker's HTTP check asks its status server's probe routes: one it answers with 200, but
    /metrics; its readiness check asks over HTTP a route that answers 503 without a database."""
    readiness = probe.kind in READINESS_KINDS
    if not probe.http:
        return (
            [f"{probe.where}: a readiness check that cannot see the database"] if readiness else []
        )
    if not probe.paths:
        return [f"{probe.where}: an HTTP check whose path this test cannot find"]
    problems = []
    for path in probe.paths:
        if path == METRICS_PATH:
            problems.append(
                f"{probe.where}: asks {path} of the {probe.serves}, which counts rows in the "
                "database at every request: /metrics is for Prometheus; ask /healthz or /readyz"
            )
        elif worker_status(path) != 200:
            problems.append(
                f"{probe.where}: asks {path}, which the {probe.serves}'s status server "
                f"(shared/runtime/status_server.py) answers with {worker_status(path)}"
            )
        elif readiness and worker_status(path, database_answers=False) != 503:
            problems.append(
                f"{probe.where}: a readiness check on {path}, which stays 200 without the "
                "database: ask /readyz"
            )
    return problems


def test_the_probe_routes_are_the_apis_health_routes() -> None:
    assert {"/healthz", "/readyz"} <= PROBE_ROUTES
    assert METRICS_PATH in {route.path for route in router.routes}


def test_the_workers_status_server_answers_probes_and_metrics_and_nothing_else() -> None:
    assert (worker_status("/healthz"), worker_status("/healthz", database_answers=False)) == (
        200,
        200,
    )
    assert (worker_status("/readyz"), worker_status("/readyz", database_answers=False)) == (
        200,
        503,
    )
    assert worker_status(METRICS_PATH) == 200
    assert worker_status("/ready") == worker_status("/") == 404


def test_every_probe_asks_a_probe_route_of_its_service() -> None:
    found = probes(files.REPO)
    assert {p.serves for p in found if p.http} == {"api"} | WORKERS
    assert {p.serves for p in found if p.kind in READINESS_KINDS} >= WORKERS
    assert probe_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("deploy/kubernetes/api-deployment.yaml", "path: /readyz", "path: /ready"),
        ("deploy/kubernetes/api-deployment.yaml", "path: /healthz", "path: /metrics"),
        (files.COMPOSE_FILE, "http://127.0.0.1:8000/readyz", "http://127.0.0.1:8000/ready"),
        (files.COMPOSE_FILE, "http://127.0.0.1:8000/healthz", "http://127.0.0.1:8000/status"),
        (files.DOCKERFILE, "'/healthz'", "'/health'"),
        # The workers: /metrics, a path their status server does not answer, readiness that does
        # not follow the database, or none.
        ("deploy/kubernetes/purger-deployment.yaml", "path: /healthz", "path: /metrics"),
        ("deploy/kubernetes/notifier-deployment.yaml", "path: /readyz", "path: /ready"),
        (files.COMPOSE_FILE, "http://127.0.0.1:9102/readyz", "http://127.0.0.1:9102/metrics"),
        (files.COMPOSE_FILE, "http://127.0.0.1:9101/readyz", "http://127.0.0.1:9101/ready"),
        (files.COMPOSE_FILE, "http://127.0.0.1:9101/readyz", "http://127.0.0.1:9101/healthz"),
        (
            "deploy/kubernetes/notifier-deployment.yaml",
            "          readinessProbe:\n            httpGet:\n              path: /readyz\n",
            "          readinessProbe:\n            httpGet:\n              path: /healthz\n",
        ),
        (
            "deploy/kubernetes/purger-deployment.yaml",
            "          readinessProbe:\n            httpGet:\n              path: /readyz\n",
            "          readinessProbe:\n            tcpSocket:\n",
        ),
        (
            "deploy/kubernetes/purger-deployment.yaml",
            "          readinessProbe:\n"
            "            httpGet:\n"
            "              path: /readyz\n"
            "              port: metrics\n"
            "            periodSeconds: 10\n"
            "            timeoutSeconds: 3\n"
            "            failureThreshold: 3\n",
            "",
        ),
        (
            files.COMPOSE_FILE,
            '      test: ["CMD", "python", "-c", "import urllib.request; '
            "urllib.request.urlopen('http://127.0.0.1:9102/readyz', timeout=4)\"]\n",
            "      disable: true\n",
        ),
        # The agent's: /metrics, a readiness that stays 200 without its database, or none.
        (files.AGENT_COMPOSE_FILE, "http://127.0.0.1:9103/readyz", "http://127.0.0.1:9103/metrics"),
        (files.AGENT_COMPOSE_FILE, "http://127.0.0.1:9103/readyz", "http://127.0.0.1:9103/healthz"),
        (f"{files.AGENT_DIR}/deployment.yaml", "path: /healthz", "path: /metrics"),
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "          readinessProbe:\n            httpGet:\n              path: /readyz\n",
            "          readinessProbe:\n            httpGet:\n              path: /healthz\n",
        ),
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "          readinessProbe:",
            "          readinessProbeX:",
        ),
        (files.AGENT_COMPOSE_FILE, "    healthcheck:\n", "    healthcheck:\n      disable: true\n"),
    ],
)
def test_a_probe_asking_the_wrong_path_or_none_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert probe_problems(deployment_copy)
