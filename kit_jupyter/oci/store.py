"""Local ModelKit storage, laid out exactly as kit lays it out (spec §9).

kit and kit_jupyter share ``$KITOPS_HOME/storage``: one OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/<hex>``, ``ingest/``) plus, per repository, a
``<base64url(repo)>-index.json`` (the manifests the repository holds) and a
``<base64url(repo)>-tags.json`` (tag -> descriptor). Keeping the layout identical is what lets
``kit list`` see what we pack and lets us unpack what kit packed.

Two things kit does not do and we do:

* every file is replaced atomically (temp file + fsync + rename), and blobs are only ever
  renamed into ``blobs/`` after they have been hashed, so an interrupted command leaves either the
  old state or the new one;
* read-modify-write of the JSON files happens under an ``flock`` on
  ``storage/.kit-jupyter.lock``, so two notebooks packing at once do not lose each other's tags.
  (kit itself does not lock; running kit and kit_jupyter writes concurrently is not supported.)
* a pack or pull pins every blob it finds in storage or stores there (:meth:`LocalStore.pinning`)
  until its manifest is listed, so a ``remove`` in another notebook, collecting the blobs of the
  ModelKit it removes, does not delete a layer the pack is about to reference.

Every manifest we store is also listed in the top-level ``index.json``: kit's ``remove``
garbage-collects blobs that no listed manifest references, so an unlisted manifest of ours would
lose its layers the next time kit removes something else.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import io
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kit_jupyter._fs import io_buffer, is_live, sweep_stale, temp_path, write_bytes_atomic
from kit_jupyter.errors import NotFoundError, StorageError, system_problem
from kit_jupyter.gocompat.godigest import is_sha256_digest, sha256_digest
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.kitfile.reference import Reference
from kit_jupyter.oci.manifest import (
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    empty_top_index,
    parse_tags,
)
from kit_jupyter.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from kit_jupyter.reporting import Task

OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
LOCK_NAME = ".kit-jupyter.lock"
#: ``storage/ingest/kitjupyter-pins-<owner>``: the blobs a running pack or pull will reference
#: (see :meth:`LocalStore.pinning`)
PINS_PREFIX = "kitjupyter-pins-"
CHUNK = 1 << 20  # 1 MiB: large enough that hashing, not syscalls, dominates

_LOCAL_INDEX_RE = re.compile(r"^([-A-Za-z0-9_-]*={0,3})-index\.json$")


# --------------------------------------------------------------------------------------------
# home and names


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The storage root: ``--config``, else ``$KITOPS_HOME`` (made absolute), else the OS
    default kit uses, so both tools find the same ModelKits without configuration."""
    if home is not None and str(home) != "":
        return Path(home).expanduser().absolute()
    env = os.environ.get("KITOPS_HOME")
    if env:
        return Path(env).expanduser().absolute()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "kitops"
    if sys.platform.startswith("win"):
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "kitops"
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "kitops"
    return Path.home() / ".local" / "share" / "kitops"


def repo_file_stem(repo_key: str) -> str:
    """Go's ``base64.URLEncoding`` (padded) of ``registry/repository``."""
    return base64.urlsafe_b64encode(repo_key.encode("utf-8")).decode("ascii")


def repo_index_name(repo_key: str) -> str:
    return f"{repo_file_stem(repo_key)}-index.json"


def repo_tags_name(repo_key: str) -> str:
    return f"{repo_file_stem(repo_key)}-tags.json"


def _digest_hex(digest: str) -> str:
    if not is_sha256_digest(digest):
        raise StorageError(f"invalid digest {digest!r}: only sha256 digests are supported")
    return digest.split(":", 1)[1]


