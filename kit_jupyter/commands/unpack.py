"""``unpack``: a ModelKit's Kitfile and layers into a directory, with kit's rules (spec §11).

Layers are matched to Kitfile entries by position within each type, each entry's digest is
cross-checked against its layer, and only the blobs the filters select are fetched. Every blob
is verified against its digest: an uncompressed blob in local storage is hashed by a second
thread while its members are copied file-to-file in the kernel (the copy hides behind the hash,
which is the floor); any other blob is hashed as it streams. A layer's files are temp files
until its whole blob verified, and only then renamed into place, so a corrupt blob or an
interrupted unpack leaves whole files or none -- never a truncated or unverified model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import gzip
import json
import os
import posixpath
import secrets
import stat
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kit_jupyter._fs import write_bytes_atomic
from kit_jupyter.commands.chain import parent_path, walk_parents
from kit_jupyter.commands.results import UnpackResult
from kit_jupyter.commands.sources import (
    BlobSource,
    close_source,
    open_and_resolve,
    open_source,
    read_kitfile,
    resolve_in,
)
from kit_jupyter.errors import FilterError, KitError, RemoteDatasetError, UnpackError
from kit_jupyter.kitfile.filters import Filter, matches, parse_filters
from kit_jupyter.kitfile.model import Kitfile, RemoteDataset
from kit_jupyter.kitfile.reference import (
    Reference,
    default_tag_message,
    is_modelkit_reference,
    parse_reference,
)
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    ANNOTATION_LAYER_SUBTYPE,
    LAYER_SUBTYPE_PROMPT,
    MediaTypeError,
    parse_media_type,
)
from kit_jupyter.oci.store import CHUNK, LocalStore
from kit_jupyter.reporting import NullReporter, Reporter
from kit_jupyter.transport.registry import RegistryOptions
from kit_jupyter.transport.s3 import (
    DownloadResult,
    PreparedDownload,
    S3Object,
    check_unpack_path,
    download_clients,
    download_prepared,
    is_s3_path,
    parse_s3_url,
    prepare_download,
)


def unpack(ref: str, *, dir: str | os.PathLike[str] = ".",  # noqa: A002 - kit's flag name
           overwrite: bool = False, ignore_existing: bool = False,
           filters: Sequence[Any] = (), include_remote: bool = False,
           home: str | os.PathLike[str] | None = None, source: BlobSource | None = None,
           reporter: Reporter | None = None, env: Any = None,
           plain_http: bool = False, tls_verify: bool | str = True,
           concurrency: int = 5) -> UnpackResult:
    """Extract a ModelKit's Kitfile and layers into a directory (``kit unpack REF``).

    The ModelKit is read from local storage when it is there, else streamed from its registry
    (nothing is saved locally); every blob is verified against its digest.

    Args:
        ref: ``[registry/]repository[:tag|@digest]``; no tag means ``latest``.
        dir: target directory, created if missing (``-d``).
        overwrite: replace files that already exist (``-o``); otherwise an existing file is an
            error.
        ignore_existing: skip files that already exist (``-i``).
        filters: kit's ``--filter`` strings, e.g. ``["model", "datasets:train"]``.
        include_remote: also download S3 remote datasets, verified against their ETag
            (``--include-remote``).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        source: read blobs from this source instead of local storage or the registry.
        reporter: receives kit's messages and progress (see ``make_reporter``).
        env: environment for S3 settings (``S3_API_ENDPOINT`` ...); default ``os.environ``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle
            (``--tls-verify``).
        concurrency: parallel registry transfers (``--concurrency``).

    Returns:
        UnpackResult: the digest, the directory, the files of each layer and the remote datasets.
    """
    rep = reporter if reporter is not None else NullReporter()
    start = len(rep.messages)
    parsed = parse_reference(ref)
    if not parsed.reference:

        parsed, _ = parsed.with_default_tag()
        rep.info(default_tag_message("unpack", parsed))
    if parsed.extra_tags:
        raise KitError("can not unpack multiple tags")
    flts = _parse_filters(filters)
    target = Path(dir).expanduser().absolute()
    try:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise UnpackError(f"failed to create directory {target}: {exc.strerror}") from None
    rep.info(f"Unpacking to {target}")
    ctx = _Unpack(target=target, overwrite=overwrite, ignore_existing=ignore_existing,
                  home=home, reporter=rep,
                  registry_options=RegistryOptions(plain_http=plain_http, tls_verify=tls_verify,
                                                   concurrency=concurrency, home=home))
    digest, kf, layers, kitfile_path = ctx.run(parsed, flts, source)
    remote = unpack_remote_datasets(kf, target, include_remote=include_remote, filters=flts,
                                    overwrite=overwrite, ignore_existing=ignore_existing,
                                    reporter=rep, env=env)
    return UnpackResult(reference=parsed.display(), digest=digest, directory=str(target),
                        kitfile_path=kitfile_path, layers=layers, remote=remote,
                        messages=list(rep.messages[start:]))


# --------------------------------------------------------------------------------------------
# filters and the remote-dataset hook (other modules; imported lazily)


def _parse_filters(filters: Sequence[Any]) -> list[Any]:
    items = list(filters or ())
    if not items:
        return []
    if all(isinstance(f, str) for f in items):

        try:
            return list(parse_filters(items))
        except FilterError:
            raise
    return items


def _matches(filters: list[Any], kind: str, name: str, path: str) -> bool:
    if not filters:
        return True

    return bool(matches(filters, kind, name or "", path or ""))


WARN_NOT_INCLUDED = ("ModelKit contains remote datasets. "
                     "To unpack, specify the --include-remote flag")


def unpack_remote_datasets(kf: Kitfile | None, target: Path, *, include_remote: bool,
                           filters: Sequence[Filter] = (), overwrite: bool = False,
                           ignore_existing: bool = False, reporter: Reporter | None = None,
                           env: Mapping[str, str] | None = None, workers: int | None = None,
                           range_size: int | None = None) -> list[DownloadResult]:
    """The last step of unpack (spec §12.4/§12.5): the remote datasets the filters select, with
    kit's existing-file rules. Every path, existing-file and HEAD check runs before the first
    byte is downloaded, so a problem with the third dataset does not leave the first two half
    done."""
    rep = reporter if reporter is not None else NullReporter()
    selected = [d for d in (kf.remote_datasets() if kf is not None else [])
                if matches(list(filters), "dataset", d.name, d.path)]
    if not selected:
        return []
    if not include_remote:
        rep.warning(WARN_NOT_INCLUDED)
        return [DownloadResult(d.path, d.remote_path, "not-included") for d in selected]
    wanted: list[tuple[RemoteDataset, S3Object, Path, bool]] = []
    for d in selected:
        if not is_s3_path(d.remote_path) and is_modelkit_reference(d.remote_path):
            rep.warning(f"Remote dataset {d.path} refers to ModelKit {d.remote_path}; unpacking "
                        f"ModelKit-reference datasets is not supported yet")
            continue
        try:
            obj = parse_s3_url(d.remote_path, d.remote_hash)
        except RemoteDatasetError as e:
            raise RemoteDatasetError(
                f"failed to parse S3 object reference for dataset {d.path}: {e}") from None
        try:
            file = check_unpack_path(d.path, target)
        except ValueError as e:
            raise UnpackError(f"error verifying path {d.path} for remote reference: {e}") from None
        wanted.append((d, obj, file, _existing_file(file, d.path)))
    if not wanted:
        return []
    clients = download_clients(env, workers=workers)
    done: dict[int, DownloadResult] = {}
    todo: list[tuple[int, PreparedDownload]] = []
    for n, (d, obj, file, exists) in enumerate(wanted):
        if exists and ignore_existing:
            done[n] = DownloadResult(d.path, d.remote_path, "skipped-existing")
            rep.info(f"Path {d.path} already exists; skipping remote dataset {d.remote_path} "
                     f"(--ignore-existing)")
            continue
        item = prepare_download(clients, obj, d.remote_hash, file, dataset_path=d.path)
        if exists:
            if item.up_to_date(workers):
                done[n] = item.result("up-to-date")
                rep.info(f"Remote S3 dataset for path {d.path} is up to date (existing file "
                         f"matches ETag {item.info.etag_value}); not downloaded again")
                continue
            if not overwrite:
                raise UnpackError(
                    f"failed to unpack remote dataset: path '{d.path}' already exists")
        todo.append((n, item))
    fetched = download_prepared([it for _, it in todo], reporter=rep, workers=workers,
                                range_size=range_size)
    done.update(zip([n for n, _ in todo], fetched, strict=True))
    return [done[n] for n in sorted(done)]


def _existing_file(target: Path, path: str) -> bool:
    """Whether a remote dataset's target exists; only a regular file may be there."""
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise UnpackError(f"failed to unpack remote dataset: path '{path}' already exists and is "
                          f"not a regular file")
    return True


