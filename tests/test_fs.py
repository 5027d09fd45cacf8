"""Temporary files carry their owner, so what a killed process leaves is found and removed."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kit_jupyter._fs as fs
from kit_jupyter._fs import (
    BackgroundSync,
    RangeCopier,
    Writeback,
    atomic_write,
    io_buffer,
    is_stale,
    owner_tag,
    sweep_stale,
    temp_name,
)

ROOT = Path(__file__).resolve().parent.parent


def address_of(view: memoryview) -> int:
    """Where a writable buffer's first byte lies in memory."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


@pytest.mark.parametrize("size", [1, 511, 4096, 1 << 20, (4 << 20) + 3])
def test_io_buffers_start_on_a_page_and_hold_zeros(size):
    """What files and sockets are read into starts on a page (a large bytearray starts 16
    bytes in), is exactly ``size`` long, zeros, writable; and a second one is another buffer."""
    view, other = io_buffer(size), io_buffer(size)
    assert len(view) == size and view.nbytes == size and not view.readonly
    assert address_of(view) % mmap.PAGESIZE == 0
    assert not any(view[::4093]) and view[-1] == 0
    view[-1] = 7
    assert other[-1] == 0 and address_of(other) != address_of(view)


def test_an_empty_io_buffer_is_empty():
    assert len(io_buffer(0)) == 0


