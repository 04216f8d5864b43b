"""What the health checks and probes ask for: the API's own probe routes (read from its health
router, so that a renamed route or a misspelt path is caught), and of the purger and the
notifier only a connection to their metrics port. /metrics is for Prometheus: the workers' metrics
server answers every path with it, and it queries the database at every request."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.api.health import router
from tests.deployment import files
from tests.deployment.workloads import default_command, is_gallring_image

METRICS_PATH = "/metrics"
#: The API's routes a probe may ask: its health router's, but the metrics.
PROBE_ROUTES = frozenset(route.path for route in router.routes) - {METRICS_PATH}
#: A path in a health check's command: after a URL's host (`http://127.0.0.1:8000/readyz`), or
#: a quoted string of its own (`… + '/healthz'`).
_PATH = re.compile(r"""(?:https?://[^/\s'"]+|['"])(/[A-Za-z0-9_./-]*)""")


@dataclass(frozen=True)
class Probe:
    where: str
    #: The `gallring` subcommand that answers it; a proxy in front of the API counts as "api".
    serves: str
    http: bool
    #: The HTTP paths it asks for (none found in an HTTP check is itself a problem).
    paths: tuple[str, ...]


def _command_probe(where: str, serves: str, command: str) -> Probe:
    http = "http://" in command or "https://" in command
    return Probe(where, serves, http, tuple(_PATH.findall(command)) if http else ())


def probes(root: Path) -> list[Probe]:
    """The Dockerfile's HEALTHCHECK, the Compose file's health checks, the manifests' probes."""
    found = []
    instructions = files.dockerfile_instructions(root)
    for instruction in [i for i in instructions if i.cmd == "HEALTHCHECK"][-1:]:
        serves = (default_command(root) or ("",))[0]
        found.append(_command_probe("Dockerfile: HEALTHCHECK", serves, " ".join(instruction.value)))
    for name, service in files.compose(root)["services"].items():
        healthcheck = service.get("healthcheck") or {}
        if healthcheck.get("disable") or not healthcheck.get("test"):
            continue
        test = healthcheck["test"]
        command = " ".join(test) if isinstance(test, list) else test
        if is_gallring_image(service.get("image", "")) or "build" in service:
            serves = str((service.get("command") or default_command(root) or [""])[0])
        elif "api" in (service.get("depends_on") or []):
            serves = "api"  # the proxy: what it is asked, it asks the API
        else:
            continue  # Kafka, PostgreSQL: their own checks
        found.append(_command_probe(f"{files.COMPOSE_FILE}: {name}", serves, command))
    for path, manifest in files.kubernetes_manifests(root):
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if not is_gallring_image(container.get("image", "")):
                continue
            serves = (container.get("args") or ["api"])[0]
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe: dict[str, Any] = container.get(kind) or {}
                if probe:
                    where = f"{path.relative_to(root)}: {container['name']} {kind}"
                    http_get = probe.get("httpGet")
                    paths = (http_get.get("path", "/"),) if http_get else ()
                    found.append(Probe(where, serves, http_get is not None, paths))
    return found


def probe_problems(root: Path) -> list[str]:
    problems = []
    for probe in probes(root):
        if not probe.http:
            continue
        if probe.serves != "api":
            problems.append(
                f"{probe.where}: an HTTP check of the {probe.serves}, whose metrics server "
                f"answers every path with {METRICS_PATH}'s database queries: connect to the "
                "port instead (tcpSocket, socket.create_connection)"
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


def test_the_probe_routes_are_the_apis_health_routes() -> None:
    assert {"/healthz", "/readyz"} <= PROBE_ROUTES
    assert METRICS_PATH in {route.path for route in router.routes}


def test_every_probe_asks_a_probe_route_or_only_connects() -> None:
    found = probes(files.REPO)
    assert {p.serves for p in found if p.http} == {"api"}
    assert {p.serves for p in found if not p.http} >= {"purger", "notifier"}
    assert probe_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("deploy/kubernetes/api-deployment.yaml", "path: /readyz", "path: /ready"),
        ("deploy/kubernetes/api-deployment.yaml", "path: /healthz", "path: /metrics"),
        (files.COMPOSE_FILE, "http://127.0.0.1:8000/readyz", "http://127.0.0.1:8000/ready"),
        (files.COMPOSE_FILE, "http://127.0.0.1:8000/healthz", "http://127.0.0.1:8000/status"),
        (files.DOCKERFILE, "'/healthz'", "'/health'"),
        (
            "deploy/kubernetes/purger-deployment.yaml",
            "          startupProbe:\n            tcpSocket:\n",
            "          startupProbe:\n            httpGet:\n              path: /healthz\n",
        ),
        (
            files.COMPOSE_FILE,
            "import socket; socket.create_connection(('127.0.0.1', 9102), 3)",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/metrics')",
        ),
    ],
)
def test_a_probe_asking_the_wrong_path_or_a_worker_over_http_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert probe_problems(deployment_copy)
