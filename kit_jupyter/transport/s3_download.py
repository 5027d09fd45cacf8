"""Verified, resumable, parallel download of one S3 object into a file.

Why this is not ``download_file``: boto3 cannot send our ``If-Match`` (it pins the ETag it saw
itself), does not verify content, and reads the body in pieces that cost CPU (a new bytes
object per read, queued to a writer thread); each stream here reads the socket into one reused
buffer (:func:`body_readinto`), hashes it while it is in the CPU cache and writes it. Every
request carries ``If-Match: <remoteHash>``; the object is fetched with concurrent ranged GETs
aligned to the upload's part boundaries so that each part's MD5 is computed while it arrives
(hashlib releases the GIL for buffers of 2047 bytes and more, so parts hash in parallel); the
bytes go to a temporary file beside the target with ``os.pwrite`` and the file is only renamed
into place after the digest matched. A broken stream is retried from the last byte written --
the running MD5 state already covers those bytes, so resuming costs nothing and progress never
goes backwards.

A single-part object (plain MD5 ETag) has one MD5 state, which must see the bytes in order; it is
fetched with the same parallel ranged GETs anyway, and one hashing thread (:class:`InOrderHasher`)
follows the written prefix, hashing it where it lies in the page cache (mapped, not copied). So
the streams fill the link and the MD5 runs beside them instead of between reads: the object
arrives at the speed of the slower of the network and one core's MD5 (about 550-600 MiB/s on
current x86 cores), where the multipart case hashes on as many cores as there are streams.

Every phase is timed (wall and thread CPU seconds: request latency, socket reads, MD5, writes,
fsync) into :attr:`Downloader.timings`, so ``bench/remote_download.py`` can show where the time
goes.

Pure mechanics: S3 errors escape as botocore exceptions and are worded by
:mod:`kit_jupyter.transport.s3`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import http.client
import math
import mmap
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kit_jupyter._fs import (
    BackgroundSync,
    SharedFile,
    Writeback,
    io_buffer,
    sweep_stale,
    syncing_file,
    temp_name,
)
from kit_jupyter.errors import one_line
from kit_jupyter.transport.deadline import Deadline, Timeouts
from kit_jupyter.transport.redact import redact

MiB = 1 << 20
READ_SIZE = 512 * 1024          # per stream: still in the CPU cache when hashed (2 MiB: more CPU)
RANGE_TARGET = 64 * MiB         # few large requests: cheap on real S3, and on moto (O(size)/GET)
MIN_RANGE = 8 * MiB             # below this an extra request costs more than it overlaps
MAX_ATTEMPTS = 5                # per range, counted only for failures that made no progress
BACKOFF = (0.1, 0.3, 0.7, 1.5)

# Matched whole (fullmatch: ``$`` would let a trailing newline in). A part count is written as
# S3 writes it -- one that no download could reproduce (``-0``, ``-012``) or of more than nine
# digits (S3 allows 10000 parts; int() refuses 4300 digits) leaves the object unverified.
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
_MULTIPART_RE = re.compile(r"([0-9a-fA-F]{32})-([1-9][0-9]{0,8})")
# What a ranged GET must answer; bounded digits, ASCII only (``\d`` takes any script's).
_CONTENT_RANGE_RE = re.compile(r"bytes 0*([0-9]{1,20})-0*([0-9]{1,20})/")


def default_workers() -> int:
    """Four streams: enough to fill a real network link (one S3 stream rarely does), few enough
    for a 2-CPU notebook server where MD5 and the copy into the page cache are the limit."""
    return 4


class DigestMismatch(Exception):
    """Downloaded bytes do not hash to the ETag."""


class RangeError(Exception):
    """The server answered a ranged GET with other bytes than asked for."""


@dataclass
class ObjectInfo:
    """What a HEAD told us about the object."""

    size: int
    etag: str                     # as returned, with quotes
    sse: str | None = None        # "aws:kms", "aws:kms:dsse", "SSE-C" ... (ETag is then no MD5)
    version_id: str | None = None

    @property
    def etag_value(self) -> str:
        return self.etag.strip('"')


@dataclass
class Plan:
    """How the bytes of an object can be checked against its ETag."""

    mode: str                                # "md5" | "multipart" | "none"
    parts: int = 0                           # N of a multipart ETag
    part_size: int | None = None             # known or inferred part size
    confirmed: bool = False                  # part size reported by the server (HEAD partNumber)
    candidates: list[int] = field(default_factory=list)  # several possible part sizes
    reason: str = ""                         # why "none"

    def describe(self) -> str:
        if self.mode == "md5":
            return "MD5 verified"
        if self.mode == "multipart":
            return f"multipart MD5 verified ({self.parts} parts)"
        return f"content not verified: {self.reason}"


def etag_plan(info: ObjectInfo) -> Plan:
    """Which check the ETag allows (part size still unknown for multipart)."""
    value = info.etag_value
    if info.sse and info.sse.lower() not in ("aes256",):
        return Plan("none", reason=f"ETag of an object encrypted with {one_line(info.sse)} is "
                                   "not an MD5")
    if _MD5_RE.fullmatch(value):
        return Plan("md5")
    m = _MULTIPART_RE.fullmatch(value)
    if m:
        return Plan("multipart", parts=int(m.group(2)))
    return Plan("none", reason=f"ETag {one_line(info.etag)} is neither an MD5 nor a multipart "
                               "MD5")


def part_size_candidates(size: int, parts: int) -> list[int]:
    """MiB-multiple part sizes p with ceil(size / p) == parts (what upload tools use)."""
    if parts <= 1:
        return [max(size, 1)]
    lo = math.ceil(size / parts)                 # p >= size/N
    hi = size / (parts - 1)                      # p <  size/(N-1)
    first = max(1, math.ceil(lo / MiB))
    out: list[int] = []
    m = first
    while m * MiB < hi and len(out) < 64:
        if math.ceil(size / (m * MiB)) == parts:
            out.append(m * MiB)
        m += 1
    return out


def resolve_part_size(plan: Plan, info: ObjectInfo, head_part1: Callable[[], dict] | None) -> Plan:
    """Find the part boundaries of a multipart object.

    ``HEAD ?partNumber=1`` gives part 1's length and ``PartsCount`` on AWS and moto; servers that
    ignore it (Ceph RGW 16, s3rver) answer with the whole object and no count, so fall back to the
    part sizes that upload tools use (MiB multiples consistent with size and N).
    """
    if plan.mode != "multipart":
        return plan
    if plan.parts == 1:
        plan.part_size, plan.confirmed = max(info.size, 1), True
        return plan
    if head_part1 is not None:
        resp = head_part1()
        if resp.get("PartsCount") == plan.parts and resp.get("ContentLength"):
            plan.part_size, plan.confirmed = int(resp["ContentLength"]), True
            return plan
    cands = part_size_candidates(info.size, plan.parts)
    if len(cands) == 1:
        plan.part_size = cands[0]
    elif cands:
        plan.candidates = cands
    else:
        return Plan("none", parts=plan.parts,
                    reason=f"part size of the {plan.parts}-part upload could not be determined")
    return plan


def multipart_etag(digests: list[bytes]) -> str:
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


# ---------------------------------------------------------------------------------------------
# hashing local files (existing targets, ambiguous part sizes)

def _md5_range(fd: int, start: int, end: int) -> bytes:
    h = hashlib.md5()
    pos = start
    while pos < end:
        data = os.pread(fd, min(4 * MiB, end - pos), pos)
        if not data:
            break
        h.update(data)
        pos += len(data)
    return h.digest()


def file_etag(path: Path, plan: Plan, part_size: int | None = None,
              workers: int | None = None) -> str | None:
    """The ETag a file would have under ``plan`` (parts hashed in parallel threads)."""
    part_size = part_size or plan.part_size
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        if plan.mode == "md5":
            return _md5_range(fd, 0, size).hex()
        if plan.mode != "multipart" or not part_size:
            return None
        bounds = [(s, min(s + part_size, size)) for s in range(0, size, part_size)] or [(0, 0)]
        with cf.ThreadPoolExecutor(workers or default_workers()) as ex:
            digests = list(ex.map(lambda b: _md5_range(fd, *b), bounds))
        return multipart_etag(digests)


# ---------------------------------------------------------------------------------------------
# downloading

@functools.cache
def _transient_types() -> tuple[type[BaseException], ...]:
    """Transport failures worth another request, as classes (botocore is imported lazily: it is
    heavy, and only a download gets here)."""
    from botocore import exceptions as bce
    from urllib3 import exceptions as u3e

    return (ConnectionError, TimeoutError, http.client.IncompleteRead, RangeError,
            bce.HTTPClientError,        # ReadTimeout, ConnectionClosed, ResponseStreaming
            bce.ConnectionError,        # EndpointConnection, ConnectTimeout
            bce.IncompleteReadError, u3e.ProtocolError, u3e.ReadTimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Errors worth another request: broken streams, timeouts, resets, 5xx -- never 4xx/412."""
    if isinstance(exc, _transient_types()):
        return True
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or resp.get("Error", {}).get("Code") in ("SlowDown", "RequestTimeout")
    return False


