"""Tar layers in and out: a writer that reproduces kit's bytes, a reader that refuses what kit
refuses (spec §8, §11.1).

Why the writer builds headers by hand: Python's ``tarfile`` differs from Go's ``archive/tar`` in
directory names, devmajor/devminor, record padding, the USTAR split and PAX naming (spec §8.7).
Any one of those changes the layer digest, and the promise is that an uncompressed layer packed by
kit_jupyter has the digest kit would give it.

Why the reader uses ``tarfile``: reading is not byte-sensitive, and its stream mode lets a layer
be extracted while it downloads. The checks (paths, types, existing files) are ours, with kit's
texts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import io
import os
import secrets
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from kit_jupyter._fs import sweep_stale, temp_path
from kit_jupyter.errors import PackError, UnpackError
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.gocompat.ignore import IgnoreRules, in_other_layer
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    layer_media_type,
)

if TYPE_CHECKING:
    from kit_jupyter.reporting import Reporter, Task

BLOCK = 512
CHUNK = 1 << 20
KIT_UID = 1000
EMPTY_LAYER_DIGEST = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
_MAX_USTAR_SIZE = 0o77777777777  # 8 GiB - 1: the largest size an 11-digit octal field holds
_NAME_SIZE = 100
_PREFIX_SIZE = 155

#: Names later kit versions leave out of layers (compared case-insensitively).
OS_JUNK_FILES = frozenset(n.lower() for n in (
    ".DS_Store", ".AppleDouble", ".LSOverride", ".Spotlight-V100", ".Trashes", "Thumbs.db",
    "desktop.ini", "$RECYCLE.BIN", "ehthumbs.db"))


# =============================================================================================
# Go path helpers
# =============================================================================================

def go_rel(base: str, target: str) -> str | None:
    """Go's ``filepath.Rel`` for slash paths; None where Go returns an error."""
    base, target = go_clean(base), go_clean(target)
    if base == target:
        return "."
    if base == ".":
        base = ""
    if base.startswith("/") != target.startswith("/"):
        return None
    b = [p for p in base.split("/") if p] if base else []
    t = [p for p in target.split("/") if p] if target else []
    i = 0
    while i < len(b) and i < len(t) and b[i] == t[i]:
        i += 1
    if i < len(b) and b[i] == "..":
        return None
    up = [".."] * (len(b) - i)
    rest = t[i:]
    return "/".join(up + rest) if (up or rest) else "."


def _same_dir_tree(base: str, path: str) -> bool | None:
    """kit's test for "one is a parent of the other" (spec §8.1 quirk): both relative paths
    containing ``..`` means unrelated -- which also drops any name containing ``..``.
    None where Go's Rel fails (kit warns and skips)."""
    a_to_b, b_to_a = go_rel(base, path), go_rel(path, base)
    if a_to_b is None or b_to_a is None:
        return None
    return not (".." in a_to_b and ".." in b_to_a)


def _really_related(base: str, path: str) -> bool:
    def within(p: str, d: str) -> bool:
        return d == "." or p == d or p.startswith(d + "/")
    return within(path, base) or within(base, path)


def go_is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal`` on Unix."""
    if not path or path.startswith("/"):
        return False
    if any(part in (".", "..") for part in path.split("/")):
        path = go_clean(path)
    return not (path == ".." or path.startswith("../"))


# =============================================================================================
# Header encoding (Go archive/tar, as driven by kit)
# =============================================================================================

def _octal(value: int, width: int) -> bytes:
    """Go ``formatOctal``: zero-padded, leaving room for a NUL; 0 if it does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        value = 0
    return format(value, "o").rjust(width - 1, "0").encode() + b"\0"


def _put_string(block: bytearray, offset: int, size: int, value: bytes) -> None:
    """Go ``formatString`` incl. its cut-and-drop-trailing-slash rule for over-long names."""
    chunk = value[:size]
    block[offset:offset + len(chunk)] = chunk
    if len(value) > size and chunk.endswith(b"/"):
        n = len(chunk.rstrip(b"/"))
        block[offset + n] = 0


