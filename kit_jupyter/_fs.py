"""Atomic file writes: the one way this package writes a file a user or kit will read.

A temporary file in the target's own directory (so ``os.replace`` is a rename on one file
system), fsync, then rename. On any exception -- KeyboardInterrupt included -- the temporary file
is removed and the previous target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def temp_name(target: Path, suffix: str = ".part") -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{suffix}")


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    target = Path(target)
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    with atomic_write(target, mode) as f:
        f.write(data)