def body_readinto(body: Any) -> Callable[[memoryview], int]:
    """How a stream fills its buffer from a GET's body (botocore's, or the urllib3 response of
    a streamed ``requests`` GET: the registry's ranged pull): with http.client's own
    ``readinto`` under botocore's StreamingBody and urllib3's response (the socket's
    ``recv_into`` straight into the stream's buffer), else with the body's public
    ``readinto``. botocore's ``read`` makes a new
    bytes object per read and urllib3's ``readinto`` is ``read`` plus a copy: both cost CPU per
    GiB that the raw response does not (bench/remote_download.py's read phase). Reading past
    urllib3 is safe here: it buffers nothing of the body before the first read, the body is not
    content-encoded for us (botocore does not decode), and the connection is closed after the
    range (``body.close()``), so urllib3's byte counts are never used again. Errors are the
    socket's own (timeouts, resets: transient), a short body a read of 0 bytes."""
    raw = getattr(body, "_raw_stream", body)  # botocore's body, or urllib3's response itself
    fp = getattr(raw, "_fp", None)
    if (isinstance(fp, http.client.HTTPResponse) and not fp.chunked and fp.length is not None
            and not getattr(raw, "_decoded_buffer", None)):
        return fp.readinto
    return cast("Callable[[memoryview], int]", body.readinto)


