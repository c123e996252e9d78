"""Every Kafka client the services make is built in one place and connects the way the
settings say: PLAINTEXT on loopback by default, SASL/SCRAM (over TLS where configured)."""

from __future__ import annotations

import ast
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.kafka import KafkaCluster, kafka_admin, kafka_consumer, kafka_producer
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SCRAM = KafkaCluster("10.0.0.5:9092", "SASL_PLAINTEXT", "SCRAM-SHA-512", "grid", "pw")


def ca_bundle(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grid test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_bare_address_is_a_plaintext_cluster() -> None:
    assert KafkaCluster("127.0.0.1:59092").client_options() == {
        "bootstrap_servers": "127.0.0.1:59092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_plaintext_sends_the_scram_credentials() -> None:
    assert SCRAM.client_options() == {
        "bootstrap_servers": "10.0.0.5:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "grid",
        "sasl_plain_password": "pw",
    }
    assert "pw" not in repr(SCRAM)


def test_sasl_ssl_verifies_the_brokers_against_the_ca_bundle(tmp_path: Path) -> None:
    cafile = ca_bundle(tmp_path / "ca.pem")
    cluster = KafkaCluster("kafka:9093", "SASL_SSL", "SCRAM-SHA-256", "grid", "pw", str(cafile))
    options = cluster.client_options()
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "grid test CA"),),)]
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"


def test_the_settings_describe_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_KAFKA_BOOTSTRAP", "10.0.0.5:9092")
    monkeypatch.setenv("GRID_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("GRID_KAFKA_SASL_USERNAME", "grid")
    monkeypatch.setenv("GRID_KAFKA_SASL_PASSWORD", "pw")
    assert ServiceSettings().kafka == SCRAM


async def test_producers_consumers_and_admin_clients_all_authenticate() -> None:
    producer = kafka_producer(SCRAM, acks="all")
    consumer = kafka_consumer(SCRAM, "t", group_id=None)
    admin = kafka_admin(SCRAM, request_timeout_ms=1000)
    try:
        for inner in (producer.client, consumer._client, admin._client):
            assert inner._bootstrap_servers == "10.0.0.5:9092"
            assert inner._security_protocol == "SASL_PLAINTEXT"
            assert inner._sasl_mechanism == "SCRAM-SHA-512"
            assert inner._sasl_plain_username == "grid"
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


def test_no_service_code_builds_a_kafka_client_of_its_own() -> None:
    """A client made elsewhere would connect without the cluster's credentials."""
    own = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
    found = []
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]:
        if path == ROOT / "shared" / "kafka.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in own:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
