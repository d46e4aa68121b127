from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlcenter.clock import WallClock
from controlcenter.model import DataType, TagDef
from drivers.base import NotConnectedError
from drivers.opcua import (
    OpcUaDeviceConfig,
    OpcUaDriver,
    SecurityConfigurationError,
    SecurityMode,
    SecurityPolicy,
)
from tests.drivers.opcua.conftest import SecurePlant
from tests.drivers.opcua.opcua_test_server import PASSWORD, USERNAME

PASSWORD_VARIABLE = "CC_TEST_OPCUA_PASSWORD"


def secure_driver(secure_plant: SecurePlant, certificate_dir: Path, **settings: Any) -> OpcUaDriver:
    options: dict[str, Any] = {
        "security_policy": SecurityPolicy.BASIC256SHA256,
        "security_mode": SecurityMode.SIGN_AND_ENCRYPT,
        "certificate_dir": certificate_dir,
        "username": USERNAME,
        "password_env": PASSWORD_VARIABLE,
        "timeout_s": 5.0,
    }
    options.update(settings)
    return OpcUaDriver("secure", OpcUaDeviceConfig(secure_plant.plant.url, **options), WallClock())


def level(secure_plant: SecurePlant) -> TagDef:
    return TagDef("level", "secure", secure_plant.plant.node_id("Level"), DataType.FLOAT)


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    return PASSWORD


@pytest.mark.parametrize(
    ("policy", "mode"),
    [
        (SecurityPolicy.BASIC256SHA256, SecurityMode.SIGN_AND_ENCRYPT),
        (SecurityPolicy.AES256_SHA256_RSAPSS, SecurityMode.SIGN),
    ],
)
async def test_secure_session_with_user_and_generated_certificate(
    secure_plant: SecurePlant,
    tmp_path: Path,
    password: str,
    policy: SecurityPolicy,
    mode: SecurityMode,
) -> None:
    driver = secure_driver(
        secure_plant,
        tmp_path / "pki",
        security_policy=policy,
        security_mode=mode,
        trusted_server_certificates=(secure_plant.certificate,),
    )
    try:
        await driver.connect()
        (sample,) = await driver.read([level(secure_plant)])
    finally:
        await driver.close()
    assert sample.quality.is_good
    assert sample.value == 2.5
    assert (tmp_path / "pki" / "secure-cert.der").exists()
    assert (tmp_path / "pki" / "secure-key.pem").exists()


async def test_an_insecure_client_is_told_the_policy_mismatch(secure_plant: SecurePlant) -> None:
    insecure = OpcUaDriver("insecure", OpcUaDeviceConfig(secure_plant.plant.url), WallClock())
    with pytest.raises(NotConnectedError) as raised:
        await insecure.connect()
    message = str(raised.value)
    assert "server offers only Aes256_Sha256_RsaPss/Sign, Basic256Sha256/SignAndEncrypt" in message
    assert "this device is configured for None/None" in message
    assert insecure.diagnostics().errors_by_kind == {"config_error": 1}


async def test_a_wrong_password_is_refused_clearly(
    secure_plant: SecurePlant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "not the password")
    driver = secure_driver(secure_plant, tmp_path)
    with pytest.raises(SecurityConfigurationError, match="wrong user name or password"):
        await driver.connect()
    assert not driver.connected


async def test_a_missing_password_variable_is_named(
    secure_plant: SecurePlant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    driver = secure_driver(secure_plant, tmp_path)
    with pytest.raises(SecurityConfigurationError, match=PASSWORD_VARIABLE):
        await driver.connect()


async def test_an_untrusted_server_certificate_is_refused(
    secure_plant: SecurePlant, tmp_path: Path, password: str
) -> None:
    driver = secure_driver(
        secure_plant, tmp_path, trusted_server_certificates=(secure_plant.other_certificate,)
    )
    with pytest.raises(SecurityConfigurationError, match="not one of the 1 trusted"):
        await driver.connect()


def test_secure_policies_need_a_mode_and_a_certificate() -> None:
    with pytest.raises(ValueError, match="needs mode Sign or SignAndEncrypt"):
        OpcUaDeviceConfig("opc.tcp://h:4840/", security_policy=SecurityPolicy.BASIC256SHA256)
    with pytest.raises(ValueError, match="needs a client certificate"):
        OpcUaDeviceConfig(
            "opc.tcp://h:4840/",
            security_policy=SecurityPolicy.BASIC256SHA256,
            security_mode=SecurityMode.SIGN,
        )
    with pytest.raises(ValueError, match="password_env is set but username is not"):
        OpcUaDeviceConfig("opc.tcp://h:4840/", password_env="X")
    with pytest.raises(ValueError, match=r"not 'opc\.tcp://"):
        OpcUaDeviceConfig("http://h:4840/")
