"""The exception tree.

Every error a user can fix derives from :class:`KitError` and carries one line of text that names
the thing at fault (field path, dataset path, reference) -- the magics turn it into a plain
``UsageError`` and ``python -m kit_jupyter`` into ``[ERROR] <line>`` and exit status 1. Anything
else escaping a command is a bug and keeps its traceback. (Where kit's own text has several lines,
as for validation errors, the text is kit's.)

What a caller may need beyond the text is a constructor argument and a typed attribute, set once
when the error is made; nobody adds attributes to a raised error, and nobody tells errors apart
by their text. A command that adds context ("Failed to pack model kit: ...") raises a new error
of a type it names.

    KitError
    ├── KitfileError          Kitfile cannot be read or decoded (YAML, unknown key, wrong type)
    │                           .line .field .findings .problems .kit_text
    ├── ValidationError       Kitfile decoded but has validation errors: kit's text
    │                           .findings .kit_text
    ├── ReferenceError_       malformed ModelKit reference (named to avoid the builtin)
    ├── FilterError           malformed --filter
    ├── NotFoundError         ModelKit, tag, blob or file not found
    ├── StorageError          local storage problem (corrupt blob, lock, existing path ...)
    ├── PackError             pack failed for a reason other than the above
    ├── UnpackError           unpack failed (existing file, unsafe archive entry ...)
    │   └── ExistingPathError a file to write is already there (hint: -o or -i)
    ├── RemoteDatasetError    S3: credentials, not found, changed object, unreachable, mismatch
    ├── RegistryError         OCI registry: auth, connection, protocol
    │   └── AuthError         .status .reason (the registry's HTTP answer, when there was one)
    └── SystemProblem         the machine refused: disk full, quota, read-only, permission denied

Defined beside the code that raises them (this module imports nothing above it):

    KitError
    ├── UnpackError
    │   ├── LayerDecodeError      oci/compression: a gzip or zstd layer that does not decode
    │   └── TarFormatError        gocompat/gotar: bytes Go's tar reader would refuse
    ├── ManifestError             oci/manifest: not a manifest, descriptor or index
    │   └── NotAModelKitError     oci/manifest: an artifact that is not a ModelKit
    ├── MediaTypeError            oci/mediatypes: a media type, compression or format kit refuses
    ├── ModelPackError            oci/modelpack: a ModelPack kit cannot turn into a Kitfile
    ├── TemplateError             gocompat/gotemplate: a list --format template Go refuses
    ├── ReferenceChainError       commands/chain: parent or dataset references loop or go too deep
    ├── CacheConfigError          transport/remote_cache: an unreadable cache setting
    └── ServiceError              services: a local S3 server or registry did not start
        └── DemoError             demo: a wrong demo setting
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Protocol


class Located(Protocol):
    """What an error holds of a finding (``kit_jupyter.kitfile.finding.Finding`` is one); a
    protocol so that this bottom module imports nothing above it."""

    @property
    def severity(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def field(self) -> str | None: ...

    @property
    def line(self) -> int | None: ...


class KitError(Exception):
    """A problem the user can fix; ``str(err)`` is one line suitable for display (kit's text
    where kit has one). ``hint``, set by a subclass or with :meth:`with_hint`, says what to do
    next; the adapters show it after the text (:func:`error_line`)."""

    hint: str | None = None

    def with_hint(self, hint: str) -> KitError:
        self.hint = hint
        return self


def one_line(text: str) -> str:
    """Text from outside -- a server's header, what a user pasted, a raw string of a template --
    inside a message that must stay one line: each line break (any of ``str.splitlines``'s) is
    a space; nothing else changes."""
    return " ".join(text.splitlines())


def error_line(err: KitError) -> str:
    """The one line an adapter shows for a user error: the text, then the next step."""
    text = " ".join(str(err).split())
    return f"{text} ({err.hint})" if err.hint else text


class KitfileError(KitError):
    """The Kitfile cannot be read or decoded. ``str(err)`` is the first problem (with a count of
    the others); ``findings`` holds every problem with its field and line; ``kit_text`` is what kit
    prints for the same Kitfile (yaml.v3's text, one line per problem)."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None,
                 findings: Sequence[Located] = (), kit_text: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.field = field
        self.findings: tuple[Located, ...] = tuple(findings)
        self.kit_text = message if kit_text is None else kit_text

    @property
    def problems(self) -> list[str]:
        """The message of every problem, in order (just the message when there are no
        findings)."""
        return [f.message for f in self.findings] or [str(self)]


class ValidationError(KitError):
    """The Kitfile decoded but has validation errors. ``str(err)`` is kit's text (``errors while
    validating Kitfile:`` and one ``  * <error>`` line per error); ``findings`` holds every
    finding, warnings included, with its field and line."""

    def __init__(self, kit_text: str, findings: Sequence[Located] = ()) -> None:
        super().__init__(kit_text)
        self.findings: tuple[Located, ...] = tuple(findings)

    @property
    def kit_text(self) -> str:
        return str(self)


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


class ExistingPathError(UnpackError):
    """A file that unpack would write is already there."""

    hint = "-o/--overwrite replaces it, -i/--ignore-existing keeps it"


class RemoteDatasetError(KitError):
    pass


class RegistryError(KitError):
    pass


class AuthError(RegistryError):
    """Authentication or authorisation failed. ``status`` and ``reason`` are the registry's HTTP
    answer (401/403 and its reason phrase) when the registry refused a request, None and '' when
    the failure came before any answer (no credentials, unreadable credentials file ...)."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class SystemProblem(KitError):
    """The operating system refused a write or read the user can do something about."""


# errno values that are the user's environment, not our bug: one line instead of a traceback.
_SYSTEM_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    # a file system's size limit (FAT32's 4 GiB for a model on a USB disk), or ulimit -f
    errno.EFBIG: "file too large",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EMFILE: "too many open files",
    errno.ENAMETOOLONG: "file name too long",
}
# a path the user gave where a file stands for a directory, or the other way round (--config
# FILE): one line in the adapters; the commands' own code may still tell these apart
_PATH_ERRNOS = {
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
}


def system_problem(exc: BaseException) -> SystemProblem | None:
    """The one-line error for an OSError the user can fix (full disk, permissions ...), naming
    the file; None for any other exception, which stays a bug with its traceback."""
    return _problem(exc, _SYSTEM_ERRNOS)


def path_problem(exc: BaseException) -> SystemProblem | None:
    """Like :func:`system_problem`, for a path of the wrong kind (a file where a directory must
    be, or a directory where a file must): what an adapter says instead of a traceback when a
    command let the OSError through."""
    return _problem(exc, _PATH_ERRNOS)


def _problem(exc: BaseException, reasons: dict[int, str]) -> SystemProblem | None:
    if not isinstance(exc, OSError) or exc.errno not in reasons:
        return None
    where = f": {exc.filename}" if exc.filename else ""
    return SystemProblem(f"{reasons[exc.errno]}{where}")
