"""Extracting layers into a directory: the one tar reader every unpack uses (spec §11.1).

Two inputs feed the same reader (:class:`kit_jupyter.gocompat.gotar.TarReader`):

* :class:`FileInput` -- an uncompressed blob in local storage, read by position: headers and
  small members out of a window read ahead a MiB at a time (one ``pread`` per MiB and one
  ``write`` per small file: a code layer of 20,000 files costs no more syscalls than ``tar xf``),
  larger members copied file-to-file in the kernel (``copy_file_range``, else ``sendfile``, else
  pread/pwrite), so none of a model's bytes passes through Python while a second thread hashes
  the blob (:class:`~kit_jupyter.oci.store.BackgroundVerifier`); the copy hides behind the hash,
  which is the floor of a verified unpack.
* :class:`StreamInput` -- anything else (a registry stream, a gzip or zstd blob, a verifying
  reader): read once through one 1 MiB buffer, hashed as it streams by the source.

:func:`layer_input` picks the input for a blob and makes sure the blob's digest was checked
before the ``with`` block ends without an error.

:class:`Extraction` holds one unpack's writes, all or nothing: nothing appears under its final
name before :meth:`Extraction.commit`, after every layer of the unpack verified. A file in a
directory that was already there goes to a temp file beside its target, renamed into place at
commit; a directory the unpack makes is *staged*: made under a hidden temp name beside its final
one, filled in place (its files need no temp file and no rename of their own) and renamed into
place whole at commit -- one rename for a code layer of 20,000 files instead of 20,000. On any
error (and on Ctrl-C) :meth:`Extraction.rollback` removes the temp files, the staged trees and
every directory the run created, the target itself included, so a refused unpack leaves nothing
behind. Durability costs one ``syncfs`` per file system at commit for all the small files
(large ones are fsynced when written, overlapping the blob's hash, and flushed while they are
written), not one journal commit per file, and once there are hundreds a thread starts that work
while they are written (:class:`~kit_jupyter._fs.BackgroundSync`, for both); and the memory an
unpack holds does not grow with its file count: every temp file of one unpack is named with one
token (so a path's temp file is found on disk, which is also how a path named twice is caught; in
a staged directory, the file itself), and the list of files to rename spills to an unnamed file
in the target beyond :data:`PENDING_IN_MEMORY` entries. Modes: only the permission bits (``mode
& 0o777``, the umask applied, as kit's ``os.OpenFile`` does) -- setuid, setgid and sticky bits
are never restored.
Directories are created owner-writable while they are filled and get their recorded mode at the
end, deepest first, like GNU tar does for a non-root user; so a read-only (0555) directory with
files in it unpacks as any user.

A SIGKILL leaves what no ``finally`` can remove. Before the kill reaches the renames, that is
temp files and staged directories (owner-tagged, :mod:`kit_jupyter._fs`): the next unpack sweeps
those of dead owners, trees and all, from every directory it writes into. From the renames on,
it is published files that a rerun without ``-o`` would refuse as "already exists". So
:meth:`Extraction.commit` first writes a *journal* to the target,
``.kitops-unpack.kj-<owner>.journal`` (NUL-separated paths, streamed from the pending list),
naming every file it is about to publish and every staged directory as ``dir/`` (everything
below it); :meth:`Extraction.record` writes another for the remote datasets downloaded after it;
:meth:`Extraction.release` removes them when the whole unpack is over. The next unpack into the
target adopts the journals of dead owners: the files they name were written by an unpack that
never finished, not by the user, so they are replaced (a remote dataset whose bytes match its
ETag: kept) as if absent. Its own journal carries them on until it is done.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._fs import (
    BackgroundSync,
    RangeCopier,
    Writeback,
    io_buffer,
    make_dirs,
    run_token,
    stale_names,
    sweep_stale,
    sync_filesystem,
    syncing_file,
    syncing_filesystems,
    temp_path,
    temp_sibling,
)
from kit_jupyter.errors import ExistingPathError, UnpackError
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.gocompat.gotar import TarFormatError, TarInput, TarReader, unexpected_eof
from kit_jupyter.gocompat.ignore import KITFILE_NAMES
from kit_jupyter.oci.compression import (
    GzipReader,
    LayerDecodeError,
    Source,
    ZstdReader,
    decompressing_reader,
)
from kit_jupyter.oci.manifest import Descriptor
from kit_jupyter.oci.store import LocalStore, VerifyingReader
from kit_jupyter.reporting import Task

CHUNK = 1 << 20
_SYNC_AT_ONCE = 8 << 20  # files from this size on are fsynced as soon as they are written
#: members up to this size are written from :class:`FileInput`'s read-ahead window
_WRITE_FROM_WINDOW = 64 << 10
#: Pending files held in memory; more spill to an unnamed file (memory independent of the count)
PENDING_IN_MEMORY = 4096
#: Small files written before :class:`~kit_jupyter._fs.BackgroundSync` starts: an unpack of a
#: model and its Kitfile never starts it (its large file is fsynced as it is written)
EARLY_SYNC_AFTER = 256
_SPILL_READ = 256 << 10  # the spilled list is read back in pieces of this size
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def os_text(exc: BaseException) -> str:
    """An OSError as one line (``<file>: <reason>``), never a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


