"""The NetworkPolicies of deploy/kubernetes/networkpolicies.yaml, evaluated as Kubernetes does
for the connections that matter: the notifier reaches the internet over https and no private,
link-local or otherwise internal address; the API is reached from the ingress controller's and
the monitoring namespaces alone; the workers' status ports from the monitoring namespace alone;
every pod reaches DNS, and each what it needs of Kafka and PostgreSQL, and nothing else. And the
erasure agent's (deploy/kubernetes/agent/), in a company system's namespace: DNS, Kafka, the API
through the ingress controller and the system's database, its status port from monitoring, and
the namespace's other pods left as they were.

The evaluation covers what the manifests use: pod and namespace selectors (``matchLabels``,
``matchExpressions`` with ``In``), ``ipBlock`` with ``except``, and ports by number."""

import ipaddress
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deployment import files
from tests.deployment.test_kubernetes import KUBECTL, OVERLAY, kustomize, readme_overlay

NAMESPACE = "gallring"
#: Where the README's overlay applies the agent: its system's namespace.
AGENT_NAMESPACE = "collection"


@dataclass(frozen=True)
class Peer:
    """The other end of a connection: a pod (its namespace and labels) or an address outside
    the cluster."""

    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    address: str | None = None


def internet(address: str) -> Peer:
    return Peer(address=address)


def pod_in(namespace: str, labels: dict[str, str]) -> Peer:
    return Peer(namespace=namespace, labels=labels)


