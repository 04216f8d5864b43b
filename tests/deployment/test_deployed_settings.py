"""The settings the deployment files give each Gallring service: only variables the code reads,
everything each service needs, secrets only as files, servers listening where they are probed,
and no more consumers than partitions. Each check is a function of the files' root, and is also
run on a copy with one mistake in it, to show that it catches that mistake."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.agent.settings import AgentSettings
from services.api.settings import ApiSettings
from services.notifier.settings import NotifierSettings
from services.purger.settings import PurgerSettings
from shared.runtime.settings import KafkaSettings
from tests.deployment import files
from tests.deployment.settings_variables import (
    ENVIRONMENT_VARIABLES,
    SECRETS_DIR_VARIABLE,
    environment_variable_read_in,
    prefixes_named_in,
    readme_settings_table,
    settings_variables,
    variables_named_in,
    variables_named_in_code,
    variables_read_by_code,
)
from tests.deployment.workloads import (
    Workload,
    all_workloads,
    compose_workloads,
    kubernetes_workloads,
)

#: Files whose every GALLRING_ name must be one the code reads (comments included: a typo there
#: misleads as much).
SCANNED_PATTERNS = (
    files.DOCKERFILE,
    files.COMPOSE_FILE,
    "deploy/**/*.yaml",
    "deploy/**/*.conf",
    "deploy/**/*.sh",
    "deploy/**/*.md",
)
ANY_ADDRESS = {"0.0.0.0", "::"}


@dataclass(frozen=True)
class Listener:
    """The server a service's probes reach: where it listens, by setting."""

    settings: type[BaseSettings]
    host_field: str
    port_field: str


@dataclass(frozen=True)
class Needs:
    """What one `gallring` subcommand needs from the deployment that runs it."""

    secrets: tuple[str, ...]
    variables: tuple[str, ...] = ()
    listener: Listener | None = None
    #: Secrets it never reads, and is therefore not given: whoever takes the container over
    #: finds them neither.
    not_given: tuple[str, ...] = ()


SECRETS = ("GALLRING_PSEUDONYM_SECRET", "GALLRING_DATABASE_URL")
#: Secrets a deployment may do without (a cluster without SASL), but never writes out.
OPTIONAL_SECRETS = ("GALLRING_KAFKA_SASL_PASSWORD",)
#: The API and the notifier seal and open recipients' signing secrets; the purger does not.
SIGNING_SECRETS = (*SECRETS, "GALLRING_SECRET_SEALING_KEY")
#: The erasure agent's: Gallring's pseudonym secret and a key with the scope erasures:confirm.
#: Its system's database URL comes through its dataset file (test_agent_deployment.py).
AGENT_SECRETS = ("GALLRING_PSEUDONYM_SECRET", "GALLRING_AGENT_API_KEY")
#: Every secret setting: none is ever written out as a plain value.
ALL_SECRETS = (*SIGNING_SECRETS, "GALLRING_AGENT_API_KEY", *OPTIONAL_SECRETS)
NEEDS = {
    "migrate": Needs(secrets=("GALLRING_DATABASE_URL",)),
    "api": Needs(
        SIGNING_SECRETS,
        ("GALLRING_KAFKA_BOOTSTRAP",),
        Listener(ApiSettings, "api_host", "api_port"),
    ),
    "purger": Needs(
        SECRETS,
        ("GALLRING_KAFKA_BOOTSTRAP",),
        Listener(PurgerSettings, "purger_metrics_host", "purger_metrics_port"),
    ),
    "notifier": Needs(
        SIGNING_SECRETS,
        ("GALLRING_KAFKA_BOOTSTRAP", "GALLRING_NOTIFIER_PUBLIC_API_URL"),
        Listener(NotifierSettings, "notifier_metrics_host", "notifier_metrics_port"),
    ),
    # `gallring agent run`, beside a company's database: never Gallring's own.
    "agent": Needs(
        AGENT_SECRETS,
        ("GALLRING_KAFKA_BOOTSTRAP", "GALLRING_AGENT_API_URL", "GALLRING_AGENT_DATASET_FILE"),
        Listener(AgentSettings, "agent_status_host", "agent_status_port"),
        not_given=("GALLRING_DATABASE_URL", "GALLRING_SECRET_SEALING_KEY"),
    ),
}
CONSUMERS = {"purger", "notifier", "agent"}


