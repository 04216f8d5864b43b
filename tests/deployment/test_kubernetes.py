"""The Kubernetes manifests against Kubernetes' own schemas (strict: an unknown field is an
error, as `kubectl apply --validate=strict` has it), offline from the kubernetes-validate
package; and the kustomization listing exactly the manifest files there are."""

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deployment import files

#: The oldest Kubernetes the manifests are meant for (every API they use is older still).
KUBERNETES_VERSION = "1.30.0"
#: Everything the workloads need to meet the namespace's "restricted" Pod Security Standard.
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def schema_problems(root: Path) -> list[str]:
    problems = []
    for path, manifest in files.kubernetes_manifests(root):
        name = manifest.get("metadata", {}).get("name")
        where = f"{path.relative_to(root)}: {manifest.get('kind')} {name}"
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = ".".join(map(str, error.path))
            problems.append(f"{where}: {location}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    return problems


def kustomization_problems(root: Path) -> list[str]:
    """Every resource listed exists, and every manifest file is listed."""
    directory = root / files.KUBERNETES_DIR
    listed = {Path(resource).as_posix() for resource in files.kustomization(root)["resources"]}
    present = {p.relative_to(directory).as_posix() for p in files.kubernetes_manifest_files(root)}
    return [f"listed but missing: {name}" for name in sorted(listed - present)] + [
        f"not listed: {name}" for name in sorted(present - listed)
    ]


def hardening_problems(root: Path) -> list[str]:
    """Non-root, read-only, no privileges, probes, resources and a grace period per container."""
    problems = []
    for path, manifest in files.kubernetes_manifests(root):
        if manifest["kind"] not in {"Deployment", "Job"}:
            continue
        pod = manifest["spec"]["template"]["spec"]
        where = f"{path.relative_to(root)}"
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{where}: the pod does not require runAsNonRoot")
        if manifest["kind"] == "Deployment" and pod.get("terminationGracePeriodSeconds", 30) < 30:
            problems.append(f"{where}: terminationGracePeriodSeconds below 30")
        for container in pod["containers"]:
            context = container.get("securityContext", {})
            problems += [
                f"{where}: {container['name']}: securityContext.{key} is not {value}"
                for key, value in RESTRICTED_CONTAINER.items()
                if context.get(key) != value
            ]
            resources = container.get("resources", {})
            if not {"requests", "limits"} <= set(resources):
                problems.append(f"{where}: {container['name']}: no resource requests and limits")
            probes = {"readinessProbe", "livenessProbe"}
            if manifest["kind"] == "Deployment" and not probes <= set(container):
                problems.append(f"{where}: {container['name']}: no readiness and liveness probes")
    return problems


def disruption_budget_problems(root: Path) -> list[str]:
    manifests = [m for _, m in files.kubernetes_manifests(root)]
    budgets = [
        m["spec"]["selector"]["matchLabels"]
        for m in manifests
        if m["kind"] == "PodDisruptionBudget"
    ]
    return [
        f"Deployment {m['metadata']['name']} has no PodDisruptionBudget"
        for m in manifests
        if m["kind"] == "Deployment"
        and not any(budget == m["spec"]["selector"]["matchLabels"] for budget in budgets)
    ]


def test_the_manifests_follow_the_kubernetes_schemas() -> None:
    assert files.kubernetes_manifests(files.REPO)
    assert schema_problems(files.REPO) == []


def test_the_kustomization_lists_exactly_the_manifest_files() -> None:
    assert kustomization_problems(files.REPO) == []


def test_every_workload_is_hardened_probed_and_bounded() -> None:
    assert hardening_problems(files.REPO) == []


def test_every_deployment_has_a_disruption_budget() -> None:
    assert disruption_budget_problems(files.REPO) == []


def test_no_secret_value_is_in_the_manifests() -> None:
    """The Secret is created with kubectl from files (deploy/README.md), never kept in git."""
    kinds = [m["kind"] for _, m in files.kubernetes_manifests(files.REPO)]
    assert "Secret" not in kinds


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_manifests() -> None:
    subprocess.run(
        ["kubectl", "kustomize", str(files.REPO / files.KUBERNETES_DIR)],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("deploy/kubernetes/api-deployment.yaml", "readinessProbe:", "readinessProbes:"),
        ("deploy/kubernetes/purger-deployment.yaml", "replicas: 2", 'replicas: "2"'),
        ("deploy/kubernetes/configmap.yaml", '"12"', "12"),
        ("deploy/kubernetes/poddisruptionbudgets.yaml", "policy/v1", "policy/v1beta1"),
        ("deploy/kubernetes/migrate-job.yaml", "backoffLimit: 3", "backoffLimit: three"),
    ],
)
def test_a_manifest_off_the_schema_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert schema_problems(deployment_copy)


@pytest.mark.parametrize(
    ("old", "new"),
    [("  - api-service.yaml\n", ""), ("  - api-service.yaml\n", "  - api-ingress.yaml\n")],
)
def test_a_kustomization_out_of_step_is_caught(deployment_copy: Path, old: str, new: str) -> None:
    files.break_file(deployment_copy, files.KUSTOMIZATION, old, new)
    assert kustomization_problems(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new", "check"),
    [
        (
            "deploy/kubernetes/api-deployment.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            hardening_problems,
        ),
        (
            "deploy/kubernetes/migrate-job.yaml",
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            hardening_problems,
        ),
        (
            "deploy/kubernetes/notifier-deployment.yaml",
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 10",
            hardening_problems,
        ),
        (
            "deploy/kubernetes/purger-deployment.yaml",
            "          livenessProbe:",
            "          livenessProbeX:",
            hardening_problems,
        ),
        (
            "deploy/kubernetes/poddisruptionbudgets.yaml",
            "      app.kubernetes.io/component: notifier",
            "      app.kubernetes.io/component: notifiers",
            disruption_budget_problems,
        ),
    ],
)
def test_a_weaker_workload_is_caught(
    deployment_copy: Path, path: str, old: str, new: str, check
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert check(deployment_copy)