KAFKA = pod_in("kafka", {"strimzi.io/kind": "Kafka"})
POSTGRES = pod_in("postgres", {"cnpg.io/cluster": "postgres"})
DNS = pod_in("kube-system", {"k8s-app": "kube-dns"})
INGRESS = pod_in("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = pod_in("monitoring", {"app.kubernetes.io/name": "prometheus"})
ELSEWHERE = pod_in("default", {"app": "someone"})
#: Another Gallring pod, as an attacker who took one over would connect from it.
NEIGHBOUR = pod_in(NAMESPACE, {"app.kubernetes.io/name": "gallring"})


def policies(root: Path, directory: str = files.KUBERNETES_DIR) -> list[dict[str, Any]]:
    """The policies of one kustomization's directory: they hold in its namespace alone (the
    services' in Gallring's, the agent's in its system's)."""
    return [
        manifest
        for path, manifest in files.kubernetes_manifests(root)
        if manifest.get("kind") == "NetworkPolicy" and path.parent == root / directory
    ]


def pod_labels(root: Path) -> dict[str, dict[str, str]]:
    """Each workload's pod labels, by its component: api, purger, notifier, migrate."""
    pods = {}
    for _, manifest in files.kubernetes_manifests(root):
        template = manifest.get("spec", {}).get("template")
        if template is not None:
            labels = template["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = labels
    return pods


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", f"not evaluated here: {expression}"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _peer_matches(rule_peer: dict[str, Any], peer: Peer, namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        if peer.address is None:
            return False
        address = ipaddress.ip_address(peer.address)
        block = rule_peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        namespace_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _selects(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif peer.namespace != namespace:  # a podSelector alone: pods of the policy's namespace
        return False
    return "podSelector" not in rule_peer or _selects(rule_peer["podSelector"], peer.labels)


def _port_matches(rule: dict[str, Any], port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return ports is None or any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    )


def allowed(
    root: Path | list[dict[str, Any]],
    pod: dict[str, str],
    direction: str,
    peer: Peer,
    port: int,
    protocol: str = "TCP",
    namespace: str = NAMESPACE,
) -> bool:
    """Whether Kubernetes lets ``pod`` connect to ``peer`` (``egress``) or ``peer`` connect to
    ``pod`` (``ingress``), under the policies of ``root``'s manifests (or those given): allowed
    if no policy isolates the pod that way, else if a rule of one of those that do allows it.
    The policies and the pod are in ``namespace``."""
    policy_type, peers_key = {"egress": ("Egress", "to"), "ingress": ("Ingress", "from")}[direction]
    isolating = [
        policy["spec"]
        for policy in (policies(root) if isinstance(root, Path) else root)
        if _selects(policy["spec"]["podSelector"], pod)
        and policy_type in policy["spec"].get("policyTypes", ["Ingress"])
    ]
    if not isolating:
        return True
    return any(
        _port_matches(rule, port, protocol)
        and (
            peers_key not in rule or any(_peer_matches(p, peer, namespace) for p in rule[peers_key])
        )
        for spec in isolating
        for rule in spec.get(direction, [])
    )


# The notifier's webhooks: public addresses over https, and none of the addresses an attacker
# would aim a registered webhook URL at (shared/webhooks/url_vetting.py refuses them too).
NOTIFIER_EGRESS = [
    (internet("93.184.215.14"), 443, True),
    (internet("2606:2800:21f:cb07:6820:80da:af6b:8b2c"), 443, True),
    (internet("93.184.215.14"), 80, False),  # webhooks are https
    (internet("10.0.0.5"), 443, False),
    (internet("172.20.1.1"), 443, False),
    (internet("192.168.1.10"), 443, False),
    (internet("100.64.0.1"), 443, False),
    (internet("127.0.0.1"), 443, False),
    (internet("169.254.169.254"), 443, False),  # cloud metadata
    (internet("::ffff:10.0.0.5"), 443, False),
    (internet("64:ff9b::a00:5"), 443, False),
    (internet("fd00::1"), 443, False),
    (internet("fe80::1"), 443, False),
    (internet("::1"), 443, False),
    (KAFKA, 9092, True),
    (POSTGRES, 5432, True),
    (ELSEWHERE, 443, False),
]


@pytest.mark.parametrize(("peer", "port", "expected"), NOTIFIER_EGRESS)
def test_the_notifier_reaches_the_internet_and_nothing_internal(
    peer: Peer, port: int, expected: bool
) -> None:
    notifier = pod_labels(files.REPO)["notifier"]
    assert allowed(files.REPO, notifier, "egress", peer, port) is expected


@pytest.mark.parametrize(
    ("component", "peer", "port", "expected"),
    [
        ("api", KAFKA, 9092, True),
        ("api", POSTGRES, 5432, True),
        ("api", internet("93.184.215.14"), 443, False),
        ("api", ELSEWHERE, 8000, False),
        ("purger", KAFKA, 9092, True),
        ("purger", POSTGRES, 5432, True),
        ("purger", internet("93.184.215.14"), 443, False),
        ("migrate", POSTGRES, 5432, True),
        ("migrate", KAFKA, 9092, False),
        ("migrate", internet("93.184.215.14"), 443, False),
    ],
)
def test_the_others_reach_kafka_and_postgresql_alone(
    component: str, peer: Peer, port: int, expected: bool
) -> None:
    pod = pod_labels(files.REPO)[component]
    assert allowed(files.REPO, pod, "egress", peer, port) is expected


@pytest.mark.parametrize("component", ["api", "purger", "notifier", "migrate"])
def test_every_pod_resolves_names(component: str) -> None:
    pod = pod_labels(files.REPO)[component]
    assert allowed(files.REPO, pod, "egress", DNS, 53, "UDP")
    assert allowed(files.REPO, pod, "egress", DNS, 53, "TCP")
    assert not allowed(files.REPO, pod, "egress", ELSEWHERE, 53, "UDP")


@pytest.mark.parametrize(
    ("component", "peer", "port", "expected"),
    [
        ("api", INGRESS, 8000, True),
        ("api", PROMETHEUS, 8000, True),
        ("api", ELSEWHERE, 8000, False),
        ("api", NEIGHBOUR, 8000, False),
        ("purger", PROMETHEUS, 9101, True),
        ("purger", INGRESS, 9101, False),
        ("purger", ELSEWHERE, 9101, False),
        ("notifier", PROMETHEUS, 9102, True),
        ("notifier", INGRESS, 9102, False),
        ("notifier", NEIGHBOUR, 9102, False),
        ("migrate", PROMETHEUS, 9101, False),
    ],
)
def test_who_reaches_the_api_and_the_status_ports(
    component: str, peer: Peer, port: int, expected: bool
) -> None:
    pod = pod_labels(files.REPO)[component]
    assert allowed(files.REPO, pod, "ingress", peer, port) is expected


def test_without_the_policies_everything_would_be_allowed(deployment_copy: Path) -> None:
    """The evaluation itself: no policy, no isolation."""
    (deployment_copy / files.KUBERNETES_DIR / "networkpolicies.yaml").unlink()
    notifier = pod_labels(deployment_copy)["notifier"]
    assert allowed(deployment_copy, notifier, "egress", internet("169.254.169.254"), 80)


@KUBECTL
def test_the_readme_overlay_lets_the_notifier_reach_its_recipients_alone(tmp_path: Path) -> None:
    shutil.copytree(files.REPO / files.KUBERNETES_DIR, tmp_path / "gallring" / files.KUBERNETES_DIR)
    for path, text in readme_overlay(files.REPO).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    built = kustomize(tmp_path / OVERLAY)
    overlay_policies = [d for d in built if d["kind"] == "NetworkPolicy"]
    notifier = pod_labels(files.REPO)["notifier"]
    assert allowed(overlay_policies, notifier, "egress", internet("203.0.113.9"), 443)
    assert allowed(overlay_policies, notifier, "egress", internet("198.51.100.17"), 443)
    assert not allowed(overlay_policies, notifier, "egress", internet("93.184.215.14"), 443)
    assert not allowed(overlay_policies, notifier, "egress", internet("198.51.100.18"), 443)
    api = pod_labels(files.REPO)["api"]
    traefik = pod_in("traefik", {"app.kubernetes.io/name": "traefik"})
    assert allowed(overlay_policies, api, "ingress", traefik, 8000)
    assert not allowed(overlay_policies, api, "ingress", INGRESS, 8000)


# The erasure agent, in its system's namespace beside the system's database.
SYSTEM_DATABASE = pod_in(AGENT_NAMESPACE, {"app.kubernetes.io/name": "collection-database"})
SYSTEM_APP = pod_in(AGENT_NAMESPACE, {"app.kubernetes.io/name": "collection-web"})
GALLRING_API = pod_in(
    NAMESPACE, {"app.kubernetes.io/name": "gallring", "app.kubernetes.io/component": "api"}
)


def agent_allowed(
    root: Path, pod: dict[str, str], direction: str, peer: Peer, port: int, protocol: str = "TCP"
) -> bool:
    return allowed(
        policies(root, files.AGENT_DIR), pod, direction, peer, port, protocol, AGENT_NAMESPACE
    )


@pytest.mark.parametrize(
    ("direction", "peer", "port", "protocol", "expected"),
    [
        ("egress", DNS, 53, "UDP", True),
        ("egress", DNS, 53, "TCP", True),
        ("egress", ELSEWHERE, 53, "UDP", False),
        ("egress", KAFKA, 9092, "TCP", True),
        ("egress", INGRESS, 443, "TCP", True),  # the API, at its Ingress' address
        ("egress", SYSTEM_DATABASE, 5432, "TCP", True),
        ("egress", SYSTEM_APP, 5432, "TCP", False),
        ("egress", POSTGRES, 5432, "TCP", False),  # Gallring's database: never the agent's
        ("egress", GALLRING_API, 8000, "TCP", False),  # past the ingress: the API's policy refuses
        ("egress", internet("93.184.215.14"), 443, "TCP", False),
        ("egress", internet("169.254.169.254"), 80, "TCP", False),
        ("ingress", PROMETHEUS, 9103, "TCP", True),
        ("ingress", SYSTEM_APP, 9103, "TCP", False),
        ("ingress", ELSEWHERE, 9103, "TCP", False),
    ],
)
def test_the_agent_reaches_dns_kafka_the_api_and_its_database_alone(
    direction: str, peer: Peer, port: int, protocol: str, expected: bool
) -> None:
    agent = pod_labels(files.REPO)["agent"]
    assert agent_allowed(files.REPO, agent, direction, peer, port, protocol) is expected


def test_the_agents_policy_leaves_its_systems_other_pods_alone() -> None:
    """Applied in the system's namespace, it isolates the agent and nothing else there."""
    for pod in (SYSTEM_DATABASE, SYSTEM_APP):
        assert agent_allowed(files.REPO, pod.labels, "ingress", SYSTEM_APP, 5432)
        assert agent_allowed(files.REPO, pod.labels, "egress", internet("93.184.215.14"), 443)


def test_an_agent_policy_over_the_whole_namespace_is_caught(deployment_copy: Path) -> None:
    path = f"{files.AGENT_DIR}/networkpolicy.yaml"
    old = (
        "spec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: gallring-agent\n"
        "      app.kubernetes.io/component: agent\n"
    )
    files.break_file(deployment_copy, path, old, "spec:\n  podSelector: {}\n")
    assert not agent_allowed(deployment_copy, SYSTEM_DATABASE.labels, "ingress", SYSTEM_APP, 5432)


def test_an_agent_policy_letting_it_reach_the_internet_is_caught(deployment_copy: Path) -> None:
    path = f"{files.AGENT_DIR}/networkpolicy.yaml"
    old = "              kubernetes.io/metadata.name: ingress-nginx\n"
    new = old + "        - ipBlock:\n            cidr: 0.0.0.0/0\n"
    files.break_file(deployment_copy, path, old, new)
    agent = pod_labels(deployment_copy)["agent"]
    assert agent_allowed(deployment_copy, agent, "egress", internet("93.184.215.14"), 443)
