"""``cache info`` and ``cache clear``: what is kept under ``$KITOPS_HOME/cache``, and removing it.

kit keeps only temporary files there (layers being packed, resumable imports) and so do we, with
kit's sub-directories and kit's texts, plus ``remote``: the shared cache of verified remote
datasets (:mod:`kit_jupyter.transport.remote_cache`). Two differences, both for notebooks where
several kernels share one ``KITOPS_HOME``: ``clear`` never removes a file whose owner process is
alive (our temporary names carry their owner, see :mod:`kit_jupyter._fs`), and it also removes
what killed processes left in local storage (``storage/ingest`` and index temporaries), which kit
leaves.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._arguments import OPT_PATH, arguments
from kit_jupyter._fs import is_live
from kit_jupyter.commands.results import Result, html_table, tabwriter
from kit_jupyter.oci.store import LocalStore, resolve_home
from kit_jupyter.reporting import NullReporter, Reporter, format_bytes
from kit_jupyter.transport import remote_cache


def cache_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """kit's ``constants.CachePath``: ``$KITOPS_HOME/cache``."""
    return resolve_home(home) / "cache"


def _size(path: Path) -> int:
    """Bytes under ``path`` (kit adds up ``Info().Size()`` of every entry, directories too)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    total = st.st_size
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    pass
    return total


@dataclass(repr=False)
class CacheInfoResult(Result):
    """What ``cache info`` found: ``.data`` is ``{"path", "total", "entries": {name: bytes}}``."""

    path: str
    total: int
    entries: dict[str, int]
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return {"path": self.path, "total": self.total, "entries": dict(self.entries)}

    def text(self) -> str:
        if not self.total:
            return "Cache is currently empty\n"
        rows = [[f"  ./{name}", format_bytes(size)] for name, size in sorted(self.entries.items())]
        return (f"Total size of cache directory: {format_bytes(self.total)}\nCache contents:\n"
                + tabwriter(rows, padding=4))

    def _html_body(self) -> str:
        if not self.total:
            return html_table(None, [["Cache is currently empty"]], caption=self.path)
        rows = [[f"./{name}", format_bytes(size)] for name, size in sorted(self.entries.items())]
        rows.append(["total", format_bytes(self.total)])
        return html_table(["ENTRY", "SIZE"], rows, caption=self.path)


@dataclass(repr=False)
class CacheClearResult(Result):
    """What ``cache clear`` removed; entries in use by a live process are listed as kept."""

    path: str
    removed: list[str]
    freed: int
    kept: list[str]
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return {"path": self.path, "removed": list(self.removed), "freed": self.freed,
                "kept": list(self.kept)}

    def text(self) -> str:
        lines = [f"Removed {len(self.removed)} cache entr{'y' if len(self.removed) == 1 else 'ies'}"
                 f" ({format_bytes(self.freed)})"]
        if self.kept:
            lines.append(f"Kept {len(self.kept)} in use by a running process: "
                         + ", ".join(self.kept))
        return "\n".join(lines) + "\n"

    def _html_body(self) -> str:
        return html_table(None, [[line] for line in self.text().splitlines()], caption=self.path)


@arguments(home=OPT_PATH)
def cache_info(*, home: str | os.PathLike[str] | None = None) -> CacheInfoResult:
    """The size of the cache and of each entry in it (``kit cache info``).

    Args:
        home: storage root (``--config``); the cache is its ``cache`` directory.

    Returns:
        CacheInfoResult: ``path``, ``total`` bytes and ``entries`` (name: bytes).
    """
    root = cache_dir(home)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        names = []
    entries = {name: _size(root / name) for name in names}
    return CacheInfoResult(path=str(root), total=sum(entries.values()), entries=entries)


def _in_use(path: Path) -> bool:
    """True when ``path`` (or something below it) is a temporary file of a live process."""
    names = [path.name]
    if path.is_dir() and not path.is_symlink():
        names += [n for _, dirs, files in os.walk(path) for n in dirs + files]
    return any(is_live(n) for n in names)


@arguments(home=OPT_PATH)
def cache_clear(*, home: str | os.PathLike[str] | None = None,
                reporter: Reporter | None = None) -> CacheClearResult:
    """Empty the cache (``kit cache clear``).

    Everything under the storage root's ``cache`` directory is removed except what a running
    process is writing, and so is what killed processes left in local storage.

    Args:
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives kit's messages.

    Returns:
        CacheClearResult: ``removed`` and ``kept`` entries and the bytes ``freed``.
    """
    reporter = reporter or NullReporter()
    root = cache_dir(home)
    removed: list[str] = []
    kept: list[str] = []
    freed = 0
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        names = []
    for name in names:
        path = root / name
        if name == remote_cache.REMOTE_DIR and path.is_dir() and not path.is_symlink():
            # the shared remote-dataset cache: cleared under its lock, entry by entry
            count, size, busy = remote_cache.clear(home)
            (kept if busy else removed).append(name)
            freed += size
            continue
        if _in_use(path):
            kept.append(name)
            continue
        size = _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(name)
        freed += size
    for leftover in LocalStore(resolve_home(home)).sweep_leftovers():
        removed.append(str(leftover.relative_to(resolve_home(home))))
    result = CacheClearResult(path=str(root), removed=removed, freed=freed, kept=kept)
    for line in result.text().splitlines():
        reporter.info(line)
    return result
