"""checkov's Kubernetes and Dockerfile checks, offline (``--skip-download``): every check passes
but the deliberate exceptions below, each with its reason; and each exception still fails, so
that the list says what is true. deploy/README.md's overlay, built with kubectl, needs none: its
namespace and its image's digest settle them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deployment import files
from tests.deployment.test_kubernetes import KUBECTL, OVERLAY, kustomize, readme_overlay

CHECKOV = str(Path(sys.executable).parent / "checkov")

#: The checks the base manifests fail on purpose, and why.
KUBERNETES_EXCEPTIONS = {
    "CKV_K8S_21": "The default namespace should not be used: the kustomization gives every "
    "manifest `namespace: gallring` (the agent's, applied in a company system's namespace, "
    "leaves it to its overlay); checkov reads the files one by one, without it.",
    "CKV_K8S_43": "Image should use digest: the base names an example image, which has no "
    "digest; a deployment's overlay pins its own (kustomize `images: … digest:`, "
    "deploy/README.md), and there the check passes.",
    "CKV_K8S_15": "Image pull policy should be Always: the images are pinned (a release tag "
    "never moved; a digest in the overlay, where the check passes), so IfNotPresent runs what "
    "was pinned, and a pod that restarts while the registry is away still starts.",
}


def checkov(target: Path, framework: str) -> dict[str, set[str]]:
    """The checks that fail on ``target`` (a directory, or one file), by check id, with the
    resources that fail each."""
    where = ["-d", str(target)] if target.is_dir() else ["-f", str(target)]
    options = ["--framework", framework, "--skip-download", "--quiet", "--output", "json"]
    run = subprocess.run(
        [CHECKOV, *where, *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr  # 1: some check failed
    reports = json.loads(run.stdout)
    failed: dict[str, set[str]] = {}
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", {})
        assert summary.get("parsing_errors", 0) == 0, summary
        assert summary.get("resource_count", 0) > 0, summary  # it read something
        for check in report.get("results", {}).get("failed_checks", []):
            failed.setdefault(check["check_id"], set()).add(check["resource"])
    return failed


def test_the_manifests_pass_every_check_but_the_listed_exceptions() -> None:
    failed = checkov(files.REPO / files.KUBERNETES_DIR, "kubernetes")
    unexpected = {c: r for c, r in failed.items() if c not in KUBERNETES_EXCEPTIONS}
    assert unexpected == {}
    # An exception that no longer fails is no exception: take it off the list.
    assert set(KUBERNETES_EXCEPTIONS) <= set(failed)


def test_a_pod_without_a_network_policy_is_caught(deployment_copy: Path) -> None:
    (deployment_copy / files.KUBERNETES_DIR / "networkpolicies.yaml").unlink()
    failed = checkov(deployment_copy / files.KUBERNETES_DIR, "kubernetes")
    assert "CKV2_K8S_6" in failed  # "Minimize the admission of pods which lack a NetworkPolicy"


@KUBECTL
def test_the_readme_overlay_passes_every_check(tmp_path: Path) -> None:
    """With its namespace and its digest, the overlay needs none of the exceptions."""
    shutil.copytree(files.REPO / files.KUBERNETES_DIR, tmp_path / "gallring" / files.KUBERNETES_DIR)
    for path, text in readme_overlay(files.REPO).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    built = tmp_path / "built"
    built.mkdir()
    for name in (OVERLAY, f"{OVERLAY}/migrate"):
        documents = kustomize(tmp_path / name)
        (built / f"{name.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(documents))
    assert checkov(built, "kubernetes") == {}


def test_the_dockerfile_passes_every_check() -> None:
    assert checkov(files.REPO / files.DOCKERFILE, "dockerfile") == {}


def test_a_dockerfile_without_a_health_check_is_caught(deployment_copy: Path) -> None:
    dockerfile = deployment_copy / files.DOCKERFILE
    dockerfile.write_text(
        "\n".join(
            line
            for line in dockerfile.read_text().splitlines()
            if not line.startswith(("HEALTHCHECK", "    CMD"))
        )
    )
    assert "CKV_DOCKER_2" in checkov(dockerfile, "dockerfile")