def _to_ascii(value: bytes) -> bytes:
    return bytes(b for b in value if 0 < b < 0x80)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: the *last* ``/`` within the first 156 bytes."""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1:length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > _NAME_SIZE or nlen == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1:]


def _checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    total = sum(block)
    block[148:156] = format(total, "o").rjust(6, "0").encode() + b"\0 "


def _v7_plus(name: bytes, mode: int, uid: int, size: int, typeflag: bytes,
             devnums: bool) -> bytearray:
    block = bytearray(BLOCK)
    _put_string(block, 0, 100, name)
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[156:157] = typeflag
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    if devnums:
        block[329:337] = _octal(0, 8)
        block[337:345] = _octal(0, 8)
    return block


def _pax_record(key: str, value: bytes) -> bytes:
    body = key.encode() + b"=" + value + b"\n"
    size = len(body) + 1
    size += len(str(size))
    record = str(size).encode() + b" " + body
    if len(record) != size:
        record = str(len(record)).encode() + b" " + body
    return record


def tar_header(name: bytes, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) kit writes for one entry (spec §8.2-§8.3).

    USTAR when possible; otherwise a PAX extended header named the way Go names it, followed by
    the USTAR-shaped main header with the name reduced to ASCII and cut to 100 bytes.
    """
    typeflag = b"5" if is_dir else b"0"
    size = 0 if is_dir else size
    pax: dict[str, bytes] = {}
    if not name.isascii() or b"\0" in name or len(name) > _NAME_SIZE:
        pax["path"] = name
    if size > _MAX_USTAR_SIZE:
        pax["size"] = str(size).encode()
    ustar_ok = "size" not in pax and b"\0" not in name and (
        (name.isascii() and len(name) <= _NAME_SIZE) or _split_ustar(name) is not None)
    if ustar_ok:
        prefix = b""
        split = _split_ustar(name)
        if split is not None:
            prefix, name = split
        block = _v7_plus(name, mode, KIT_UID, size, typeflag, devnums=True)
        _put_string(block, 345, 155, prefix)
        _checksum(block)
        return bytes(block)
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    directory, _, base = name.rpartition(b"/")
    pax_name = go_clean(os.fsdecode(directory + b"/PaxHeaders.0/" + base if directory
                                    else b"PaxHeaders.0/" + base))
    pax_name_b = _to_ascii(os.fsencode(pax_name))[:_NAME_SIZE].rstrip(b"/")
    xblock = bytearray(BLOCK)
    _put_string(xblock, 0, 100, pax_name_b)
    xblock[100:108] = _octal(0, 8)
    xblock[108:116] = _octal(0, 8)
    xblock[116:124] = _octal(0, 8)
    xblock[124:136] = _octal(len(data), 12)
    xblock[136:148] = _octal(0, 12)
    xblock[156:157] = b"x"
    xblock[257:263] = b"ustar\0"
    xblock[263:265] = b"00"
    _checksum(xblock)
    main = _v7_plus(_to_ascii(name), mode, KIT_UID, size, typeflag, devnums=True)
    _checksum(main)
    return bytes(xblock) + data + _padding(len(data)) + bytes(main)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


# =============================================================================================
# Walking the context like kit (filepath.Walk from ".")
# =============================================================================================