def unread_variables(root: Path) -> list[str]:
    """GALLRING_ names in the deployment files that the code does not read: typos."""
    known = variables_read_by_code()
    scanned = {path for pattern in SCANNED_PATTERNS for path in root.glob(pattern)}
    problems = []
    for path in sorted(scanned):
        text = path.read_text()
        problems += [
            f"{path.relative_to(root)}: {variable} is read by no code"
            for variable in sorted(variables_named_in(text) - known)
        ]
        problems += [
            f"{path.relative_to(root)}: no variable the code reads starts with {prefix}"
            for prefix in sorted(prefixes_named_in(text))
            if not any(variable.startswith(prefix) for variable in known)
        ]
    return problems


def missing_needs(workloads: list[Workload]) -> list[str]:
    """What each Gallring container lacks of what its subcommand needs."""
    problems = []
    for workload in workloads:
        needs = NEEDS.get(workload.subcommand or "")
        if needs is None:
            problems.append(f"{workload.where}: runs {workload.command}, unknown to this check")
            continue
        problems += [f"{workload.where}: {problem}" for problem in _missing(workload, needs)]
    return problems


def _missing(workload: Workload, needs: Needs) -> list[str]:
    environment = workload.environment
    problems = []
    secrets_dir = environment.get(SECRETS_DIR_VARIABLE)
    if not secrets_dir:
        problems.append(f"{SECRETS_DIR_VARIABLE} is not set")
    files_there = workload.secret_file_names_in(secrets_dir) if secrets_dir else set()
    for variable in ALL_SECRETS:
        if variable in environment:
            problems.append(f"{variable} is written out; it belongs in {SECRETS_DIR_VARIABLE}")
    for variable in needs.secrets:
        if not files_there & {variable.lower(), "*"}:
            problems.append(f"no secret file {variable.lower()} in {SECRETS_DIR_VARIABLE}")
    for variable in needs.not_given:
        if variable.lower() in files_there or variable in environment:
            problems.append(f"{variable} is given, which it never reads")
    for variable in needs.variables:
        if not environment.get(variable):
            problems.append(f"{variable} is not set")
    if needs.listener is not None:
        problems += _listener_problems(workload, needs.listener)
    return problems


def _listener_problems(workload: Workload, listener: Listener) -> list[str]:
    prefix = listener.settings.model_config["env_prefix"]
    host_variable = (prefix + listener.host_field).upper()
    port_variable = (prefix + listener.port_field).upper()
    default_port = listener.settings.model_fields[listener.port_field].default
    port = int(workload.environment.get(port_variable, default_port))
    problems = []
    if workload.environment.get(host_variable) not in ANY_ADDRESS:
        problems.append(f"{host_variable} must be 0.0.0.0 for its probes to reach port {port}")
    if not workload.probed_ports:
        problems.append(f"nothing probes port {port}")
    problems += [
        f"probes port {probed}, but {port_variable} is {port}"
        for probed in sorted(workload.probed_ports - {port})
    ]
    return problems


def idle_consumers(workloads: list[Workload]) -> list[str]:
    """Consumers of a consumer group beyond the topic's partitions get no partition at all."""
    default = KafkaSettings.model_fields["topic_partitions"].default
    problems = []
    for workload in workloads:
        partitions = int(workload.environment.get("GALLRING_KAFKA_TOPIC_PARTITIONS", default))
        if workload.subcommand in CONSUMERS and workload.replicas > partitions:
            problems.append(
                f"{workload.where}: {workload.replicas} replicas but "
                f"GALLRING_KAFKA_TOPIC_PARTITIONS={partitions}: some would sit idle"
            )
    return problems


def test_every_gallring_variable_in_the_deployment_files_is_read_by_the_code() -> None:
    assert unread_variables(files.REPO) == []


def test_each_service_gets_what_it_needs_and_secrets_only_as_files() -> None:
    workloads = all_workloads(files.REPO)
    assert {w.subcommand for w in compose_workloads(files.REPO)} == set(NEEDS)
    assert {w.subcommand for w in kubernetes_workloads(files.REPO)} == set(NEEDS)
    assert missing_needs(workloads) == []


def test_no_more_consumer_replicas_than_partitions() -> None:
    assert idle_consumers(all_workloads(files.REPO)) == []


def test_the_readme_documents_every_setting() -> None:
    readme = (files.REPO / "README.md").read_text()
    undocumented = settings_variables() - readme_settings_table(readme)
    assert sorted(undocumented) == []


def test_variables_read_outside_the_settings_classes_are_still_read_there() -> None:
    assert [
        v for v in ENVIRONMENT_VARIABLES if not environment_variable_read_in(v, files.REPO)
    ] == []