# --------------------------------------------------------------------------------------------
# the unpack itself


class _Unpack:
    def __init__(self, *, target: Path, overwrite: bool, ignore_existing: bool, home: Any,
                 reporter: Reporter, registry_options: RegistryOptions):
        self.target = target
        self.overwrite = overwrite
        self.ignore_existing = ignore_existing
        self.home = home
        self.reporter = reporter
        self.registry_options = registry_options
        self.umask = _current_umask()

    def run(self, ref: Reference, filters: list[Any], source: BlobSource | None
            ) -> tuple[str, Kitfile, list[dict[str, Any]], str | None]:
        if source is not None:
            return self._run_with(source, ref, filters)
        src = open_source(ref, home=self.home, registry_options=self.registry_options,
                          warn=self.reporter.warning)
        try:
            return self._run_with(src, ref, filters)
        finally:
            close_source(src)

    def _run_with(self, src: BlobSource, ref: Reference, filters: list[Any]
                  ) -> tuple[str, Kitfile, list[dict[str, Any]], str | None]:
        manifest = resolve_in(src, ref)
        kf = read_kitfile(src, manifest)
        if kf is None:
            raise KitError("failed to read model: artifact does not contain a Kitfile")
        self._unpack_parents(kf, filters)
        kitfile_path = None
        if _matches(filters, "kitfile", "", ""):
            kitfile_path = self._write_kitfile(kf)
        layers = self._layers(src, manifest, kf, filters)
        return manifest.digest, kf, layers, kitfile_path

    def _unpack_parents(self, kf: Kitfile, filters: list[Any]) -> None:
        """kit unpacks the parent ModelKits' models first, the farthest first, with only the
        ``model`` part of each filter; a filter without ``model`` leaves the parents out (kit
        still names the first). Every parent is read before anything is written."""
        path = parent_path(kf)
        if not path:
            return
        announce = functools.partial(_announce_parent, self.reporter)
        parent_filters = _parent_filters(filters)
        if parent_filters is None:
            announce(path)
            return
        resolve = functools.partial(open_and_resolve, home=self.home,
                                    registry_options=self.registry_options)
        with contextlib.ExitStack() as stack:
            parents = list(walk_parents(kf, resolve, stack, announce=announce))
            for parent in reversed(parents):
                self._layers(parent.source, parent.manifest, parent.kitfile, parent_filters)

    # -- Kitfile ---------------------------------------------------------------------------
    def _write_kitfile(self, kf: Any) -> str:
        data = kf.to_yaml().encode("utf-8")
        path = self.target / "Kitfile"
        if path.exists() or path.is_symlink():
            if not path.is_file() or path.is_symlink():
                raise UnpackError(f"failed to unpack config: path {path} exists and is not a "
                                  "regular file")
            if not self.overwrite:
                if path.stat().st_size != len(data):
                    raise UnpackError(f"failed to unpack config: path {path} already exists")
                if path.read_bytes() == data:
                    self.reporter.info(f"Found existing Kitfile at {path}")
                    return str(path)
                raise UnpackError("failed to unpack: Kitfile exists and does not match model's "
                                  "Kitfile")
        self.reporter.info(f"Unpacking config to {path}")
        write_bytes_atomic(path, data, 0o644 & ~self.umask)
        return str(path)

    # -- layers ----------------------------------------------------------------------------
    def _layers(self, src: BlobSource, manifest: Manifest, kf: Kitfile,
                filters: list[Any]) -> list[dict[str, Any]]:
        """Each layer matched, by position within its type, to its Kitfile entry (kit's rule),
        cross-checked by digest, and unpacked unless the filters leave it out."""
        model = kf.model
        entries: dict[str, list[Any]] = {
            "modelpart": list(model.parts) if model is not None else [],
            "code": list(kf.code), "prompt": list(kf.prompts), "docs": list(kf.docs),
            "dataset": [d for d in kf.datasets if not d.remote_path],
            "mcpserver": list(kf.mcp_servers)}
        taken = dict.fromkeys(entries, 0)
        done: list[dict[str, Any]] = []
        for desc in manifest.layers:
            try:
                media_type = parse_media_type(desc.media_type)
            except MediaTypeError:
                self.reporter.warning(f"Unknown media type {desc.media_type}: skipping unpack")
                continue
            base = media_type.base
            if base == "config":
                continue
            if base == "model":
                kind = "model"
            elif base == "code" and (desc.annotations.get(ANNOTATION_LAYER_SUBTYPE)
                                     == LAYER_SUBTYPE_PROMPT):
                kind = "prompt"
            else:
                kind = {"mcpb": "mcpserver"}.get(base, base)
            if kind == "model":
                entry = model
            else:
                i = taken[kind]
                taken[kind] = i + 1
                entry = entries[kind][i] if i < len(entries[kind]) else None
            if entry is None:
                raise UnpackError(f"failed to unpack: no Kitfile entry for {kind} layer "
                                  f"{desc.digest}")
            name = getattr(entry, "name", "")
            if not _matches(filters, kind, name, entry.path):
                continue
            self.reporter.info(_UNPACKING[kind].format(name=name, path=entry.path))
            extract_dir = ""
            if entry.digest:
                if entry.digest != desc.digest:
                    raise UnpackError(f"digest in config and manifest do not match in "
                                      f"{base}")
            else:  # ModelKits from before digests were in the config
                extract_dir = _legacy_dir(entry.path, base)
            fmt = media_type.format + (f"+{media_type.compression}" if media_type.compressed
                                       else "")
            self._unpack_layer(src, desc, fmt, extract_dir, entry.path)
            done.append({"type": kind, "name": name, "path": entry.path, "digest": desc.digest,
                         "size": desc.size})
        return done

    def _unpack_layer(self, src: BlobSource, desc: Descriptor, fmt: str,
                      extract_dir: str, path: str) -> None:
        task = self.reporter.task(f"unpack {path or desc.digest[:19]}", desc.size)
        ok = False
        pending: list[tuple[Path, Path]] = []
        try:
            if isinstance(src, LocalStore) and fmt in ("tar", "raw"):
                self._unpack_local(src, desc, fmt, extract_dir, path, task, pending)
            else:
                self._unpack_stream(src, desc, fmt, extract_dir, path, task, pending)
            # Only a verified layer's files are renamed into place.
            while pending:
                tmp, final = pending.pop(0)
                os.replace(tmp, final)
            ok = True
        finally:
            for tmp, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            task.finish(ok)

    def _unpack_local(self, store: LocalStore, desc: Descriptor, fmt: str,
                      extract_dir: str, path: str, task: Any,
                      pending: list[tuple[Path, Path]]) -> None:
        """Uncompressed blob in local storage: a second thread hashes the blob file while this
        one copies members straight from it with ``copy_file_range`` at their offsets, so the
        copy hides behind the hash (the floor) instead of adding to it. Files stay temp files
        until :meth:`BackgroundVerifier.result` has confirmed the digest."""
        verifier = store.verify_in_background(desc, task=task)
        try:
            with _BlobFile(store.blob_path(desc.digest)) as reader:
                try:
                    if fmt == "raw":
                        self._write_raw(reader, desc, path, pending)
                    else:
                        self._extract(reader, extract_dir, pending)
                except (OSError, EOFError, tarfile.TarError) as exc:
                    raise UnpackError(f"failed to unpack: {_os_text(exc)}") from None
        except _ArchiveError:
            # A garbled archive is most likely a corrupt blob: if the hash says so, that is
            # the error worth reporting.
            verifier.result()
            raise
        except BaseException:
            verifier.cancel()
            raise
        verifier.result()

    def _unpack_stream(self, src: BlobSource, desc: Descriptor, fmt: str,
                       extract_dir: str, path: str, task: Any,
                       pending: list[tuple[Path, Path]]) -> None:
        """Any source (registry, compressed blobs): one verified stream, read once."""
        stream = src.open_blob(desc)
        with contextlib.closing(stream):
            counted = _Counting(stream, task)
            if fmt.endswith("+gzip"):

                reader: Any = gzip.GzipFile(fileobj=counted, mode="rb")
            elif fmt.endswith("+zstd"):
                raise UnpackError("failed to unpack: zstd-compressed layers are not "
                                  "supported")
            else:
                reader = counted
            try:
                if fmt.startswith("raw"):
                    self._write_raw(reader, desc, path, pending)
                else:
                    self._extract(reader, extract_dir, pending)
            except (OSError, EOFError, tarfile.TarError) as exc:
                raise UnpackError(f"failed to unpack: {_os_text(exc)}") from None
            # Read what the reader left (end-of-archive padding) so the stream's digest
            # check runs; counted, so progress ends at 100%.
            _drain(counted)

    def _write_raw(self, reader: Any, desc: Descriptor, path: str,
                   pending: list[tuple[Path, Path]]) -> None:
        """A raw layer (spec §8.9, e.g. an ``.mcpb``) is the file itself: it goes to the
        entry's path under the same existing-file rules as a tar member."""
        annotations = desc.annotations
        name = path or annotations.get(ANNOTATION_FILEPATH, "")
        if not name:
            raise UnpackError("failed to unpack: unknown file path for layer: no "
                              "org.cncf.model.filepath annotation")
        full = _checked_path(self.target, name)
        if not self._may_write(full, name):
            return
        full.parent.mkdir(parents=True, exist_ok=True)
        mode = _raw_mode(annotations) & ~self.umask
        size = getattr(reader, "size", None)
        pending.append((_write_member(reader, full, size, mode, bytearray(CHUNK)), full))

    def _may_write(self, full: Path, out: str) -> bool:
        """kit's rules for a file that is already there; False: skip it (``-i``)."""
        if full.exists() or full.is_symlink():
            if self.ignore_existing:
                return False
            if not self.overwrite:
                raise UnpackError(f"failed to unpack: path '{out}' already exists")
            if not full.is_file() or full.is_symlink():
                raise UnpackError(f"failed to unpack: path '{out}' already exists and is "
                                  "not a regular file")
        return True

    def _extract(self, reader: Any, extract_dir: str,
                 pending: list[tuple[Path, Path]]) -> None:
        buf = bytearray(CHUNK)
        for name, typeflag, mode, size in _tar_entries(reader):
            out = posixpath.join(extract_dir, name) if extract_dir else name
            full = _checked_path(self.target, out)
            if typeflag == tarfile.DIRTYPE:
                if full.exists() or full.is_symlink():
                    if not full.is_dir():
                        raise UnpackError(f"failed to unpack: path '{out}' already exists and "
                                          "is not a directory")
                else:
                    os.makedirs(full, mode=(mode & 0o7777) or 0o755, exist_ok=True)
                continue
            if typeflag not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                raise UnpackError(f"failed to unpack: unrecognized type in archive: {name}")
            if not self._may_write(full, out):
                _skip(reader, _padded(size), buf)
                continue
            full.parent.mkdir(parents=True, exist_ok=True)
            pending.append((_write_member(reader, full, size, (mode & 0o7777) & ~self.umask,
                                          buf), full))
            _skip(reader, _padded(size) - size, buf)


