"""A secured cluster (TLS, SASL, or both): the settings that reach it are complete or refused
with the variables to set, and every Kafka client Gallring builds carries them."""

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.messaging.kafka import make_admin, make_client, make_consumer, make_producer
from shared.runtime.settings import GallringSettings, KafkaSettings, SettingsInvalid, load_settings

PASSWORD = "kafka-password-never-shown"


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and two certificates it signed: the broker's and ours, as PEM files."""

    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path


def _write_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def _certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
    host: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if host:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    where = tmp_path_factory.mktemp("pki")
    ca_key = _write_key(where / "ca.key")
    ca = _certificate("Gallring test CA", ca_key, ca=True)
    pki = Pki(
        where / "ca.crt",
        where / "broker.crt",
        where / "broker.key",
        where / "client.crt",
        where / "client.key",
    )
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, cert_file, key_file, host in (
        ("broker", pki.server_cert_file, pki.server_key_file, "127.0.0.1"),
        ("gallring-client", pki.client_cert_file, pki.client_key_file, None),
    ):
        key = _write_key(key_file)
        certificate = _certificate(name, key, ca.subject, ca_key, host=host)
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return pki


def secured(pki: Pki, **overrides: object) -> KafkaSettings:
    settings: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "gallring",
        "sasl_password": PASSWORD,
        "ssl_ca_file": pki.ca_file,
    }
    return KafkaSettings(**(settings | overrides))


def refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    """What ``load_settings`` says of the Kafka settings in ``variables``."""
    for name, value in variables.items():
        monkeypatch.setenv(f"GALLRING_KAFKA_{name}", value)
    with pytest.raises(SettingsInvalid) as invalid:
        load_settings(KafkaSettings)
    assert PASSWORD not in str(invalid.value)
    return str(invalid.value)


def test_plaintext_stays_the_default_and_needs_nothing() -> None:
    settings = KafkaSettings()
    assert (settings.security_protocol, settings.ssl_context()) == ("PLAINTEXT", None)


def test_sasl_without_its_mechanism_or_credentials_is_refused_by_name(monkeypatch) -> None:
    message = refusal(monkeypatch, SECURITY_PROTOCOL="SASL_SSL", SASL_PASSWORD=PASSWORD)
    assert (
        "GALLRING_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs GALLRING_KAFKA_SASL_MECHANISM, "
        "GALLRING_KAFKA_SASL_USERNAME"
    ) in message


def test_credentials_a_protocol_without_sasl_would_ignore_are_refused(monkeypatch) -> None:
    message = refusal(
        monkeypatch, SASL_MECHANISM="PLAIN", SASL_USERNAME="gallring", SASL_PASSWORD=PASSWORD
    )
    assert (
        "GALLRING_KAFKA_SASL_MECHANISM, GALLRING_KAFKA_SASL_USERNAME, "
        "GALLRING_KAFKA_SASL_PASSWORD set, but GALLRING_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses "
        "no SASL"
    ) in message


def test_an_unknown_protocol_or_mechanism_is_refused_with_the_choices(monkeypatch) -> None:
    message = refusal(monkeypatch, SECURITY_PROTOCOL="TLS", SASL_MECHANISM="GSSAPI")
    assert "GALLRING_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT', 'SSL'" in message
    assert "GALLRING_KAFKA_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256'" in message


def test_a_ca_file_that_is_not_there_or_not_a_certificate_is_refused(
    monkeypatch, tmp_path, pki
) -> None:
    missing = tmp_path / "missing-ca.crt"
    message = refusal(monkeypatch, SECURITY_PROTOCOL="SSL", SSL_CA_FILE=str(missing))
    assert f"GALLRING_KAFKA_SSL_CA_FILE: no readable file at {missing}" in message

    monkeypatch.setenv("GALLRING_KAFKA_SSL_CA_FILE", str(pki.client_key_file))
    assert "no TLS context can be built from GALLRING_KAFKA_SSL_CA_FILE" in refusal(monkeypatch)


