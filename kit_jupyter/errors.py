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
    └── RegistryError         OCI registry: auth, connection, protocol
        └── AuthError
"""

from __future__ import annotations


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
