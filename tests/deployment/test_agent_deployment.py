"""The erasure agent's deployment files (deploy/compose/agent.yml and deploy/kubernetes/agent/):
the dataset file each mounts passes `gallring agent check` and takes its database URL from a
secret file the container has; one agent per system, the old one gone before a new one starts;
its Compose container as locked down as its pod. What the agent shares with Gallring's services
(probes, settings, image tag, schemas, network policies, checkov) is checked with theirs."""

from pathlib import Path, PurePosixPath

import pytest

from services.agent.dataset import Dataset
from services.agent.dataset_file import DatasetError, parse_dataset
from services.agent.sample import SAMPLE_DATASET
from tests.deployment import files
from tests.deployment.workloads import Workload, all_workloads

DATASET_VARIABLE = "GALLRING_AGENT_DATASET_FILE"
AGENT_DEPLOYMENT = f"{files.AGENT_DIR}/deployment.yaml"
AGENT_CONFIGMAP = f"{files.AGENT_DIR}/configmap.yaml"
AGENT_DATASET_FILE = "deploy/compose/agent-dataset.yaml"


def agent_workloads(root: Path) -> list[Workload]:
    return [w for w in all_workloads(root) if w.command[:2] == ("agent", "run")]


def mounted_dataset(workload: Workload) -> tuple[str, str] | tuple[None, str]:
    """(the dataset file's text, where it is) or (None, why there is none)."""
    path = workload.environment.get(DATASET_VARIABLE)
    if not path:
        return None, f"{DATASET_VARIABLE} is not set"
    text = workload.config_files.get(PurePosixPath(path))
    if text is None:
        return None, f"{DATASET_VARIABLE} is {path}, where no config or ConfigMap is mounted"
    return text, path


def dataset_problems(root: Path) -> list[str]:
    """Each agent's dataset file, as the container sees it, is one `gallring agent check`
    accepts, and names its databases by secret files mounted in the container: a URL in a
    variable would be a secret written out (and none is set)."""
    problems = []
    for workload in agent_workloads(root):
        text, where = mounted_dataset(workload)
        if text is None:
            problems.append(f"{workload.where}: {where}")
            continue
        try:
            dataset = parse_dataset(text, source=where)
        except DatasetError as error:
            problems += [f"{workload.where}: {problem}" for problem in error.problems]
            continue
        sources = {"database": dataset.database, "index_database": dataset.index_database}
        for name, source in sources.items():
            if source is None:
                continue
            if source.url_file is None:
                problems.append(
                    f"{workload.where}: {name}: url_env {source.url_env}: give url_file, a "
                    "secret file, rather than the URL in a variable"
                )
            elif PurePosixPath(source.url_file) not in workload.secret_files and not (
                workload.secret_file_names_in(str(PurePosixPath(source.url_file).parent)) & {"*"}
            ):
                problems.append(
                    f"{workload.where}: {name}: url_file {source.url_file} is no secret file "
                    "the container has"
                )
    return problems


def _without_database(dataset: Dataset) -> dict[str, object]:
    return dataset.model_dump(exclude={"database", "index_database"})


def examples_apart_from_the_sample(root: Path) -> list[str]:
    """The examples' dataset files are services/agent/sample.py's collection system, as their
    comments say, but for where the URL comes from: a change to the sample reaches them."""
    sample = _without_database(parse_dataset(SAMPLE_DATASET, source="SAMPLE_DATASET"))
    problems = []
    for workload in agent_workloads(root):
        text, where = mounted_dataset(workload)
        if text is None:
            continue  # dataset_problems says so
        try:
            dataset = parse_dataset(text, source=where)
        except DatasetError:
            continue  # likewise
        if _without_database(dataset) != sample:
            problems.append(f"{workload.where}: the dataset file is not sample.py's")
    return problems


def single_agent_problems(root: Path) -> list[str]:
    """One agent per system, and at a rollout the old pod is gone before the new one starts:
    two would build the same index side by side."""
    problems = [
        f"{workload.where}: {workload.replicas} replicas, not one"
        for workload in agent_workloads(root)
        if workload.replicas != 1
    ]
    for path, manifest in files.kubernetes_manifests(root):
        if manifest["kind"] != "Deployment":
            continue
        containers = manifest["spec"]["template"]["spec"]["containers"]
        if not any(c.get("args", [])[:2] == ["agent", "run"] for c in containers):
            continue
        strategy = manifest["spec"].get("strategy") or {"type": "RollingUpdate"}
        surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
        if strategy["type"] != "Recreate" and surge not in (0, "0%"):
            problems.append(
                f"{path.relative_to(root)}: a rollout would run a new agent beside the old one "
                f"({strategy['type']}, maxSurge {surge})"
            )
    return problems


def compose_hardening_problems(root: Path) -> list[str]:
    """The agent's container in Compose as its pod: a read-only root filesystem with /tmp in
    memory, no capabilities, no privilege escalation."""
    problems = []
    for name, service in files.compose(root, files.AGENT_COMPOSE_FILE)["services"].items():
        where = f"{files.AGENT_COMPOSE_FILE}: {name}"
        if service.get("read_only") is not True:
            problems.append(f"{where}: the root filesystem is writable (read_only)")
        if not any(str(mount).split(":", 1)[0] == "/tmp" for mount in service.get("tmpfs", [])):
            problems.append(f"{where}: no tmpfs on /tmp")
        if "ALL" not in service.get("cap_drop", []):
            problems.append(f"{where}: capabilities kept (cap_drop: [ALL])")
        if "no-new-privileges:true" not in service.get("security_opt", []):
            problems.append(f"{where}: privileges may be escalated (no-new-privileges:true)")
    return problems


