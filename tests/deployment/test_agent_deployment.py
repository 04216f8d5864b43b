"""The erasure agent's deployment files (deploy/compose/agent.yml and deploy/kubernetes/agent/):
the dataset file each mounts passes `gallring agent check` and takes its database URL from a
secret file the container has; one agent per system, the old one gone before a new one starts;
its Compose container as locked down as its pod. What the agent shares with Gallring's services
(probes, settings, image tag, schemas, network policies, checkov) is checked with theirs."""

import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from services.agent.dataset import Dataset
from services.agent.dataset_file import DatasetError, parse_dataset
from services.agent.sample import SAMPLE_DATASET
from tests.deployment import files
from tests.deployment.test_checkov import checkov
from tests.deployment.test_kubernetes import KUBECTL, OVERLAY, kustomize, readme_overlay
from tests.deployment.test_network_policies import allowed, pod_in, pod_labels
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
    accepts, and names its databases by secret files mounted in the container: the URL carries
    a password, and a variable holding it would be a secret written out."""
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
                continue
            url_file = PurePosixPath(source.url_file)
            # A Secret mounted whole ("*") holds whatever key the file names.
            whole_secret = "*" in workload.secret_file_names_in(str(url_file.parent))
            if url_file not in workload.secret_files and not whole_secret:
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


#: deploy/README.md's overlay of the agent's kustomization: ```yaml blocks whose first line
#: names a file of it, beside the services' overlay (whose release Component it includes).
AGENT_OVERLAY = "collection-agent"
AGENT_OVERLAY_NAMESPACE = "collection"
#: The first line of the overlay's dataset file here, to tell it from the base's.
OVERLAY_DATASET_MARK = "# the overlay's dataset file\n"
_AGENT_OVERLAY_FILE = re.compile(rf"```yaml\n# ({AGENT_OVERLAY}/\S+)\n(.*?)```", re.DOTALL)


def build_agent_overlay(root: Path, work: Path) -> list[dict[str, Any]]:
    """deploy/README.md's agent overlay, built with kubectl beside a checkout of ``root``'s
    manifests and the services' overlay, its dataset file the base ConfigMap's."""
    shutil.copytree(root / files.KUBERNETES_DIR, work / "gallring" / files.KUBERNETES_DIR)
    readme = (root / files.DEPLOY_README).read_text()
    blocks = {path: f"# {path}\n{body}" for path, body in _AGENT_OVERLAY_FILE.findall(readme)}
    for path, text in {**readme_overlay(root), **blocks}.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    base = yaml.safe_load_all((root / AGENT_CONFIGMAP).read_text())
    dataset = next(d for d in base if d["metadata"]["name"] == "gallring-agent-dataset")
    (work / AGENT_OVERLAY / "collection.yaml").write_text(
        OVERLAY_DATASET_MARK + dataset["data"]["dataset.yaml"]
    )
    return kustomize(work / AGENT_OVERLAY)


def agent_overlay_problems(documents: list[dict[str, Any]], root: Path) -> list[str]:
    """Everything in the system's namespace; the pod on the release's image, mounting the
    dataset file the overlay gives, which `gallring agent check` accepts; the database the
    overlay's policy names reachable, and nothing of the base's example left."""
    problems = [
        f"{d['kind']} {d['metadata']['name']}: in namespace {d['metadata'].get('namespace')}"
        for d in documents
        if d["metadata"].get("namespace") != AGENT_OVERLAY_NAMESPACE
    ]
    release = yaml.safe_load(
        readme_overlay(root).get(f"{OVERLAY}/release/kustomization.yaml", "{}")
    )
    image = (release or {}).get("images", [{}])[0]
    expected = f"{image.get('newName')}:{image.get('newTag')}@{image.get('digest')}"
    config_maps = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ConfigMap"}
    for document in documents:
        if document["kind"] != "Deployment":
            continue
        pod = document["spec"]["template"]["spec"]
        problems += [
            f"Deployment runs {c['image']}, not the release's {expected}"
            for c in pod["containers"]
            if c["image"] != expected
        ]
        for volume in pod.get("volumes", []):
            name = volume.get("configMap", {}).get("name")
            if name is not None and name not in config_maps:
                problems.append(f"Deployment mounts the ConfigMap {name}, which is not built")
    dataset = config_maps.get("gallring-agent-dataset", {}).get("data", {}).get("dataset.yaml")
    if not (dataset or "").startswith(OVERLAY_DATASET_MARK):
        problems.append("the pod mounts a dataset file other than the overlay's")
    try:
        parse_dataset(dataset or "", source=f"{AGENT_OVERLAY}/collection.yaml")
    except DatasetError as error:
        problems += error.problems
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    agent = pod_labels(root)["agent"]
    database = {"cnpg.io/cluster": "collection-db"}
    reach = [
        (pod_in(AGENT_OVERLAY_NAMESPACE, database), 5432, True),
        (
            pod_in(AGENT_OVERLAY_NAMESPACE, {"app.kubernetes.io/name": "collection-database"}),
            5432,
            False,
        ),
        (pod_in("kafka", {"strimzi.io/kind": "Kafka"}), 9092, True),
        (pod_in("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}), 443, True),
    ]
    for peer, port, expected_allowed in reach:
        if (
            allowed(policies, agent, "egress", peer, port, "TCP", AGENT_OVERLAY_NAMESPACE)
            is not expected_allowed
        ):
            problems.append(
                f"the agent {'cannot' if expected_allowed else 'can'} reach {peer} on {port}"
            )
    return problems


@KUBECTL
def test_the_readme_agent_overlay_builds_in_its_namespace_with_the_release(tmp_path: Path) -> None:
    documents = build_agent_overlay(files.REPO, tmp_path)
    assert {d["kind"] for d in documents} == {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    assert agent_overlay_problems(documents, files.REPO) == []


@KUBECTL
def test_the_readme_agent_overlay_passes_every_checkov_check(tmp_path: Path) -> None:
    """With its namespace and the release's digest, it needs none of the base's exceptions."""
    documents = build_agent_overlay(files.REPO, tmp_path)
    built = tmp_path / "built"
    built.mkdir()
    (built / "collection-agent.yaml").write_text(yaml.safe_dump_all(documents))
    assert checkov(built, "kubernetes") == {}


@KUBECTL
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("namespace: collection\nresources:", "resources:"),
        ("  - ../gallring-production/release\n", ""),
        (
            "  - name: gallring-agent-dataset\n    behavior: replace",
            "  - name: agent-dataset\n    behavior: create",
        ),
        (
            "              cnpg.io/cluster: collection-db\n",
            "              cnpg.io/cluster: collection\n",
        ),
    ],
)
def test_a_readme_agent_overlay_that_misses_something_is_caught(
    deployment_copy: Path, tmp_path: Path, old: str, new: str
) -> None:
    files.break_file(deployment_copy, files.DEPLOY_README, old, new)
    assert agent_overlay_problems(build_agent_overlay(deployment_copy, tmp_path), deployment_copy)