# =============================================================================================
# Inputs
# =============================================================================================

class FileInput:
    """A stored, uncompressed blob read by position (see the module docstring). Hashing
    happens elsewhere (:class:`~kit_jupyter.oci.store.BackgroundVerifier`)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.pos = 0
        self.size = os.fstat(self.fd).st_size
        self._copier = RangeCopier()
        self._window = io_buffer(CHUNK)  # the blob's bytes from _window_at on
        self._window_at = self._window_len = 0

    def __enter__(self) -> FileInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _ahead(self, n: int) -> memoryview:
        """Up to ``n`` (at most :data:`CHUNK`) bytes at the current position, out of a window
        read ahead in one ``pread`` of :data:`CHUNK`: a layer of small files costs a read per
        MiB, not one per header and one per member. Short only at the end of the blob."""
        off = self.pos - self._window_at
        if off < 0 or off + n > self._window_len:
            self._window_at, self._window_len, off = self.pos, self._fill(self._window), 0
        return self._window[off:min(off + n, self._window_len)]

    def _fill(self, view: memoryview) -> int:
        """Read into ``view`` from the current position; fewer bytes only at the end."""
        got = 0
        while got < len(view):  # a regular file reads short only at its end; be sure
            step = os.preadv(self.fd, [view[got:]], self.pos + got)
            if not step:
                break
            got += step
        return got

    def read_upto(self, n: int) -> bytes:
        if n <= CHUNK:
            data = bytes(self._ahead(n))
        else:
            view = io_buffer(n)
            data = bytes(view[:self._fill(view)])
        self.pos += len(data)
        return data

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise unexpected_eof()
        self.pos += n

    def copy_to(self, fd: int, n: int) -> None:
        """``n`` bytes from the current position into the new file ``fd`` (from its start)."""
        if self.pos + n > self.size:
            raise unexpected_eof()
        if n <= _WRITE_FROM_WINDOW:  # a small member: one write from the read-ahead window
            view = self._ahead(n)
            if len(view) < n:
                raise unexpected_eof()
            _write_all(fd, view)
            self.pos += n
            return
        done = self._copier.copy_into_new(self.fd, self.pos, fd, n)
        self.pos += done
        if done < n:
            raise unexpected_eof()

    def copy_rest_to(self, fd: int) -> None:
        self.copy_to(fd, self.size - self.pos)


class _Counting:
    """Pass-through that reports the bytes read (the stored, maybe compressed, size) to a
    progress task: kit's unpack bar counts the blob, not the extracted bytes."""

    def __init__(self, raw: Source, task: Task | None):
        self._raw = raw
        self._task = task

    def readinto(self, b: bytearray | memoryview) -> int:
        n = self._raw.readinto(b) or 0
        if n and self._task is not None:
            self._task.advance(n)
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data and self._task is not None:
            self._task.advance(len(data))
        return data

    def readable(self) -> bool:
        return True


