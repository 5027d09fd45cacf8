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
import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kit_jupyter._fs import sweep_stale, temp_path, write_bytes_atomic
from kit_jupyter.errors import NotFoundError, StorageError

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
LOCK_NAME = ".kit-jupyter.lock"
CHUNK = 1 << 20  # 1 MiB: large enough that hashing, not syscalls, dominates

_LOCAL_INDEX_RE = re.compile(r"^([-A-Za-z0-9_-]*={0,3})-index\.json$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# ocispec.Descriptor field order, as Go's json.Marshal writes it
_DESCRIPTOR_KEYS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform",
                    "artifactType")
_INDEX_KEYS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject",
               "annotations")


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


def is_digest(s: str) -> bool:
    return bool(_DIGEST_RE.match(s))


def _digest_hex(digest: str) -> str:
    if not is_digest(digest):
        raise StorageError(f"invalid digest {digest!r}: only sha256 digests are supported")
    return digest.split(":", 1)[1]


# --------------------------------------------------------------------------------------------
# Go-compatible JSON


def go_json(obj: Any) -> bytes:
    """Compact JSON the way Go's ``json.Marshal`` writes it (HTML-escaped, raw UTF-8).

    Key order is the caller's: build dicts in Go's struct order (see ``_ordered_descriptor``);
    only string-keyed maps (annotations, the tags object) are sorted, as Go sorts map keys."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode("utf-8")


def _ordered_descriptor(desc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _DESCRIPTOR_KEYS:
        if key in desc and desc[key] not in (None, "", [], {}):
            value = desc[key]
            if key == "annotations":
                value = dict(sorted(value.items()))
            out[key] = value
    for key, value in desc.items():  # fields a newer kit may add: keep them, after ours
        if key not in out and key not in _DESCRIPTOR_KEYS:
            out[key] = value
    return out


def _ordered_index(index: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _INDEX_KEYS:
        if key == "manifests":
            out[key] = [_ordered_descriptor(d) for d in index.get("manifests") or []]
        elif key in index and index[key] not in (None, "", [], {}):
            out[key] = index[key]
    for key, value in index.items():
        if key not in out and key not in _INDEX_KEYS:
            out[key] = value
    return out


def manifest_descriptor(manifest_bytes: bytes) -> dict[str, Any]:
    return {"mediaType": MANIFEST_MEDIA_TYPE,
            "digest": "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(),
            "size": len(manifest_bytes)}


def _load_json(path: Path, what: str) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StorageError(f"failed to parse {what} {path}: {exc}") from None


# --------------------------------------------------------------------------------------------
# verified reading


class VerifyingReader(io.RawIOBase):
    """A blob stream that hashes what it hands out and raises at EOF if the bytes do not match
    the digest (or the expected size). Consumers that stop early should call ``verify_rest()``
    to drain and check the remainder -- a partial read proves nothing."""

    def __init__(self, raw: BinaryIO, digest: str, size: int | None, label: str):
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
        buf = bytearray(CHUNK)
        while self.readinto(buf):
            pass

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def drain_and_verify(stream: Any) -> None:
    """Read a blob stream to its end so its digest check runs (works for any source)."""
    verify = getattr(stream, "verify_rest", None)
    if verify is not None:
        verify()
        return
    while stream.read(CHUNK):
        pass


VERIFY_CHUNK = 4 << 20  # hashlib drops the GIL per update; 4 MiB keeps syscalls negligible


class BackgroundVerifier:
    """Hashes a stored blob file in its own thread, so a consumer can copy the same file's bytes
    with ``copy_file_range``/``sendfile`` (no Python-level copying) while the digest is checked.
    sha256 is the floor of a verified unpack; overlapping it with the copy is what keeps the
    copy from adding to it. Nothing may be published before :meth:`result` returned."""

    def __init__(self, path: str | os.PathLike[str], digest: str, size: int | None,
                 label: str = "blob", task: Any = None, chunk: int = VERIFY_CHUNK):
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
        buf = bytearray(self._chunk)
        view = memoryview(buf)
        with open(self.path, "rb", buffering=0) as f:
            advise = getattr(os, "posix_fadvise", None)
            if advise is not None:
                with contextlib.suppress(OSError):
                    advise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while not self._stop.is_set():
                n = f.readinto(buf)
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
        self.descriptor: dict[str, Any] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._file is not None, "blob already committed"
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def copy_from(self, src: BinaryIO, task: Any = None) -> None:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = src.readinto(buf) if hasattr(src, "readinto") else None
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
               expected_size: int | None = None) -> dict[str, Any]:
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
        self.descriptor = {"mediaType": media_type, "digest": digest, "size": self.size}
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

    def __exit__(self, *exc: Any) -> None:
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

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / _digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, descriptor: dict[str, Any] | str) -> VerifyingReader:
        """A streaming reader that raises :class:`StorageError` at EOF if the blob's bytes do
        not hash to its digest (or do not have the descriptor's size)."""
        if isinstance(descriptor, str):
            digest, size = descriptor, None
        else:
            digest, size = descriptor["digest"], descriptor.get("size")
        path = self.blob_path(digest)
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 - owned by the reader
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found in local storage") from None
        return VerifyingReader(raw, digest, size, "blob")

    def verify_in_background(self, descriptor: dict[str, Any], *,
                             task: Any = None) -> BackgroundVerifier:
        """Start hashing a stored blob in a second thread (see :class:`BackgroundVerifier`);
        the caller reads the file at :meth:`blob_path` itself, e.g. with ``copy_file_range``."""
        digest = descriptor["digest"]
        path = self.blob_path(digest)
        if not path.is_file():
            raise NotFoundError(f"blob {digest} not found in local storage")
        return BackgroundVerifier(path, digest, descriptor.get("size"), "blob",
                                  task=task).start()

    def read_blob(self, descriptor: dict[str, Any] | str, limit: int = 16 << 20) -> bytes:
        """A small blob (manifest, config) read whole and verified."""
        size = None if isinstance(descriptor, str) else descriptor.get("size")
        if size is not None and size > limit:
            raise StorageError(f"blob {descriptor['digest']} is too large to read "  # type: ignore[index]
                               f"into memory ({size} bytes)")
        with self.open_blob(descriptor) as f:
            data = f.read(limit + 1)
            if len(data) > limit:
                raise StorageError("blob is too large to read into memory")
            f.verify_rest()
        return data

    def ingest(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(digest):
            return {"mediaType": media_type, "digest": digest, "size": len(data)}
        with self.ingest() as w:
            w.write(data)
            return w.commit(digest, media_type=media_type)

    def adopt_file(self, path: str | os.PathLike[str], digest: str, size: int,
                   media_type: str) -> dict[str, Any]:
        """Move a file whose digest the caller computed while writing it (a pack temp layer)
        into ``blobs/`` without copying it: fsync, then rename (copy if across devices)."""
        path = Path(path)
        self._ensure_layout()
        if self.has_blob(digest):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return {"mediaType": media_type, "digest": digest, "size": size}
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
        return {"mediaType": media_type, "digest": digest, "size": size}

    def _place(self, tmp: Path, digest: str) -> None:
        target = self.blob_path(digest)
        if target.exists():  # content-addressed: same name, same bytes
            os.unlink(tmp)
            return
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)

    # -- JSON files (callers hold the lock for read-modify-write) -------------------------
    def _read_top_index(self) -> dict[str, Any]:
        data = _load_json(self.index_path, "index")
        if not isinstance(data, dict):
            return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
        data.setdefault("manifests", [])
        if data["manifests"] is None:
            data["manifests"] = []
        return data

    def _write_top_index(self, index: dict[str, Any]) -> None:
        index = dict(index)
        index.setdefault("schemaVersion", 2)
        index.setdefault("mediaType", INDEX_MEDIA_TYPE)
        ordered = _ordered_index(index)
        ordered["manifests"] = ordered.get("manifests") or []  # oras writes [] not null
        self._ensure_layout()
        write_bytes_atomic(self.index_path, go_json(ordered))

    def _read_repo_index(self, repo_key: str) -> list[dict[str, Any]]:
        data = _load_json(self.root / repo_index_name(repo_key), "index")
        if not isinstance(data, dict):
            return []
        return list(data.get("manifests") or [])

    def _write_repo_index(self, repo_key: str, manifests: list[dict[str, Any]]) -> None:
        path = self.root / repo_index_name(repo_key)
        seen: set[str] = set()
        unique = []
        for d in manifests:
            if d["digest"] not in seen:
                seen.add(d["digest"])
                unique.append(d)
        if not unique:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, go_json({"schemaVersion": 2,
                                          "manifests": [_ordered_descriptor(d) for d in unique]}))

    def _read_tags(self, repo_key: str) -> dict[str, dict[str, Any]]:
        data = _load_json(self.root / repo_tags_name(repo_key), "tags index")
        return dict(data) if isinstance(data, dict) else {}

    def _write_tags(self, repo_key: str, tags: dict[str, dict[str, Any]]) -> None:
        path = self.root / repo_tags_name(repo_key)
        if not tags:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        ordered = {t: _ordered_descriptor(tags[t]) for t in sorted(tags)}
        write_bytes_atomic(path, go_json(ordered))

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

    def manifests(self, repo_key: str) -> list[dict[str, Any]]:
        return self._read_repo_index(repo_key)

    def tags(self, repo_key: str) -> dict[str, dict[str, Any]]:
        return self._read_tags(repo_key)

    def tags_for(self, repo_key: str, digest: str) -> list[str]:
        return sorted(t for t, d in self._read_tags(repo_key).items() if d.get("digest") == digest)

    def resolve_descriptor(self, repo_key: str, ref: str) -> dict[str, Any] | None:
        """The manifest descriptor for a tag or digest in one repository (kit's rules: a
        digest must be listed in the repository's index, a tag in its tags file)."""
        if not ref:
            return None
        if is_digest(ref) or ":" in ref:
            for d in self._read_repo_index(repo_key):
                if d.get("digest") == ref:
                    return d
            return None
        return self._read_tags(repo_key).get(ref)

    def resolve(self, ref: Any, tag_or_digest: str | None = None) -> Any:
        """Two call forms, one name (see docs/ARCHITECTURE.md):

        * ``resolve(repo_key, ref)`` -> manifest descriptor or ``None`` (storage API);
        * ``resolve(reference)`` -> ``(manifest bytes, manifest digest)`` or
          :class:`NotFoundError` (BlobSource protocol, used by unpack/inspect/info)."""
        if tag_or_digest is not None or isinstance(ref, str):
            return self.resolve_descriptor(str(ref), tag_or_digest or "")
        repo_key = f"{ref.registry}/{ref.repository}"
        desc = self.resolve_descriptor(repo_key, ref.reference or "latest")
        if desc is None:
            raise NotFoundError(f"{ref} not found in local storage")
        data, _ = self.read_manifest(desc)
        return data, desc["digest"]

    def read_manifest(self, descriptor: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        data = self.read_blob(descriptor)
        try:
            manifest = json.loads(data)
        except ValueError as exc:
            raise StorageError(f"manifest {descriptor['digest']} is not valid JSON: "
                               f"{exc}") from None
        if not isinstance(manifest, dict):
            raise StorageError(f"manifest {descriptor['digest']} is not a JSON object")
        return data, manifest

    # -- updates ---------------------------------------------------------------------------
    def add_manifest(self, repo_key: str, manifest_bytes: bytes,
                     tags: Iterable[str] = ()) -> str:
        """Store a manifest and record it in ``index.json``, the repository's index and tags.

        The manifest blob is written first and every blob it references must already exist, so
        no index ever names something missing. Returns the manifest digest."""
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError as exc:
            raise StorageError(f"manifest is not valid JSON: {exc}") from None
        desc = self.put_bytes(manifest_bytes, MANIFEST_MEDIA_TYPE)
        with self.locked():
            for ref in _referenced(manifest):
                if not self.has_blob(ref):
                    raise StorageError(f"cannot store manifest {desc['digest']}: blob {ref} "
                                       "is missing from local storage")
            top = self._read_top_index()
            if not any(d.get("digest") == desc["digest"] for d in top["manifests"]):
                top["manifests"].append(dict(desc))
                self._write_top_index(top)
            entries = self._read_repo_index(repo_key)
            if not any(d.get("digest") == desc["digest"] for d in entries):
                entries.append(dict(desc))
                self._write_repo_index(repo_key, entries)
            tags = list(tags)
            if tags:
                current = self._read_tags(repo_key)
                for t in tags:
                    current[t] = dict(desc)
                self._write_tags(repo_key, current)
        return desc["digest"]

    def tag(self, repo_key: str, tag: str, descriptor: dict[str, Any]) -> None:
        """Point ``tag`` at a manifest. A manifest from another repository is first added to
        this repository's index (blobs are shared, so only the index changes -- what kit's
        ``oras.Copy`` between local repositories amounts to)."""
        with self.locked():
            if not self.has_blob(descriptor["digest"]):
                raise NotFoundError(f"{descriptor['digest']}: {descriptor.get('mediaType')}: "
                                    "not found")
            entries = self._read_repo_index(repo_key)
            if not any(d.get("digest") == descriptor["digest"] for d in entries):
                top = self._read_top_index()
                if not any(d.get("digest") == descriptor["digest"] for d in top["manifests"]):
                    top["manifests"].append(_plain_descriptor(descriptor))
                    self._write_top_index(top)
                entries.append(_plain_descriptor(descriptor))
                self._write_repo_index(repo_key, entries)
            current = self._read_tags(repo_key)
            current[tag] = _plain_descriptor(descriptor)
            self._write_tags(repo_key, current)

    def untag(self, repo_key: str, tag: str) -> None:
        with self.locked():
            current = self._read_tags(repo_key)
            if tag not in current:
                raise NotFoundError(f"{tag}: not found")
            del current[tag]
            self._write_tags(repo_key, current)

    def remove_manifest(self, repo_key: str, descriptor: dict[str, Any]) -> list[str]:
        """kit's local ``Delete``: drop the manifest and all its tags from this repository; if
        no other repository lists it, also drop it from ``index.json`` and delete the blobs
        (manifest, config, layers) that no remaining listed manifest references.
        Returns the digests of deleted blobs."""
        digest = descriptor["digest"]
        with self.locked():
            current = self._read_tags(repo_key)
            remaining_tags = {t: d for t, d in current.items() if d.get("digest") != digest}
            if len(remaining_tags) != len(current):
                self._write_tags(repo_key, remaining_tags)
            entries = self._read_repo_index(repo_key)
            self._write_repo_index(repo_key, [d for d in entries if d.get("digest") != digest])
            if any(any(d.get("digest") == digest for d in self._read_repo_index(r))
                   for r in self.repositories()):
                return []
            top = self._read_top_index()
            kept = [d for d in top["manifests"] if d.get("digest") != digest]
            if len(kept) != len(top["manifests"]):
                top["manifests"] = kept
                self._write_top_index(top)
            return self._collect(digest)

    def _collect(self, manifest_digest: str) -> list[str]:
        """Delete a removed manifest's blobs unless a manifest still listed in ``index.json``
        (or in any repository index) references them. Only the removed manifest's own blobs
        are candidates, never "everything unreferenced": another process may be packing and
        have layers in ``blobs/`` whose manifest does not exist yet."""
        candidates = [manifest_digest]
        try:
            _, manifest = self.read_manifest({"digest": manifest_digest})
            candidates += _referenced(manifest)
        except (NotFoundError, StorageError):
            pass
        keep: set[str] = set()
        listed = {d.get("digest") for d in self._read_top_index()["manifests"]}
        for repo in self.repositories():
            listed.update(d.get("digest") for d in self._read_repo_index(repo))
        for digest in listed:
            if not isinstance(digest, str) or not is_digest(digest):
                continue
            keep.add(digest)
            try:
                _, other = self.read_manifest({"digest": digest})
            except (NotFoundError, StorageError):
                continue
            keep.update(_referenced(other))
        deleted = []
        for digest in dict.fromkeys(candidates):
            if digest in keep or not is_digest(digest):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.blob_path(digest))
                deleted.append(digest)
        return deleted


def _plain_descriptor(desc: dict[str, Any]) -> dict[str, Any]:
    out = {k: desc[k] for k in ("mediaType", "digest", "size") if k in desc}
    out.setdefault("mediaType", MANIFEST_MEDIA_TYPE)
    return out


def _referenced(manifest: dict[str, Any]) -> list[str]:
    """Digests a manifest (or index) points at: config, layers, sub-manifests."""
    out = []
    config = manifest.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        out.append(config["digest"])
    for key in ("layers", "manifests", "blobs"):
        for d in manifest.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                out.append(d["digest"])
    return out