@dataclass
class LayerStats:
    """What a layer holds; ``size_total`` is kit's ``getTotalSize`` (drives the empty warning
    and the progress total), ``tar_bytes`` the uncompressed tar length."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    content_bytes: int = 0
    tar_bytes: int = 0
    size_total: int = 0
    skipped_symlinks: list[str] = field(default_factory=list)
    skipped_dotdot: list[str] = field(default_factory=list)
    ignored_layer_path: bool = False


def _join(context_dir: str, rel: str) -> str:
    return context_dir if rel == "." else os.path.join(context_dir, rel)


def _sorted_names(path: str) -> list[str]:
    names = os.listdir(path)
    names.sort(key=os.fsencode)
    return names


def _check_layer_path(layer_path: str) -> str:
    if layer_path.startswith("/"):
        raise PackError(f"absolute paths are not supported ({layer_path})")
    cleaned = go_clean(layer_path)
    if not go_is_local(cleaned):
        raise PackError("layer paths must stay within context directory")
    return cleaned


def layer_size(context_dir: str | os.PathLike[str], layer_path: str, *,
               ignore: IgnoreRules | None = None,
               other_layer_paths: Sequence[str] = ()) -> int:
    """kit's ``getTotalSize``: bytes of regular files under the layer path after ignores.

    Zero means kit's ``No files detected`` warning. It follows a symlinked layer path for the
    stat but not for the walk, exactly as kit does, so a symlinked directory counts as empty.
    """
    ctx = os.fspath(context_dir)
    base = _check_layer_path(layer_path)
    rules = ignore if ignore is not None else IgnoreRules()
    excluded = _excluder(rules, base, other_layer_paths)
    full = _join(ctx, base)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise PackError(f"path {base} does not exist") from None
    except OSError as err:
        raise PackError(f"stat {base}: {err.strerror}") from None
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        raise PackError(f"path {base} is neither a file nor a directory")
    total = 0
    prune = not rules.has_exceptions
    lst = os.lstat(full)
    if not stat.S_ISDIR(lst.st_mode):  # symlink to a directory: WalkDir does not enter it
        return 0
    stack = [base]
    if excluded(base) and prune:
        return 0
    while stack:
        rel = stack.pop()
        try:
            names = _sorted_names(_join(ctx, rel))
        except OSError as err:
            raise PackError(f"failed to read directory {rel}: {err.strerror}") from None
        for name in names:
            child = name if rel == "." else f"{rel}/{name}"
            try:
                cst = os.lstat(os.path.join(ctx, child))
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(cst.st_mode)
            if name.lower() in OS_JUNK_FILES:
                continue
            if excluded(child):
                if is_dir and prune:
                    continue
            elif stat.S_ISREG(cst.st_mode):
                total += cst.st_size
            if is_dir:
                stack.append(child)
    return total


def _excluder(rules: IgnoreRules, base: str,
              other_layer_paths: Sequence[str]) -> Callable[[str], bool]:
    others = list(other_layer_paths)

    def excluded(rel: str) -> bool:
        if rules.excludes(rel, base):
            return True
        return bool(others) and in_other_layer(rel, base, others,
                                               element_prefix=rules.element_prefix)
    return excluded


@dataclass
class WalkEntry:
    """One entry the walk keeps: its name relative to the context and its ``lstat``."""

    rel: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


def walk_layer(context_dir: str | os.PathLike[str], layer_path: str, *,
               ignore: IgnoreRules | None = None, other_layer_paths: Sequence[str] = (),
               stats: LayerStats | None = None) -> Iterator[WalkEntry]:
    """Yield the entries kit writes for a layer, in kit's order (spec §8.1).

    Go's ``filepath.Walk`` from ``.``: depth-first, each directory's names sorted by bytes, a
    directory before its contents, symlinks never followed. An entry is kept if it is in the same
    tree as the layer path by kit's ``..`` test and not excluded; an excluded directory is pruned
    unless the ignore file has ``!`` exceptions.
    """
    ctx = os.fspath(context_dir)
    base = _check_layer_path(layer_path)
    rules = ignore if ignore is not None else IgnoreRules()
    stats = stats if stats is not None else LayerStats()
    excluded = _excluder(rules, base, other_layer_paths)
    prune = not rules.has_exceptions
    stack: list[Iterator[str]] = []
    parents: list[str] = []

    def open_dir(rel: str) -> None:
        try:
            names = _sorted_names(_join(ctx, rel))
        except OSError as err:
            raise PackError(f"failed to read directory {rel}: {err.strerror}") from None
        stack.append(iter(names))
        parents.append(rel)

    open_dir(".")
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            parents.pop()
            continue
        parent = parents[-1]
        rel = name if parent == "." else f"{parent}/{name}"
        try:
            st = os.lstat(os.path.join(ctx, rel))
        except FileNotFoundError:
            continue  # vanished while walking
        except OSError as err:
            raise PackError(f"lstat {rel}: {err.strerror}") from None
        mode = st.st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            if stat.S_ISLNK(mode) and _same_dir_tree(base, rel) and not excluded(rel):
                stats.skipped_symlinks.append(rel)
            continue
        is_dir = stat.S_ISDIR(mode)
        if name.lower() in OS_JUNK_FILES:
            continue
        if not _same_dir_tree(base, rel):
            if _really_related(base, rel):
                stats.skipped_dotdot.append(rel)
            continue
        if excluded(rel):
            if is_dir and not prune:
                open_dir(rel)
            continue
        yield WalkEntry(rel, st)
        if is_dir:
            open_dir(rel)


# =============================================================================================
# Writing a layer
# =============================================================================================

def write_layer(context_dir: str | os.PathLike[str], layer_path: str, out: BinaryIO, *,
                ignore: IgnoreRules | None = None, other_layer_paths: Sequence[str] = (),
                reporter: Reporter | None = None, kind_label: str = "code",
                task: Task | None = None, label: str | None = None) -> LayerStats:
    """Write the uncompressed tar kit would write for ``layer_path`` into ``out``.

    ``ignore`` carries the ``.kitignore`` rules and (via ``IgnoreRules.layer_paths``) the Kitfile's
    layer paths; ``other_layer_paths`` adds more (a parent ModelKit's). ``kind_label`` is the
    media type's base (``model``, ``dataset`` ...), used in kit's warnings. File contents are
    streamed in 1 MiB chunks; ``task`` advances by content bytes. With ``label`` and a
    ``reporter`` but no ``task``, a task with kit's total (file bytes) is created and finished.
    """
    ctx = os.fspath(context_dir)
    base = _check_layer_path(layer_path)
    rules = ignore if ignore is not None else IgnoreRules()
    stats = LayerStats()
    if _excluder(rules, base, other_layer_paths)(base):
        stats.ignored_layer_path = True
        if reporter is not None:
            reporter.warning(f"Warning: {kind_label} layer path {base} ignored by kitignore")
    stats.size_total = layer_size(ctx, base, ignore=rules, other_layer_paths=other_layer_paths)
    if stats.size_total == 0 and reporter is not None:
        reporter.warning(f"No files detected in {kind_label} layer with path {base}")
    own_task = task is None and label is not None and reporter is not None
    if own_task:
        task = reporter.task(label, stats.size_total)  # type: ignore[union-attr]
    elif task is not None and task.total is None:
        task.total = stats.size_total
    try:
        _write_entries(ctx, base, out, rules, other_layer_paths, stats, task)
    except BaseException:
        if own_task:
            task.finish(False)  # type: ignore[union-attr]
        raise
    if own_task:
        task.finish(True)  # type: ignore[union-attr]
    if reporter is not None:
        for rel in stats.skipped_symlinks:
            reporter.warning(f"Skipping symlink {rel} (symlinks are not supported)")
        for rel in stats.skipped_dotdot:
            reporter.warning(f"Skipping {rel}: kit leaves names containing '..' out of layers")
    return stats


def _write_entries(ctx: str, base: str, out: BinaryIO, rules: IgnoreRules,
                   other_layer_paths: Sequence[str], stats: LayerStats,
                   task: Task | None) -> None:
    written = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for entry in walk_layer(ctx, base, ignore=rules, other_layer_paths=other_layer_paths,
                            stats=stats):
        name = os.fsencode(entry.rel)
        perm = entry.st.st_mode & 0o7777
        if entry.is_dir:
            header = tar_header(name, perm, 0, True)
            out.write(header)
            written += len(header)
            stats.dirs += 1
            stats.entries += 1
            continue
        size = entry.st.st_size
        header = tar_header(name, perm, size, False)
        out.write(header)
        written += len(header)
        copied = _copy_file(os.path.join(ctx, entry.rel), entry.rel, size, out, view, task)
        pad = _padding(copied)
        out.write(pad)
        written += copied + len(pad)
        stats.files += 1
        stats.content_bytes += copied
        stats.entries += 1
    out.write(END_OF_ARCHIVE)
    stats.tar_bytes = written + len(END_OF_ARCHIVE)


def _copy_file(path: str, rel: str, size: int, out: BinaryIO, view: memoryview,
               task: Task | None) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise PackError(f"failed to open file for archiving: {rel}: {err.strerror}") from None
    remaining = size
    try:
        with open(fd, "rb", buffering=0, closefd=True) as f:
            while remaining > 0:
                n = f.readinto(view[:min(CHUNK, remaining)])
                if not n:
                    break
                out.write(view[:n])
                remaining -= n
                if task is not None:
                    task.advance(n)
            if remaining > 0 or f.read(1):
                raise PackError(f"file {rel} changed while it was being packed")
    except OSError as err:
        raise PackError(f"failed to add file to archive: {rel}: {err.strerror}") from None
    return size


# =============================================================================================
# Packing a layer into a temporary blob file
# =============================================================================================

@dataclass
class PackedLayer:
    """A layer blob in a temporary file; the caller moves it into storage (or deletes it)."""

    path: Path
    digest: str
    diff_id: str
    size: int
    media_type: str
    annotations: dict[str, str]
    stats: LayerStats | None = None

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size,
                "annotations": dict(self.annotations)}

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _HashingSink(io.RawIOBase):
    """Tar bytes in; sha256 of them (diffId), optional gzip, sha256 of what is stored (digest)."""

    def __init__(self, f: BinaryIO, compression: str):
        self._f = f
        self.diff = hashlib.sha256()
        self._stored = hashlib.sha256() if compression != "none" else self.diff
        level = {"none": None, "gzip": 6, "gzip-fastest": 1}.get(compression, -2)
        if level == -2:
            raise PackError(f"unsupported compression format: {compression}")
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31) if level is not None else None
        self.uncompressed = 0
        self.stored = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        n = len(data)
        self.diff.update(data)
        self.uncompressed += n
        if self._z is None:
            self._f.write(data)
            self.stored += n
        else:
            self._put(self._z.compress(data))
        return n

    def _put(self, data: bytes) -> None:
        if data:
            self._f.write(data)
            self._stored.update(data)
            self.stored += len(data)

    def finish(self) -> None:
        if self._z is not None:
            self._put(self._z.flush())

    @property
    def digest(self) -> str:
        return "sha256:" + self._stored.hexdigest()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff.hexdigest()


def pack_layer_to_file(context_dir: str | os.PathLike[str], layer_path: str,
                       temp_dir: str | os.PathLike[str], *, base: str = "code",
                       compression: str = "none", ignore: IgnoreRules | None = None,
                       other_layer_paths: Sequence[str] = (), reporter: Reporter | None = None,
                       task: Task | None = None, label: str | None = None,
                       annotations: dict[str, str] | None = None,
                       fsync: bool = True) -> PackedLayer:
    """Write one layer blob to ``temp_dir/kitops_layer_*`` computing digest, diffId and size in
    the same pass (spec §8.5). With ``label`` and a ``reporter`` (and no ``task``) a progress
    task is created with kit's total (file bytes). The temp file is removed on any failure.
    """
    media_type = layer_media_type(base, compression, "tar")
    cleaned = _check_layer_path(layer_path)
    with _layer_temp(temp_dir, compression, fsync) as (tmp, sink):
        stats = write_layer(context_dir, cleaned, sink, ignore=ignore,  # type: ignore[arg-type]
                            other_layer_paths=other_layer_paths, reporter=reporter,
                            kind_label=base, task=task, label=label)
    notes = {ANNOTATION_FILEPATH: cleaned, **(annotations or {})}
    return PackedLayer(tmp, sink.digest, sink.diff_id, sink.stored, media_type, notes, stats)


@contextlib.contextmanager
def _layer_temp(temp_dir: str | os.PathLike[str], compression: str,
                fsync: bool) -> Iterator[tuple[Path, _HashingSink]]:
    """A ``kitops_layer_*`` temp file and the hashing sink writing it; finished, flushed and
    (optionally) fsynced on success, removed on any failure."""
    os.makedirs(temp_dir, exist_ok=True)
    sweep_stale(temp_dir)
    tmp_name = temp_path(temp_dir, "kitops_layer_")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    tmp = Path(tmp_name)
    f = open(fd, "wb", buffering=CHUNK)
    try:
        sink = _HashingSink(f, compression)
        yield tmp, sink
        sink.finish()
        f.flush()
        if fsync:
            os.fsync(f.fileno())
        f.close()
    except BaseException as exc:
        # close() flushes what is buffered and fails again on a full disk: the first error is
        # the one to report, so the second is dropped
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            # a failed write() names no file; the user needs to know which disk is full
            raise OSError(exc.errno, exc.strerror, os.fspath(temp_dir)) from None
        raise


def pack_raw_layer_to_file(context_dir: str | os.PathLike[str], file_path: str,
                           temp_dir: str | os.PathLike[str], *, base: str = "mcpb",
                           compression: str = "none", task: Task | None = None,
                           fsync: bool = True) -> PackedLayer:
    """A raw layer (spec §8.9): the file's bytes verbatim, e.g. an mcpServer's ``.mcpb``.

    The ``org.cncf.model.file.metadata+json`` annotation follows model-spec's FileMetadata as
    kit marshals it; its exact bytes have not been compared with a kit-made ModelKit (spec §16).
    """
    cleaned = _check_layer_path(file_path)
    full = os.path.join(os.fspath(context_dir), cleaned)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        raise PackError(f"path {cleaned} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise PackError(f"file {cleaned} is not a regular file")
    media_type = layer_media_type(base, compression, "raw")
    if base == "mcpb":
        compression = "none"  # mcpb layers are always application/...mcpb.v1.raw
    with _layer_temp(temp_dir, compression, fsync) as (tmp, sink):
        buf = bytearray(CHUNK)
        _copy_file(full, cleaned, st.st_size, sink, memoryview(buf), task)  # type: ignore[arg-type]
    meta = Struct(name=os.path.basename(cleaned), mode=st.st_mode & 0o777, uid=0, gid=0,
                  size=st.st_size, mtime=_rfc3339(st.st_mtime_ns), typeflag=0)
    notes = {ANNOTATION_FILEPATH: cleaned,
             ANNOTATION_FILE_METADATA: marshal(meta).decode("utf-8")}  # Go's FileMetadata
    return PackedLayer(tmp, sink.digest, sink.diff_id, sink.stored, media_type, notes)


def _rfc3339(ns: int) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339 with nanoseconds, trailing zeros trimmed)."""

    secs, frac = divmod(ns, 1_000_000_000)
    t = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).astimezone()
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    off = t.utcoffset()
    if not off:
        return text + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# =============================================================================================