def _read_file(path: Path) -> bytes | None:
    """An index or tags file's bytes; None when there is none. A directory (or anything else
    the OS refuses) where the file belongs is one line; permission and the like stay the
    OSError the adapters turn into their one line (:func:`~kit_jupyter.errors.system_problem`)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if system_problem(exc) is not None:
            raise
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None


def _storage_error(exc: ManifestError) -> StorageError:
    return StorageError(f"failed to parse {exc}")


# --------------------------------------------------------------------------------------------
# verified reading


class VerifyingReader(io.RawIOBase):
    """A blob stream that hashes what it hands out and raises at EOF if the bytes do not match
    the digest (or the expected size). Consumers that stop early should call ``verify_rest()``
    to drain and check the remainder -- a partial read proves nothing."""

    def __init__(self, raw: io.RawIOBase, digest: str, size: int | None, label: str):
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._size = size
        self._label = label
        self._hash = hashlib.sha256()
        self._count = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)
        if n is None:  # pragma: no cover - non-blocking raw streams only
            return 0
        if n:
            self._hash.update(memoryview(buffer)[:n])
            self._count += n
            if self._size is not None and self._count > self._size:
                raise StorageError(f"{self._label} {self._digest} is corrupt: larger than "
                                   f"its descriptor size {self._size}")
        elif not self.verified:
            self._check()
        return n

    def _check(self) -> None:
        if self._size is not None and self._count != self._size:
            raise StorageError(f"{self._label} {self._digest} is corrupt: {self._count} bytes, "
                               f"descriptor says {self._size}")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._digest:
            raise StorageError(f"{self._label} {self._digest} is corrupt: content hashes to "
                               f"{actual}")
        self.verified = True

    def verify_rest(self) -> None:
        buf = io_buffer(CHUNK)
        while self.readinto(buf):
            pass

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


VERIFY_CHUNK = 4 << 20  # hashlib drops the GIL per update; 4 MiB keeps syscalls negligible


class BackgroundVerifier:
    """Hashes a stored blob file in its own thread, so a consumer can copy the same file's bytes
    with ``copy_file_range``/``sendfile`` (no Python-level copying) while the digest is checked.
    sha256 is the floor of a verified unpack; overlapping it with the copy is what keeps the
    copy from adding to it. Nothing may be published before :meth:`result` returned."""

    def __init__(self, path: str | os.PathLike[str], digest: str, size: int | None,
                 label: str = "blob", task: Task | None = None, chunk: int = VERIFY_CHUNK):
        self.path = Path(path)
        self.digest = digest
        self.size = size
        self.label = label
        self.done = 0
        self._task = task
        self._chunk = chunk
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"verify {digest[:19]}",
                                         daemon=True)

    def start(self) -> BackgroundVerifier:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._hash()
        except BaseException as exc:  # handed to the consumer by result()
            self._error = exc

    def _hash(self) -> None:
        h = hashlib.sha256()
        view = io_buffer(self._chunk)
        with open(self.path, "rb", buffering=0) as f:
            advise = getattr(os, "posix_fadvise", None)
            if advise is not None:
                with contextlib.suppress(OSError):
                    advise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while not self._stop.is_set():
                n = f.readinto(view)
                if not n:
                    break
                h.update(view[:n])
                self.done += n
                if self._task is not None:
                    self._task.advance(n)
                if self.size is not None and self.done > self.size:
                    raise StorageError(f"{self.label} {self.digest} is corrupt: larger than "
                                       f"its descriptor size {self.size}")
        if self._stop.is_set():
            return
        if self.size is not None and self.done != self.size:
            raise StorageError(f"{self.label} {self.digest} is corrupt: {self.done} bytes, "
                               f"descriptor says {self.size}")
        actual = "sha256:" + h.hexdigest()
        if actual != self.digest:
            raise StorageError(f"{self.label} {self.digest} is corrupt: content hashes to "
                               f"{actual}")

    def wait(self, timeout: float | None = None) -> bool:
        """True once hashing has ended (either way)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self) -> None:
        """Block until the blob is hashed; raise :class:`StorageError` unless it matched."""
        self._thread.join()
        if self._stop.is_set() and self._error is None:
            raise StorageError(f"{self.label} {self.digest} was not verified (cancelled)")
        if self._error is not None:
            if isinstance(self._error, FileNotFoundError):
                raise NotFoundError(f"blob {self.digest} not found in local storage") from None
            raise self._error

    def failed(self) -> BaseException | None:
        """The hashing error if hashing has already ended with one (never blocks)."""
        return None if self._thread.is_alive() else self._error

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------
# writing blobs