# kit's info line per layer kind
_UNPACKING = {"model": "Unpacking model {name} to {path}",
              "modelpart": "Unpacking model part {name} to {path}",
              "prompt": "Unpacking prompt to {path}", "code": "Unpacking code to {path}",
              "dataset": "Unpacking dataset {name} to {path}", "docs": "Unpacking docs to {path}",
              "mcpserver": "Unpacking MCP server {name} to {path}"}


def _announce_parent(reporter: Reporter, path: str) -> None:
    reporter.info(f"Unpacking referenced modelkit {path}")


def _parent_filters(filters: list[Any]) -> list[Any] | None:
    """The filters a parent ModelKit is unpacked with (kit's ``unpackParent``): ``model`` when
    none were given, else each filter's ``model`` part; None when no filter names ``model``."""
    if not filters:
        return list(parse_filters(["model"]))
    return [_only_model(f) for f in filters if _filter_has_model(f)] or None


def _filter_has_model(f: Any) -> bool:
    types = getattr(f, "types", None) or getattr(f, "base_types", None) or ()
    return "model" in types


def _only_model(f: Any) -> Any:

    for attr in ("types", "base_types"):
        if hasattr(f, attr):
            with contextlib.suppress(TypeError, ValueError):
                return dataclasses.replace(f, **{attr: ("model",)})
    return f


