"""What every benchmark prints about the machine, and the one way benchmarks measure a child.

A benchmark's numbers only mean something next to the floor the machine sets: how many cores,
how busy they were (the load average, read at the start and at the end), and how fast this
Python hashes -- SHA-256 (every blob is verified) and MD5 (every S3 download is checked against
its ETag), measured in-process on 1 MiB buffers, plus whether the CPU has SHA extensions
(``sha_ni``) and AVX2 (``/proc/cpuinfo``); and what copying a cached file out of the page cache
costs, into a page-aligned buffer and into one that starts 16 bytes into a page (the second was
four times the first here). Three more set the floor of anything that writes:
what first touching fresh memory costs (every copy into the page cache pays for its pages);
whether a virtual machine hands the memory its guest frees back to the host (free page
reporting: a page used again then costs a fault on the host as well -- on this project's VM,
which does, the same 1 GiB ``cp`` took 0.5 s in one benchmark and 2.4 s in another); and what
one small fsync costs (every durable step pays it at least once). :func:`print_facts` prints
them all in one block. On such a VM every measured step starts :data:`SETTLE` seconds after the
last (:func:`settle`), so that each finds the memory in the same state.

:func:`run_measured` runs one command and returns its wall time, peak RSS and CPU seconds.
Peak RSS is the command's own: a child forked from a large Python process and then exec'd would
report the parent's high-water mark too (Linux carries it across ``exec``), so the command runs
under GNU ``time`` (a small C program) when it is installed, else under a small Python wrapper
whose own ~10 MB is then the floor of what it can report.

Benchmarks are not tests (nothing here asserts a time); they print medians of several runs, the
spread, and ratios against references measured in the same run, interleaved, so a load spike
from elsewhere on a shared machine skews one run's pair rather than the comparison.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# machine facts

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(wanted: Sequence[str] = ("sha_ni", "avx2", "avx512f", "aes")) -> dict[str, bool]:
    """The CPU features that decide hashing speed (x86 names; ``sha2`` on arm64)."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    out = {f: f in flags for f in wanted}
    if "sha2" in flags:
        out["sha2 (arm64)"] = True
    return out


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def hash_rate(name: str, total: int = 256 * MiB, chunk: int = MiB,
              repeat: int = 3) -> tuple[float, float]:
    """(MiB per CPU-second, MiB per wall-second) of ``hashlib.<name>`` over ``total`` bytes in
    ``chunk`` updates, best of ``repeat``. The CPU rate is what one core of this machine can do
    (the floor a verified transfer cannot beat per core); the wall rate is what it did just now,
    with the machine's other load."""
    buf = memoryview(os.urandom(chunk))
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        h = hashlib.new(name)
        c0, t0 = time.thread_time(), time.perf_counter()
        for _ in range(total // chunk):
            h.update(buf)
        best_wall = min(best_wall, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return total / MiB / max(best_cpu, 1e-9), total / MiB / best_wall


def first_touch_rate(total: int = 256 * MiB, repeat: int = 3) -> float:
    """CPU seconds per GiB to first touch fresh anonymous memory (one write per 4 KiB page:
    the page fault and the zeroing), best of ``repeat``: part of the cost of every byte copied
    into the page cache, and what a guest whose freed pages went back to its host pays again
    for each of them (:func:`free_page_reporting`)."""
    best = float("inf")
    for _ in range(repeat):
        m = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            c0 = time.process_time()
            for off in range(0, total, 4096):
                m[off] = 1
            best = min(best, time.process_time() - c0)
        finally:
            m.close()
    return best * (1 << 30) / total


def page_cache_read_rates(directory: str, total: int = 64 * MiB, chunk: int = 512 * 1024,
                          repeat: int = 3) -> tuple[float, float]:
    """CPU seconds per GiB to copy a cached file out of the page cache in ``chunk`` reads,
    into a page-aligned buffer and into one that starts 16 bytes into a page (where a large
    ``bytearray`` starts: glibc's chunk header), best of ``repeat``. Every reader of files and
    sockets in kit_jupyter reads into page-aligned buffers (``_fs.io_buffer``) because on this
    project's machine the second costs about four times the first."""
    path = Path(directory) / f".page-cache-probe-{os.getpid()}"
    buf = mmap.mmap(-1, chunk + 4096)
    views = (memoryview(buf)[:chunk], memoryview(buf)[16:16 + chunk])
    try:
        path.write_bytes(os.urandom(total))
        fd = os.open(path, os.O_RDONLY)
        try:
            rates = []
            for view in views:
                best = float("inf")
                for _ in range(repeat + 1):  # the first pass reads what is not cached yet
                    c0 = time.thread_time()
                    for off in range(0, total, chunk):
                        os.preadv(fd, [view], off)
                    best = min(best, time.thread_time() - c0)
                rates.append(best * (1 << 30) / total)
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)
        for view in views:
            view.release()
        buf.close()
    return rates[0], rates[1]


def free_page_reporting() -> int | None:
    """The page order a virtio-balloon guest reports freed memory to its host in (Linux
    ``page_reporting``), or None where freed memory is not handed back (no such balloon)."""
    order = Path("/sys/module/page_reporting/parameters/page_reporting_order")
    balloon = Path("/sys/bus/virtio/drivers/virtio_balloon")
    try:
        if balloon.is_dir() and any(p.name.startswith("virtio") for p in balloon.iterdir()):
            return int(order.read_text())
    except (OSError, ValueError):
        pass
    return None


#: seconds between measured steps where the guest hands freed memory back (:func:`settle`)
SETTLE = 3.0


def settle() -> None:
    """Before each measured step, where the guest hands freed memory back to its host: wait
    until the pages the last step freed (its removed output) have been handed back, so every
    step writes into memory in the same state. Linux reports freed pages 2 s after they are
    freed. Without the wait, a step that writes at once (``cp``, s5cmd) reuses the last step's
    pages, while one that first spends a second starting Python finds them handed back and
    pays a fault on the host for each: measured on this project's VM, 1 GiB of page-cache
    writes cost 0.35 CPU-s right after a 1 GiB file was removed and 1.5-2.1 CPU-s 4 s later.
    Elsewhere (no free page reporting) there is nothing to wait for."""
    if free_page_reporting() is not None:
        time.sleep(SETTLE)


def fsync_latency(directory: str, repeat: int = 5) -> float:
    """Median seconds of writing 4 KiB into a new file in ``directory`` and fsyncing it: what
    any durable step costs at least once (a journal commit and the disk's cache flush)."""
    times = []
    block = os.urandom(4096)
    for i in range(repeat):
        path = Path(directory) / f".fsync-probe-{os.getpid()}-{i}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, block)
                t0 = time.perf_counter()
                os.fsync(fd)
                times.append(time.perf_counter() - t0)
            finally:
                os.close(fd)
        finally:
            path.unlink(missing_ok=True)
    return statistics.median(times)


@dataclass
class Facts:
    cpu: str
    cores: int
    cpu_count: int
    flags: dict[str, bool]
    loadavg: tuple[float, float, float]
    sha256: tuple[float, float]      # MiB per CPU-second, per wall-second
    md5: tuple[float, float]
    python: str
    openssl: str
    kernel: str
    tmp_fs: str
    first_touch: float               # CPU seconds per GiB of fresh memory
    page_reporting: int | None       # order of free page reporting to a host, if any
    fsync: float                     # seconds of one 4 KiB fsync in the temp dir
    cache_read: tuple[float, float]  # CPU-s per GiB out of the page cache: aligned, 16 bytes in


def facts() -> Facts:
    return Facts(cpu_model(), usable_cores(), os.cpu_count() or 1, cpu_flags(), loadavg(),
                 hash_rate("sha256"), hash_rate("md5"), platform.python_version(), _openssl(),
                 platform.release(), _fs_type(tempfile.gettempdir()), first_touch_rate(),
                 free_page_reporting(), fsync_latency(tempfile.gettempdir()),
                 page_cache_read_rates(tempfile.gettempdir()))


def _openssl() -> str:
    import ssl

    return ssl.OPENSSL_VERSION


def _fs_type(path: str) -> str:
    """The file system type of ``path`` (from /proc/mounts, longest matching mount point)."""
    best, kind = "", "?"
    try:
        real = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/")
                                                                        + "/")):
                if len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def durable_write_rate(directory: str | os.PathLike[str], total: int = 256 * MiB) -> float:
    """MiB per second of writing ``total`` bytes into ``directory`` and fsyncing them: the floor
    of anything that must be durable before it is renamed into place (a pull's blob), which no
    amount of parallel fetching or faster hashing moves."""
    block = os.urandom(MiB)
    path = Path(directory) / f".durable-write-probe-{os.getpid()}"
    t0 = time.perf_counter()
    try:
        with open(path, "wb") as f:
            for _ in range(total // MiB):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        return total / MiB / (time.perf_counter() - t0)
    finally:
        path.unlink(missing_ok=True)


def print_facts(title: str = "machine") -> Facts:
    """One block of facts; returns them so the caller can quote them again at the end."""
    f = facts()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in f.flags.items())
    la = f.loadavg
    print(f"{title}: {f.cpu}, {f.cores} usable cores (of {f.cpu_count}); {flags}")
    print(f"  load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (1/5/15 min) -- on a shared "
          f"machine, numbers scale with it; ratios against same-run references absorb some")
    print(f"  in-process hashing, 1 MiB updates, best of 3, one core: SHA-256 "
          f"{f.sha256[0]:.0f} MiB per CPU-second ({f.sha256[1]:.0f} MiB/s wall now), MD5 "
          f"{f.md5[0]:.0f} MiB per CPU-second ({f.md5[1]:.0f} MiB/s wall now)")
    print(f"  Python {f.python}, {f.openssl}, Linux {f.kernel}, temp dir on {f.tmp_fs}")
    handed_back = ("no" if f.page_reporting is None else
                   f"yes, in blocks of {4 << f.page_reporting} KiB (virtio-balloon free page "
                   f"reporting: a page used again costs a fault on the host too, so copies into "
                   f"the page cache, cp's included, vary from run to run)")
    print(f"  fresh memory, first touch (page faults and zeroing): {f.first_touch:.2f} CPU-s "
          f"per GiB; freed memory handed back to a host: {handed_back}")
    print(f"  one 4 KiB fsync in the temp dir: {f.fsync * 1000:.1f} ms (median of 5; every "
          f"durable step pays at least this once)")
    print(f"  a cached file copied out of the page cache in 512 KiB reads: "
          f"{f.cache_read[0]:.2f} CPU-s per GiB into a page-aligned buffer, "
          f"{f.cache_read[1]:.2f} into one 16 bytes into a page (where a large bytearray "
          f"starts; kit_jupyter reads into page-aligned ones)", flush=True)
    return f