# Reading and extracting
# =============================================================================================

@dataclass(frozen=True)
class LayerEntry:
    """One tar entry as listed (not extracted); ``kind`` is file/dir/symlink/hardlink/other."""

    name: str
    kind: str
    size: int
    mode: int
    linkname: str = ""


@dataclass
class ExtractStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


class _CountingReader(io.RawIOBase):
    """Passes reads through and reports stored (compressed) bytes to a Task -- kit's unpack bar
    counts the blob, not the extracted bytes."""

    def __init__(self, raw: BinaryIO, task: Task | None):
        self._raw = raw
        self._task = task
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self._advance(n)
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._advance(len(data))
        return data

    def _advance(self, n: int) -> None:
        self.count += n
        if self._task is not None and n:
            self._task.advance(n)


def _compression_mode(compressed: bool | str) -> str:
    if compressed is True or compressed in ("gzip", "gzip-fastest"):
        return "gz"
    if compressed is False or compressed in ("", "none"):
        return ""
    raise UnpackError(f"unsupported layer compression: {compressed}")


_READ_ERRORS = (zlib.error, EOFError, gzip.BadGzipFile)


class _ShortRead(UnpackError):
    """The archive ended inside a file's data; re-raised naming the file."""
_MAX_META = 1 << 20  # Go's limit on PAX / GNU long-name data


