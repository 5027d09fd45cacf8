"""The shared remote-dataset cache ($KITOPS_HOME/cache/remote) against a real S3 server (moto over
HTTP) behind the request-logging TCP proxy, so "only the HEAD" is counted, not assumed."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.cache import cache_clear, cache_info
from kit_jupyter.commands.unpack import unpack_remote_datasets
from kit_jupyter.errors import KitError
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport import remote_cache as rc
from tests.test_s3 import kitfile, no_litter
from tests.test_storage import assert_one_line, corrupted, dumps, hostile_values

KiB = 1024
MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def objs(s3, tcp_proxy):
    bucket = s3.bucket("data")
    small = os.urandom(300 * KiB + 3)
    multi = os.urandom(2 * MiB + 123 * KiB)
    proxy = tcp_proxy(s3.server.port)
    return NS(small=small, small_etag=s3.put(bucket, "small.bin", small)["etag"],
              multi=multi,
              multi_etag=s3.put_multipart(bucket, "dir/multi.bin", multi, 512 * KiB)["etag"],
              proxy=proxy, env=s3.env(S3_API_ENDPOINT=proxy.endpoint))


def miss_note(where: Path) -> str:
    """What a first unpack says of the cache on this machine's file system: a reflink out of
    the entry where it can clone, else one download written to the entry and the target."""
    return ("stored, copied out by reflink" if rc.can_clone(where / "p", where / "q")
            else "stored, and written to its target in the same pass")


def heads(proxy) -> int:
    return sum(1 for r in proxy.requests if r[0] == "HEAD")


def cache_root() -> Path:
    return Path(os.environ["KITOPS_HOME"]) / "cache" / "remote"


def entry_files() -> list[Path]:
    d = cache_root() / "objects"
    return sorted(p for p in d.iterdir() if len(p.name) == 64) if d.exists() else []


@pytest.mark.parametrize("which", ["small", "multi"])
def test_second_unpack_elsewhere_costs_one_head_and_a_private_copy(objs, tmp_path, which):
    rp, etag, content = (("s3://data/small.bin", objs.small_etag, objs.small) if which == "small"
                         else ("s3://data/dir/multi.bin", objs.multi_etag, objs.multi))
    kf = kitfile(("d/f.bin", rp, etag))
    first = unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env,
                                   range_size=MiB)
    assert first[0].status == "downloaded" and first[0].cache == miss_note(tmp_path)
    assert (tmp_path / "a" / "d" / "f.bin").read_bytes() == content
    gets, head_count = len(objs.proxy.gets()), heads(objs.proxy)
    assert gets >= 1

    r = NullReporter()
    res = unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env,
                                 reporter=r)
    assert len(objs.proxy.gets()) == gets                 # zero GETs
    assert heads(objs.proxy) == head_count + 1            # the If-Match HEAD, nothing else
    assert res[0].status == "from-cache"
    assert res[0].verification == ("MD5 verified" if which == "small"
                                   else "multipart MD5 verified (5 parts)")
    how = res[0].cache.removeprefix("hit, copied out by ")
    assert how in ("reflink", "copy_file_range", "sendfile", "read/write")
    assert r.messages == [("info", f"Copied remote S3 dataset for path d/f.bin from the cache "
                                   f"(ETag {etag}, {how})")]
    [row] = r.tasks  # one file, one bar: no overall bar repeating it
    assert row.label == "d/f.bin" and row.done == row.total == len(content) and row.ok
    assert row.parent is None

    out = tmp_path / "b" / "d" / "f.bin"
    [entry] = entry_files()
    assert out.read_bytes() == content == entry.read_bytes()
    st, est = out.stat(), entry.stat()
    assert stat.S_IMODE(est.st_mode) == 0o444 and stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_ino != est.st_ino and st.st_nlink == 1 and est.st_nlink == 1  # no hard link
    with open(out, "r+b") as f:                           # the user edits their copy ...
        f.write(b"EDITED")
    assert entry.read_bytes() == content                  # ... never the cache
    assert no_litter(tmp_path) == [] and no_litter(cache_root()) == []


@pytest.mark.parametrize("clones", [False, True])
def test_a_miss_is_one_download_into_the_entry_and_the_target(objs, tmp_path, monkeypatch,
                                                              clones):
    """A first unpack with the cache on costs what one without it costs: where the entry
    cannot be reflinked out, the download writes the entry and the target at once (the same
    GETs as an uncached download, no copy after it); where it can (forced here: the copy then
    falls back to the kernel's), it downloads into the entry and clones it out. Either way the
    two are separate files, the entry read-only, and a second unpack is a hit."""
    monkeypatch.setattr(rc, "can_clone", lambda src, dst: clones)
    copies: list[Path] = []
    copy_out = rc.copy_out

    def spy(src_fd: int, target: Path, *args, **kw) -> str:
        copies.append(target)
        return copy_out(src_fd, target, *args, **kw)

    monkeypatch.setattr(rc, "copy_out", spy)
    kf = kitfile(("d/f.bin", "s3://data/dir/multi.bin", objs.multi_etag))
    plain = unpack_remote_datasets(kf, tmp_path / "plain", include_remote=True, env=objs.env,
                                   range_size=MiB, cache=False)
    gets = len(objs.proxy.gets())
    first = unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env,
                                   range_size=MiB)
    assert len(objs.proxy.gets()) - gets == gets and plain[0].requests == first[0].requests
    out = tmp_path / "a" / "d" / "f.bin"
    assert copies == ([out] if clones else [])
    if clones:  # by a reflink where the file system has them, else by the kernel's copy
        how = first[0].cache.removeprefix("stored, copied out by ")
        assert how in ("reflink", "copy_file_range", "sendfile", "read/write")
    else:
        assert first[0].cache == "stored, and written to its target in the same pass"
    [entry] = entry_files()
    assert out.read_bytes() == objs.multi == entry.read_bytes()
    st, est = out.stat(), entry.stat()
    assert stat.S_IMODE(est.st_mode) == 0o444 and stat.S_IMODE(st.st_mode) == 0o644
    assert st.st_ino != est.st_ino and st.st_nlink == est.st_nlink == 1
    again = unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env)
    assert again[0].status == "from-cache" and len(objs.proxy.gets()) == 2 * gets
    assert no_litter(tmp_path) == [] and no_litter(cache_root()) == []


def test_the_clone_probe_leaves_nothing(tmp_path):
    """The reflink probe answers for two directories and removes its two empty files; a
    directory that is not there cannot clone."""
    (tmp_path / "x").mkdir()
    assert isinstance(rc.can_clone(tmp_path / "x" / "entry", tmp_path / "target"), bool)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["x"]
    assert rc.can_clone(tmp_path / "gone" / "entry", tmp_path / "target") is False
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["x"]


def test_cache_info_lists_it_and_clear_empties_it(objs, tmp_path):
    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env)
    info = cache_info()
    assert info.entries["remote"] >= len(objs.small)
    res = cache_clear()
    assert res.removed == ["remote"] and res.freed >= len(objs.small)
    assert cache_info().total == 0 and not cache_root().exists()
    gets = len(objs.proxy.gets())
    again = unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env)
    assert again[0].status == "downloaded" and len(objs.proxy.gets()) > gets


def test_clear_keeps_what_a_live_download_writes(objs, tmp_path):
    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    unpack_remote_datasets(kf, tmp_path, include_remote=True, env=objs.env)
    from kit_jupyter._fs import temp_name

    live = temp_name(cache_root() / "objects" / ("0" * 64))   # this process: alive
    live.write_bytes(b"half")
    res = cache_clear()
    assert res.kept == ["remote"] and live.exists() and entry_files() == []


def test_least_recently_used_entries_go_first(s3, objs, tmp_path, monkeypatch):
    a, b, c = (os.urandom(200 * KiB + n) for n in range(3))
    etags = {n: s3.put("data", f"{n}.bin", v)["etag"]
             for n, v in zip("abc", (a, b, c), strict=True)}
    env = dict(objs.env, KIT_JUPYTER_REMOTE_CACHE_MAX=str(450 * KiB))   # two of them fit
    kfs = {n: kitfile((f"{n}.bin", f"s3://data/{n}.bin", etags[n])) for n in "abc"}
    for n in "ab":
        unpack_remote_datasets(kfs[n], tmp_path / "1", include_remote=True, env=env)
    os.utime(entry_files()[0], (1, 1))          # both old; then a is used again, b is not
    os.utime(entry_files()[1], (1, 1))
    time.sleep(0.01)
    assert unpack_remote_datasets(kfs["a"], tmp_path / "2", include_remote=True,
                                  env=env)[0].status == "from-cache"
    unpack_remote_datasets(kfs["c"], tmp_path / "3", include_remote=True, env=env)
    cache = rc.RemoteCache(cache_root())
    kept = {e.size for e in cache.entries()}
    assert kept == {len(a), len(c)}                       # b, least recently used, went
    assert sum(kept) <= 450 * KiB


def test_an_object_over_the_limit_is_downloaded_straight(objs, tmp_path):
    kf = kitfile(("f.bin", "s3://data/dir/multi.bin", objs.multi_etag))
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True,
                                 env=dict(objs.env, KIT_JUPYTER_REMOTE_CACHE_MAX="1M"))
    assert res[0].status == "downloaded" and res[0].cache == ""
    assert (tmp_path / "f.bin").read_bytes() == objs.multi and entry_files() == []


@pytest.mark.parametrize("how", ["env", "env-max-0", "argument"])
def test_the_cache_can_be_turned_off(objs, tmp_path, monkeypatch, how):
    kw = {}
    if how == "env":
        monkeypatch.setenv(rc.ENV_SWITCH, "off")
    elif how == "env-max-0":
        monkeypatch.setenv(rc.ENV_MAX, "0")
    else:
        kw["cache"] = False
    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    for d in ("a", "b"):   # the process environment counts when the S3 env is a mapping too
        res = unpack_remote_datasets(kf, tmp_path / d, include_remote=True, env=objs.env, **kw)
        assert res[0].status == "downloaded"
    assert len(objs.proxy.gets()) == 2 and not cache_root().exists()


def test_an_entry_of_the_wrong_size_is_dropped_and_fetched_again(objs, tmp_path):
    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env)
    [entry] = entry_files()
    os.chmod(entry, 0o644)
    with open(entry, "ab") as f:
        f.write(b"!")
    res = unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env)
    assert res[0].status == "downloaded"
    assert (tmp_path / "b" / "f.bin").read_bytes() == objs.small == entry.read_bytes()


def test_a_changed_object_is_not_served_from_the_cache(s3, objs, tmp_path):
    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env)
    s3.put("data", "small.bin", b"changed")
    with pytest.raises(KitError, match="object changed since the ModelKit was packed"):
        unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env)
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []


def test_two_unpacks_at_once_download_once(objs, tmp_path):
    """Two kernels (threads here: ``flock`` locks belong to open files, so threads exclude each
    other as processes do) unpack the same dataset at the same time: one downloads, the other
    waits for it and copies."""
    kf = kitfile(("f.bin", "s3://data/dir/multi.bin", objs.multi_etag))
    key = rc.CacheKey(objs.env["S3_API_ENDPOINT"], "data", "dir/multi.bin", "", objs.multi_etag)
    cache = rc.RemoteCache(cache_root())
    reporters = [NullReporter(), NullReporter()]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        results[i] = unpack_remote_datasets(kf, tmp_path / str(i), include_remote=True,
                                            env=objs.env, reporter=reporters[i])[0]

    with cache.entry_lock(key):                  # both have to wait for it
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not all(any("Waiting for another process" in m for _, m in r.messages)
                      for r in reporters):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert objs.proxy.gets() == []
    for t in threads:
        t.join(60)
    assert sorted(r.status for r in results.values()) == ["downloaded", "from-cache"]
    gets = objs.proxy.gets()
    assert sum(int(g[2].split("-")[1]) - int(g[2].split("=")[1].split("-")[0]) + 1
               for g in gets) == len(objs.multi)  # the object's bytes were fetched once
    for i in range(2):
        assert (tmp_path / str(i) / "f.bin").read_bytes() == objs.multi


def test_sizes_and_switches_are_read_at_call_time(monkeypatch):
    assert rc.parse_size("10G") == 10 << 30 and rc.parse_size("512MiB") == 512 << 20
    assert rc.parse_size("123") == 123 and rc.parse_size("2k") == 2048
    with pytest.raises(KitError) as e:
        rc.parse_size("lots")
    assert str(e.value) == ("KIT_JUPYTER_REMOTE_CACHE_MAX='lots' is not a size: use bytes, or a "
                            "number with K, M, G or T (e.g. 20G)")
    assert rc.RemoteCache.open(env={}) is not None
    for off in ("off", "OFF", "0", "false", "no"):
        assert rc.RemoteCache.open(env={rc.ENV_SWITCH: off}) is None
    monkeypatch.setenv(rc.ENV_MAX, "3M")
    cache = rc.RemoteCache.open()
    assert cache is not None and cache.limit == 3 << 20
    default = rc.RemoteCache(cache_root()).limit
    assert 0 < default <= rc.DEFAULT_MAX


def test_copy_out_falls_back_without_reflink_and_is_independent(tmp_path):
    src = tmp_path / "src"
    data = os.urandom(3 * MiB + 7)
    src.write_bytes(data)
    fd = os.open(src, os.O_RDONLY)
    try:
        how = rc.copy_out(fd, tmp_path / "out" / "dst", len(data))
    finally:
        os.close(fd)
    dst = tmp_path / "out" / "dst"
    assert dst.read_bytes() == data and stat.S_IMODE(dst.stat().st_mode) == 0o644
    assert how in ("reflink", "copy_file_range", "sendfile", "read/write")
    assert os.listdir(tmp_path / "out") == ["dst"]


REFLINK_SCRIPT = r"""
set -e
truncate -s 300M {img}
mkfs.xfs -q -m reflink=1 {img}
mount -o loop {img} {mnt}
{python} - <<'EOF'
import os
from kit_jupyter.transport import remote_cache as rc
src = "{mnt}/entry"
data = os.urandom(64 << 20)
with open(src, "wb") as f:
    f.write(data)
    os.fsync(f.fileno())
before = os.statvfs("{mnt}").f_bfree
fd = os.open(src, os.O_RDONLY)
how = rc.copy_out(fd, __import__("pathlib").Path("{mnt}/copy"), len(data))
os.close(fd)
used = (before - os.statvfs("{mnt}").f_bfree) * os.statvfs("{mnt}").f_frsize
with open("{mnt}/copy", "r+b") as f:
    f.write(b"EDITED")
same = open(src, "rb").read() == data
print(f"how={{how}} used={{used}} source_unchanged={{same}}")
EOF
"""


def test_reflink_on_a_file_system_that_has_it(tmp_path):
    """A real XFS (loop device in a private mount namespace): the copy shares the entry's extents
    (no space used) and is still independent of it."""
    if shutil.which("mkfs.xfs") is None or shutil.which("unshare") is None:
        pytest.skip("needs mkfs.xfs (xfsprogs) and unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = REFLINK_SCRIPT.format(img=tmp_path / "xfs.img", mnt=mnt, python=sys.executable)
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    proc = subprocess.run([*unshare, "sh", "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if "mount" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    fields = dict(kv.split("=") for kv in proc.stdout.split())
    assert fields["how"] == "reflink" and fields["source_unchanged"] == "True"
    assert int(fields["used"]) < 1 << 20                # 64 MiB copied, < 1 MiB allocated


def test_through_the_cli_no_cache_info_and_clear(objs, tmp_path):
    """``unpack --include-remote`` twice, ``--no-cache``, ``cache info``, ``cache clear``: the
    commands a user types (the magics share this parser)."""
    from kit_jupyter.commands.pack import pack

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: c\ndatasets:\n  - name: train\n"
        f"    path: data/train.bin\n    remotePath: s3://data/dir/multi.bin\n"
        f"    remoteHash: {objs.multi_etag}\n")
    pack(ctx, tag="c:v1", env=objs.env)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **objs.env)

    def kit(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                              text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout + proc.stderr

    def unpack_into(d: str, *flags: str) -> int:
        before = len(objs.proxy.gets())
        kit("unpack", "c:v1", "-d", str(tmp_path / d), "--include-remote", "--progress", "none",
            *flags)
        assert (tmp_path / d / "data" / "train.bin").read_bytes() == objs.multi
        return len(objs.proxy.gets()) - before

    assert unpack_into("a") > 0
    assert unpack_into("b", "--no-cache") > 0
    assert unpack_into("c") == 0
    info = kit("cache", "info")
    assert "  ./remote " in info
    assert kit("cache", "clear").startswith("Removed 1 cache entry")
    assert kit("cache", "info").strip() == "Cache is currently empty"
    assert unpack_into("d") > 0


@pytest.mark.parametrize("side", [b"[1, 2]", b'"text"', b"{not json", b""])
def test_a_side_file_that_is_not_an_object_describes_nothing(tmp_path, side):
    """``describe`` reads a note a person or another version may have left: any bytes give a
    string, never an exception in the middle of an unpack."""
    cache = rc.RemoteCache(tmp_path / "remote")
    key = rc.CacheKey("", "bucket", "key", "", "0123456789abcdef0123456789abcdef")
    cache.objects.mkdir(parents=True)
    (cache.objects / f"{key.id}.json").write_bytes(side)
    assert cache.describe(key) == ""
    (cache.objects / f"{key.id}.json").write_text('{"verification": "md5 of the body"}')
    assert cache.describe(key) == "md5 of the body"


def test_a_hit_sweeps_what_a_killed_process_left_of_its_entry(objs, tmp_path):
    """A process killed while it wrote the entry's side file leaves ``.<id>.json.kj-….part``;
    the next unpack is a hit (no download, so no downloader's sweep) and must remove it."""
    from tests.test_fs import _killed_writer

    kf = kitfile(("f.bin", "s3://data/small.bin", objs.small_etag))
    unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env)
    [entry] = entry_files()
    left = _killed_writer(entry.parent / f"{entry.name}.json")
    other = _killed_writer(entry.parent / ("f" * 64))     # another entry's: not this one's to sweep
    res = unpack_remote_datasets(kf, tmp_path / "b", include_remote=True, env=objs.env)
    assert res[0].status == "from-cache"
    assert not left.exists() and other.exists()


@pytest.mark.parametrize("fail", [False, True])
def test_downloads_and_copies_out_are_flushed_while_written(objs, tmp_path, flush_spy, fail):
    """The download into the cache and the copy out of it are each flushed while written, so
    their fsyncs find little left; an I/O error a flush met fails the unpack (Linux would not
    report it to that fsync again) and leaves nothing behind, in the target or the cache."""
    import kit_jupyter.transport.s3_download as s3d

    flush_spy.watch(s3d, fail=fail)
    flush_spy.watch(rc, fail=False)
    kf = kitfile(("d/f.bin", "s3://data/dir/multi.bin", objs.multi_etag))
    if fail:
        with pytest.raises(KitError, match="Input/output error") as err:
            unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env,
                                   range_size=MiB)
        assert str(err.value) == "failed to write file d/f.bin: Input/output error"
        assert not (tmp_path / "a" / "d").exists()  # made for the dataset, and taken back
    else:
        res = unpack_remote_datasets(kf, tmp_path / "a", include_remote=True, env=objs.env,
                                     range_size=MiB)
        assert (tmp_path / "a" / "d" / "f.bin").read_bytes() == objs.multi
        assert res[0].cache == miss_note(tmp_path)
    # the entry, and the target written in the same pass; a reflink copies nothing
    mirrored = miss_note(tmp_path) != "stored, copied out by reflink"
    assert sorted(Path(f).parent for f in flush_spy.files) == sorted(
        [cache_root() / "objects"] + [tmp_path / "a" / "d"] * mirrored)
    assert flush_spy.all_ended
    assert no_litter(tmp_path) == [] and no_litter(cache_root()) == []


