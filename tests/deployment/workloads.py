"""Each Gallring container that the Compose file or the Kubernetes manifests run, read into one
shape (its command, environment, secret files, probed ports, replicas), so that one set of
checks covers both ways of deploying."""

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tests.deployment import files
from tests.deployment.images import parse_image

#: The image's ENTRYPOINT; a command is what follows it.
ENTRYPOINT = ("gallring",)
COMPOSE_SECRETS_DIR = PurePosixPath("/run/secrets")
#: A health check's port: in a URL (`http://127.0.0.1:8000/…`) or a socket address
#: (`('127.0.0.1', 9101)`).
_LOOPBACK_PORT = re.compile(r"""(?:127\.0\.0\.1|localhost)(?::|['"],\s*)(\d+)""")


@dataclass(frozen=True)
class Workload:
    where: str
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    #: Plain values, as the container sees them (a ConfigMap's included).
    environment: dict[str, str]
    #: Files mounted from secrets; a directory ending in "*" holds a Secret's every key.
    secret_files: frozenset[PurePosixPath]
    probed_ports: frozenset[int]
    replicas: int
    #: Files mounted from configs (Compose) or ConfigMaps, by path, with their text.
    config_files: dict[PurePosixPath, str] = field(default_factory=dict)

    @property
    def subcommand(self) -> str | None:
        return self.command[0] if self.command else None

    def secret_file_names_in(self, directory: str) -> set[str]:
        """Names of the secret files in ``directory`` ("*": any)."""
        return {path.name for path in self.secret_files if path.parent == PurePosixPath(directory)}


def default_command(root: Path) -> tuple[str, ...]:
    """The Dockerfile's last CMD: what a container runs when given no command."""
    commands = [i for i in files.dockerfile_instructions(root) if i.cmd == "CMD"]
    return tuple(commands[-1].value) if commands else ()


def is_gallring_image(image: str) -> bool:
    return bool(image) and parse_image(image).name == "gallring"


def compose_workloads(root: Path) -> list[Workload]:
    """The services of the Compose files that run the Gallring image."""
    workloads = []
    for compose_file in files.COMPOSE_FILES:
        document = files.compose(root, compose_file)
        configs = _compose_configs(root, compose_file, document.get("configs") or {})
        workloads += [
            _compose_workload(f"{compose_file}: {name}", service, default_command(root), configs)
            for name, service in document["services"].items()
            if is_gallring_image(service.get("image", "")) or "build" in service
        ]
    return workloads


def _compose_configs(root: Path, compose_file: str, configs: dict[str, Any]) -> dict[str, str]:
    """Each top-level config's text: its ``content``, or its ``file``'s (None if missing)."""
    texts = {}
    for name, config in configs.items():
        if "content" in config:
            texts[name] = str(config["content"])
        elif "file" in config:
            path = root / files.compose_path(compose_file, config["file"])
            if path.is_file():
                texts[name] = path.read_text()
    return texts


def _compose_workload(
    where: str,
    service: dict[str, Any],
    image_command: tuple[str, ...],
    configs: dict[str, str] | None = None,
) -> Workload:
    entrypoint = _as_words(service.get("entrypoint")) or ENTRYPOINT
    command = _as_words(service.get("command")) or image_command
    healthcheck = service.get("healthcheck") or {}
    test = " ".join(_as_words(healthcheck.get("test")))
    deploy = service.get("deploy") or {}
    config_files = {}
    for config in service.get("configs", []):
        source = config if isinstance(config, str) else config["source"]
        # Compose mounts a config at /<source> unless given a target.
        target = PurePosixPath("/") / (
            source if isinstance(config, str) else config.get("target", source)
        )
        if source in (configs or {}):
            config_files[target] = (configs or {})[source]
    return Workload(
        where=where,
        entrypoint=entrypoint,
        command=command,
        environment=_compose_environment(service.get("environment")),
        secret_files=frozenset(_compose_secret_file(s) for s in service.get("secrets", [])),
        probed_ports=frozenset(int(p) for p in _LOOPBACK_PORT.findall(test)),
        replicas=int(deploy.get("replicas", service.get("scale", 1))),
        config_files=config_files,
    )