def _legacy_dir(path: str, base: str) -> str:
    clean = posixpath.normpath(path or ".")
    if clean.startswith("/") or clean == ".." or clean.startswith("../"):
        raise UnpackError(f"error resolving {base} path: layer paths must stay within "
                          "context directory")
    parent = posixpath.dirname(clean)
    return "" if parent in ("", ".") else parent


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _os_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _checked_path(base: Path, name: str) -> Path:
    """kit's VerifySubpath: no absolute names, nothing escaping ``base`` lexically or through
    a symlinked directory already on disk."""
    if name.startswith("/") or posixpath.isabs(name):
        raise UnpackError(f"failed to unpack: illegal file path: {name}: absolute paths are "
                          f"not supported ({name})")
    clean = posixpath.normpath(name)
    if clean == ".." or clean.startswith("../"):
        raise UnpackError(f"failed to unpack: illegal file path: {name}: layer paths must stay "
                          "within context directory")
    full = base / clean
    real_base = os.path.realpath(base)
    real_parent = os.path.realpath(full.parent)
    if os.path.commonpath([real_base, real_parent]) != real_base:
        raise UnpackError(f"failed to unpack: illegal file path: {name}: paths must be within "
                          "context directory")
    return full


# --------------------------------------------------------------------------------------------
# streaming tar reading (headers parsed by tarfile, content copied with large buffers)


