"""The Kubernetes manifests against Kubernetes' own schemas (strict: an unknown field is an
error, as `kubectl apply --validate=strict` has it), offline from the kubernetes-validate
package; the two kustomizations (the services', the migration Job's) listing exactly the
manifest files there are, and never together; the pods hardened; no Secret in git; and, with
kubectl at hand, the overlays deploy/README.md shows reaching the migration Job too."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deployment import files

#: The oldest Kubernetes the manifests are meant for (every API they use is older still).
KUBERNETES_VERSION = "1.30.0"
MIGRATE_JOB = f"{files.MIGRATE_DIR}/migrate-job.yaml"
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
    """Every resource a kustomization lists exists, and every manifest file is listed by the
    kustomization of its own directory: the services' or the migration Job's."""
    problems = []
    listers: dict[Path, list[Path]] = {}
    for kustomization in files.kustomization_files(root):
        directory = kustomization.parent
        where = kustomization.relative_to(root).as_posix()
        for resource in files.kustomization(kustomization).get("resources") or []:
            path = (directory / resource).resolve()
            if path.is_dir():
                if not any((path / name).is_file() for name in files.KUSTOMIZATION_NAMES):
                    problems.append(f"{where}: {resource} is a directory without a kustomization")
            elif path.is_file():
                listers.setdefault(path, []).append(kustomization.parent)
            else:
                problems.append(f"{where}: listed but missing: {resource}")
    for path in files.kubernetes_manifest_files(root):
        # Listed by another kustomization too, it would be applied twice, or with the wrong one.
        if listers.get(path.resolve()) != [path.parent.resolve()]:
            where = path.relative_to(root).as_posix()
            problems.append(f"{where}: not listed by its own directory's kustomization alone")
    return problems


def kustomization_kinds(kustomization: Path, seen: frozenset[Path] = frozenset()) -> set[str]:
    """The kinds of what a kustomization holds, its bases' (listed directories) included."""
    kinds: set[str] = set()
    if kustomization.resolve() in seen:  # kustomize refuses a cycle; this only stops there
        return kinds
    for resource in files.kustomization(kustomization).get("resources") or []:
        path = kustomization.parent / resource
        if path.is_dir():
            for name in files.KUSTOMIZATION_NAMES & {p.name for p in path.iterdir()}:
                kinds |= kustomization_kinds(path / name, seen | {kustomization.resolve()})
        elif path.is_file():
            kinds |= {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
    return kinds


def migration_job_problems(root: Path) -> list[str]:
    """The migration Job has a kustomization of its own, without the Deployments: one that held
    both would run the Job with every apply once its TTL removed it (or fail on its immutable
    pod template at the next release), and beside the new pods rather than before them."""
    problems = []
    if "Job" not in kustomization_kinds(root / files.MIGRATE_KUSTOMIZATION):
        problems.append(f"{files.MIGRATE_KUSTOMIZATION}: holds no Job")
    for kustomization in files.kustomization_files(root):
        kinds = kustomization_kinds(kustomization)
        if "Job" in kinds and kinds & {"Deployment", "StatefulSet"}:
            where = kustomization.relative_to(root).as_posix()
            problems.append(f"{where}: holds the migration Job and the services together")
    return problems


def hardening_problems(root: Path) -> list[str]:
    """Non-root, read-only, no privileges, probes, resources and a grace period per container."""
    problems = []
    for path, manifest in files.kubernetes_manifests(root):
        if manifest["kind"] not in {"Deployment", "Job"}:
            continue
        pod = manifest["spec"]["template"]["spec"]
        where = f"{path.relative_to(root)}"
        pod_context = pod.get("securityContext", {})
        if pod_context.get("runAsNonRoot") is not True:
            problems.append(f"{where}: the pod does not require runAsNonRoot")
        if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            # The "restricted" standard wants it of the pod (or of every container): set once.
            problems.append(f"{where}: the pod's seccompProfile is not RuntimeDefault")
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


def secret_problems(root: Path) -> list[str]:
    """No Secret in the manifests, and none generated from values written in a kustomization:
    the Secret is created with kubectl from files (deploy/README.md), or by a secret manager."""
    problems = [
        f"{path.relative_to(root)}: a Secret ({m['metadata']['name']}) kept in git"
        for path, m in files.kubernetes_manifests(root)
        if m["kind"] == "Secret"
    ]
    for kustomization in files.kustomization_files(root):
        for generator in files.kustomization(kustomization).get("secretGenerator") or []:
            problems.append(
                f"{kustomization.relative_to(root)}: secretGenerator {generator.get('name')}"
            )
    return problems


def test_the_manifests_follow_the_kubernetes_schemas() -> None:
    assert files.kubernetes_manifests(files.REPO)
    assert schema_problems(files.REPO) == []


def test_the_kustomizations_list_exactly_the_manifest_files() -> None:
    # The services', the migration Job's and the erasure agent's.
    assert len(files.kustomization_files(files.REPO)) == 3
    assert kustomization_problems(files.REPO) == []


def test_the_migration_job_is_applied_apart_from_the_services() -> None:
    assert migration_job_problems(files.REPO) == []


def test_every_workload_is_hardened_probed_and_bounded() -> None:
    assert hardening_problems(files.REPO) == []


def test_every_deployment_has_a_disruption_budget() -> None:
    assert disruption_budget_problems(files.REPO) == []


def test_no_secret_value_is_in_the_manifests() -> None:
    assert secret_problems(files.REPO) == []


KUBECTL = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [d for d in yaml.safe_load_all(built.stdout) if d]


@KUBECTL
def test_kustomize_builds_the_manifests() -> None:
    for kustomization in files.kustomization_files(files.REPO):
        assert kustomize(kustomization.parent)


#: deploy/README.md's example overlays: each in a ```yaml block whose first line names its file.
OVERLAY = "gallring-production"
_OVERLAY_FILE = re.compile(rf"```yaml\n# ({OVERLAY}/\S+)\n(.*?)```", re.DOTALL)


def readme_overlay(root: Path) -> dict[str, str]:
    """The overlay's files, by path, as deploy/README.md writes them."""
    text = (root / files.DEPLOY_README).read_text()
    return {path: f"# {path}\n{body}" for path, body in _OVERLAY_FILE.findall(text)}


def overlay_problems(root: Path, work: Path) -> list[str]:
    """Build deploy/README.md's overlays of the services and of the migration Job, beside a
    checkout of ``root``'s manifests as the README lays them out: both must deploy the image the
    overlay names, the services with its ConfigMap, the Job apart."""
    overlay = readme_overlay(root)
    if not overlay:
        return [f"{files.DEPLOY_README}: no ```yaml block names a file of {OVERLAY}/"]
    shutil.copytree(root / files.KUBERNETES_DIR, work / "gallring" / files.KUBERNETES_DIR)
    for path, text in overlay.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    release = yaml.safe_load(overlay.get(f"{OVERLAY}/release/kustomization.yaml", "{}")) or {}
    images = release.get("images") or [{}]
    expected = f"{images[0].get('newName')}:{images[0].get('newTag')}"
    if images[0].get("digest"):
        expected += f"@{images[0]['digest']}"
    patch = yaml.safe_load(overlay.get(f"{OVERLAY}/configmap.yaml", "{}")) or {}
    problems = []
    builds = {}
    for name in (OVERLAY, f"{OVERLAY}/migrate"):
        try:
            builds[name] = kustomize(work / name)
        except subprocess.CalledProcessError as failure:
            problems.append(f"{name}: kustomize fails: {failure.stderr.strip()}")
    for name, documents in builds.items():
        for document in documents:
            pod = document.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                if container["image"] != expected:
                    problems.append(
                        f"{name}: {document['kind']} {document['metadata']['name']} runs "
                        f"{container['image']}, not the overlay's {expected}"
                    )
    kinds = {name: {d["kind"] for d in documents} for name, documents in builds.items()}
    if OVERLAY in kinds and ("Deployment" not in kinds[OVERLAY] or "Job" in kinds[OVERLAY]):
        problems.append(f"{OVERLAY}: not the Deployments without the Job: {sorted(kinds[OVERLAY])}")
    migrate = f"{OVERLAY}/migrate"
    if migrate in kinds and kinds[migrate] != {"Job"}:
        problems.append(f"{migrate}: not the Job alone: {sorted(kinds[migrate])}")
    config = [d for d in builds.get(OVERLAY, []) if d["kind"] == "ConfigMap"]
    for key, value in (patch.get("data") or {}).items():
        if any(c.get("data", {}).get(key) != value for c in config):
            problems.append(f"{OVERLAY}: the ConfigMap's {key} is not the overlay's {value}")
    return problems


_SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_BASE_MANIFEST_APPLIED = re.compile(r"\bapply\b.*\s-f\s+\S*deploy/kubernetes/(?!namespace\.yaml\b)")
_UNNAMED_ROLLOUT_STATUS = re.compile(r"\brollout status\s+(?:deployments?|deploy)(?:\s|$)")


def readme_command_problems(root: Path) -> list[str]:
    """deploy/README.md's kubectl commands: manifests applied through kustomize (an overlay),
    the namespace alone excepted, so that none reaches the cluster without the overlay's image
    and ConfigMap; `rollout status` given a Deployment's name, which it needs when there are
    several."""
    problems = []
    for block in _SHELL_BLOCK.findall((root / files.DEPLOY_README).read_text()):
        for command in block.replace("\\\n", " ").splitlines():
            if _BASE_MANIFEST_APPLIED.search(command):
                problems.append(f"applies a manifest past its overlay: {command.strip()}")
            if _UNNAMED_ROLLOUT_STATUS.search(command):
                problems.append(f"rollout status of no named Deployment: {command.strip()}")
    return problems


def test_the_readme_applies_the_manifests_through_kustomize() -> None:
    assert (
        "kubectl apply -k gallring-production/migrate"
        in (files.REPO / files.DEPLOY_README).read_text()
    )
    assert readme_command_problems(files.REPO) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "kubectl apply -k gallring-production/migrate\n",
            "kubectl -n gallring apply -f gallring/deploy/kubernetes/configmap.yaml \\\n"
            "    -f gallring/deploy/kubernetes/migrate/migrate-job.yaml\n",
        ),
        (
            "for name in api purger notifier; do\n"
            "    kubectl -n gallring rollout status deployment/gallring-$name --timeout=10m\n"
            "done\n",
            "kubectl -n gallring rollout status deployment\n",
        ),
    ],
)
def test_a_readme_command_past_the_overlays_is_caught(
    deployment_copy: Path, old: str, new: str
) -> None:
    files.break_file(deployment_copy, files.DEPLOY_README, old, new)
    assert readme_command_problems(deployment_copy)