class BlobWriter:
    """A blob being written: a temp file under ``storage/ingest`` hashed while written, renamed
    into ``blobs/sha256`` by :meth:`commit`. Leaving the ``with`` block without a commit (an
    exception, an interrupt) deletes the temp file."""

    def __init__(self, store: LocalStore):
        self._store = store
        store._ensure_layout()
        sweep_stale(store.ingest_dir)  # what a killed pack or pull left behind
        self._tmp = temp_path(store.ingest_dir, "kitjupyter-")
        self._file: BinaryIO | None = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit
        self._hash = hashlib.sha256()
        self.size = 0
        self.descriptor: Descriptor | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._file is not None, "blob already committed"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def copy_from(self, src: BinaryIO, task: Task | None = None) -> None:
        view = io_buffer(CHUNK)
        while True:
            n = src.readinto(view) if hasattr(src, "readinto") else None
            if n is None:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                self.write(chunk)
                n = len(chunk)
            elif n == 0:
                break
            else:
                self.write(view[:n])
            if task is not None:
                task.advance(n)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected_digest: str | None = None, *,
               media_type: str = "application/octet-stream",
               expected_size: int | None = None) -> Descriptor:
        assert self._file is not None, "blob already committed"
        digest = self.digest
        try:
            if expected_digest is not None and digest != expected_digest:
                raise StorageError(f"blob {expected_digest} failed verification: received "
                                   f"content hashes to {digest}")
            if expected_size is not None and self.size != expected_size:
                raise StorageError(f"blob {digest} failed verification: {self.size} bytes "
                                   f"received, {expected_size} expected")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            self._store._place(self._tmp, digest)
        except BaseException:
            self.abort()
            raise
        self.descriptor = Descriptor(media_type, digest, self.size)
        return self.descriptor

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.descriptor is None:
            self.abort()


# --------------------------------------------------------------------------------------------
# the store