# --------------------------------------------------------------------------------------------
# hostile sizes and side files, property-based

#: every spelling of a unit that parse_size takes, and its factor
_SPELLINGS = {"": 1, "b": 1, "B": 1, **{
    u + s: 1 << (10 * (i + 1)) for i, letter in enumerate("kmgt")
    for u in (letter, letter.upper()) for s in ("", "b", "B", "ib", "iB")}}


def _reference_size(text: str) -> int | None:
    """A size computed another way: a decimal number in ASCII digits, blanks, one spelling of
    a unit, blanks around; None for anything else."""
    body = text.strip()
    for spelling, factor in _SPELLINGS.items():
        number = body[:len(body) - len(spelling)].rstrip() if body.endswith(spelling) else ""
        if number.isascii() and number.isdecimal():
            try:
                return int(number) * factor
            except ValueError:  # more digits than int() converts
                return None
    return None


_blank = st.sampled_from(["", " ", "\t", "  "])


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789", min_size=1, max_size=40) | st.integers(4290, 4310).map("9".__mul__),
       st.sampled_from(sorted(_SPELLINGS)), _blank, _blank, _blank)
def test_sizes_agree_with_a_reference(digits, spelling, before, between, after):
    text = f"{before}{digits}{between}{spelling}{after}"
    expected = int(digits) * _SPELLINGS[spelling] if len(digits) <= 4300 else None
    assert _reference_size(text) == expected
    try:
        got = rc.parse_size(text)
    except rc.CacheConfigError as err:
        assert expected is None and len(digits) > 4300
        assert_one_line(err)
    else:
        assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12) | st.from_regex(r"\s*\d+\s*[kmgtKMGTibB]{0,3}\s*", fullmatch=True))