@KUBECTL
def test_the_readme_overlays_reach_the_migration_job_too(tmp_path: Path) -> None:
    assert len(readme_overlay(files.REPO)) >= 4
    assert overlay_problems(files.REPO, tmp_path) == []


@KUBECTL
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "  - ../../gallring/deploy/kubernetes/migrate\ncomponents:\n  - ../release\n",
            "  - ../../gallring/deploy/kubernetes/migrate\n",
        ),
        (
            "  - ../gallring/deploy/kubernetes\n",
            "  - ../gallring/deploy/kubernetes\n  - ../gallring/deploy/kubernetes/migrate\n",
        ),
        ("patches:\n  - path: configmap.yaml\n", ""),
        # The image's name as the manifests do not write it: kustomize replaces nothing.
        ("  - name: ghcr.io/example/gallring\n", "  - name: gallring\n"),
    ],
)
def test_an_overlay_that_misses_the_job_or_the_configmap_is_caught(
    deployment_copy: Path, tmp_path: Path, old: str, new: str
) -> None:
    files.break_file(deployment_copy, files.DEPLOY_README, old, new)
    assert overlay_problems(deployment_copy, tmp_path)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("deploy/kubernetes/api-deployment.yaml", "readinessProbe:", "readinessProbes:"),
        ("deploy/kubernetes/purger-deployment.yaml", "replicas: 2", 'replicas: "2"'),
        ("deploy/kubernetes/configmap.yaml", '"12"', "12"),
        ("deploy/kubernetes/poddisruptionbudgets.yaml", "policy/v1", "policy/v1beta1"),
        (MIGRATE_JOB, "backoffLimit: 3", "backoffLimit: three"),
        (f"{files.AGENT_DIR}/deployment.yaml", "  replicas: 1", "  replicas: one"),
        (f"{files.AGENT_DIR}/networkpolicy.yaml", "          port: 9103", "          ports: 9103"),
        (f"{files.AGENT_DIR}/configmap.yaml", 'STATUS_PORT: "9103"', "STATUS_PORT: 9103"),
    ],
)
def test_a_manifest_off_the_schema_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert schema_problems(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.KUSTOMIZATION, "  - api-service.yaml\n", ""),
        (files.KUSTOMIZATION, "  - api-service.yaml\n", "  - api-ingress.yaml\n"),
        (files.MIGRATE_KUSTOMIZATION, "  - migrate-job.yaml\n", ""),
        (
            files.KUSTOMIZATION,
            "  - poddisruptionbudgets.yaml\n",
            "  - poddisruptionbudgets.yaml\n  - migrate/migrate-job.yaml\n",
        ),
        (files.AGENT_KUSTOMIZATION, "  - networkpolicy.yaml\n", ""),
        # The agent in Gallring's namespace, beside its services, rather than beside its system:
        (
            files.KUSTOMIZATION,
            "  - networkpolicies.yaml\n",
            "  - networkpolicies.yaml\n  - agent/deployment.yaml\n",
        ),
    ],
)
def test_a_kustomization_out_of_step_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert kustomization_problems(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        # The services' kustomization taking the Job's in as a base:
        (files.KUSTOMIZATION, "  - namespace.yaml\n", "  - namespace.yaml\n  - migrate\n"),
        # The Job's taking the services' in:
        (files.MIGRATE_KUSTOMIZATION, "  - migrate-job.yaml\n", "  - migrate-job.yaml\n  - ..\n"),
        (files.MIGRATE_KUSTOMIZATION, "  - migrate-job.yaml\n", ""),
    ],
)
def test_a_migration_job_applied_with_the_services_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert migration_job_problems(deployment_copy)


