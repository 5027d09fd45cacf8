"""The shared cache of verified remote-dataset downloads: ``$KITOPS_HOME/cache/remote``.

A notebook re-run, a second checkout of the same ModelKit or a colleague's kernel on the same
machine unpacks the same S3 datasets again. The first download goes into this cache and to the
unpack directory: where the entry can be reflinked out (:func:`can_clone`), into the entry and
cloned out; elsewhere (ext4, or two file systems) the one download writes both files as it goes,
rather than a download and then a copy as long (1 GiB here: 6.6-7.2 s against 7.3-8.2 s, at the
floor of this disk's 2 GiB of durable writes). Every later unpack of the same object (same
endpoint, bucket, key, version and ETag -- the HEAD with ``If-Match`` confirms the ETag is still
the object's) costs that HEAD and a local copy, no GET.

What holds, and why:

* **Verified when they enter.** An entry is the downloader's own output: its bytes were checked
  against the ETag before the downloader renamed them into ``objects/``. Objects whose ETag
  cannot be checked (SSE-KMS, unknown part sizes) are never cached.
* **Never shared with the user's copy.** The unpacked file is a reflink (``FICLONE``: copy on
  write, instant on XFS/Btrfs) or an in-kernel copy (``copy_file_range``), never a hard link a
  user could edit the cache through. Entries are read-only (0444).
* **Bounded.** ``KIT_JUPYTER_REMOTE_CACHE_MAX`` bytes (``K``/``M``/``G``/``T`` suffixes, powers of
  1024; ``0`` turns the cache off), read at every unpack. Default: the smaller of 10 GiB and a
  fifth of the free space of the file system that holds the cache (counting what the cache holds
  as free, so a full cache does not shrink its own limit). Least recently used entries go first;
  an object larger than the limit, or one the disk cannot hold twice (entry + copy), is
  downloaded straight to its target instead.
* **Two kernels at once.** ``remote/lock`` (``flock``) guards eviction; a per-entry lock file
  makes a second kernel wait for the first one's download of the same object instead of fetching
  it again. Losing a per-entry lock to an eviction costs a duplicate download, never a wrong
  file: every download writes its own temporary file and renames it into place.
* **Can be turned off**: ``KIT_JUPYTER_REMOTE_CACHE=off`` (also ``0``, ``false``, ``no``), or
  ``unpack(..., remote_cache=False)`` / ``--no-cache``.

``cache info`` lists the directory and ``cache clear`` empties it through :func:`clear`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kit_jupyter._fs import (
    RangeCopier,
    atomic_write,
    is_live,
    sweep_stale,
    syncing_file,
    temp_name,
    write_bytes_atomic,
)
from kit_jupyter.errors import KitError
from kit_jupyter.gocompat.gojson import unmarshal
from kit_jupyter.oci.store import resolve_home
from kit_jupyter.reporting import NullReporter, Reporter, Task
from kit_jupyter.transport.s3 import (
    DownloadResult,
    PreparedDownload,
    download_each,
    download_prepared,
    write_error,
)

REMOTE_DIR = "remote"
ENV_SWITCH = "KIT_JUPYTER_REMOTE_CACHE"
ENV_MAX = "KIT_JUPYTER_REMOTE_CACHE_MAX"
GiB = 1 << 30
DEFAULT_MAX = 10 * GiB
DEFAULT_FREE_SHARE = 5          # at most 1/5 of the free space
ENTRY_MODE = 0o444
TARGET_MODE = 0o644             # what a fresh download gets (s3_download.Downloader)
FICLONE = 0x40049409            # _IOW(0x94, 9, int), linux/fs.h
#: FICLONE refusals (then :class:`~kit_jupyter._fs.RangeCopier` copies)
_NO_CLONE = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
             errno.EBADF, errno.EPERM, errno.ETXTBSY)
_ENTRY_RE = re.compile(r"^[0-9a-f]{64}$")
_OFF = ("off", "0", "false", "no")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class CacheConfigError(KitError):
    """A cache setting in the environment that cannot be read."""


# ---------------------------------------------------------------------------------------------
# configuration

def parse_size(text: str) -> int:
    """``10G``, ``512MiB``, ``1073741824`` -> bytes (powers of 1024). No ``i`` without a unit
    (``10iB``), digits other than ASCII's (Arabic-Indic ``10G``, which ``int()`` would take), and
    more digits than ``int()`` converts (4300) are no size either, not a ValueError."""
    m = re.fullmatch(r"\s*([0-9]+)\s*(?:([kmgtKMGT])(?:i?[bB])?|[bB])?\s*", text)
    if m is not None:
        with contextlib.suppress(ValueError):
            return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    raise CacheConfigError(f"{ENV_MAX}={text!r} is not a size: use bytes, or a number with "
                           f"K, M, G or T (e.g. 20G)")


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when ``KIT_JUPYTER_REMOTE_CACHE`` turns the cache off (read at call time)."""
    env = os.environ if env is None else env
    return (env.get(ENV_SWITCH) or "").strip().lower() not in _OFF