class _Counting:
    """Pass-through that reports bytes read (compressed size) to a progress task."""

    def __init__(self, raw: Any, task: Any):
        self._raw = raw
        self._task = task

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b)
        if n:
            self._task.advance(n)
        return n or 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._task.advance(len(data))
        return data

    def readable(self) -> bool:
        return True


def _drain(reader: Any) -> None:
    buf = bytearray(CHUNK)
    while reader.readinto(buf):
        pass


def _read_into(reader: Any, view: memoryview) -> int:
    """Fill ``view`` unless EOF comes first; returns the number of bytes read."""
    got = 0
    total = len(view)
    while got < total:
        n = reader.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _read_exact(reader: Any, n: int) -> bytes:
    buf = bytearray(n)
    got = _read_into(reader, memoryview(buf))
    if got != n:
        raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
    return bytes(buf)


def _padded(size: int) -> int:
    return (size + 511) // 512 * 512


def _skip(reader: Any, n: int, buf: bytearray) -> None:
    seek = getattr(reader, "skip", None)
    if seek is not None:
        seek(n)
        return
    view = memoryview(buf)
    while n > 0:
        got = _read_into(reader, view[:min(n, len(buf))])
        if not got:
            raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
        n -= got


_WRITEBACK_KICK = 64 << 20


