"""Private files: the secret key, and the historian's database as the center opens it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlcenter.model import DataType, Quality, Sample, TagDef
from controlcenter.runtime.app import prepare_private_database
from controlcenter.security.files import (
    PrivateFileError,
    ensure_private_file,
    load_or_create_secret_key,
)
from historian.store import SqlHistorian


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask 022, which makes files world-readable unless created otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_secret_key_is_generated_once_into_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "hmi-secret.key"

    first = load_or_create_secret_key(path)
    again = load_or_create_secret_key(path)

    assert len(first) == 32
    assert again == first
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_a_damaged_secret_key_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hmi-secret.key"
    path.write_text("abcd\n")
    with pytest.raises(PrivateFileError, match="shorter than 32 bytes"):
        load_or_create_secret_key(path)
    path.write_text("not hex at all\n")
    with pytest.raises(PrivateFileError, match="cannot read"):
        load_or_create_secret_key(path)


def test_existing_private_files_are_narrowed_but_shared_directories_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    path.write_text("")
    path.chmod(0o644)
    tmp_path.chmod(0o755)

    ensure_private_file(path)

    assert mode(path) == 0o600
    assert mode(tmp_path) == 0o755


def test_the_historians_sqlite_files_are_private(tmp_path: Path) -> None:
    database = tmp_path / "var" / "center.db"
    url = f"sqlite:///{database}"

    prepare_private_database(url)
    store = SqlHistorian(url)
    try:
        now = datetime.now(UTC)
        store.ensure_tags([TagDef("water.tank1.level", "rtu1", "40001", DataType.FLOAT)])
        store.write_samples([Sample("water.tank1.level", 1.5, Quality.good(), now, now)])
        companions = [p for p in database.parent.iterdir() if p.name != database.name]
        modes = {p.name: mode(p) for p in database.parent.iterdir()}
    finally:
        store.close()

    assert mode(database.parent) == 0o700
    assert modes[database.name] == 0o600
    assert any(p.name.endswith("-wal") for p in companions), modes
    assert all(value == 0o600 for value in modes.values()), modes


def test_other_database_urls_are_left_alone(tmp_path: Path) -> None:
    prepare_private_database("postgresql://postgres@127.0.0.1:5432/test")
    prepare_private_database("sqlite://")
    prepare_private_database("not a url")
    assert list(tmp_path.iterdir()) == []