def _free_bytes(path: Path) -> int:
    """Free space for unprivileged writers on the file system that holds ``path`` (or would)."""
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            st = os.statvfs(p)
            return st.f_bavail * st.f_frsize
    return 0


# ---------------------------------------------------------------------------------------------
# copying out: reflink, else in-kernel copy

def clone_into(src_fd: int, dst_fd: int, size: int,
               advance: Callable[[int], object] | None = None) -> str:
    """Copy ``size`` bytes of ``src_fd`` into the empty file ``dst_fd``; returns how.

    ``FICLONE`` shares the extents copy-on-write (XFS, Btrfs, bcachefs: instant, no space used);
    where the file system cannot, ``copy_file_range`` copies in the kernel (NFS and some others
    offload it to the server), else ``sendfile``, else ``pread``/``write``. Either way the result
    is an independent file: writing to it never changes the source. (The fallbacks after the
    reflink are :class:`~kit_jupyter._fs.RangeCopier`'s.)
    """
    advance = advance or (lambda n: None)
    if size:
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            advance(size)
            return "reflink"
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
    copier = RangeCopier()
    with syncing_file(dst_fd):  # flushed while it is copied: the final fsync is short
        done = copier.copy_into_new(src_fd, 0, dst_fd, size, advance)
    if done < size:
        raise OSError(errno.EIO, "cache entry is shorter than expected")
    return copier.how


def can_clone(src: Path, dst: Path) -> bool:
    """Whether a file beside ``src`` can be reflinked to one beside ``dst`` (``FICLONE`` of
    an empty probe file, both removed at once): a cache miss then downloads into the entry
    and clones it out for free; elsewhere it writes both files from the one download."""
    probes = [temp_name(src, ".probe"), temp_name(dst, ".probe")]
    try:
        with open(probes[0], "xb") as a, open(probes[1], "xb") as b:
            fcntl.ioctl(b.fileno(), FICLONE, a.fileno())
        return True
    except OSError:
        return False
    finally:
        for probe in probes:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def copy_out(src_fd: int, target: Path, size: int, mode: int = TARGET_MODE,
             advance: Callable[[int], object] | None = None) -> str:
    """``clone_into`` the target through :func:`~kit_jupyter._fs.atomic_write` (a temporary
    sibling, fsynced, renamed into place; removed on any failure)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, mode) as f:
        return clone_into(src_fd, f.fileno(), size, advance)


# ---------------------------------------------------------------------------------------------
# the cache

@dataclass(frozen=True)
class CacheKey:
    """What identifies an object's bytes: where it lives and the ETag the HEAD confirmed."""

    endpoint: str        # S3_API_ENDPOINT, "" for AWS
    bucket: str
    key: str
    version: str         # "" when unversioned
    etag: str            # without quotes

    @property
    def id(self) -> str:
        raw = json.dumps([self.endpoint, self.bucket, self.key, self.version, self.etag])
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    @classmethod
    def of(cls, item: PreparedDownload) -> CacheKey:
        endpoint = (item.clients.settings.endpoint if item.clients else None) or ""
        return cls(endpoint.rstrip("/"), item.obj.bucket, item.obj.key,
                   item.info.version_id or item.obj.version_id or "", item.info.etag_value)


@dataclass(frozen=True)
class Entry:
    id: str
    path: Path
    size: int
    last_used: float     # mtime, set on every use