def test_each_agent_mounts_a_dataset_file_that_passes_agent_check() -> None:
    assert len(agent_workloads(files.REPO)) == 2  # Compose's and Kubernetes'
    assert dataset_problems(files.REPO) == []


def test_the_compose_dataset_file_passes_agent_check_where_it_lies() -> None:
    """The file the README has the company check and edit, read from the repository."""
    text = (files.REPO / AGENT_DATASET_FILE).read_text()
    assert parse_dataset(text, source=AGENT_DATASET_FILE).system == "collection"


def test_the_example_datasets_are_the_samples() -> None:
    assert examples_apart_from_the_sample(files.REPO) == []


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # Not what `gallring agent check` accepts:
        (
            AGENT_DATASET_FILE,
            "{table: letters, erase: delete}",
            "{table: letter, erase: delete}",
            "letter",
        ),
        (
            AGENT_CONFIGMAP,
            "changed: updated_at\n      cases:",
            "changed: 7\n      cases:",
            "changed",
        ),
        (AGENT_DATASET_FILE, "  url_file: /run/secrets/", "  url: postgresql://u:p@db/", "url"),
        # The URL from a variable, or from a file the container does not have:
        (
            AGENT_CONFIGMAP,
            "  url_file: /run/secrets/gallring/collection_database_url",
            "  url_env: COLLECTION_DATABASE_URL",
            "give url_file",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "      - collection_database_url # the dataset",
            "      # the dataset",
            "is no secret file the container has",
        ),
        (
            AGENT_DEPLOYMENT,
            "              - key: collection_database_url\n"
            "                path: collection_database_url\n",
            "",
            "is no secret file the container has",
        ),
        # The dataset file mounted elsewhere than the setting says, or not at all:
        (
            AGENT_DEPLOYMENT,
            "              mountPath: /etc/gallring\n",
            "              mountPath: /etc/agent\n",
            "no config",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "        target: /etc/gallring/dataset.yaml",
            "        target: /dataset.yaml",
            "no config",
        ),
        (
            AGENT_DEPLOYMENT,
            "                path: dataset.yaml",
            "                path: data.yaml",
            "no config",
        ),
        (
            AGENT_CONFIGMAP,
            "  GALLRING_AGENT_DATASET_FILE: /etc/gallring/dataset.yaml\n",
            "",
            "GALLRING_AGENT_DATASET_FILE is not set",
        ),
    ],
)
def test_a_dataset_file_the_agent_could_not_use_is_caught(
    deployment_copy: Path, path: str, old: str, new: str, expected: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    problems = dataset_problems(deployment_copy)
    assert any(expected in problem for problem in problems), problems


def test_an_example_dataset_apart_from_the_sample_is_caught(deployment_copy: Path) -> None:
    old = "      - {table: newsletter_subscribers, erase: delete}"
    files.break_file(
        deployment_copy, AGENT_DATASET_FILE, old, old.replace("delete", "{mask: [email]}")
    )
    assert examples_apart_from_the_sample(deployment_copy)


def test_one_agent_per_system_and_never_two_at_a_rollout() -> None:
    assert single_agent_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (AGENT_DEPLOYMENT, "  replicas: 1", "  replicas: 2"),
        (
            AGENT_DEPLOYMENT,
            "  strategy:\n    type: Recreate\n",
            "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n",
        ),
        (AGENT_DEPLOYMENT, "  strategy:\n    type: Recreate\n", ""),
        (
            files.AGENT_COMPOSE_FILE,
            '    command: ["agent", "run"]\n',
            '    command: ["agent", "run"]\n    deploy:\n      replicas: 2\n',
        ),
    ],
)
def test_a_second_agent_is_caught(deployment_copy: Path, path: str, old: str, new: str) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert single_agent_problems(deployment_copy)


def test_a_rolling_update_without_surge_is_one_agent_too(deployment_copy: Path) -> None:
    old = "  strategy:\n    type: Recreate\n"
    new = (
        "  strategy:\n    type: RollingUpdate\n"
        "    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 1\n"
    )
    files.break_file(deployment_copy, AGENT_DEPLOYMENT, old, new)
    assert single_agent_problems(deployment_copy) == []


def test_the_compose_agent_is_locked_down_as_its_pod() -> None:
    assert compose_hardening_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    read_only: true\n", ""),
        ("    cap_drop: [ALL]\n", ""),
        ("      - no-new-privileges:true\n", "      - no-new-privileges:false\n"),
        ("      - /tmp:size=64m\n", "      - /var/tmp:size=64m\n"),
    ],
)
def test_a_weaker_compose_agent_is_caught(deployment_copy: Path, old: str, new: str) -> None:
    files.break_file(deployment_copy, files.AGENT_COMPOSE_FILE, old, new)
    assert compose_hardening_problems(deployment_copy)


def test_the_agents_kustomization_holds_neither_gallrings_services_nor_its_namespace() -> None:
    """Applied in the system's namespace: it names none (the overlay does), and brings nothing of
    Gallring's own along."""
    kustomization = files.kustomization(files.REPO / files.AGENT_KUSTOMIZATION)
    assert "namespace" not in kustomization
    kinds = {
        manifest["kind"]
        for path, manifest in files.kubernetes_manifests(files.REPO)
        if path.parent == files.REPO / files.AGENT_DIR
    }
    assert kinds == {"ConfigMap", "Deployment", "PodDisruptionBudget", "NetworkPolicy"}
    names = {
        manifest["metadata"]["name"]
        for path, manifest in files.kubernetes_manifests(files.REPO)
        if path.parent == files.REPO / files.AGENT_DIR
    }
    assert all(name.startswith("gallring-agent") for name in names), names