class StreamInput:
    """Any blob stream (registry, gzip, zstd, a verifying reader), read once through one
    buffer: headers and small members come out of it, large members go from it to their file.
    Compressed streams are decoded by :mod:`kit_jupyter.oci.compression`."""

    def __init__(self, stream: Source, *, compression: str = "", task: Task | None = None):
        self._counted = _Counting(stream, task)
        self._dec = decompressing_reader(self._counted, compression) if compression else None
        self._src: GzipReader | ZstdReader | _Counting = (
            self._dec if self._dec is not None else self._counted)
        self._view = io_buffer(CHUNK)
        self._lo = self._hi = 0

    def _fill(self) -> int:
        n = self._src.readinto(self._view) or 0
        self._lo, self._hi = 0, n
        return n

    def read_upto(self, n: int) -> bytes:
        lo = self._lo
        if self._hi - lo >= n:
            self._lo = lo + n
            return bytes(self._view[lo:lo + n])
        parts = []
        while n:
            if self._lo == self._hi and not self._fill():
                break
            take = min(n, self._hi - self._lo)
            parts.append(bytes(self._view[self._lo:self._lo + take]))
            self._lo += take
            n -= take
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n:
            if self._lo == self._hi and not self._fill():
                raise unexpected_eof()
            take = min(n, self._hi - self._lo)
            self._lo += take
            n -= take

    def copy_to(self, fd: int, n: int | None) -> None:
        """``n`` bytes (None: up to the end of the input) into the new file ``fd``."""
        written = 0
        writeback = Writeback(fd)
        while n is None or written < n:
            if self._lo == self._hi and not self._fill():
                if n is None:
                    break
                raise unexpected_eof()
            take = self._hi - self._lo if n is None else min(n - written, self._hi - self._lo)
            _write_all(fd, self._view[self._lo:self._lo + take])
            self._lo += take
            written += take
            writeback.wrote(written)

    def copy_rest_to(self, fd: int) -> None:
        self.copy_to(fd, None)

    def drain(self) -> None:
        """Read to the end: the source checks its digest there, gzip its CRC, zstd that the
        stream ends on a frame boundary (its rest is not decoded: see ``compression``)."""
        self._lo = self._hi
        if self._dec is not None:
            self._dec.finish()
            return
        while self._fill():
            pass


@contextlib.contextmanager
def layer_input(source: Any, descriptor: Descriptor, compression: str = "",
                task: Any = None) -> Iterator[FileInput | StreamInput]:
    """The input for one layer blob of ``source`` (local storage or anything with
    ``open_blob``); the blob's digest has been checked when the ``with`` block ends without an
    error. Uncompressed blobs in local storage take the kernel-copy path with a background
    hash; if their archive turns out garbled, the hash is awaited first, because "the blob is
    corrupt" is then the error worth reporting."""
    if isinstance(source, LocalStore) and not compression:
        verifier = source.verify_in_background(descriptor, task=task)
        try:
            with FileInput(source.blob_path(descriptor.digest)) as inp:
                yield inp
        except TarFormatError:
            verifier.result()
            raise
        except BaseException:
            verifier.cancel()
            raise
        verifier.result()
        return
    stream = source.open_blob(descriptor)
    with contextlib.closing(stream):
        try:
            streamed = StreamInput(stream, compression=compression, task=task)
            yield streamed
            streamed.drain()
        except (TarFormatError, LayerDecodeError):
            if isinstance(stream, VerifyingReader):  # local storage: reading on is cheap
                stream.verify_rest()  # raises StorageError if the blob is corrupt
            raise


# =============================================================================================
# Extraction
# =============================================================================================

@dataclass
class ExtractStats:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _illegal(name: str, reason: str) -> UnpackError:
    return UnpackError(f"failed to unpack: illegal file path: {name}: {reason}")