def test_a_secret_kept_with_the_manifests_is_caught(deployment_copy: Path) -> None:
    secret = (
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: gallring-secrets\n"
        "stringData:\n  gallring_pseudonym_secret: not-so-secret\n"
    )
    path = deployment_copy / files.KUBERNETES_DIR / "configmap.yaml"
    path.write_text(path.read_text() + secret)
    assert secret_problems(deployment_copy)


def test_a_secret_generated_from_the_kustomization_is_caught(deployment_copy: Path) -> None:
    generator = (
        "secretGenerator:\n  - name: gallring-secrets\n"
        "    literals: [gallring_pseudonym_secret=not-so-secret]\n"
    )
    path = deployment_copy / files.KUSTOMIZATION
    path.write_text(path.read_text() + generator)
    assert secret_problems(deployment_copy)


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
            MIGRATE_JOB,
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            hardening_problems,
        ),
        (
            "deploy/kubernetes/api-deployment.yaml",
            "seccompProfile:\n          type: RuntimeDefault",
            "seccompProfile:\n          type: Unconfined",
            hardening_problems,
        ),
        (
            MIGRATE_JOB,
            "        seccompProfile:\n          type: RuntimeDefault\n",
            "",
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
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            hardening_problems,
        ),
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "        runAsNonRoot: true\n",
            "",
            hardening_problems,
        ),
        (
            f"{files.AGENT_DIR}/poddisruptionbudget.yaml",
            "      app.kubernetes.io/component: agent",
            "      app.kubernetes.io/component: agents",
            disruption_budget_problems,
        ),
    ],
)
def test_a_weaker_workload_is_caught(
    deployment_copy: Path, path: str, old: str, new: str, check
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert check(deployment_copy)