def _killed_writer(target: Path) -> Path:
    """A child process opens a temporary sibling of ``target`` and is SIGKILLed mid-write."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from kit_jupyter._fs import temp_name
        tmp = temp_name(Path({str(target)!r}))
        with open(tmp, "wb") as f:
            f.write(b"half")
            f.flush()
            print(tmp, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.exists() and not is_stale(tmp.name)  # its owner is alive: never touched
    assert sweep_stale(target.parent, target.name) == []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return tmp


def test_temporary_names_carry_the_owner(tmp_path):
    name = temp_name(tmp_path / "model.bin").name
    assert name.startswith(".model.bin." + owner_tag() + "-") and name.endswith(".part")
    assert not is_stale(name)  # ours
    assert not is_stale(".model.bin.0123456789ab.part")  # not ours (no owner): never removed


def test_what_a_killed_writer_leaves_is_swept(tmp_path):
    target = tmp_path / "model.bin"
    tmp = _killed_writer(target)
    assert is_stale(tmp.name)
    (tmp_path / ".other.kj-1-1-00000000.part").write_text("x")  # another target: not swept
    assert sweep_stale(tmp_path, target.name) == [tmp]
    assert not tmp.exists() and (tmp_path / ".other.kj-1-1-00000000.part").exists()


def test_atomic_write_sweeps_before_writing(tmp_path):
    target = tmp_path / "index.json"
    tmp = _killed_writer(target)
    with atomic_write(target) as f:
        f.write(b"{}")
    assert not tmp.exists() and target.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_pack_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """KITOPS_HOME on a 256 KiB tmpfs (a private mount namespace: gone with the process)."""
    home = tmp_path / "home"
    ctx = tmp_path / "ctx"
    home.mkdir()
    ctx.mkdir()
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    (ctx / "model.bin").write_bytes(os.urandom(1 << 20))
    script = (f"mount -t tmpfs -o size=256k tmpfs {home} && "
              f"KITOPS_HOME={home} {sys.executable} -m kit_jupyter pack {ctx} -t full:v1; "
              f"echo rc=$?; find {home} -type f")
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    proc = subprocess.run([*unshare, "sh", "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "rc=1" in proc.stdout, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("[ERROR] No space left on device: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    leftovers = [line for line in proc.stdout.splitlines() if line.startswith(str(home))]
    assert not [p for p in leftovers if "cache/pack" in p or "ingest" in p], leftovers


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polling), or fail."""
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline, "never reached the point to kill it"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_killed_pack_leaves_nothing_after_the_next_pack(tmp_path):
    home = tmp_path / "home"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n"
                                 "code:\n  - path: src\n")
    with open(ctx / "model.bin", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    (ctx / "src").mkdir()
    (ctx / "src" / "a.py").write_text("print(1)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), KITOPS_HOME=str(home))
    pack = [sys.executable, "-m", "kit_jupyter", "pack", str(ctx), "-t", "k:v1"]
    cache = home / "cache" / "pack"
    proc = subprocess.Popen(pack, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: cache.exists() and any(cache.iterdir()))
    assert any(cache.iterdir())  # the killed pack left its layer behind
    subprocess.run(pack, env=env, check=True, capture_output=True, timeout=120)
    left = [p for p in home.rglob("*") if p.is_file() and "kj-" in p.name]
    assert left == []
    assert list(cache.iterdir()) == []


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(way=st.sampled_from(RangeCopier.WAYS), src_off=st.integers(0, 70_000),
       dst_off=st.integers(0, 70_000), n=st.integers(1, 70_000))
def test_each_copy_way_copies_the_same_range(tmp_path, way, src_off, dst_off, n):
    """Every way of :class:`RangeCopier` puts the same bytes at the same place and leaves the
    rest of the destination alone; at the source's end it copies what there is, then 0."""
    data = bytes(range(256)) * 300                      # 76,800 bytes
    src, dst = (tmp_path / f"{end}-{way.replace('/', '-')}" for end in ("src", "dst"))
    src.write_bytes(data)
    dst.write_bytes(b"\xff" * 1000)
    s, d = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDWR)
    try:
        copier = RangeCopier(way)
        got = 0
        while got < n:
            step = copier.copy(s, src_off + got, d, dst_off + got, n - got)
            if step == 0:
                break
            got += step
        assert copier.copy(s, len(data), d, 0, 10) == 0
    finally:
        os.close(s)
        os.close(d)
    want = data[src_off:src_off + n]
    assert got == len(want)
    out = dst.read_bytes()
    assert out[dst_off:dst_off + got] == want
    assert out[:min(dst_off, 1000)] == b"\xff" * min(dst_off, 1000)


def test_a_refused_kernel_copy_switches_to_the_next_way(tmp_path):
    """Between file systems where the kernel refuses ``copy_file_range`` (tmpfs to this one
    gives EXDEV on Linux >= 5.19) the copier switches once and copies all the same."""
    shm = Path("/dev/shm")   # elsewhere: the same file system, nothing refused, same checks
    data = os.urandom(3 << 20)
    src = (shm if shm.is_dir() else tmp_path) / f"kj-test-{os.getpid()}"
    src.write_bytes(data)
    try:
        s = os.open(src, os.O_RDONLY)
        d = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT)
        try:
            try:
                os.copy_file_range(s, d, 1, 0, 0)
                refused = False
            except OSError as exc:
                refused = exc.errno == errno.EXDEV
            copier = RangeCopier()
            done = 0
            while done < len(data):
                done += copier.copy(s, done, d, done, len(data) - done)
        finally:
            os.close(s)
            os.close(d)
    finally:
        src.unlink()
    assert (tmp_path / "dst").read_bytes() == data
    assert (copier.how != "copy_file_range") == refused


def test_writeback_starts_each_step_once_and_the_tail_at_the_end(tmp_path):
    """:class:`Writeback` moves its mark a whole step at a time (a smaller advance waits), a
    range's last write starts the tail, and a buffered writer's hook runs before each start."""
    calls: list[int] = []
    with open(tmp_path / "f", "wb") as f:
        f.write(b"x" * 100)
        wb = Writeback(f.fileno(), start=10, step=30, before=lambda: calls.append(wb.mark))
        wb.wrote(39)
        assert wb.mark == 10 and calls == []          # 29 bytes: not a step yet
        wb.wrote(40)
        assert wb.mark == 40 and calls == [10]
        wb.wrote(69)
        wb.wrote(69, last=True)
        assert wb.mark == 69 and calls == [10, 40]    # the tail, at the end of the range
        wb.wrote(69, last=True)
        assert calls == [10, 40]                      # nothing new: nothing started


