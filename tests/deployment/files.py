"""Where the deployment files are and how they read: the Dockerfile, the Compose file and the
Kubernetes manifests. Every reader takes the root it reads under, so that a test can hand it a
copy with one thing broken and see that the check notices."""

import shutil
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import dockerfile
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
COMPOSE_FILE = "docker-compose.yml"
#: The erasure agent's, which a company runs beside one of its databases, apart from Gallring.
AGENT_COMPOSE_FILE = "deploy/compose/agent.yml"
COMPOSE_FILES = (COMPOSE_FILE, AGENT_COMPOSE_FILE)
KUBERNETES_DIR = "deploy/kubernetes"
#: The services' kustomization; the migration Job's is its own, in MIGRATE_DIR.
KUSTOMIZATION = f"{KUBERNETES_DIR}/kustomization.yaml"
MIGRATE_DIR = f"{KUBERNETES_DIR}/migrate"
MIGRATE_KUSTOMIZATION = f"{MIGRATE_DIR}/kustomization.yaml"
#: The erasure agent's kustomization, applied in a company system's namespace, not Gallring's.
AGENT_DIR = f"{KUBERNETES_DIR}/agent"
AGENT_KUSTOMIZATION = f"{AGENT_DIR}/kustomization.yaml"
KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml"})
DEPLOY_README = "deploy/README.md"
#: What `deployment_copy` copies: the deployment files and what they mount.
DEPLOYMENT_FILES = (DOCKERFILE, DOCKERIGNORE, COMPOSE_FILE, "deploy")

Manifest = dict[str, Any]


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as pyproject:
        return tomllib.load(pyproject)["project"]["version"]


def compose(root: Path, name: str = COMPOSE_FILE) -> dict[str, Any]:
    """A Compose file as Compose reads it: YAML with its anchors and `<<` merges resolved."""
    return yaml.safe_load((root / name).read_text())


def compose_services(root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(Compose file, service name, service) for every service of every Compose file."""
    return [
        (name, service_name, service)
        for name in COMPOSE_FILES
        for service_name, service in compose(root, name)["services"].items()
    ]


def compose_path(name: str, written: str) -> PurePosixPath:
    """A path a Compose file writes (a secret's or config's ``file``), relative to the
    repository: Compose reads it relative to the file's own directory."""
    parts: list[str] = []
    for part in (PurePosixPath(name).parent / written).parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def _kubernetes_yaml_files(root: Path) -> list[Path]:
    directory = root / KUBERNETES_DIR
    return sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")])


def kubernetes_manifest_files(root: Path) -> list[Path]:
    """Every YAML file of the Kubernetes directory and its subdirectories but kustomizations."""
    return [p for p in _kubernetes_yaml_files(root) if p.name not in KUSTOMIZATION_NAMES]


def kustomization_files(root: Path) -> list[Path]:
    """Every kustomization under the Kubernetes directory: the services' and the migration's."""
    return [p for p in _kubernetes_yaml_files(root) if p.name in KUSTOMIZATION_NAMES]


def kubernetes_manifests(root: Path) -> list[tuple[Path, Manifest]]:
    """Each document of each manifest file, with the file it came from."""
    return [
        (path, document)
        for path in kubernetes_manifest_files(root)
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


def kustomization(path: Path) -> dict[str, Any]:
    """A kustomization file, read."""
    return yaml.safe_load(path.read_text()) or {}


def dockerfile_instructions(root: Path) -> tuple[dockerfile.Command, ...]:
    """The Dockerfile as BuildKit's own parser (in Go) reads it."""
    return dockerfile.parse_file(str(root / DOCKERFILE))


def dockerfile_stages(root: Path) -> list[list[dockerfile.Command]]:
    """The instructions of each build stage, each list starting with its FROM."""
    stages: list[list[dockerfile.Command]] = []
    for instruction in dockerfile_instructions(root):
        if instruction.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def copy_deployment_files(destination: Path) -> Path:
    """The deployment files under ``destination``, laid out as in the repository (the secrets
    a workstation may have under deploy/secrets/ stay behind)."""
    for name in DEPLOYMENT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=_secrets_and_caches, dirs_exist_ok=True
            )
        else:
            shutil.copy2(source, destination / name)
    return destination


def _secrets_and_caches(directory: str, names: list[str]) -> list[str]:
    if Path(directory).name == "secrets":
        return [name for name in names if name != ".gitignore"]
    return [name for name in names if name == "__pycache__"]


def break_file(root: Path, relative_path: str, old: str, new: str) -> None:
    """Replace the first ``old`` in a copied file by ``new``: one deliberate mistake."""
    path = root / relative_path
    text = path.read_text()
    assert old in text, f"{relative_path} no longer holds {old!r}: update this breakage"
    path.write_text(text.replace(old, new, 1))