def _as_words(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(shlex.split(value)) if isinstance(value, str) else tuple(map(str, value))


def _compose_environment(environment: dict[str, Any] | list[str] | None) -> dict[str, str]:
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(entry.split("=", 1) if "=" in entry else (entry, "") for entry in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def _compose_secret_file(secret: str | dict[str, Any]) -> PurePosixPath:
    """Compose mounts a secret at /run/secrets/<target>, the target being its name by default."""
    if isinstance(secret, str):
        return COMPOSE_SECRETS_DIR / secret
    target = PurePosixPath(secret.get("target", secret["source"]))
    return target if target.is_absolute() else COMPOSE_SECRETS_DIR / target


def kubernetes_workloads(root: Path) -> list[Workload]:
    """The containers of Deployments and Jobs that run the Gallring image."""
    manifests = files.kubernetes_manifests(root)
    config_maps = {
        m["metadata"]["name"]: m.get("data", {}) for _, m in manifests if m["kind"] == "ConfigMap"
    }
    workloads = []
    for path, manifest in manifests:
        if manifest["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        pod = manifest["spec"]["template"]["spec"]
        for container in pod.get("containers", []):
            if is_gallring_image(container.get("image", "")):
                where = f"{path.relative_to(root)}: {manifest['metadata']['name']}"
                workloads.append(_kubernetes_workload(where, manifest, pod, container, config_maps))
    return workloads


def _kubernetes_workload(
    where: str,
    manifest: dict[str, Any],
    pod: dict[str, Any],
    container: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
) -> Workload:
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_maps.get(source["configMapRef"]["name"], {}))
    environment.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    named_ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    probed_ports = set()
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name) or {}
        for action in ("httpGet", "tcpSocket", "grpc"):
            if action in probe:
                port = probe[action]["port"]
                probed_ports.add(named_ports[port] if isinstance(port, str) else int(port))
    replicas = 1 if manifest["kind"] == "Job" else manifest["spec"].get("replicas", 1)
    return Workload(
        where=where,
        entrypoint=tuple(container.get("command", ())) or ENTRYPOINT,
        command=tuple(container.get("args", ())),
        environment=environment,
        secret_files=frozenset(_kubernetes_secret_files(pod, container)),
        probed_ports=frozenset(probed_ports),
        replicas=replicas,
        config_files=_kubernetes_config_files(pod, container, config_maps),
    )


def _kubernetes_secret_files(pod: dict[str, Any], container: dict[str, Any]) -> set[PurePosixPath]:
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    mounted = set()
    for mount in container.get("volumeMounts", []):
        secret = secrets.get(mount["name"])
        if secret is None:
            continue
        directory = PurePosixPath(mount["mountPath"])
        items = secret.get("items")
        mounted |= {directory / item["path"] for item in items} if items else {directory / "*"}
    return mounted


def _kubernetes_config_files(
    pod: dict[str, Any], container: dict[str, Any], config_maps: dict[str, dict[str, str]]
) -> dict[PurePosixPath, str]:
    """The ConfigMap keys a container sees as files: a volume's ``items`` (or every key) under
    its mount path, or the one key a ``subPath`` names."""
    volumes = {v["name"]: v["configMap"] for v in pod.get("volumes", []) if "configMap" in v}
    mounted = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        if volume is None:
            continue
        data = config_maps.get(volume["name"], {})
        paths = {item["path"]: item["key"] for item in volume.get("items", [])} or {
            key: key for key in data
        }
        directory = PurePosixPath(mount["mountPath"])
        if "subPath" in mount:
            key = paths.get(mount["subPath"])
            if key in data:
                mounted[directory] = data[key]
            continue
        mounted |= {directory / path: data[key] for path, key in paths.items() if key in data}
    return mounted


def all_workloads(root: Path) -> list[Workload]:
    return compose_workloads(root) + kubernetes_workloads(root)