class _TarReader:
    """A streaming tar reader: USTAR, PAX (path/linkpath/size) and GNU long names.

    Written instead of ``tarfile``'s stream mode, which re-joins and re-slices its buffer on
    every read (about 5x slower than ``tar -x`` on a 1 GiB layer). File data is handed out as
    the chunks the source returns; nothing but one header's metadata is ever held.
    """

    def __init__(self, blob_stream: BinaryIO, compressed: bool | str, task: Task | None):
        self._counter = _CountingReader(blob_stream, task)
        self._src: BinaryIO = io.BufferedReader(self._counter, CHUNK)  # type: ignore[arg-type]
        if _compression_mode(compressed) == "gz":
            self._src = gzip.GzipFile(fileobj=self._src, mode="rb")  # type: ignore[assignment]
        self._remaining = 0  # data bytes of the current entry not yet read
        self._pad = 0

    def _read(self, n: int) -> bytes:
        try:
            return self._src.read(n)
        except _READ_ERRORS as err:
            raise UnpackError(f"failed to read layer: {err}") from None

    def _exact(self, n: int) -> bytes:
        parts = []
        while n > 0:
            data = self._read(min(n, CHUNK))
            if not data:
                raise UnpackError("failed to read layer: unexpected EOF")
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def _skip(self, n: int) -> None:
        while n > 0:
            data = self._read(min(n, CHUNK))
            if not data:
                raise UnpackError("failed to read layer: unexpected EOF")
            n -= len(data)

    def read_chunks(self) -> Iterator[bytes]:
        """The current entry's data, in source-sized chunks (at most 1 MiB)."""
        while self._remaining > 0:
            data = self._read(min(self._remaining, CHUNK))
            if not data:
                raise _ShortRead("unexpected EOF")
            self._remaining -= len(data)
            yield data

    def next(self) -> LayerEntry | None:
        self._skip(self._remaining + self._pad)
        self._remaining = self._pad = 0
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            block = self._read_block()
            if block is None:
                return None
            typeflag, size = block[156:157], _parse_number(block[124:136])
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > _MAX_META:
                    raise UnpackError("failed to read layer: tar metadata entry too large")
                data = self._exact(size)
                self._skip(-size % BLOCK)
                if typeflag == b"x":
                    pax.update(_parse_pax(data))
                elif typeflag == b"L":
                    long_name = data.split(b"\0", 1)[0]
                elif typeflag == b"K":
                    long_link = data.split(b"\0", 1)[0]
                continue
            break
        name = _cstr(block[0:100])
        linkname = _cstr(block[157:257])
        magic = block[257:265]
        if magic == b"ustar\x0000" and block[345] != 0:
            name = _cstr(block[345:500]) + b"/" + name
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        if "path" in pax:
            name = pax["path"]
        if "linkpath" in pax:
            linkname = pax["linkpath"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise UnpackError("failed to read layer: invalid tar header") from None
        kind = {b"0": "file", b"\0": "file", b"5": "dir", b"1": "hardlink",
                b"2": "symlink"}.get(typeflag, "other")
        if kind == "file" and typeflag == b"\0" and name.endswith(b"/"):
            kind = "dir"
        if any(k.startswith("GNU.sparse.") for k in pax):
            kind = "other"
        if kind == "dir":
            name = name.rstrip(b"/") or name
        # Go's header-only types carry no data whatever their size field says
        data_size = 0 if kind == "dir" or typeflag in (b"1", b"2", b"3", b"4", b"6") else size
        self._remaining = data_size
        self._pad = -data_size % BLOCK
        return LayerEntry(os.fsdecode(name), kind, size, _parse_number(block[100:108]),
                          os.fsdecode(linkname))

    def _read_block(self) -> bytes | None:
        block = self._read(BLOCK)
        if not block:
            return None  # like Go: a stream ending on a header boundary is a complete archive
        if len(block) < BLOCK:
            block += self._exact(BLOCK - len(block))
        if block == bytes(BLOCK):
            return None  # end of archive (the second zero block and any padding are drained)
        if not _checksum_ok(block):
            raise UnpackError("failed to read layer: invalid tar header")
        return block

    def drain(self) -> None:
        """Read to the end: gzip checks its CRC there, and a verifying blob reader its digest."""
        while self._read(CHUNK):
            pass
        while self._counter.read(CHUNK):
            pass


def _cstr(field_bytes: bytes) -> bytes:
    return field_bytes.split(b"\0", 1)[0]


def _parse_number(field_bytes: bytes) -> int:
    if field_bytes[:1] and field_bytes[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_bytes, "big", signed=False)
        return value & ~(0x80 << (8 * (len(field_bytes) - 1)))
    text = field_bytes.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise UnpackError("failed to read layer: invalid tar header") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _parse_number(block[148:156])
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256
    return stored == signed


def _parse_pax(data: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise UnpackError("failed to read layer: invalid PAX header") from None
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise UnpackError("failed to read layer: invalid PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value
        pos += length
    return records


def iter_layer_entries(blob_stream: BinaryIO, *, compressed: bool | str = False
                       ) -> Iterator[LayerEntry]:
    """List a layer's entries without extracting anything (for inspect and tests)."""
    reader = _TarReader(blob_stream, compressed, None)
    while (entry := reader.next()) is not None:
        yield entry


def list_layer_entries(blob_stream: BinaryIO, *, compressed: bool | str = False
                       ) -> list[LayerEntry]:
    return list(iter_layer_entries(blob_stream, compressed=compressed))


def _illegal(name: str, reason: str) -> UnpackError:
    return UnpackError(f"illegal file path: {name}: {reason}")


def _within(root: str, path: str) -> bool:
    rel = os.path.relpath(path, root)
    return not (rel == ".." or rel.startswith("../") or rel.startswith("/")) and ".." not in rel


def _resolve_target(root: str, name: str) -> str:
    """kit's ``VerifySubpath`` on an entry name, plus a check kit lacks: the *parent* must
    resolve inside the target too, because we replace (never write through) a final symlink."""
    if name.startswith("/"):
        raise _illegal(name, f"absolute paths are not supported ({name})")
    if not go_is_local(name):
        raise _illegal(name, "layer paths must stay within context directory")
    clean = go_clean(name)
    full = os.path.join(root, clean) if clean != "." else root
    real = os.path.realpath(full)
    if not _within(root, real):
        raise _illegal(name, "paths must be within context directory")
    if clean == ".":
        return root
    parent = os.path.realpath(os.path.dirname(full))
    if not _within(root, parent):
        raise _illegal(name, "paths must be within context directory")
    return os.path.join(parent, os.path.basename(full))


def extract_layer(blob_stream: BinaryIO, target_dir: str | os.PathLike[str], *,
                  compressed: bool | str = False, overwrite: bool = False,
                  ignore_existing: bool = False, reporter: Reporter | None = None,
                  task: Task | None = None, fsync: bool = True) -> ExtractStats:
    """Extract a layer into ``target_dir`` with kit's checks and messages (spec §11.1).

    Only directories and regular files; anything else fails with ``unrecognized type in
    archive``. Entries that are absolute, climb out, or resolve outside through a symlink fail
    with ``illegal file path``. Each file goes to a temporary file beside its target and is
    renamed when complete, so a failure never leaves a truncated file (files finished before
    the failure stay, as with kit). setuid/setgid/sticky bits are not restored.
    """
    os.makedirs(target_dir, exist_ok=True)
    root = os.path.realpath(os.fspath(target_dir))
    stats = ExtractStats()
    late_chmod: list[tuple[str, int]] = []
    reader = _TarReader(blob_stream, compressed, task)
    while (entry := reader.next()) is not None:
        name = entry.name
        target = _resolve_target(root, name)
        if entry.kind == "dir":
            _extract_dir(target, name, entry.mode, late_chmod)
            stats.dirs += 1
        elif entry.kind == "file":
            if os.path.exists(target):  # kit's PathExists follows symlinks
                if ignore_existing:
                    stats.skipped.append(name)
                    continue
                if not overwrite:
                    raise UnpackError(f"path '{name}' already exists")
                if not stat.S_ISREG(os.stat(target).st_mode):
                    raise UnpackError(f"path '{name}' already exists and is not a regular file")
            _extract_file(reader, target, name, entry.size, entry.mode, fsync)
            stats.files += 1
            stats.bytes += entry.size
        else:
            raise UnpackError(f"unrecognized type in archive: {name}")
    reader.drain()  # gzip CRC, and a verifying blob reader's digest check, happen at EOF
    for path, mode in reversed(late_chmod):
        with contextlib.suppress(OSError):
            os.chmod(path, mode)
    return stats


def _extract_dir(target: str, name: str, mode: int, late_chmod: list[tuple[str, int]]) -> None:
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise UnpackError(f"path '{name}' already exists and is not a directory")
        return
    perm = mode & 0o777
    try:
        # Owner rwx while extracting, or a read-only directory could not receive its files.
        os.makedirs(target, perm | 0o700)
    except OSError as err:
        raise UnpackError(f"failed to create directory {name}: {err.strerror}") from None
    if perm & 0o700 != 0o700:
        actual = os.stat(target).st_mode & 0o777
        late_chmod.append((target, actual & ~(0o700 & ~perm)))


def _extract_file(reader: _TarReader, target: str, name: str, size: int, mode: int,
                  fsync: bool) -> None:
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, 0o755, exist_ok=True)
        except OSError as err:
            raise UnpackError(f"failed to create directory for {name}: {err.strerror}") from None
    tmp = os.path.join(parent, f".{os.path.basename(target)}.{secrets.token_hex(6)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode & 0o777)  # the umask applies, as with kit
    except OSError as err:
        raise UnpackError(f"failed to create file {name}: {err.strerror}") from None
    try:
        with open(fd, "wb", buffering=0) as out:
            try:
                for chunk in reader.read_chunks():
                    out.write(chunk)
            except _ShortRead as err:
                raise UnpackError(f"failed to write file {name}: {err}") from None
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise UnpackError(f"failed to write file {name}: {err.strerror or err}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