def test_tls_files_a_protocol_without_tls_would_ignore_are_refused(monkeypatch, pki) -> None:
    message = refusal(monkeypatch, SECURITY_PROTOCOL="SASL_PLAINTEXT", SSL_CA_FILE=str(pki.ca_file))
    assert (
        "GALLRING_KAFKA_SSL_CA_FILE set, but GALLRING_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
        "uses no TLS"
    ) in message


def test_a_client_certificate_goes_with_its_own_key(monkeypatch, pki) -> None:
    message = refusal(monkeypatch, SECURITY_PROTOCOL="SSL", SSL_CERT_FILE=str(pki.client_cert_file))
    assert "GALLRING_KAFKA_SSL_CERT_FILE and GALLRING_KAFKA_SSL_KEY_FILE go together" in message

    monkeypatch.setenv("GALLRING_KAFKA_SSL_KEY_FILE", str(pki.server_key_file))  # not its key
    assert "no TLS context can be built from GALLRING_KAFKA_SSL_CERT_FILE" in refusal(monkeypatch)


def test_the_password_never_shows(pki) -> None:
    settings = secured(pki)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())


def test_the_credentials_come_from_secret_files(tmp_path, monkeypatch) -> None:
    """Kubernetes' and Docker's secrets, as for the pseudonym secret."""
    (tmp_path / "gallring_pseudonym_secret").write_text("s" * 32)
    (tmp_path / "gallring_database_url").write_text("postgresql+psycopg://db/g")
    (tmp_path / "gallring_kafka_sasl_username").write_text("gallring\n")
    (tmp_path / "gallring_kafka_sasl_password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("GALLRING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("GALLRING_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    for name in ("PSEUDONYM_SECRET", "DATABASE_URL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(f"GALLRING_{name}", raising=False)
    kafka = load_settings(GallringSettings).kafka
    assert kafka.sasl_username == "gallring"
    assert kafka.sasl_password is not None
    assert kafka.sasl_password.get_secret_value() == PASSWORD


async def test_every_client_carries_the_protocol_the_credentials_and_the_ca(pki) -> None:
    settings = secured(pki, client_id="gallring-test")
    consumer = make_consumer(settings, "gallring.lifecycle.v1", group_id="g")
    clients = {
        "producer": make_producer(settings).client,
        "consumer": consumer._client,
        "admin": make_admin(settings)._client,
        "readiness check": make_client(settings, purpose="readyz"),
    }
    for name, client in clients.items():
        context = client._ssl_context
        carried = (
            client._security_protocol,
            client._sasl_mechanism,
            client._sasl_plain_username,
            client._sasl_plain_password,
            context.verify_mode,
            context.check_hostname,
            [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()],
        )
        assert carried == (
            "SASL_SSL",
            "SCRAM-SHA-512",
            "gallring",
            PASSWORD,
            ssl.CERT_REQUIRED,
            True,
            [{"commonName": "Gallring test CA"}],
        ), name


async def test_the_tls_context_trusts_the_ca_and_presents_our_certificate(pki) -> None:
    """Mutual TLS, shown by a handshake with a server that requires our certificate."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca_file)
    server.load_cert_chain(pki.server_cert_file, pki.server_key_file)
    server.verify_mode = ssl.CERT_REQUIRED
    presented: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        presented.set_result(writer.get_extra_info("peercert"))
        writer.close()

    listening = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listening.sockets[0].getsockname()[1]
    settings = KafkaSettings(
        security_protocol="SSL",
        ssl_ca_file=pki.ca_file,
        ssl_cert_file=pki.client_cert_file,
        ssl_key_file=pki.client_key_file,
    )
    async with listening:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=settings.ssl_context())
        peer = await asyncio.wait_for(presented, timeout=10)
        writer.close()
    assert peer["subject"] == ((("commonName", "gallring-client"),),)