class _PendingFiles:
    """The final paths of the temp files written so far, in order, with whether each is small
    (its fsync is due at commit). The first :data:`PENDING_IN_MEMORY` live in a list; beyond
    that they are appended to an unnamed file in the target (``O_TMPFILE``: nothing to clean
    up even after SIGKILL), so memory does not grow with the number of files."""

    def __init__(self, spill_dir: str):
        self._dir = spill_dir
        self._mem: list[tuple[str, bool]] = []
        self._spill = -1  # the unnamed file's descriptor, once there is one
        self._spill_size = 0
        self.count = 0
        self.small = 0
        self.spilled = 0
        self.peak_in_memory = 0

    def append(self, final: str, small: bool) -> None:
        self._mem.append((final, small))
        self.count += 1
        self.small += small
        if len(self._mem) > self.peak_in_memory:
            self.peak_in_memory = len(self._mem)
        if len(self._mem) >= PENDING_IN_MEMORY:
            self._flush()

    def _flush(self) -> None:
        if self._spill < 0:
            self._spill = _unnamed_file(self._dir)
        data = b"".join((b"1" if small else b"0") + os.fsencode(final) + b"\0"
                        for final, small in self._mem)
        _write_all(self._spill, memoryview(data))
        self._spill_size += len(data)
        self.spilled += len(self._mem)
        self._mem = []

    def paths(self) -> Iterator[str]:
        """Every final path, oldest first, without using the list up (for the journal)."""
        for final, _ in self._spilled():
            yield final
        for final, _ in self._mem:
            yield final

    def _spilled(self) -> Iterator[tuple[str, bool]]:
        """The entries in the unnamed file, read by position in 1 MiB pieces (so reading
        neither moves the append position nor holds more than a piece)."""
        if self._spill < 0:
            return
        pos, rest = 0, b""
        while pos < self._spill_size:
            chunk = os.pread(self._spill, min(_SPILL_READ, self._spill_size - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            parts = (rest + chunk).split(b"\0")
            rest = parts.pop()
            for part in parts:
                yield os.fsdecode(part[1:]), part[:1] == b"1"

    def __iter__(self) -> Iterator[tuple[str, bool]]:
        """Every entry once, oldest first (then the list is empty: read once, at the end)."""
        try:
            yield from self._spilled()
        finally:
            self._close_spill()
        mem, self._mem = self._mem, []
        yield from mem
        self.count = self.small = 0

    def _close_spill(self) -> None:
        if self._spill >= 0:
            os.close(self._spill)
            self._spill = -1
            self._spill_size = 0

    def discard(self) -> None:
        self._close_spill()
        self._mem = []
        self.count = self.small = 0


def _unnamed_file(directory: str) -> int:
    """A read-write file with no name in ``directory`` (removed by the kernel when closed)."""
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    tmpfile = getattr(os, "O_TMPFILE", 0)
    fd = -1
    if tmpfile:
        with contextlib.suppress(OSError):
            fd = os.open(directory, flags | tmpfile, 0o600)
    if fd < 0:  # no O_TMPFILE here: a named temp file, unlinked at once
        path = temp_sibling(directory, "pending", run_token())
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
    return fd


JOURNAL_PREFIX = ".kitops-unpack."
_JOURNAL_SUFFIX = ".journal"
_JOURNAL_MAX = 64 << 20  # NUL-separated paths: far beyond any real ModelKit's


def _read_journal(path: str) -> set[str]:
    """The clean relative paths a dead unpack's journal names (at most :data:`_JOURNAL_MAX`
    bytes of them: it only ever makes files an unpack wrote replaceable); a directory it
    published whole (a staged one) keeps its trailing ``/``."""
    try:
        with open(path, "rb") as f:
            data = f.read(_JOURNAL_MAX)
    except OSError:
        return set()
    return {go_clean(os.fsdecode(p)) + ("/" if p.endswith(b"/") else "")
            for p in data.split(b"\0") if p}


class Extraction:
    """One unpack's writes into ``target``, published by :meth:`commit` or undone by
    :meth:`rollback` (see the module docstring); use it as a context manager.

    kit's rules for what is already there (spec §11.1): an existing file is skipped with
    ``ignore_existing``, replaced with ``overwrite``, else the unpack fails; an existing
    non-file where a file goes, or a non-directory where a directory goes, fails.

    Refused although kit (Go's archive/tar) would write them:

    * a path that occurs twice (as two files, or as a file and then a directory or something
      inside it): kit writes both and the last one wins, or fails half-way with ``is a
      directory``. A layer kit packs never names a path twice (one ``filepath.Walk``), so a
      duplicate only comes from a hand-made archive -- the classic way to show a scanner one
      file and the user another. With files renamed into place only at the end, which copy
      would win is an accident of order; refusing is the only clear answer.
    * ``Kitfile``, ``kitfile`` or ``.kitfile`` at the top of the target: kit's pack never puts
      them in a layer (always ignored, spec §8.6), and a layer member there could only replace
      the Kitfile unpack writes from the ModelKit's config (with ``-o``).
    """

    def __init__(self, target: str | os.PathLike[str], *, overwrite: bool = False,
                 ignore_existing: bool = False, keep_journal: bool = False):
        self.target = Path(target).absolute()
        self.overwrite = overwrite
        self.ignore_existing = ignore_existing
        #: keep the journal after :meth:`commit` until :meth:`release` (more is written after)
        self.keep_journal = keep_journal
        #: clean relative paths a killed unpack published: replaced as if they were absent
        self.replaceable: set[str] = set()
        self._replaceable_trees: tuple[str, ...] = ()  # ``dir/``: everything below it
        self._adopted: list[str] = []  # dead unpacks' journals, removed once ours is written
        self._journals: list[str] = []  # ours
        self.umask = current_umask()
        self.stats = ExtractStats()
        self._root = ""
        self._token = run_token()  # names every temp file of this unpack (module docstring)
        self._pending = _PendingFiles(".")
        self._dirs: set[str] = set()  # clean relative paths known to be directories
        #: real paths of the directories this run created, in creation order: rollback
        #: removes them; a file in one needs no "already exists" check (nothing else is there)
        self._created: dict[str, None] = {}
        #: directories this run made below the target, by clean relative path: where each one
        #: is on disk until commit (under a staged directory's hidden name)
        self._made: dict[str, str] = {}
        self._made_on_disk: set[str] = set()  # the same directories' paths on disk
        self._staged: list[tuple[str, str]] = []  # (hidden name, final name): renamed at commit
        self._small_written = 0  # small files not fsynced (one syncfs at commit covers them)
        self._dir_modes: list[tuple[str, int]] = []  # recorded modes, applied at commit
        self._real_dirs: dict[str, str] = {}  # relative dir -> its checked real path
        self._swept: set[str] = set()  # directories already cleared of stale temp files
        self._devices: dict[int, str] = {}  # file system -> a directory written on it
        self._early_sync: BackgroundSync | None = None  # from EARLY_SYNC_AFTER small files on

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> Extraction:
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def open(self) -> None:
        """Create the target (mode 0755, like kit) and remember which directories that took."""
        try:
            made = make_dirs(self.target)
        except OSError as exc:  # what it made is gone; names what is in the way, if anything
            raise UnpackError(f"failed to create directory {exc.filename or self.target}: "
                              f"{exc.strerror}") from None
        self._root = os.path.realpath(self.target)
        self._created = dict.fromkeys(os.path.realpath(d) for d in made)
        self._pending = _PendingFiles(self._root)
        if not made:
            self._adopt_journals()

    # -- journals (module docstring) -------------------------------------------------------
    def _adopt_journals(self) -> None:
        for name in sorted(stale_names(self._root, JOURNAL_PREFIX, _JOURNAL_SUFFIX)):
            path = os.path.join(self._root, name)
            self.replaceable |= _read_journal(path)
            self._adopted.append(path)
        self._replaceable_trees = tuple(p for p in self.replaceable if p.endswith("/"))

    def _is_replaceable(self, rel: str) -> bool:
        """Whether a killed unpack published the file ``rel`` (named, or in a tree it
        published whole)."""
        return rel in self.replaceable or (
            bool(self._replaceable_trees) and rel.startswith(self._replaceable_trees))

    def _relative(self, path: str | os.PathLike[str], real: bool = False) -> str:
        """``path`` relative to the target; ``real``: a pending file's path, made of the
        target's real path and a clean relative one, so a prefix to cut (at 10,000 files,
        ``relpath`` and ``realpath`` per file cost a tenth of the unpack). A trailing ``/`` (a
        staged directory, in the journal) is kept."""
        full = os.fspath(path)
        prefix = self._root.rstrip("/") + "/"
        if real and full.startswith(prefix):
            return full[len(prefix):]
        rel = go_clean(Path(os.path.relpath(os.path.realpath(full), self._root)).as_posix())
        return rel + "/" if full.endswith("/") and rel != "." else rel

    def _write_journal(self, paths: Iterator[str], real: bool = False) -> None:
        """A journal naming ``paths`` (and, in the first one, what the adopted ones named),
        written before anything it names is published; then the adopted journals go. Written
        in place, not renamed: a journal cut short by a kill was cut before any rename, and
        every path in one passed the existing-file rules, so a partial journal can only name
        files that are not there or that this unpack was allowed to replace. Not fsynced: a
        killed process's writes survive in the page cache, and :meth:`commit`'s ``syncfs``
        follows."""
        journal = str(temp_path(self._root, JOURNAL_PREFIX, _JOURNAL_SUFFIX))
        self._journals.append(journal)
        fd = os.open(journal, _OPEN_FLAGS, 0o600)
        try:
            with open(fd, "wb", buffering=CHUNK) as f:
                for rel in sorted(self.replaceable) if len(self._journals) == 1 else ():
                    f.write(os.fsencode(rel) + b"\0")
                relative, encode, write = self._relative, os.fsencode, f.write
                for path in paths:
                    write(encode(relative(path, real)) + b"\0")
        except OSError as exc:  # a write says nothing of where: the error names the journal
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, journal) from None
            raise
        for path in self._adopted:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._adopted = []

    def record(self, paths: list[Path]) -> None:
        """Name more files (under the target) in a journal before they are published (the
        remote datasets, downloaded after :meth:`commit`)."""
        try:
            self._write_journal(iter([str(p) for p in paths]))
        except OSError as exc:
            raise UnpackError(f"failed to unpack: {os_text(exc)}") from None

    def left_by_killed(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file ``path`` (under the target) was published by a killed unpack."""
        return self._is_replaceable(self._relative(path))

    def release(self) -> None:
        """The unpack is over (done, or failed while alive): its journals go."""
        for journal in self._journals:
            with contextlib.suppress(OSError):
                os.unlink(journal)
        self._journals = []

    def commit(self) -> None:
        """Make the small files durable with one ``syncfs`` per file system they were written
        to (before any rename, so a crash never publishes a file whose bytes are not on disk),
        rename every file into place, give directories their recorded modes (deepest first,
        so a parent losing its write or search bit cannot block a child), then rename the
        staged directories into place."""
        try:
            self._stop_early_sync()
            if self._pending.count or self._adopted or self._staged:
                self._write_journal(itertools.chain(
                    self._pending.paths(), (final + "/" for _, final in self._staged)),
                    real=True)
            if self._small_written:
                for directory in self._devices.values():
                    sync_filesystem(directory)
        except OSError as exc:
            self.rollback()
            raise UnpackError(f"failed to unpack: {os_text(exc)}") from None
        entries = iter(self._pending)
        for final, _ in entries:
            tmp = self._temp_of(final)
            try:
                os.replace(tmp, final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                for rest, _ in entries:  # not renamed: their temp files go
                    with contextlib.suppress(OSError):
                        os.unlink(self._temp_of(rest))
                self.rollback()
                raise UnpackError(f"failed to unpack: {os_text(exc)}") from None
        for path, mode in sorted(self._dir_modes, key=lambda d: d[0].count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.chmod(path, mode)
        self._dir_modes = []
        self._small_written = 0
        staged, self._staged = self._staged, []
        for i, (hidden, final) in enumerate(staged):
            try:
                os.rename(hidden, final)  # an empty directory made there meanwhile gives way
            except OSError as exc:
                self._staged = staged[i:]
                self.rollback()
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise UnpackError(f"failed to unpack: path '{self._relative(final)}' was "
                                      "made by another process while unpacking") from None
                raise UnpackError(f"failed to unpack: {os_text(exc)}") from None
        self._created = {}
        self._made = {}
        self._made_on_disk = set()
        if not self.keep_journal:
            self.release()

    def rollback(self) -> None:
        """Remove the temp files, the staged trees and the directories this run created (if
        empty)."""
        self._stop_early_sync(failed=True)
        try:
            for final, _ in self._pending:
                with contextlib.suppress(OSError):
                    os.unlink(self._temp_of(final))
        finally:
            self._pending.discard()
        self.release()
        for hidden, _ in self._staged:  # this run's own tree, written in place
            shutil.rmtree(hidden, ignore_errors=True)
        self._staged = []
        for path in reversed(self._created):
            with contextlib.suppress(OSError):
                os.rmdir(path)
        self._created = {}
        self._made = {}
        self._made_on_disk = set()

    # -- what a layer brings ----------------------------------------------------------------
    def tar(self, src: TarInput, extract_dir: str = "") -> None:
        """Extract a tar layer: directories and regular files only (kit's rule); names are
        relative to the target, or to ``extract_dir`` under it (legacy ModelKits, the datasets
        of a ModelKit a dataset refers to), and stay inside it, as kit's ``VerifySubpath``
        relative to its working directory there keeps them."""
        reader = TarReader(src)
        while (header := reader.next()) is not None:
            name = header.name
            if extract_dir and not name.startswith("/"):
                inner = go_clean(name)
                if inner == ".." or inner.startswith("../"):
                    raise _illegal(name, "layer paths must stay within context directory")
            out = posixpath.join(extract_dir, name) if extract_dir else name
            if header.kind == "dir":
                self._dir(out, header.mode)
            elif header.kind == "file":
                self._file(out, header.mode, reader.copy_to, header.size)
            else:
                raise UnpackError(f"failed to unpack: unrecognized type in archive: {name}")

    def raw(self, src: FileInput | StreamInput, name: str, mode: int) -> None:
        """A raw layer (spec §8.9): the whole blob is the file ``name``."""
        self._file(name, mode, src.copy_rest_to, None)

    def add_bytes(self, name: str, data: bytes, mode: int) -> None:
        """A file of this unpack's own making (the Kitfile): published with the layers; the
        caller has applied its existing-file rules."""
        rel, full = self._resolve(name, member=False)
        self._write_temp(self._on_disk(rel, full), name,
                         lambda fd: _write_all(fd, memoryview(data)), mode & ~self.umask, len(data))

    # -- members ----------------------------------------------------------------------------
    def _resolve(self, out: str, *, member: bool = True) -> tuple[str, str]:
        """kit's ``VerifySubpath``: no absolute names, nothing climbing out lexically, and no
        ``..`` in the path from the target to the entry once symlinks on disk are resolved
        (kit's substring test: it also refuses a name like ``v1..2.txt``, which kit's pack
        never writes). Returns the clean relative path and the full path."""
        if out.startswith("/"):
            raise _illegal(out, f"absolute paths are not supported ({out})")
        rel = go_clean(out)
        if rel == ".." or rel.startswith("../"):
            raise _illegal(out, "layer paths must stay within context directory")
        if rel == ".":
            return rel, self._root
        parent, _, base = rel.rpartition("/")
        real_parent = self._real_dirs.get(parent)
        if real_parent is None:
            real_parent = os.path.realpath(os.path.join(self._root, parent)) if parent \
                else self._root
            inside = os.path.relpath(real_parent, self._root)
            if ".." in inside or inside.startswith("/"):
                raise _illegal(out, "paths must be within context directory")
            self._real_dirs[parent] = real_parent
        if ".." in base:
            raise _illegal(out, "paths must be within context directory")
        if member and rel in KITFILE_NAMES:
            raise _illegal(out, "a layer may not replace the ModelKit's Kitfile")
        return rel, _join(real_parent, base)

    def _temp_of(self, full: str) -> str:
        head, base = os.path.split(full)
        return temp_sibling(head, base, self._token)

    def _written_here(self, full: str) -> bool:
        """True if this unpack has written a file for ``full`` (its temp file is there; in a
        staged directory, the file itself)."""
        if os.path.dirname(full) in self._made_on_disk:
            return os.path.lexists(full)
        return os.path.lexists(self._temp_of(full))

    def _on_disk(self, rel: str, full: str) -> str:
        """Where the entry ``rel`` (``full``, by :meth:`_resolve`) is on disk now: below a
        directory this run made, under its staged name."""
        parent, _, base = rel.rpartition("/")
        made = self._made.get(parent)
        return full if made is None else f"{made}/{base}"

    def _new_dir(self, rel: str, full: str, mode: int) -> str:
        """Make the directory ``rel`` (final path ``full``); returns where it is on disk. One
        whose parent was there before the unpack is *staged*: made under a hidden temp name
        beside its final one, filled in place (files below it need no temp file and no rename
        of their own) and renamed into place by :meth:`commit`, after the sync; what a killed
        unpack staged is swept like its temp files (by the next unpack writing there)."""
        parent, _, base = rel.rpartition("/")
        made = self._made.get(parent)
        if made is None:
            head = os.path.dirname(full)
            self._sweep(head)
            where = temp_sibling(head, base, self._token)
        else:
            where = f"{made}/{base}"
        os.mkdir(where, mode)
        if made is None:
            self._staged.append((where, full))
        self._created[where] = None
        self._made[rel] = self._real_dirs[rel] = where
        self._made_on_disk.add(where)
        self._dirs.add(rel)
        return where

    def _dir(self, out: str, mode: int) -> None:
        rel, full = self._resolve(out)
        if rel == "." or rel in self._dirs:
            return
        self._make_parents(rel, out)  # a no-op if the directory exists: its parents do too
        here = self._on_disk(rel, full)
        if os.path.lexists(here):
            if not os.path.isdir(here):
                raise UnpackError(f"failed to unpack: path '{out}' already exists and is not a "
                                  "directory")
            self._dirs.add(rel)
            return
        if self._written_here(here):
            raise UnpackError(f"failed to unpack: path '{out}' already exists and is not a "
                              "directory")
        perm = mode & 0o777
        try:
            # owner rwx while it is filled; the umask applies
            here = self._new_dir(rel, full, perm | 0o700)
        except OSError as exc:
            raise UnpackError(f"failed to create directory {out}: {exc.strerror}") from None
        self.stats.dirs += 1
        final = perm & ~self.umask
        if final != (perm | 0o700) & ~self.umask:
            self._dir_modes.append((here, final))

    def _make_parents(self, rel: str, out: str) -> None:
        """Create the missing directories above ``rel`` (0755, as kit's MkdirAll)."""
        parent = rel.rpartition("/")[0]
        if not parent or parent in self._dirs:
            return
        missing = []
        while parent and parent not in self._dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for parent in reversed(missing):  # top down: below one this run makes, all are new
            path = self._on_disk(parent, os.path.join(self._root, parent))
            if self._written_here(path):
                raise UnpackError(f"failed to unpack: path '{out}' is inside '{parent}', "
                                  "which is a file of the ModelKit")
            if os.path.lexists(path):
                if not os.path.isdir(path):
                    raise UnpackError(f"failed to unpack: path '{out}': '{parent}' already "
                                      "exists and is not a directory")
                self._dirs.add(parent)
                continue
            try:
                self._new_dir(parent, path, 0o755)
            except OSError as exc:
                raise UnpackError(f"failed to create directory {parent}: "
                                  f"{exc.strerror}") from None

    def _file(self, out: str, mode: int, copy: Callable[[int], None], size: int | None) -> None:
        rel, full = self._resolve(out)
        self._make_parents(rel, out)  # a no-op if the file exists: its parents do too
        full = self._on_disk(rel, full)
        head = full.rpartition("/")[0] or "/"  # swept by _write_temp, before it writes there
        # in a directory this run created, only this run's directories can be in the way
        if (head not in self._created or rel in self._dirs) and \
                not self._may_write(full, out, rel):
            self.stats.skipped.append(out)
            return
        self._write_temp(full, out, copy, mode & 0o777 & ~self.umask, size)
        self.stats.files += 1
        self.stats.bytes += size or 0

    def _sweep(self, head: str) -> None:
        """What a killed unpack left in ``head`` (temp files of dead owners) goes first; its
        journals stay for :meth:`_adopt_journals`."""
        if head not in self._swept and head not in self._made_on_disk:  # ours: nothing stale
            sweep_stale(head, suffix=".part", trees=True)
            self._swept.add(head)
            with contextlib.suppress(OSError):
                self._devices.setdefault(os.stat(head).st_dev, head)

    def _may_write(self, full: str, out: str, rel: str) -> bool:
        """kit's rules for a file that is already there; False: skip it (``-i``). A file a
        killed unpack published (:attr:`replaceable`) is replaced, as if it were absent."""
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return True
        except NotADirectoryError:
            raise UnpackError(f"failed to unpack: path '{out}': a parent already exists and "
                              "is not a directory") from None
        if stat.S_ISREG(st.st_mode) and self._is_replaceable(rel):
            return True
        if self.ignore_existing:
            return False
        if not self.overwrite:
            raise ExistingPathError(f"failed to unpack: path '{out}' already exists")
        if not stat.S_ISREG(st.st_mode):
            raise UnpackError(f"failed to unpack: path '{out}' already exists and is not a "
                              "regular file")
        return True

    def _write_temp(self, full: str, out: str, copy: Callable[[int], None], mode: int,
                    size: int | None) -> None:
        """The member's bytes in a temp file beside its target (named with this unpack's
        token, created with its final mode), pending for :meth:`commit`. A large file is
        fsynced at once (on the fast path that overlaps the blob's hash); the small ones are
        made durable together at commit (module docstring). A temp file that exists already
        is this unpack's own: the path occurs twice."""
        small = size is not None and size < _SYNC_AT_ONCE
        head, _, base = full.rpartition("/")
        head = head or "/"
        self._sweep(head)
        staged = head in self._made_on_disk  # renamed into place with its directory
        tmp = full if staged else temp_sibling(head, base, self._token)
        try:
            fd = os.open(tmp, _OPEN_FLAGS, mode)
        except FileExistsError:
            raise UnpackError(f"failed to unpack: path '{out}' occurs more than once in the "
                              "ModelKit") from None
        except OSError as exc:
            raise UnpackError(f"failed to unpack: {out}: {exc.strerror}") from None
        try:
            try:
                if small:
                    copy(fd)
                else:
                    with syncing_file(fd):  # the fsync below then finds little left
                        copy(fd)
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise UnpackError(f"failed to unpack: {out}: {os_text(exc)}") from None
            raise
        if not staged:
            self._pending.append(full, small)
        self._small_written += small
        if small and self._early_sync is None and self._small_written >= EARLY_SYNC_AFTER:
            self._early_sync = syncing_filesystems(self._devices.values)  # each pass lists them

    def _stop_early_sync(self, failed: bool = False) -> None:
        """End the early syncs; unless ``failed``, raise the writeback error one of them met
        (the final syncfs would not report it again)."""
        early, self._early_sync = self._early_sync, None
        if early is None:
            return
        if failed:
            early.cancel()
        else:
            early.stop()


def _join(directory: str, name: str) -> str:
    """``os.path.join`` of an absolute directory and a clean relative name, at a fraction of
    its cost (once or twice for every member of a layer)."""
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


__all__ = ["JOURNAL_PREFIX", "ExtractStats", "Extraction", "FileInput", "StreamInput",
           "current_umask", "layer_input", "os_text"]
