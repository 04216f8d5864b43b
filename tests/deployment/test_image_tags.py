"""Every image the deployment runs or builds from is pinned to one version, and Gallring's own
image carries the project's version, so that the files name the software they deploy."""

from pathlib import Path

import pytest

from tests.deployment import files
from tests.deployment.images import parse_image, pin_problem


def image_references(root: Path) -> list[tuple[str, str]]:
    """(where, image) for every FROM, every Compose file's service and every Kubernetes
    container."""
    references = []
    stage_names: set[str] = set()
    for instruction in files.dockerfile_instructions(root):
        if instruction.cmd == "FROM":
            image, *alias = instruction.value
            if image.lower() not in stage_names:  # FROM an earlier stage is no image
                references.append((f"{files.DOCKERFILE}: FROM", image))
            if len(alias) == 2 and alias[0].upper() == "AS":
                stage_names.add(alias[1].lower())
    for compose_file, name, service in files.compose_services(root):
        references.append((f"{compose_file}: {name}", service.get("image", "")))
    for path, manifest in files.kubernetes_manifests(root):
        pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            references.append(
                (f"{path.relative_to(root)}: {container['name']}", container["image"])
            )
    return references


def unpinned_images(root: Path) -> list[str]:
    return [
        f"{where}: {problem}"
        for where, image in image_references(root)
        if (problem := pin_problem(image)) is not None
    ]


def own_image_problems(root: Path) -> list[str]:
    """Gallring's image is tagged with the version in pyproject.toml, everywhere."""
    version = files.project_version()
    return [
        f"{where}: {image} is not tagged {version}"
        for where, image in image_references(root)
        if parse_image(image).name == "gallring" and parse_image(image).tag != version
    ]


def test_every_image_is_pinned() -> None:
    assert unpinned_images(files.REPO) == []


def test_gallring_images_carry_the_project_version() -> None:
    assert [i for _, i in image_references(files.REPO) if parse_image(i).name == "gallring"]
    assert own_image_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("python:3.11.14-slim-bookworm", True),
        ("postgres:17.6-bookworm", True),
        ("ghcr.io/kafbat/kafka-ui:v1.5.0", True),
        ("localhost:5000/gallring:0.1.0", True),
        ("nginx@sha256:" + "a" * 64, True),
        ("nginx", False),
        ("localhost:5000/gallring", False),
        ("apache/kafka:latest", False),
        ("python:3", False),
        ("python:3.11-slim", False),
        ("postgres:17", False),
        ("postgres:bookworm", False),
        ("nginx@sha256:abc", False),
    ],
)
def test_what_counts_as_pinned(image: str, pinned: bool) -> None:
    assert (pin_problem(image) is None) is pinned


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.COMPOSE_FILE, "apache/kafka:3.9.1", "apache/kafka:latest"),
        (files.COMPOSE_FILE, "ghcr.io/kafbat/kafka-ui:v1.5.0", "ghcr.io/kafbat/kafka-ui"),
        (
            files.DOCKERFILE,
            "FROM python:3.11.14-slim-bookworm AS runtime",
            "FROM python:3-slim AS runtime",
        ),
        ("deploy/kubernetes/notifier-deployment.yaml", "gallring:0.1.0", "gallring:0.1"),
    ],
)
def test_an_unpinned_image_is_caught(deployment_copy: Path, path: str, old: str, new: str) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert unpinned_images(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.COMPOSE_FILE, "image: gallring:0.1.0", "image: gallring:0.0.9"),
        (f"{files.MIGRATE_DIR}/migrate-job.yaml", "gallring:0.1.0", "gallring:0.2.0"),
        (files.AGENT_COMPOSE_FILE, "image: gallring:0.1.0", "image: gallring:0.0.9"),
        (f"{files.AGENT_DIR}/deployment.yaml", "gallring:0.1.0", "gallring:0.2.0"),
    ],
)
def test_a_stale_gallring_tag_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert own_image_problems(deployment_copy)