def _start_writeback(fd: int, offset: int, length: int) -> None:
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _write_member(reader: Any, target: Path, size: int | None, mode: int,
                  buf: bytearray) -> Path:
    """The member's bytes (``size`` None: up to EOF) into a temp file next to ``target``; the
    caller renames it once the whole blob has been verified."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    view = memoryview(buf)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as f:
            copy_to = getattr(reader, "copy_to", None)
            if copy_to is not None and size is not None:
                copy_to(fd, size)
            else:
                remaining = size
                written = flushed = 0
                while remaining is None or remaining:
                    want = len(buf) if remaining is None else min(remaining, len(buf))
                    got = _read_into(reader, view[:want])
                    if not got:
                        if remaining is None:
                            break
                        raise _ArchiveError(f"failed to unpack: could not unpack file "
                                            f"{target.name}")
                    f.write(view[:got])
                    if remaining is not None:
                        remaining -= got
                    written += got
                    if written - flushed >= _WRITEBACK_KICK:
                        # start writeback of what is written so far, so the final fsync of a
                        # multi-GiB model does not wait for all of it at once
                        _start_writeback(fd, flushed, written - flushed)
                        flushed = written
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _raw_mode(annotations: Mapping[str, str]) -> int:
    """Permission bits of a raw layer's file: from its file-metadata annotation, else 0644."""
    meta = annotations.get(ANNOTATION_FILE_METADATA)
    if meta:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            mode = json.loads(meta).get("mode")
            if isinstance(mode, int) and 0 < mode <= 0o7777:
                return mode & 0o777
    return 0o644


