"""Where blobs are known to be: the blob-info cache behind cross-repository mounts.

Pushing a ModelKit to a second repository of a registry that already holds its blobs should cost
a few requests, not a second upload of every GiB: the registry API can link a blob it has into
another repository (``POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>``). To ask for
that the client must name a repository that has the blob, so every push and pull remembers
``(registry, repository)`` for each blob digest it moved, as skopeo's blob-info cache does.

The record is only a hint: a mount the registry refuses (the blob is gone from that repository,
or the credentials cannot read it) falls back to an upload and the stale hint is forgotten.

Stored as JSON in ``$KITOPS_HOME/cache/blobinfo/locations.json`` (``cache clear`` removes it; the
next push then simply uploads), updated under an ``flock`` on ``blobinfo/lock`` so kernels that
push at the same time do not lose each other's records. Bounded: the most recent
:data:`MAX_REPOS` repositories per blob and registry, the most recent :data:`MAX_DIGESTS` blobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator

from kit_jupyter._fs import write_bytes_atomic
from kit_jupyter.gocompat.gojson import unmarshal
from kit_jupyter.oci.store import resolve_home

DIR_NAME = "blobinfo"
MAX_REPOS = 4
MAX_DIGESTS = 20_000
_VERSION = 1


class BlobLocations:
    """The blob-info cache of one ``$KITOPS_HOME``."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.dir = resolve_home(home) / "cache" / DIR_NAME
        self.path = self.dir / "locations.json"

    # -- reading ------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{digest: {registry: {repository: last seen}}}``; an unreadable file is empty (it
        is a cache: the next push uploads instead of mounting)."""
        try:
            data = unmarshal(self.path.read_bytes())   # deep nesting is a ValueError too
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return {}
        blobs = data.get("blobs")
        if not isinstance(blobs, dict):
            return {}
        # any other shape (a hand edit, another version) is dropped here, not met later as an
        # AttributeError in the middle of a push
        out: dict[str, dict[str, dict[str, float]]] = {}
        for digest, registries in blobs.items():
            if not isinstance(registries, dict):
                continue
            kept = {registry: {repo: t for repo, t in ((r, _seen(v)) for r, v in repos.items())
                               if t is not None}
                    for registry, repos in registries.items() if isinstance(repos, dict)}
            kept = {registry: repos for registry, repos in kept.items() if repos}
            if kept:
                out[digest] = kept
        return out

    def sources(self, registry: str, digest: str, *, exclude: str = "") -> list[str]:
        """Repositories of ``registry`` known to hold ``digest``, most recent first."""
        repos = self._load().get(digest, {}).get(registry, {})
        return [r for r, _ in sorted(repos.items(), key=lambda kv: -kv[1])
                if r != exclude][:MAX_REPOS]

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, dict[str, float]]]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            blobs = self._load()
            yield blobs
            if len(blobs) > MAX_DIGESTS:
                newest = sorted(blobs, key=lambda d: -_latest(blobs[d]))[:MAX_DIGESTS]
                blobs = {d: blobs[d] for d in newest}
            write_bytes_atomic(self.path, json.dumps(
                {"version": _VERSION, "blobs": blobs}, separators=(",", ":")).encode())
        finally:
            os.close(fd)

    def record(self, registry: str, repository: str, digests: Iterable[str]) -> None:
        """``repository`` of ``registry`` holds these blobs now (pushed, mounted or pulled)."""
        digests = list(digests)
        if not digests:
            return
        now = time.time()
        # best effort: a hint that cannot be saved (read-only or full disk) costs the next push
        # an upload, never this command
        with contextlib.suppress(OSError), self._locked() as blobs:
            for digest in digests:
                repos = blobs.setdefault(digest, {}).setdefault(registry, {})
                repos[repository] = now
                if len(repos) > MAX_REPOS:
                    for old in sorted(repos, key=lambda r: repos[r])[:len(repos) - MAX_REPOS]:
                        del repos[old]

    def forget(self, registry: str, repository: str, digest: str) -> None:
        """A mount from ``repository`` was refused: do not suggest it again."""
        with contextlib.suppress(OSError), self._locked() as blobs:
            repos = blobs.get(digest, {}).get(registry, {})
            repos.pop(repository, None)
            if not repos:
                blobs.get(digest, {}).pop(registry, None)
            if not blobs.get(digest, True):
                blobs.pop(digest, None)


def _seen(value: object) -> float | None:
    """A last-seen time as a float; None for what is not one: a bool, a string, an integer no
    float holds (``float()`` raises OverflowError). NaN and the infinities, which would sort
    first, or never, for good, do not get this far: ``unmarshal`` refuses the file."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _latest(by_registry: dict[str, dict[str, float]]) -> float:
    return max((t for repos in by_registry.values() for t in repos.values()), default=0.0)

__all__ = ["BlobLocations", "MAX_DIGESTS", "MAX_REPOS"]