class LocalStore:
    """kit's local storage under ``home/storage``. Also a BlobSource (``resolve(ref)`` with one
    argument, ``open_blob(descriptor)``), so unpack, inspect and info read it like a registry."""

    def __init__(self, home: str | os.PathLike[str] | None = None):
        self.home = resolve_home(home)
        self.root = self.home / "storage"
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.index_path = self.root / "index.json"
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()
        self._pinning = False
        self._pins: Path | None = None

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- layout ----------------------------------------------------------------------------
    def _ensure_layout(self) -> None:
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            write_bytes_atomic(layout, OCI_LAYOUT_BYTES)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive inter-process lock around read-modify-write of the JSON files.
        Re-entrant within one store object (remove = untag + delete under one lock)."""

        with self._thread_lock:
            if self._lock_depth == 0:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
                self.sweep_leftovers()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    fd, self._lock_fd = self._lock_fd, None
                    try:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    finally:
                        os.close(fd)

    def sweep_leftovers(self) -> list[Path]:
        """Remove what killed writers left in storage, and return it: blobs being stored or
        pulled and pins in ``ingest/``, the temporary siblings of index and tags files in the
        root (otherwise swept only when the same file is written again: never, once its
        repository is gone). Run whenever the lock is taken, and by ``cache clear``. Only
        ``.part`` names in the root: a repository's index file is named by its base64 name,
        which a hostile name can make look like one of ours."""
        return sweep_stale(self.ingest_dir) + sweep_stale(self.root, suffix=".part")

    @contextlib.contextmanager
    def pinning(self) -> Iterator[None]:
        """While the block runs, every blob this store object finds already stored or stores
        (:meth:`hold`, through :meth:`put_bytes` and :meth:`adopt_file`) is pinned: a
        ``remove`` in another process keeps it (:meth:`_collect`) although no listed manifest
        references it yet.

        Why: a pack reuses the layers storage holds (an unchanged dataset is "Already saved")
        and lists its manifest only at the end, minutes later for a large model. A remove of
        the previous version in between collected those layers as unreferenced, and the pack
        then failed with "blob ... is missing from local storage" (or, had it not checked,
        would have listed a manifest whose layers are gone). The pins are a file in
        ``storage/ingest`` named after its owner (:func:`~kit_jupyter._fs.temp_path`): a
        killed pack's pins count no more (:func:`~kit_jupyter._fs.is_live`), and the next
        writer there sweeps them."""
        if self._pinning:  # nested: the outer block's pins last longer
            yield
            return
        self._pinning = True
        try:
            yield
        finally:
            self._pinning = False
            path, self._pins = self._pins, None
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def hold(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` storage holds; inside :meth:`pinning` all of them are pinned
        first, under the lock, so a collect either ran before (and what it deleted is reported
        missing, to be stored anew) or runs after and keeps them. (The pins file is made on
        the first call: a pull that fails before it writes nothing.)"""
        wanted = list(digests)
        if not self._pinning:
            return {d for d in wanted if self.has_blob(d)}
        with self.locked():
            if self._pins is None:
                self._ensure_layout()
                self._pins = temp_path(self.ingest_dir, PINS_PREFIX)
            with open(self._pins, "a", encoding="ascii") as f:
                f.write("".join(f"{d}\n" for d in wanted))
            return {d for d in wanted if self.has_blob(d)}

    def _pinned(self) -> set[str]:
        """The blobs the running packs and pulls pinned (a dead one's pins are ignored)."""
        try:
            names = os.listdir(self.ingest_dir)
        except OSError:
            return set()
        pinned: set[str] = set()
        for name in names:
            if not name.startswith(PINS_PREFIX) or not is_live(name):
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                pinned.update((self.ingest_dir / name).read_text("ascii").split())
        return pinned

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / _digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, descriptor: Descriptor | str) -> VerifyingReader:
        """A streaming reader that raises :class:`StorageError` at EOF if the blob's bytes do
        not hash to its digest (or do not have the descriptor's size). A bare digest string
        checks the digest only."""
        if isinstance(descriptor, str):
            digest, size = descriptor, None
        else:
            digest, size = descriptor.digest, descriptor.size
        path = self.blob_path(digest)
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 - owned by the reader
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found in local storage") from None
        return VerifyingReader(raw, digest, size, "blob")

    def verify_in_background(self, descriptor: Descriptor, *,
                             task: Task | None = None) -> BackgroundVerifier:
        """Start hashing a stored blob in a second thread (see :class:`BackgroundVerifier`);
        the caller reads the file at :meth:`blob_path` itself, e.g. with ``copy_file_range``."""
        path = self.blob_path(descriptor.digest)
        if not path.is_file():
            raise NotFoundError(f"blob {descriptor.digest} not found in local storage")
        return BackgroundVerifier(path, descriptor.digest, descriptor.size, "blob",
                                  task=task).start()

    def read_blob(self, descriptor: Descriptor | str, limit: int = 16 << 20) -> bytes:
        """A small blob (manifest, config) read whole and verified."""
        if isinstance(descriptor, Descriptor) and descriptor.size > limit:
            raise StorageError(f"blob {descriptor.digest} is too large to read into memory "
                               f"({descriptor.size} bytes)")
        with self.open_blob(descriptor) as f:
            data = f.read(limit + 1)
            if len(data) > limit:
                raise StorageError("blob is too large to read into memory")
            f.verify_rest()
        return data

    def ingest(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        if digest in self.hold([digest]):
            return Descriptor(media_type, digest, len(data))
        with self.ingest() as w:
            w.write(data)
            return w.commit(digest, media_type=media_type)

    def adopt_file(self, path: str | os.PathLike[str], digest: str, size: int,
                   media_type: str) -> Descriptor:
        """Move a file whose digest the caller computed while writing it (a pack temp layer)
        into ``blobs/`` without copying it: fsync, then rename (copy if across devices)."""
        path = Path(path)
        self._ensure_layout()
        if digest in self.hold([digest]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return Descriptor(media_type, digest, size)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            actual = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if actual != size:
            raise StorageError(f"layer file {path} changed while packing ({actual} bytes, "
                               f"{size} expected)")
        try:
            self._place(path, digest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with self.ingest() as w, open(path, "rb") as src:
                w.copy_from(src)
                desc = w.commit(digest, media_type=media_type, expected_size=size)
            os.unlink(path)
            return desc
        return Descriptor(media_type, digest, size)

    def _place(self, tmp: Path, digest: str) -> None:
        target = self.blob_path(digest)
        if target.exists():  # content-addressed: same name, same bytes
            os.unlink(tmp)
            return
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)

    # -- JSON files (callers hold the lock for read-modify-write) -------------------------
    def _read_top_index(self) -> Index:
        data = _read_file(self.index_path)
        if data is None:
            return empty_top_index()
        try:
            return Index.parse(data, f"index {self.index_path}")
        except ManifestError as exc:
            raise _storage_error(exc) from None

    def _write_top_index(self, index: Index) -> None:
        if not index.media_type:
            index = Index(index.manifests, OCI_INDEX, index.artifact_type,
                          index.annotations, index.subject, index.schema_version, index.extra)
        self._ensure_layout()
        write_bytes_atomic(self.index_path, index.to_bytes())

    def _read_repo_index(self, repo_key: str) -> list[Descriptor]:
        path = self.root / repo_index_name(repo_key)
        data = _read_file(path)
        if data is None:
            return []
        try:
            return list(Index.parse(data, f"index {path}").manifests)
        except ManifestError as exc:
            raise _storage_error(exc) from None

    def _write_repo_index(self, repo_key: str, manifests: list[Descriptor]) -> None:
        path = self.root / repo_index_name(repo_key)
        seen: set[str] = set()
        unique = []
        for d in manifests:
            if d.digest not in seen:
                seen.add(d.digest)
                unique.append(d)
        if not unique:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, Index(tuple(unique)).to_bytes())

    def _read_tags(self, repo_key: str) -> dict[str, Descriptor]:
        path = self.root / repo_tags_name(repo_key)
        data = _read_file(path)
        if data is None:
            return {}
        try:
            return parse_tags(data, f"tags index {path}")
        except ManifestError as exc:
            raise _storage_error(exc) from None

    def _write_tags(self, repo_key: str, tags: dict[str, Descriptor]) -> None:
        path = self.root / repo_tags_name(repo_key)
        if not tags:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        # a Go map[string]Descriptor: written with its keys sorted
        write_bytes_atomic(path, marshal({t: d.to_json() for t, d in tags.items()}))

    # -- queries ---------------------------------------------------------------------------
    def repositories(self) -> list[str]:
        """``registry/repository`` names that have an index file, sorted like kit sorts them."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        repos = []
        for name in names:
            m = _LOCAL_INDEX_RE.match(name)
            if not m or not (self.root / name).is_file():
                continue
            try:
                repos.append(base64.urlsafe_b64decode(m.group(1).encode()).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise StorageError(f"failed to decode repository name from {name}") from None
        return sorted(repos, key=lambda r: r.encode("utf-8"))

    def manifests(self, repo_key: str) -> list[Descriptor]:
        return self._read_repo_index(repo_key)

    def tags(self, repo_key: str) -> dict[str, Descriptor]:
        return self._read_tags(repo_key)

    def tags_for(self, repo_key: str, digest: str) -> list[str]:
        return sorted(t for t, d in self._read_tags(repo_key).items() if d.digest == digest)

    def resolve_descriptor(self, repo_key: str, ref: str) -> Descriptor | None:
        """The manifest descriptor for a tag or digest in one repository (kit's rules: a
        digest must be listed in the repository's index, a tag in its tags file)."""
        if not ref:
            return None
        if ":" in ref:  # a digest (a tag cannot hold a colon)
            for d in self._read_repo_index(repo_key):
                if d.digest == ref:
                    return d
            return None
        return self._read_tags(repo_key).get(ref)

    def resolve(self, ref: Reference) -> Manifest:
        """The manifest ``ref`` names (BlobSource protocol, used by unpack/inspect/info);
        :class:`NotFoundError` when storage does not hold it."""
        desc = self.resolve_descriptor(ref.repo_key, ref.reference or "latest")
        if desc is None:
            raise NotFoundError(f"{ref} not found in local storage")
        return self.read_manifest(desc)

    def read_manifest(self, descriptor: Descriptor | str) -> Manifest:
        """A stored manifest, verified against its digest and parsed."""
        data = self.read_blob(descriptor)
        digest = descriptor if isinstance(descriptor, str) else descriptor.digest
        return Manifest.parse(data, f"manifest {digest}")

    # -- updates ---------------------------------------------------------------------------
    def add_manifest(self, repo_key: str, manifest: Manifest, tags: Iterable[str] = ()) -> str:
        """Store a manifest's exact bytes and record it in ``index.json``, the repository's
        index and tags.

        The manifest blob is written first and every blob it references must already exist, so
        no index ever names something missing. Both happen under the lock: a manifest blob
        found stored before it could be collected by a remove before the indexes are written
        (the same ModelKit packed twice within a second has the same manifest), which then
        listed a manifest whose blob was gone. Returns the manifest digest."""
        with self.locked():
            desc = self.put_bytes(manifest.raw, OCI_MANIFEST)
            for ref in manifest.blobs():
                if not self.has_blob(ref.digest):
                    raise StorageError(f"cannot store manifest {desc.digest}: blob "
                                       f"{ref.digest} is missing from local storage")
            top = self._read_top_index()
            if not any(d.digest == desc.digest for d in top.manifests):
                self._write_top_index(top.with_manifests([*top.manifests, desc]))
            entries = self._read_repo_index(repo_key)
            if not any(d.digest == desc.digest for d in entries):
                self._write_repo_index(repo_key, [*entries, desc])
            tags = list(tags)
            if tags:
                current = self._read_tags(repo_key)
                for t in tags:
                    current[t] = desc
                self._write_tags(repo_key, current)
        return desc.digest

    def tag(self, repo_key: str, tag: str, descriptor: Descriptor) -> None:
        """Point ``tag`` at a manifest. A manifest from another repository is first added to
        this repository's index (blobs are shared, so only the index changes -- what kit's
        ``oras.Copy`` between local repositories amounts to)."""
        plain = descriptor.plain()
        with self.locked():
            if not self.has_blob(descriptor.digest):
                raise NotFoundError(f"{descriptor.digest}: {descriptor.media_type}: not found")
            entries = self._read_repo_index(repo_key)
            if not any(d.digest == descriptor.digest for d in entries):
                top = self._read_top_index()
                if not any(d.digest == descriptor.digest for d in top.manifests):
                    self._write_top_index(top.with_manifests([*top.manifests, plain]))
                self._write_repo_index(repo_key, [*entries, plain])
            current = self._read_tags(repo_key)
            current[tag] = plain
            self._write_tags(repo_key, current)

    def untag(self, repo_key: str, tag: str) -> None:
        with self.locked():
            current = self._read_tags(repo_key)
            if tag not in current:
                raise NotFoundError(f"{tag}: not found")
            del current[tag]
            self._write_tags(repo_key, current)

    def remove_manifest(self, repo_key: str, descriptor: Descriptor) -> list[str]:
        """kit's local ``Delete``: drop the manifest and all its tags from this repository; if
        no other repository lists it, also drop it from ``index.json`` and delete the blobs
        (manifest, config, layers) that no remaining listed manifest references.
        Returns the digests of deleted blobs."""
        digest = descriptor.digest
        with self.locked():
            current = self._read_tags(repo_key)
            remaining_tags = {t: d for t, d in current.items() if d.digest != digest}
            if len(remaining_tags) != len(current):
                self._write_tags(repo_key, remaining_tags)
            entries = self._read_repo_index(repo_key)
            self._write_repo_index(repo_key, [d for d in entries if d.digest != digest])
            if any(any(d.digest == digest for d in self._read_repo_index(r))
                   for r in self.repositories()):
                return []
            top = self._read_top_index()
            kept = [d for d in top.manifests if d.digest != digest]
            if len(kept) != len(top.manifests):
                self._write_top_index(top.with_manifests(kept))
            return self._collect(digest)

    def _referenced(self, digest: str) -> list[str]:
        """What a stored manifest (or index) points at; nothing when it is missing, corrupt
        or not a manifest -- collecting must never fail on somebody else's bad blob."""
        try:
            data = self.read_blob(digest)
        except (NotFoundError, StorageError):
            return []
        out: list[str] = []
        with contextlib.suppress(ManifestError):
            out += [d.digest for d in Manifest.parse(data).blobs()]
        with contextlib.suppress(ManifestError):
            out += [d.digest for d in Index.parse(data).manifests]
        return out

    def _collect(self, manifest_digest: str) -> list[str]:
        """Delete a removed manifest's blobs unless a manifest still listed in ``index.json``
        (or in any repository index) references them. Only the removed manifest's own blobs
        are candidates, never "everything unreferenced": another process may be packing and
        have layers in ``blobs/`` whose manifest does not exist yet; and a candidate that a
        running pack or pull pinned (:meth:`pinning`) is kept for the same reason."""
        candidates = [manifest_digest, *self._referenced(manifest_digest)]
        keep = self._pinned()
        listed = {d.digest for d in self._read_top_index().manifests}
        for repo in self.repositories():
            listed.update(d.digest for d in self._read_repo_index(repo))
        for digest in listed:
            if not is_sha256_digest(digest):
                continue
            keep.add(digest)
            keep.update(self._referenced(digest))
        deleted = []
        for digest in dict.fromkeys(candidates):
            if digest in keep or not is_sha256_digest(digest):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.blob_path(digest))
                deleted.append(digest)
        return deleted

