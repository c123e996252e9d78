"""No service starts on a secret anyone can read in the repository, unless development mode
is explicitly on; production keys come from the environment or from mounted files."""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

import shared.settings
from services.checkpoint.config import CheckpointSettings
from services.checkpoint.main import app as checkpoint_app
from services.registry.config import RegistrySettings
from services.registry.main import app as registry_app
from services.registry.main import create_app as create_registry
from services.reporting.config import ReportingSettings
from services.reporting.main import app as reporting_app
from services.screening.config import ScreeningSettings
from services.screening.main import app as screening_app
from shared.settings import DEV_HMAC_KEY, DEV_JWT_SECRET, SecretsRefused, ServiceSettings

JWT_SECRET = "jwt-" + "a1" * 20
HMAC_KEY = "hmac-" + "b2" * 20
PII_KEYS = "prod1:" + base64.b64encode(bytes(range(100, 132))).decode()
SETTINGS = (ServiceSettings, RegistrySettings, ScreeningSettings, CheckpointSettings,
            ReportingSettings)  # fmt: skip
FACTORIES = {"registry": registry_app, "screening": screening_app,
             "checkpoint": checkpoint_app, "reporting": reporting_app}  # fmt: skip


@pytest.fixture(autouse=True)
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a production process: development mode off, no secret set."""
    for name in list(os.environ):
        if name.startswith(("GRID_", "REGISTRY_", "SCREENING_", "CHECKPOINT_", "REPORTING_")):
            monkeypatch.delenv(name)


@pytest.fixture
def real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("GRID_ID_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("REGISTRY_PII_KEYS", PII_KEYS)


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_a_service_refuses_to_start_with_the_repository_default_secrets(service: str) -> None:
    with pytest.raises(SecretsRefused) as refused:
        FACTORIES[service]()
    message = str(refused.value)
    assert "GRID_JWT_SECRET is the built-in development value" in message
    assert "GRID_ID_HMAC_KEY is the built-in development value" in message
    assert "GRID_DEV_MODE" in message
    assert DEV_JWT_SECRET not in message and DEV_HMAC_KEY not in message
    if service == "registry":
        assert "REGISTRY_PII_KEYS (dev1) is the built-in development key" in message


def test_uvicorn_exits_before_serving_when_the_secrets_are_the_repository_defaults() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "services.screening.main:app",
         "--port", str(port)],
        env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "SecretsRefused: refusing to start" in done.stderr
    assert "GRID_JWT_SECRET is the built-in development value" in done.stderr
    assert "Uvicorn running" not in done.stderr


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
def test_development_mode_accepts_the_defaults_and_says_so_loudly(
    settings: type[ServiceSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("GRID_DEV_MODE", "1")
    monkeypatch.setattr(shared.settings, "_warned_development", False)
    with caplog.at_level(logging.WARNING, logger="shared.settings"):
        assert settings().jwt_secret == DEV_JWT_SECRET
    [warning] = [r for r in caplog.records if r.name == "shared.settings"]
    assert warning.levelno == logging.WARNING
    assert "GRID_DEV_MODE is on" in warning.getMessage()
    assert "Never run like this in production" in warning.getMessage()


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: s.__name__)
@pytest.mark.usefixtures("real_keys")
def test_real_keys_need_no_development_mode(settings: type[ServiceSettings]) -> None:
    assert settings().jwt_secret == JWT_SECRET


@pytest.mark.usefixtures("real_keys")
def test_a_service_app_builds_with_real_keys() -> None:
    assert isinstance(create_registry(RegistrySettings()), FastAPI)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("GRID_JWT_SECRET", "", "GRID_JWT_SECRET is empty"),
        ("GRID_JWT_SECRET", "short-secret", "GRID_JWT_SECRET is shorter than 32 bytes"),
        ("GRID_ID_HMAC_KEY", "x" * 31, "GRID_ID_HMAC_KEY is shorter than 32 bytes"),
        ("GRID_ID_HMAC_KEY", DEV_HMAC_KEY, "GRID_ID_HMAC_KEY is the built-in development value"),
        ("GRID_JWT_VERIFY_KEYS", f"old:{DEV_JWT_SECRET}", "GRID_JWT_VERIFY_KEYS (old) is the"),
        ("GRID_JWT_VERIFY_KEYS", "old:tiny", "GRID_JWT_VERIFY_KEYS (old) is shorter"),
        ("REGISTRY_PII_KEYS", "", "REGISTRY_PII_KEYS: PII key ring entry 1 is empty"),
        ("REGISTRY_PII_KEYS", "k:" + base64.b64encode(b"x" * 16).decode(), "must be 32 bytes"),
        (
            "REGISTRY_PII_KEYS",
            f"{PII_KEYS},dev1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            "REGISTRY_PII_KEYS (dev1) is the built-in development key",
        ),
    ],
)
@pytest.mark.usefixtures("real_keys")
def test_an_empty_short_or_public_secret_is_refused(
    variable: str, value: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SecretsRefused, match="refusing to start") as refused:
        RegistrySettings()
    assert reason in str(refused.value)
    monkeypatch.setenv("GRID_DEV_MODE", "true")
    RegistrySettings()


def test_with_a_jwks_the_hs256_key_is_not_used_and_not_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRID_JWKS_URL", "https://idp.example/jwks.json")
    monkeypatch.setenv("GRID_ID_HMAC_KEY", HMAC_KEY)
    assert ServiceSettings().jwks_url == "https://idp.example/jwks.json"


@pytest.mark.usefixtures("real_keys")
def test_each_secret_can_come_from_a_mounted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "GRID_JWT_SECRET": "jwt-from-file-" + "c3" * 16,
        "GRID_JWT_VERIFY_KEYS": "k0:" + "d4" * 20,
        "GRID_ID_HMAC_KEY": "hmac-from-file-" + "e5" * 16,
        "GRID_KAFKA_SASL_USERNAME": "grid",
        "GRID_KAFKA_SASL_PASSWORD": "pass word:with,signs",
        "REGISTRY_PII_KEYS": "file1:" + base64.b64encode(bytes(range(32))[::-1]).decode(),
    }
    for variable, value in values.items():
        path = tmp_path / variable.lower()
        path.write_text(value + "\n")  # as `echo` or an editor writes it
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(f"{variable}_FILE", str(path))
    monkeypatch.setenv("GRID_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    settings = RegistrySettings()
    assert settings.jwt_secret == values["GRID_JWT_SECRET"]
    assert settings.jwt_keys["k0"] == "d4" * 20
    assert settings.id_hmac_key == values["GRID_ID_HMAC_KEY"]
    assert settings.pii_keys == values["REGISTRY_PII_KEYS"]
    assert settings.kafka.username == "grid"
    assert settings.kafka.password == "pass word:with,signs"


@pytest.mark.usefixtures("real_keys")
def test_a_secret_set_twice_or_an_unreadable_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_text("f" * 40)
    monkeypatch.setenv("GRID_JWT_SECRET_FILE", str(path))
    with pytest.raises(SecretsRefused, match="set GRID_JWT_SECRET or GRID_JWT_SECRET_FILE"):
        ServiceSettings()
    monkeypatch.delenv("GRID_JWT_SECRET")
    monkeypatch.setenv("GRID_JWT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretsRefused, match="GRID_JWT_SECRET_FILE=.*missing: cannot read"):
        ServiceSettings()


@pytest.mark.usefixtures("real_keys")
def test_kafka_sasl_needs_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("GRID_KAFKA_SASL_USERNAME", "grid")
    with pytest.raises(SecretsRefused, match="GRID_KAFKA_SASL_PASSWORD"):
        ServiceSettings()
    monkeypatch.setenv("GRID_KAFKA_SASL_PASSWORD", "s3cret")
    assert ServiceSettings().kafka.security_protocol == "SASL_SSL"


@pytest.mark.usefixtures("real_keys")
def test_the_signing_key_id_cannot_also_name_a_verify_only_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRID_JWT_KEY_ID", "k2")
    monkeypatch.setenv("GRID_JWT_VERIFY_KEYS", "k2:" + "9" * 40)
    with pytest.raises(SecretsRefused, match="give the new key a new id"):
        ServiceSettings()


@pytest.mark.usefixtures("real_keys")
def test_a_malformed_verify_key_ring_names_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_JWT_VERIFY_KEYS", "k0:" + "1" * 40 + ",no-colon-here")
    with pytest.raises(ValueError, match="entry 2 must look like 'kid:secret'"):
        ServiceSettings()


def test_a_secret_never_shows_in_the_settings_repr(real_keys: None) -> None:
    text = repr(RegistrySettings())
    assert JWT_SECRET not in text and HMAC_KEY not in text and PII_KEYS not in text