def print_load(when: str = "end") -> None:
    la = loadavg()
    print(f"load average at {when}: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}", flush=True)


# ---------------------------------------------------------------------------------------------
# measuring a child

@dataclass
class Measured:
    wall: float      # seconds
    rss: int         # peak resident set of the command, bytes
    cpu: float       # user + system seconds
    stdout: str


_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[2:], stdout=subprocess.PIPE)\n"
    "dt = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(json.dumps([dt, u.ru_maxrss * 1024, u.ru_utime + u.ru_stime,"
    " p.returncode]))\n"
    "sys.stdout.buffer.write(p.stdout)\n"
)


def run_measured(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> Measured:
    """Run ``cmd``; raise with its stderr if it fails. See the module docstring for RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as stats:
        timer = shutil.which("time") or "/usr/bin/time"
        env = dict(os.environ if env is None else env)
        if os.path.exists(timer):
            full = [timer, "-q", "-f", "%e %M %U %S %x", "-o", stats.name, *cmd]
            t0 = time.perf_counter()
            p = subprocess.run(full, env=env, cwd=cwd, capture_output=True)
            wall = time.perf_counter() - t0
            e, m, u, s, rc = stats.read().split()[-5:]
            if p.returncode or int(rc):
                raise RuntimeError(f"{cmd[0]} failed ({rc}): {p.stderr.decode()[-3000:]}")
            return Measured(wall, int(m) * 1024, float(u) + float(s), p.stdout.decode())
        p = subprocess.run([sys.executable, "-c", _WRAPPER, stats.name, *cmd], env=env, cwd=cwd,
                           capture_output=True)
        dt, rss, cpu, rc = json.loads(Path(stats.name).read_text())
        if rc:
            raise RuntimeError(f"{cmd[0]} failed ({rc}): {p.stderr.decode()[-3000:]}")
        return Measured(dt, rss, cpu, p.stdout.decode())


# ---------------------------------------------------------------------------------------------
# summaries

def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)``."""
    return (f"{fmt.format(med(values))} ({fmt.format(min(values))}-"
            f"{fmt.format(max(values))})")


def per_run_ratio(ours: Sequence[float], ref: Sequence[float]) -> float:
    """Median of the per-run ratios (each pair measured seconds apart)."""
    return statistics.median(a / b for a, b in zip(ours, ref, strict=True))


def verdict(value: float, target: float, *, at_most: bool = True) -> str:
    ok = value <= target if at_most else value >= target
    return f"target {'<=' if at_most else '>='} {target:g}: {'met' if ok else 'NOT met'}"


__all__ = ["Measured", "cpu_flags", "cpu_model", "facts", "hash_rate", "loadavg", "med",
           "per_run_ratio", "print_facts", "print_load", "run_measured", "spread",
           "usable_cores", "verdict", "Facts"]