def test_every_variable_the_code_names_is_one_it_reads(tmp_path) -> None:
    """A variable read with os.environ and left out of ENVIRONMENT_VARIABLES would escape the
    checks above (the README's table among them)."""
    assert variables_named_in_code(files.REPO) - variables_read_by_code() == set()
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "new.py").write_text('os.environ.get("GALLRING_NEW_KNOB")\n')
    assert variables_named_in_code(tmp_path) == {"GALLRING_NEW_KNOB"}


def test_the_settings_variables_are_derived_with_each_class_prefix() -> None:
    variables = settings_variables()
    assert {
        "GALLRING_PSEUDONYM_SECRET",
        "GALLRING_KAFKA_BOOTSTRAP",
        "GALLRING_RELAY_LEASE_SECONDS",
        "GALLRING_API_PORT",
        "GALLRING_PURGER_SWEEP_BATCH_SIZE",
        "GALLRING_NOTIFIER_PUBLIC_API_URL",
        SECRETS_DIR_VARIABLE,
    } <= variables
    assert "GALLRING_KAFKA" not in variables  # the nested settings are read field by field


def test_a_variable_missing_from_the_readme_table_is_found() -> None:
    readme = (files.REPO / "README.md").read_text()
    without_row = "\n".join(
        line for line in readme.splitlines() if "`GALLRING_RELAY_LEASE_SECONDS`" not in line
    )
    assert "GALLRING_RELAY_LEASE_SECONDS" not in readme_settings_table(without_row)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (files.COMPOSE_FILE, "GALLRING_KAFKA_BOOTSTRAP:", "GALLRING_KAFKA_BOOTSTRAPS:"),
        ("deploy/kubernetes/configmap.yaml", "GALLRING_API_HOST:", "GALLRING_API_HOSTNAME:"),
        (files.DOCKERFILE, "GALLRING_API_HOST=", "GALLRING_APIHOST="),
        ("deploy/compose/nginx.conf", "GALLRING_API_MAX_BODY_BYTES", "GALLRING_MAX_BODY_BYTES"),
        (files.DEPLOY_README, "`GALLRING_RELAY_…`", "`GALLRING_RELAYS_…`"),
        (files.DEPLOY_README, "`GALLRING_PURGER_…`", "`GALLRING_PURGER_METRIC_…`"),
    ],
)
def test_a_misspelt_variable_is_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert unread_variables(deployment_copy)


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (
            files.COMPOSE_FILE,
            "  GALLRING_KAFKA_BOOTSTRAP: kafka:9092\n",
            "",
            "GALLRING_KAFKA_BOOTSTRAP is not set",
        ),
        (
            files.COMPOSE_FILE,
            "  GALLRING_PURGER_METRICS_HOST: 0.0.0.0\n",
            "",
            "GALLRING_PURGER_METRICS_HOST must be 0.0.0.0",
        ),
        (
            files.COMPOSE_FILE,
            "http://127.0.0.1:9102/readyz",
            "http://127.0.0.1:9100/readyz",
            "probes port 9100, but GALLRING_NOTIFIER_METRICS_PORT is 9102",
        ),
        (
            files.COMPOSE_FILE,
            "http://127.0.0.1:8000/readyz",
            "http://127.0.0.1:8080/readyz",
            "probes port 8080, but GALLRING_API_PORT is 8000",
        ),
        (
            "deploy/kubernetes/notifier-deployment.yaml",
            "          livenessProbe:\n            httpGet:\n              path: /healthz\n"
            "              port: metrics\n",
            "          livenessProbe:\n            httpGet:\n              path: /healthz\n"
            "              port: 9100\n",
            "probes port 9100, but GALLRING_NOTIFIER_METRICS_PORT is 9102",
        ),
        (
            files.COMPOSE_FILE,
            "  GALLRING_SECRETS_DIR: /run/secrets\n",
            "  GALLRING_SECRETS_DIR: /run/secrets\n  GALLRING_PSEUDONYM_SECRET: s3cr3t\n",
            "GALLRING_PSEUDONYM_SECRET is written out",
        ),
        (
            "deploy/kubernetes/configmap.yaml",
            "  GALLRING_SECRETS_DIR: /run/secrets/gallring\n",
            "  GALLRING_SECRETS_DIR: /run/secrets/gallring\n  GALLRING_KAFKA_SASL_PASSWORD: pw\n",
            "GALLRING_KAFKA_SASL_PASSWORD is written out",
        ),
        (
            files.COMPOSE_FILE,
            "  secrets:\n    - gallring_pseudonym_secret\n",
            "  secrets:\n",
            "no secret file gallring_pseudonym_secret",
        ),
        (
            "deploy/kubernetes/configmap.yaml",
            "  GALLRING_NOTIFIER_PUBLIC_API_URL: https://gallring.example.com\n",
            "",
            "GALLRING_NOTIFIER_PUBLIC_API_URL is not set",
        ),
        (
            "deploy/kubernetes/configmap.yaml",
            "GALLRING_SECRETS_DIR: /run/secrets/gallring",
            "GALLRING_SECRETS_DIR: /run/secrets",
            "no secret file gallring_database_url",
        ),
        (
            "deploy/kubernetes/api-deployment.yaml",
            "port: http\n            periodSeconds: 5\n            timeoutSeconds: 4",
            "port: 8080\n            periodSeconds: 5\n            timeoutSeconds: 4",
            "probes port 8080, but GALLRING_API_PORT is 8000",
        ),
        (
            "deploy/kubernetes/purger-deployment.yaml",
            "              - key: gallring_pseudonym_secret\n"
            "                path: gallring_pseudonym_secret\n",
            "",
            "no secret file gallring_pseudonym_secret",
        ),
        (
            "deploy/kubernetes/notifier-deployment.yaml",
            "              - key: gallring_secret_sealing_key\n"
            "                path: gallring_secret_sealing_key\n",
            "",
            "no secret file gallring_secret_sealing_key",
        ),
        (
            files.COMPOSE_FILE,
            "      - gallring_secret_sealing_key # seals and opens",
            "      # seals and opens",
            "no secret file gallring_secret_sealing_key",
        ),
        (
            files.COMPOSE_FILE,
            "  GALLRING_SECRETS_DIR: /run/secrets\n",
            "  GALLRING_SECRETS_DIR: /run/secrets\n  GALLRING_SECRET_SEALING_KEY: s3cr3t\n",
            "GALLRING_SECRET_SEALING_KEY is written out",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "      GALLRING_AGENT_STATUS_HOST: 0.0.0.0\n",
            "",
            "GALLRING_AGENT_STATUS_HOST must be 0.0.0.0",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "http://127.0.0.1:9103/readyz",
            "http://127.0.0.1:9102/readyz",
            "probes port 9102, but GALLRING_AGENT_STATUS_PORT is 9103",
        ),
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "            - name: metrics\n              containerPort: 9103",
            "            - name: metrics\n              containerPort: 9102",
            "probes port 9102, but GALLRING_AGENT_STATUS_PORT is 9103",
        ),
        (
            f"{files.AGENT_DIR}/configmap.yaml",
            "  GALLRING_AGENT_API_URL: https://gallring.example.com\n",
            "",
            "GALLRING_AGENT_API_URL is not set",
        ),
        (
            f"{files.AGENT_DIR}/deployment.yaml",
            "              - key: gallring_agent_api_key\n"
            "                path: gallring_agent_api_key\n",
            "",
            "no secret file gallring_agent_api_key",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "      GALLRING_SECRETS_DIR: /run/secrets\n",
            "      GALLRING_SECRETS_DIR: /run/secrets\n      GALLRING_AGENT_API_KEY: s3cr3t\n",
            "GALLRING_AGENT_API_KEY is written out",
        ),
        (
            files.AGENT_COMPOSE_FILE,
            "      - gallring_agent_api_key\n",
            "      - gallring_agent_api_key\n      - gallring_database_url\n",
            "GALLRING_DATABASE_URL is given, which it never reads",
        ),
    ],
)
def test_a_service_short_of_what_it_needs_is_caught(
    deployment_copy: Path, path: str, old: str, new: str, expected: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    problems = missing_needs(all_workloads(deployment_copy))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (
            files.COMPOSE_FILE,
            'GALLRING_KAFKA_TOPIC_PARTITIONS: "6"',
            'GALLRING_KAFKA_TOPIC_PARTITIONS: "1"',
        ),
        ("deploy/kubernetes/notifier-deployment.yaml", "replicas: 2", "replicas: 13"),
    ],
)
def test_consumers_beyond_the_partitions_are_caught(
    deployment_copy: Path, path: str, old: str, new: str
) -> None:
    files.break_file(deployment_copy, path, old, new)
    assert idle_consumers(all_workloads(deployment_copy))