@example("10iB")
@example("1 K iB")
@example("\u0661\u0660G")
@example("10\u212a")
def test_anything_else_is_no_size_in_one_line(text):
    """Any text (unit letters in any order, other digits and blanks, control characters) is the
    reference's size or a one-line CacheConfigError naming the setting."""
    expected = _reference_size(text)
    try:
        got = rc.parse_size(text)
    except rc.CacheConfigError as err:
        assert expected is None, text
        assert_one_line(err)
        assert str(err).startswith(f"{rc.ENV_MAX}=")
    else:
        assert got == expected


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({"verification": st.text(max_size=8) | hostile_values,
                              "entered": hostile_values}) | hostile_values, st.data())
def test_any_side_file_describes_something_or_nothing(doc, data):
    """``describe`` of any side file (a hand edit, a crash, deep nesting) is a string, and the
    note itself when the file is whole."""
    raw = data.draw(corrupted(dumps(doc)))
    key = rc.CacheKey("", "bucket", "key", "", "0123456789abcdef0123456789abcdef")
    with tempfile.TemporaryDirectory() as tmp:
        cache = rc.RemoteCache(Path(tmp) / "remote")
        cache.objects.mkdir(parents=True)
        (cache.objects / f"{key.id}.json").write_bytes(raw)
        got = cache.describe(key)
    assert isinstance(got, str)
    if raw == json.dumps(doc).encode() and isinstance(doc, dict):
        assert got == str(doc.get("verification") or "")