class RemoteCache:
    """The directory ``root`` (``$KITOPS_HOME/cache/remote``) and its size ``limit``."""

    def __init__(self, root: Path, limit: int | None = None) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self._limit = limit

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> RemoteCache | None:
        """The cache under ``home``'s ``cache`` directory, or None when turned off. The settings
        come from ``env`` (the mapping a command was given for S3), else the process
        environment, read now."""
        env = {**os.environ, **(env or {})}
        if not enabled(env):
            return None
        raw = (env.get(ENV_MAX) or "").strip()
        limit = parse_size(raw) if raw else None
        if limit == 0:
            return None
        return cls(resolve_home(home) / "cache" / REMOTE_DIR, limit)

    @property
    def limit(self) -> int:
        if self._limit is not None:
            return self._limit
        held = sum(e.size for e in self.entries())
        return min(DEFAULT_MAX, (_free_bytes(self.root) + held) // DEFAULT_FREE_SHARE)

    # -- locks ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, path: Path, on_wait: Callable[[], object] | None = None) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def index_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held while entries are counted, evicted or cleared (briefly: never during I/O of
        object data)."""
        return self._flock(self.root / "lock")

    def entry_lock(self, key: CacheKey,
                   on_wait: Callable[[], object] | None = None
                   ) -> contextlib.AbstractContextManager[None]:
        """Held while one object is looked up, downloaded into the cache and copied out."""
        return self._flock(self.objects / f"{key.id}.lock", on_wait)

    # -- entries ----------------------------------------------------------------------------
    def path(self, key: CacheKey) -> Path:
        return self.objects / key.id

    def entries(self) -> list[Entry]:
        """Committed entries, least recently used first."""
        out = []
        try:
            names = os.listdir(self.objects)
        except FileNotFoundError:
            return []
        for name in names:
            if _ENTRY_RE.match(name):
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(self.objects / name)
                    out.append(Entry(name, self.objects / name, st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: (e.last_used, e.id))

    def open_entry(self, key: CacheKey, size: int) -> int | None:
        """A read descriptor of the entry, or None. An entry of the wrong size is removed (it
        cannot come from the downloader, which checks every byte); a hit marks it used."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if os.fstat(fd).st_size != size:
            os.close(fd)
            self._remove(key.id)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)          # least recently used = oldest mtime
        return fd

    def describe(self, key: CacheKey) -> str:
        """How the entry was verified when it entered (from its side file)."""
        try:
            # unmarshal: deep nesting is a ValueError too
            meta = unmarshal((self.objects / f"{key.id}.json").read_text())
        except (OSError, ValueError):
            return ""
        return str(meta.get("verification") or "") if isinstance(meta, dict) else ""

    def make_room(self, size: int, target_dir: Path) -> bool:
        """Evict least recently used entries until ``size`` more bytes fit the limit; False
        (nothing evicted) when the object cannot be cached: larger than the limit, or the disk
        cannot hold the entry and the copy next to it."""
        limit = self.limit
        if size > limit:
            return False
        need = size
        with contextlib.suppress(OSError):
            if os.stat(_existing(target_dir)).st_dev == os.stat(_existing(self.root)).st_dev:
                need += size                # the copy lands on the same file system
        with self.index_lock():
            entries = self.entries()
            total = sum(e.size for e in entries)
            if _free_bytes(self.root) + total < need:
                return False
            for e in entries:
                if total + size <= limit and _free_bytes(self.root) >= need:
                    break
                self._remove(e.id)
                total -= e.size
            return total + size <= limit

    def commit(self, key: CacheKey, verification: str) -> None:
        """The downloader has renamed a verified object to :meth:`path`: make it read-only,
        note what it is, and keep the cache within its limit."""
        path = self.path(key)
        os.chmod(path, ENTRY_MODE)
        meta = {"endpoint": key.endpoint, "bucket": key.bucket, "key": key.key,
                "version": key.version, "etag": key.etag, "verification": verification,
                "entered": time.time()}
        with contextlib.suppress(OSError):  # a note for people; the entry works without it
            write_bytes_atomic(self.objects / f"{key.id}.json",
                               json.dumps(meta, indent=1).encode(), 0o444)
        with self.index_lock():
            entries = [e for e in self.entries() if e.id != key.id]
            total = sum(e.size for e in entries) + path.stat().st_size
            limit = self.limit
            for e in entries:
                if total <= limit:
                    break
                self._remove(e.id)
                total -= e.size

    def _remove(self, entry_id: str) -> None:
        for suffix in ("", ".json", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.objects / f"{entry_id}{suffix}")

    def clear(self) -> tuple[int, int, list[str]]:
        """Remove every entry and what dead processes left; keep what live ones are writing.
        Returns (entries removed, bytes freed, names kept)."""
        removed = freed = 0
        kept: list[str] = []
        if not self.root.is_dir():
            return 0, 0, []
        with self.index_lock():
            for e in self.entries():
                self._remove(e.id)
                removed += 1
                freed += e.size
            removed += len(sweep_stale(self.objects))  # dead downloads' temporary files
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(self.objects):
                    if is_live(name):
                        kept.append(f"{REMOTE_DIR}/objects/{name}")
                    elif name.endswith((".json", ".lock")):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(self.objects / name)   # orphans of removed entries
            if not kept:
                # empty: the directory goes too, so `cache info` says the cache is empty. A
                # process waiting on a lock file removed here goes ahead; at worst it evicts
                # or downloads once more than needed.
                shutil.rmtree(self.root, ignore_errors=True)
        return removed, freed, kept