@dataclass
class RangeJob:
    start: int
    end: int                     # exclusive


class _PhaseClock:
    """Wall and thread-CPU seconds per phase of one thread (``with clock("read"): ...``), added
    up as ``<phase>`` (wall) and ``<phase>_cpu``; cheap enough for every 512 KiB read."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._phase = ""

    def __call__(self, phase: str) -> _PhaseClock:
        self._phase = phase
        return self

    def __enter__(self) -> None:
        self._t = time.perf_counter()
        self._c = time.thread_time()

    def __exit__(self, *_: object) -> None:
        wall, cpu = time.perf_counter() - self._t, time.thread_time() - self._c
        t = self.totals
        t[self._phase] = t.get(self._phase, 0.0) + wall
        t[self._phase + "_cpu"] = t.get(self._phase + "_cpu", 0.0) + cpu


HASH_WINDOW = 8 * MiB          # mapped at a time (it counts in RSS while mapped)
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map the cached pages at once (Linux)


class InOrderHasher:
    """The hash of a file that several ranges write at once (MD5 of an S3 object; SHA-256 of a
    registry blob, :mod:`~kit_jupyter.transport.registry` uses it too): one thread hashes the
    written prefix as it grows, where it lies in the page cache (mapped a window at a time:
    memory does not grow with the object or with how far a stream runs ahead, and no byte is
    copied). Range ``i`` reports with :meth:`written` how far it has written; the prefix ends
    where the first unfinished range has got to. The mapping is of our own hidden temporary
    file; a process that truncated it under us would crash this one (SIGBUS), which only a
    hostile local user can do (docs/THREAT-MODEL.md)."""

    def __init__(self, fd: int, jobs: list[RangeJob], md5: hashlib._Hash,
                 cancel: threading.Event) -> None:
        self.fd = fd
        self.ends = [j.end for j in jobs]
        self.pos = [j.start for j in jobs]
        self.size = self.ends[-1] if jobs else 0
        self.md5 = md5
        self.cancel = cancel
        self.hashed = 0
        self.clock = _PhaseClock()
        self.error: BaseException | None = None
        self._first = 0                      # first range not yet complete
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="kit-s3-md5", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def check(self) -> None:
        """Raise what the hashing thread failed with, if it did."""
        if self.error is not None:
            raise self.error

    def wait(self) -> None:
        """Until every byte is hashed (interruptible: Ctrl-C gets through every 0.2 s)."""
        while self._thread.is_alive():
            self._thread.join(0.2)
        self.check()

    def stop(self) -> None:
        """After ``cancel`` was set: wait (a little) for the thread to leave the file alone."""
        with self._cond:
            self._cond.notify_all()
        self._thread.join(5)

    @property
    def stopped(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._hash()
        except BaseException as exc:  # handed to the downloading thread by check()
            self.error = exc

    def written(self, index: int, pos: int) -> None:
        with self._cond:
            self.pos[index] = pos
            if index == self._first:
                self._cond.notify()

    def _frontier(self) -> int:
        while self._first < len(self.ends) and self.pos[self._first] >= self.ends[self._first]:
            self._first += 1
        return self.pos[self._first] if self._first < len(self.ends) else self.size

    def _hash(self) -> None:
        while self.hashed < self.size:
            with self._cond:
                while (avail := self._frontier()) <= self.hashed:
                    if self.cancel.is_set():
                        return
                    self._cond.wait(0.2)
            while self.hashed < avail:
                if self.cancel.is_set():
                    return
                self._hash_window(avail)

    def _hash_window(self, avail: int) -> None:
        """Hash the written bytes from ``hashed`` (at most ``HASH_WINDOW``) where they lie: the
        page cache, mapped read-only. A ``pread`` into a buffer would copy every byte once more
        (about 0.5 CPU-s/GiB here). The file's size was set before any range started, so the
        mapping never reaches past its end."""
        start = self.hashed - self.hashed % mmap.ALLOCATIONGRANULARITY
        end = min(avail, start + HASH_WINDOW)
        with self.clock("readback"):
            mm = mmap.mmap(self.fd, end - start, mmap.MAP_SHARED | _MAP_POPULATE,
                           mmap.PROT_READ, offset=start)
        try:
            with memoryview(mm) as view, self.clock("md5"):
                self.md5.update(view[self.hashed - start:])
        finally:
            mm.close()
        self.hashed = end


class _Output:
    """One file a download writes: a hidden temporary sibling of ``target`` (what a killed
    download left there is swept first), its size set before any stream writes, written by the
    streams one ``pwrite`` at a time (:class:`~kit_jupyter._fs.SharedFile`) and flushed as it
    fills; renamed onto ``target`` only once the bytes are verified."""

    def __init__(self, target: Path, size: int, mode: int) -> None:
        self.target, self.mode = target, mode
        target.parent.mkdir(parents=True, exist_ok=True)
        # A killed download's temporary file (dead owner) goes. It is not resumed: its bytes
        # cannot be verified until all of them are there, and which ranges it holds is unknown.
        sweep_stale(target.parent, target.name)
        self.tmp = temp_name(target)
        # read and write: a plain MD5 is computed from what was written (InOrderHasher)
        self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL
                          | getattr(os, "O_CLOEXEC", 0), mode)
        self.flushing: BackgroundSync | None = None
        try:
            if size:
                os.ftruncate(self.fd, size)
        except BaseException:
            self.discard(close=True)
            raise
        self.file = SharedFile(self.fd)  # the streams' writes, one at a time

    def start_flushing(self) -> None:
        """Flushed as it arrives: the fsync in :meth:`publish` is short."""
        self.flushing = syncing_file(self.fd)

    def stop_flushing(self) -> None:
        """The passes end; an error one of them met is raised."""
        if self.flushing is not None:
            self.flushing.stop()

    def cancel_flushing(self) -> None:
        """The passes end (after a failure: an error they met no longer matters)."""
        if self.flushing is not None:
            self.flushing.cancel()

    def seal(self) -> None:
        """Durable, closed, its mode set (after the verification): all that can fail before
        :meth:`publish`, so that several files are sealed first and renamed together."""
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.chmod(self.tmp, self.mode)

    def publish(self) -> None:
        os.replace(self.tmp, self.target)

    def discard(self, close: bool) -> None:
        """After a failure: no more flushing, the temporary file gone; its fd closed only when
        ``close`` (no stream or hasher may still use it: a reused fd number would mix in some
        other file)."""
        try:
            self.cancel_flushing()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            if close and self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class Downloader:
    """One object -> one file, and the same bytes into a ``mirror`` file too where one is
    given (the shared remote cache on a file system that cannot reflink: its entry and the
    unpacked file from one download, not a download and then a copy). ``get`` is
    ``client.get_object`` with bucket/key/version/If-Match already bound; it takes
    ``Range=``."""

    def __init__(self, get: Callable[..., dict], info: ObjectInfo, plan: Plan, target: Path, *,
                 advance: Callable[[int], object] | None = None, workers: int | None = None,
                 range_size: int = RANGE_TARGET, read_size: int = READ_SIZE,
                 mode: int = 0o644, timeouts: Timeouts | None = None,
                 mirror: Path | None = None) -> None:
        self.get = get
        self.timeouts = timeouts or Timeouts.from_env()
        self.info = info
        self.plan = plan
        self.target = Path(target)
        self.mirror = Path(mirror) if mirror is not None else None
        self.advance = advance or (lambda n: None)
        self.workers = workers or default_workers()
        self.range_size = range_size
        self.read_size = read_size
        self.mode = mode
        self.cancel = threading.Event()
        self.requests = 0
        self.retries = 0
        self.retry_reasons: list[str] = []
        self._count_lock = threading.Lock()
        self.digests: dict[int, bytes] = {}
        self.md5 = hashlib.md5()
        self.verified = False
        self.timings: dict[str, float] = {}
        self._hasher: InOrderHasher | None = None

    # --- planning
    def _jobs(self) -> list[RangeJob]:
        size = self.info.size
        if size == 0:
            return []
        # ranges of at most range_size, but small enough that every worker gets one
        want = max(1, min(self.range_size, math.ceil(size / self.workers)))
        if self.plan.mode == "md5":
            # a plain MD5 too (InOrderHasher hashes behind the ranges), but a small object is one
            # request: one MD5 thread cannot go faster for more streams below MIN_RANGE
            want = max(want, min(self.range_size, MIN_RANGE))
        if self.plan.mode == "multipart" and self.plan.part_size:
            step = self.plan.part_size * max(1, want // self.plan.part_size)
        else:
            step = want
        return [RangeJob(s, min(s + step, size)) for s in range(0, size, step)]

    # --- one range, resumed from the last byte written on transient errors
    def _fetch(self, outs: list[_Output], job: RangeJob, index: int = 0) -> None:
        clock = _PhaseClock()
        try:
            self._fetch_range(outs, job, index, clock)
        finally:
            self._add_phases(clock)

    def _add_phases(self, clock: _PhaseClock) -> None:
        with self._count_lock:
            for key, value in clock.totals.items():
                self.timings[key] = self.timings.get(key, 0.0) + value

    def _fetch_range(self, outs: list[_Output], job: RangeJob, index: int,
                     clock: _PhaseClock) -> None:
        pos = job.start
        part = self.plan.part_size if (self.plan.mode == "multipart" and self.plan.part_size) \
            else None
        h = hashlib.md5() if part else None
        hasher = self._hasher
        view = io_buffer(self.read_size)   # one buffer per stream, reused
        failures = 0
        # each file: its pwrite, and the mark up to which its writeback was started
        files = [(o.file.write_at, Writeback(o.fd, pos)) for o in outs]
        stall = Deadline(self.timeouts.total)  # restarted by every byte that arrives
        while pos < job.end:
            if self.cancel.is_set():
                return
            progressed = False
            with self._count_lock:
                self.requests += 1
            # botocore makes one attempt (s3.py); a failed request and a body that breaks off
            # are both retried here, the latter from the last byte written.
            try:
                with clock("request"):
                    resp = self.get(Range=f"bytes={pos}-{job.end - 1}")
                body = resp["Body"]
                try:
                    self._check_range(resp, pos, job.end)
                    readinto = body_readinto(body)
                    while pos < job.end:
                        if self.cancel.is_set():
                            return
                        want = min(self.read_size, job.end - pos)
                        if part:
                            want = min(want, part - pos % part)
                        with clock("read"):
                            n = readinto(view[:want])
                        if not n:
                            raise ConnectionError(f"stream ended at byte {pos}")
                        chunk = view[:n]
                        if h is not None:         # while the bytes are still in the CPU cache
                            with clock("md5"):
                                h.update(chunk)
                        with clock("write"):  # and the wait for the other streams' writes
                            for write_at, _ in files:
                                write_at(chunk, pos)
                        pos += n
                        if hasher is not None:
                            hasher.written(index, pos)
                        progressed = True
                        stall.progressed()
                        for _, writeback in files:
                            writeback.wrote(pos, last=pos == job.end)
                        if h is not None and part and (pos % part == 0
                                                       or pos == self.info.size):
                            self.digests[(pos - 1) // part] = h.digest()
                            h = hashlib.md5()
                        self.advance(n)
                finally:
                    with contextlib.suppress(Exception):
                        body.close()
            except BaseException as exc:
                if not is_transient(exc):
                    raise
                failures = 0 if progressed else failures + 1
                delay = BACKOFF[min(failures, len(BACKOFF)) - 1] if failures else 0.05
                # a bounded number of attempts without progress, and only while another one
                # could still end within the no-progress limit (KIT_JUPYTER_TIMEOUT)
                if (failures >= MAX_ATTEMPTS or self.cancel.is_set()
                        or stall.remaining() < delay + self.timeouts.read):
                    raise
                with self._count_lock:
                    self.retries += 1
                    self.retry_reasons.append(
                        redact(f"byte {pos}: {type(exc).__name__}: {exc}"))
                time.sleep(delay)

    def _check_range(self, resp: dict, start: int, end: int) -> None:
        cr = resp.get("ContentRange")
        if cr:
            m = _CONTENT_RANGE_RE.match(cr)
            if not m or int(m.group(1)) != start or int(m.group(2)) != end - 1:
                raise RangeError(f"asked for bytes {start}-{end - 1}, got {one_line(cr)}")
        elif start != 0 or resp.get("ContentLength", end) != end:
            raise RangeError(f"asked for bytes {start}-{end - 1}, got the whole object")

    # --- whole object
    def run(self) -> str:
        """Download, verify, fsync, rename; return a description of the check done.

        On any exception (KeyboardInterrupt included) the workers are stopped, the temporary
        files are removed and the target (and mirror) are left as they were.
        """
        outs: list[_Output] = []
        ex: cf.ThreadPoolExecutor | None = None
        started = time.perf_counter()
        try:
            for target in (self.target, self.mirror):
                if target is not None:
                    outs.append(_Output(target, self.info.size, self.mode))
            for out in outs:
                out.start_flushing()
            jobs = self._jobs()
            if jobs:
                if self.plan.mode == "md5":
                    self._hasher = InOrderHasher(outs[0].fd, jobs, self.md5, self.cancel)
                    self._hasher.start()
                ex = cf.ThreadPoolExecutor(min(self.workers, len(jobs)),
                                           thread_name_prefix="kit-s3")
                futures = [ex.submit(self._fetch, outs, j, i) for i, j in enumerate(jobs)]
                pending = set(futures)
                while pending:
                    done, pending = cf.wait(pending, timeout=0.2,
                                            return_when=cf.FIRST_EXCEPTION)
                    for f in done:
                        exc = f.exception()
                        if exc is not None:
                            raise exc
                    if self._hasher is not None:
                        self._hasher.check()
                ex.shutdown(wait=True)
                ex = None
            if self._hasher is not None:
                self._hasher.wait()
                self._add_phases(self._hasher.clock)
            for out in outs:
                out.stop_flushing()
            t0 = time.perf_counter()
            description = self._verify(outs[0].fd, outs[0].tmp)
            t1 = time.perf_counter()
            c1 = time.thread_time()
            for out in outs:
                out.seal()
            for out in outs:
                out.publish()
            self.timings.update(transfer=t0 - started, verify=t1 - t0,
                                fsync=time.perf_counter() - t1,
                                fsync_cpu=time.thread_time() - c1)
            return description
        except BaseException:
            self.cancel.set()
            try:
                for out in outs:
                    out.cancel_flushing()
                if ex is not None:
                    ex.shutdown(wait=True, cancel_futures=True)
                    ex = None
                if self._hasher is not None:
                    self._hasher.stop()
            finally:
                # Even if a second Ctrl-C cuts the wait short, the temporary files go. Their fds
                # are then left open rather than closed under a worker that may still pwrite()
                # or the hasher read (a reused fd number would mix in some other file).
                idle = ex is None and (self._hasher is None or self._hasher.stopped)
                for out in outs:
                    out.discard(close=idle)
            raise

    def _verify(self, fd: int, tmp: Path) -> str:
        plan, expected = self.plan, self.info.etag_value.lower()
        if plan.mode == "md5":
            got = self.md5.hexdigest()
        elif plan.mode == "multipart" and plan.part_size:
            digests = [self.digests[i] for i in sorted(self.digests)]
            got = multipart_etag(digests) if digests else multipart_etag([hashlib.md5().digest()])
        elif plan.mode == "multipart" and plan.candidates:
            os.fsync(fd)
            for cand in plan.candidates:
                if file_etag(tmp, plan, cand, self.workers) == expected:
                    plan.part_size = cand
                    self.verified = True
                    return plan.describe()
            raise DigestMismatch(self.info.etag)
        else:
            return plan.describe()
        if got != expected:
            raise DigestMismatch(self.info.etag)
        self.verified = True
        return plan.describe()
