"""Private files of the center: readable by the account that runs it, and nobody else.

The historian's database (with its audit journal), the spool, the users file, the sessions file
and the secret key are created with mode 0600; a directory the center creates for them gets
0700. An existing directory is left as it is (it may be shared, such as /tmp); an existing
private file is narrowed to 0600.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700
SECRET_KEY_BYTES = 32
"""Length of a generated secret key: 256 bits, beyond any brute force of a signature."""


class PrivateFileError(OSError):
    """A private file could not be created, read or narrowed to its owner."""


def ensure_private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; leave an existing one alone."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue  # created meanwhile by another process
        except OSError as err:
            raise PrivateFileError(f"cannot create the directory {directory}: {err}") from err
        # mkdir's mode is filtered by the umask, which may only have removed more bits; make
        # it exactly 0700 so that the files below it are the owner's alone.
        os.chmod(directory, PRIVATE_DIRECTORY_MODE)


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing (its directory with 0700), or narrow an
    existing file of ours to 0600."""
    ensure_private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    except OSError as err:
        raise PrivateFileError(f"cannot create {path}: {err}") from err
    try:
        if stat.S_IMODE(os.fstat(descriptor).st_mode) != PRIVATE_FILE_MODE:
            os.fchmod(descriptor, PRIVATE_FILE_MODE)
    except OSError as err:
        raise PrivateFileError(f"cannot make {path} private (mode 0600): {err}") from err
    finally:
        os.close(descriptor)


def load_or_create_secret_key(path: Path) -> bytes:
    """The secret key kept in ``path``, generated (``secrets.token_bytes``) into a new 0600
    file the first time, so that what it signs stays valid across restarts."""
    ensure_private_directory(path.parent)
    try:
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE
        )
    except FileExistsError:
        return _read_secret_key(path)
    except OSError as err:
        raise PrivateFileError(f"cannot create the secret key file {path}: {err}") from err
    key = secrets.token_bytes(SECRET_KEY_BYTES)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        os.write(descriptor, key.hex().encode("ascii") + b"\n")
        os.fsync(descriptor)
    except OSError as err:
        raise PrivateFileError(f"cannot write the secret key file {path}: {err}") from err
    finally:
        os.close(descriptor)
    return key


def _read_secret_key(path: Path) -> bytes:
    ensure_private_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PrivateFileError(f"cannot read the secret key file {path}: {err}") from err
    if len(key) < SECRET_KEY_BYTES:
        raise PrivateFileError(
            f"the secret key in {path} is shorter than {SECRET_KEY_BYTES} bytes; "
            "delete the file to generate a new one (everyone must then log in again)"
        )
    return key
