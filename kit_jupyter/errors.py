"""The exception tree.

Every error a user can fix derives from :class:`KitError` and carries one line of text that names
the thing at fault (field path, dataset path, reference) -- the magics turn it into a plain
``UsageError`` and ``python -m kit_jupyter`` into ``[ERROR] <line>`` and exit status 1. Anything
else escaping a command is a bug and keeps its traceback.

    KitError
    ├── KitfileError          Kitfile cannot be read or decoded (YAML, unknown key, wrong type)
    ├── ValidationError       Kitfile decoded but has validation errors (carries findings)
    ├── ReferenceError_       malformed ModelKit reference (named to avoid the builtin)
    ├── FilterError           malformed --filter
    ├── NotFoundError         ModelKit, tag, blob or file not found
    ├── StorageError          local storage problem (corrupt blob, lock, existing path ...)
    ├── PackError             pack failed for a reason other than the above
    ├── UnpackError           unpack failed (existing file, unsafe archive entry ...)
    ├── RemoteDatasetError    S3: credentials, not found, changed object, unreachable, mismatch
    ├── RegistryError         OCI registry: auth, connection, protocol
    │   └── AuthError
    └── SystemProblem         the machine refused: disk full, quota, read-only, permission denied
"""

from __future__ import annotations

import errno


class KitError(Exception):
    """A problem the user can fix; ``str(err)`` is one line suitable for display."""


class KitfileError(KitError):
    def __init__(self, message: str, *, line: int | None = None, field: str | None = None):
        super().__init__(message)
        self.line = line
        self.field = field


class ValidationError(KitError):
    """Raised by commands (pack, strict mode) when validation produced errors."""

    def __init__(self, message: str, findings: list | None = None):
        super().__init__(message)
        self.findings = findings or []


class ReferenceError_(KitError):
    pass


class FilterError(KitError):
    pass


class NotFoundError(KitError):
    pass


class StorageError(KitError):
    pass


class PackError(KitError):
    pass


class UnpackError(KitError):
    pass


class RemoteDatasetError(KitError):
    pass


class RegistryError(KitError):
    pass


class AuthError(RegistryError):
    pass


class SystemProblem(KitError):
    """The operating system refused a write or read the user can do something about."""


# errno values that are the user's environment, not our bug: one line instead of a traceback.
_SYSTEM_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EMFILE: "too many open files",
    errno.ENAMETOOLONG: "file name too long",
}


def system_problem(exc: BaseException) -> SystemProblem | None:
    """The one-line error for an OSError the user can fix (full disk, permissions ...), naming
    the file; None for any other exception, which stays a bug with its traceback."""
    if not isinstance(exc, OSError) or exc.errno not in _SYSTEM_ERRNOS:
        return None
    where = f": {exc.filename}" if exc.filename else ""
    return SystemProblem(f"{_SYSTEM_ERRNOS[exc.errno]}{where}")
