"""ModelKit references (spec §6), parsed exactly as kit's ``ParseReference`` does.

kit decides what is a registry by looking for ``:`` or ``.`` in the first path segment and fills
in ``localhost`` and ``_`` as defaults; a Python user must get the same storage keys and the same
error texts as a ``kit`` user typing the same string, so the quirks (``localhost/foo`` is a
repository, not a registry) are kept on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kit_jupyter._arguments import TEXT, arguments
from kit_jupyter.errors import ReferenceError_
from kit_jupyter.gocompat import gostrconv, gourl
from kit_jupyter.gocompat.godigest import digest_error, is_digest

DEFAULT_REGISTRY = "localhost"
DEFAULT_REPOSITORY = "_"
DEFAULT_TAG = "latest"

_REPOSITORY_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*"
)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``reference`` is a tag, a digest or empty (no tag given)."""

    registry: str
    repository: str
    reference: str = ""
    extra_tags: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        return self.reference if is_digest(self.reference) else ""

    @property
    def tag(self) -> str:
        return "" if is_digest(self.reference) else self.reference

    @property
    def repo_key(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        if not self.reference:
            return self.repo_key
        sep = "@" if is_digest(self.reference) else ":"
        return f"{self.repo_key}{sep}{self.reference}"

    def display(self) -> str:
        """The reference as kit prints it (default registry/repository stripped)."""
        return display_repository(str(self))

    def with_default_tag(self) -> tuple[Reference, str | None]:
        """Fill in ``latest`` when no tag or digest was given, as kit's commands do.

        Returns the new reference and the info message kit prints in that case (the wording of
        the message differs per command, so callers format it with :func:`default_tag_message`).
        """
        if self.reference:
            return self, None
        ref = Reference(self.registry, self.repository, DEFAULT_TAG, self.extra_tags)
        return ref, f"Using '{DEFAULT_TAG}' as default ('{ref}')"


def default_tag_message(command: str, ref: Reference | str) -> str:
    """kit's info line when a command fills in ``latest`` (spec §6.1).

    kit prints the reference as the user typed it; pass that text when you have it (a parsed
    Reference is shown in display form instead).
    """
    if isinstance(ref, str):
        shown = f"{ref}:{DEFAULT_TAG}"
    else:
        shown = display_repository(f"{ref.registry}/{ref.repository}:{DEFAULT_TAG}")
    if command == "pack":
        return (
            "No tag or digest specified with --tag flag. "
            f"Using '{DEFAULT_TAG}' as default ('{shown}')"
        )
    return f"No tag specified for {command}. Using '{DEFAULT_TAG}' as default ('{shown}')"


# user[:password]@ at the start of what stands for a registry (scheme:// allowed before it)
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?(?P<user>[^/:]*)"
                       r"(?P<password>:[^/]*)?@")


def without_password(registry: str) -> str:
    """``registry`` as a message may show it: a password typed into it (``user:secret@host``,
    ``https://user:secret@host``, as in an URL) is ``***``, and a lone ``token@host``'s token.
    kit shows them as typed; a notebook output or a CI log must not."""

    def mask(m: re.Match[str]) -> str:
        scheme = m.group("scheme") or ""
        return f"{scheme}{m.group('user')}:***@" if m.group("password") else f"{scheme}***@"

    return _USERINFO.sub(mask, registry, count=1)


def password_in(text: str) -> str | None:
    """The password (or lone token) typed into ``text`` the way :func:`without_password`
    hides it; None when there is none."""
    m = _USERINFO.match(text)
    if m is None:
        return None
    return (m.group("password") or "")[1:] or (None if m.group("password") else m.group("user"))


def check_registry(registry: str) -> None:
    """oras ``ValidateRegistry``: raises ReferenceError_ with its text (``invalid reference:
    invalid registry "…"``, the password hidden) unless ``registry`` is a host[:port]."""
    if not _registry_ok(registry):
        shown = gostrconv.quote(without_password(registry))
        raise ReferenceError_(f"invalid reference: invalid registry {shown}")


def _registry_ok(registry: str) -> bool:
    """oras ValidateRegistry: ``dummy://<registry>`` must parse with exactly that host."""
    try:
        host = gourl.parse_request_uri("dummy://" + registry).host
    except gourl.URLError:
        return False
    return host != "" and host == registry


@arguments(s=TEXT)
def parse_reference(s: str) -> Reference:
    """Parse a ModelKit reference exactly as kit does (``ParseReference``).

    The first path segment is the registry only if it holds ``:`` or ``.``; otherwise the
    registry is ``localhost`` (local storage).

    Args:
        s: ``[registry/]repository[:tag|@digest][,tag2...]``.

    Returns:
        Reference: ``registry``, ``repository``, ``reference`` (tag, digest or empty),
        ``extra_tags``.

    Raises:
        ReferenceError_: malformed, with kit's message.
    """
    if is_digest(s):
        return Reference(DEFAULT_REGISTRY, DEFAULT_REPOSITORY, s, ())
    parts = s.split(",")
    unprocessed, extra = parts[0], tuple(parts[1:])
    registry = DEFAULT_REGISTRY
    if "/" in unprocessed:
        first, rest = unprocessed.split("/", 1)
        if ":" in first or "." in first:
            registry, unprocessed = first, rest
    has_tag = has_digest = False
    if "@" in unprocessed:
        has_digest = True
        repo, ref = unprocessed.split("@", 1)
        repo = repo.split(":", 1)[0]
    elif ":" in unprocessed:
        has_tag = True
        repo, ref = unprocessed.split(":", 1)
    else:
        repo, ref = unprocessed, ""
    if repo.lower() != repo:
        raise ReferenceError_(f"repository ({repo}) name must be lowercase")
    if not re.search(r"[a-z0-9]", repo):
        raise ReferenceError_(f"repository ({repo}) must start and end with a letter or number")
    check_registry(registry)
    if not _REPOSITORY_RE.fullmatch(repo):
        raise ReferenceError_(f"invalid reference: invalid repository {gostrconv.quote(repo)}")
    if has_tag and not _TAG_RE.fullmatch(ref):
        raise ReferenceError_(f"invalid reference: invalid tag {gostrconv.quote(ref)}")
    if has_digest:
        err = digest_error(ref)
        if err:
            raise ReferenceError_(
                f"invalid reference: invalid digest {gostrconv.quote(ref)}: {err}")
    return Reference(registry, repo, ref, extra)


def is_modelkit_reference(s: str) -> bool:
    """True when ``s`` names a ModelKit (used for ``model.path`` and dataset ``remotePath``)."""
    if ":" not in s and "@" not in s:
        return False
    try:
        parse_reference(s)
    except ReferenceError_:
        return False
    return True


def display_repository(repo: str) -> str:
    """kit's ``FormatRepositoryForDisplay``: hide the default registry and repository."""
    prefix = DEFAULT_REGISTRY + "/"
    if repo.startswith(prefix):
        repo = repo[len(prefix) :]
    if repo.startswith(DEFAULT_REPOSITORY):
        repo = repo[len(DEFAULT_REPOSITORY) :]
    if repo.startswith("@"):
        repo = repo[1:]
    return repo