class _ArchiveError(UnpackError):
    """The layer's bytes are not a well-formed archive (maybe a corrupt blob)."""


_COPY_STEP = 64 << 20  # per copy_file_range call: progress and writeback move in these steps
_NO_KERNEL_COPY = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                   errno.EBADF, errno.EPERM)


class _BlobFile:
    """A stored blob read by position: tar headers with ``pread``, member contents copied
    file-to-file in the kernel (``copy_file_range``, else ``sendfile``, else pread/write), so
    no member byte passes through Python. Hashing happens elsewhere (BackgroundVerifier)."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)
        self.pos = 0
        self.size = os.fstat(self.fd).st_size
        self._mode = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"

    def __enter__(self) -> _BlobFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)

    def readinto(self, b: Any) -> int:
        n = os.preadv(self.fd, [b], self.pos)
        self.pos += n
        return n

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
        self.pos += n

    def copy_to(self, out: int, size: int) -> None:
        if self.pos + size > self.size:
            raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
        done = flushed = 0
        while done < size:
            n = self._copy(out, min(size - done, _COPY_STEP), done)
            if n <= 0:
                raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
            done += n
            self.pos += n
            if done - flushed >= _WRITEBACK_KICK:
                _start_writeback(out, flushed, done - flushed)
                flushed = done

    def _copy(self, out: int, n: int, out_off: int) -> int:
        if self._mode == "copy_file_range":
            try:
                return os.copy_file_range(self.fd, out, n, self.pos, out_off)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._mode = "sendfile"
        if self._mode == "sendfile":
            try:
                os.lseek(out, out_off, os.SEEK_SET)
                return os.sendfile(out, self.fd, self.pos, n)
            except OSError as exc:
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                self._mode = "pread"
        data = os.pread(self.fd, min(n, CHUNK), self.pos)
        view = memoryview(data)
        while view:
            view = view[os.pwrite(out, view, out_off + len(data) - len(view)):]
        return len(data)


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _ArchiveError("failed to unpack: invalid PAX header in layer "
                                "archive") from None
        if length <= 0:
            break
        record = data[space + 1:pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _tar_entries(reader: Any) -> Iterable[tuple[str, bytes, int, int]]:
    """Yield ``(name, typeflag, mode, size)``; the caller consumes the content (padded)."""
    pending: dict[str, str] = {}
    while True:
        block = _read_exact_or_eof(reader)
        if block is None:
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.EOFHeaderError:
            return
        except tarfile.HeaderError as exc:
            raise _ArchiveError(f"failed to unpack: invalid tar header: {exc}") from None
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE):
            data = _read_exact(reader, _padded(info.size))[:info.size]
            if info.type != tarfile.XGLTYPE:
                pending.update(_pax_records(data))
            continue
        if info.type == tarfile.GNUTYPE_LONGNAME:
            data = _read_exact(reader, _padded(info.size))[:info.size]
            pending["path"] = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        if info.type == tarfile.GNUTYPE_LONGLINK:
            _read_exact(reader, _padded(info.size))
            continue
        name = pending.get("path", info.name)
        size = int(pending["size"]) if "size" in pending else info.size
        pending = {}
        if info.type == tarfile.DIRTYPE:
            name = name.rstrip("/")
            size = 0
        yield name, info.type, info.mode, size


def _read_exact_or_eof(reader: Any) -> bytes | None:
    buf = bytearray(512)
    got = _read_into(reader, memoryview(buf))
    if got == 0:
        return None
    if got != 512:
        raise _ArchiveError("failed to unpack: unexpected EOF in layer archive")
    return bytes(buf)


__all__ = ["unpack"]