def _existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return path


# ---------------------------------------------------------------------------------------------
# downloads through the cache

def download_through_cache(items: Sequence[PreparedDownload], *, cache: RemoteCache | None,
          reporter: Reporter | None = None, workers: int | None = None,
          range_size: int | None = None) -> list[DownloadResult]:
    """Each prepared object into its target, through ``cache`` when there is one.

    A hit is copied out (no GET); a miss is downloaded into the cache (verified), then copied
    out; what cannot be cached is downloaded straight to its target. Items prepared without
    asking for their part size get it here, on a miss only. Progress: the same rows as a
    download (:func:`~kit_jupyter.transport.s3.download_each`).
    """
    rep = reporter if reporter is not None else NullReporter()
    if cache is None:
        for item in items:
            item.resolve_parts()
        return download_prepared(items, reporter=rep, workers=workers, range_size=range_size)

    def fetch(item: PreparedDownload, task: Task) -> DownloadResult:
        return _fetch_one(item, cache, rep, task, workers, range_size)

    return download_each(items, rep, fetch)


def _fetch_one(item: PreparedDownload, cache: RemoteCache, rep: Reporter, task: Task,
               workers: int | None, range_size: int | None) -> DownloadResult:
    key = CacheKey.of(item)
    size = item.info.size
    t0 = time.monotonic()

    def waiting() -> None:
        rep.info(f"Waiting for another process that is downloading {item.remote_path} into "
                 f"the cache")

    item.target.parent.mkdir(parents=True, exist_ok=True)   # as a download would, first
    with cache.entry_lock(key, waiting):
        # what a killed process left of this entry (its object or its side file, both named
        # ``.<id>.``...): swept on a hit too, which never reaches the downloader's own sweep
        sweep_stale(cache.objects, key.id)
        fd = cache.open_entry(key, size)
        if fd is None:
            item.resolve_parts()
            if item.plan.mode == "none" or not cache.make_room(size, item.target.parent):
                return download_prepared([item], reporter=rep, workers=workers,
                                         range_size=range_size, task=task)[0]
            # where the entry cannot be reflinked out, the download writes the target too:
            # one pass, not a download and then a copy as long (4.6 + 3.6 s for 1 GiB here)
            mirror = None if can_clone(cache.path(key), item.target) else item.target
            entry = dataclasses.replace(item, target=cache.path(key), mirror=mirror)
            got = download_prepared([entry], reporter=rep, workers=workers,
                                    range_size=range_size, task=task)[0]
            cache.commit(key, got.verification)
            if mirror is not None:
                got.cache = "stored, and written to its target in the same pass"
                got.seconds = time.monotonic() - t0
                return got
            fd = cache.open_entry(key, size)
            if fd is None:     # evicted at once: a limit smaller than this object
                raise OSError(errno.ENOENT, "cache entry vanished", str(cache.path(key)))
            try:
                t1 = time.monotonic()
                how = _copy_out(fd, item, size)
            finally:
                os.close(fd)
            got.timings = {**got.timings, "copy": time.monotonic() - t1}
            got.cache = f"stored, copied out by {how}"
            got.seconds = time.monotonic() - t0
            return got
        try:
            how = _copy_out(fd, item, size, advance=task.advance)
        finally:
            os.close(fd)
    verification = cache.describe(key) or item.plan.describe()
    rep.info(f"Copied remote S3 dataset for path {item.path} from the cache (ETag "
             f"{item.info.etag_value}, {how})")
    seconds = time.monotonic() - t0
    return DownloadResult(item.path, item.remote_path, "from-cache", size, item.info.etag_value,
                          verification, seconds, timings={"copy": seconds},
                          cache=f"hit, copied out by {how}")


def _copy_out(fd: int, item: PreparedDownload, size: int,
              advance: Callable[[int], object] | None = None) -> str:
    """:func:`copy_out` into a dataset's target; a target that cannot be written (full, over
    a quota or a file-size limit) is the one line a download into it would give."""
    try:
        return copy_out(fd, item.target, size, advance=advance)
    except OSError as exc:
        raise write_error(item.path, exc) from None


def clear(home: str | os.PathLike[str] | None = None) -> tuple[int, int, list[str]]:
    """``cache clear`` of the remote-dataset cache (whatever the on/off settings say)."""
    return RemoteCache(resolve_home(home) / "cache" / REMOTE_DIR, 0).clear()


__all__ = ["CacheKey", "RemoteCache", "clear", "clone_into", "copy_out", "download_through_cache",
           "enabled", "parse_size"]