def _syncs_running(before: set[int | None]) -> list[threading.Thread]:
    return [t for t in threading.enumerate()
            if t.name == "kit-background-sync" and t.ident not in before]


def test_filesystem_passes_run_until_stopped_and_skip_a_directory_gone(tmp_path, monkeypatch):
    """Each pass syncs every directory ``where()`` names at that moment (the real syncfs,
    counted); a directory gone since is skipped, not an error; :meth:`stop` ends the thread
    and no pass runs after it."""
    synced: list[str] = []
    real = fs.sync_filesystem

    def counted(path):
        synced.append(str(path))
        real(path)

    monkeypatch.setattr(fs, "sync_filesystem", counted)
    before = {t.ident for t in threading.enumerate()}
    where = [str(tmp_path / "gone"), str(tmp_path)]
    bg = fs.syncing_filesystems(lambda: where, period=0.01)
    deadline = time.monotonic() + 10
    while synced.count(str(tmp_path)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    bg.stop()  # no error: the missing directory was skipped
    assert synced.count(str(tmp_path)) >= 3 and str(tmp_path / "gone") not in synced
    assert _syncs_running(before) == []
    after = len(synced)
    time.sleep(0.05)
    assert len(synced) == after


def test_a_passes_error_ends_the_passes_and_is_raised_by_stop(tmp_path):
    """Linux reports a writeback error once: the pass that met it keeps it, no pass follows,
    and :meth:`stop` raises it, as the writer's own final sync would have. :meth:`cancel`, and
    a ``with`` block that raised, drop it."""
    def failing_second(calls: list[int]):
        def sync() -> None:
            calls.append(1)
            if len(calls) == 2:
                raise OSError(errno.EIO, "Input/output error")
        return sync

    for end in ("stop", "cancel", "with ok", "with raising"):
        calls: list[int] = []
        bg = BackgroundSync(failing_second(calls), period=0.001)
        deadline = time.monotonic() + 10
        while bg._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert calls == [1, 1], end  # the passes ended with the error
        if end == "stop":
            with pytest.raises(OSError) as err:
                bg.stop()
            assert err.value.errno == errno.EIO
        elif end == "cancel":
            bg.cancel()
        elif end == "with ok":
            with pytest.raises(OSError, match="Input/output"), bg:
                pass
        else:
            with pytest.raises(KeyError), bg:
                raise KeyError("the writer's own error wins")


def test_syncing_file_flushes_that_file(tmp_path, monkeypatch):
    """:func:`syncing_file` passes are ``fdatasync`` of the writer's descriptor (the real one,
    counted) while it writes."""
    seen: list[int] = []
    real = fs._fdatasync

    def counted(fd: int) -> None:
        seen.append(fd)
        real(fd)

    monkeypatch.setattr(fs, "_fdatasync", counted)
    with open(tmp_path / "big", "wb") as f:
        with fs.syncing_file(f.fileno(), period=0.001):
            deadline = time.monotonic() + 10
            while len(seen) < 3 and time.monotonic() < deadline:
                f.write(b"x" * 65536)
                f.flush()
        assert set(seen) == {f.fileno()} and len(seen) >= 3


def test_a_shared_file_takes_its_writers_one_at_a_time(tmp_path, write_overlap):
    """Four threads writing their own ranges of one file through a SharedFile: never two
    ``pwrite`` calls at once (a kernel waiting for the inode's lock would spin meanwhile), and
    the file holds every range."""
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    shared = fs.SharedFile(fd)
    parts = [os.urandom(64 * 1024) for _ in range(4)]

    def write(i: int) -> None:
        view = memoryview(parts[i])
        for off in range(0, len(view), 4096):
            shared.write_at(view[off:off + 4096], i * len(view) + off)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(fd)
    assert write_overlap.calls == 64 and write_overlap.most == 1
    assert (tmp_path / "f").read_bytes() == b"".join(parts)
