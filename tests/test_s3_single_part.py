"""Single-part objects (plain MD5 ETag) fetched with parallel ranged GETs and one MD5 computed in
order behind them: against moto over HTTP through the request-logging TCP proxy, and the
ordering logic with ranges that finish out of order (a get function over bytes in memory)."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from kit_jupyter.commands.unpack import unpack_remote_datasets
from kit_jupyter.transport.s3_download import DigestMismatch, Downloader, ObjectInfo, etag_plan
from tests.test_s3 import kitfile, no_litter
from tests.test_s3_unit import FakeBody

KiB = 1024
MiB = 1 << 20


@pytest.fixture
def single(s3, tcp_proxy):
    s3.bucket("data")
    blob = os.urandom(3 * MiB + 5)
    etag = s3.put("data", "one.bin", blob)["etag"]
    assert "-" not in etag                                   # a plain MD5 ETag
    proxy = tcp_proxy(s3.server.port)
    return blob, etag, proxy, s3.env(S3_API_ENDPOINT=proxy.endpoint)


def test_single_part_object_arrives_over_parallel_ranges(single, tmp_path):
    blob, etag, proxy, env = single
    kf = kitfile(("one.bin", "s3://data/one.bin", etag))
    [res] = unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env, cache=False,
                                   workers=3, range_size=MiB)
    assert (tmp_path / "one.bin").read_bytes() == blob
    assert res.verification == "MD5 verified" and res.requests == 4
    assert sorted(g[2] for g in proxy.gets()) == sorted(
        f"bytes={s}-{min(s + MiB, len(blob)) - 1}" for s in range(0, len(blob), MiB))
    for phase in ("request", "read", "write", "md5", "readback", "fsync"):
        assert res.timings[phase] >= 0 and f"{phase}_cpu" in res.timings, phase
    assert res.timings["md5_cpu"] > 0                         # 3 MiB were hashed, in order
    assert no_litter(tmp_path) == []


def test_the_streams_write_the_file_one_at_a_time(single, tmp_path, write_overlap):
    """Three streams over moto: their writes into the one temp file never run at once (no
    CPU spent spinning on the inode's lock), and the file is the object."""
    blob, etag, proxy, env = single
    kf = kitfile(("one.bin", "s3://data/one.bin", etag))
    [res] = unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env, cache=False,
                                   workers=3, range_size=MiB)
    assert res.requests == 4 and (tmp_path / "one.bin").read_bytes() == blob
    assert write_overlap.calls >= 6 and write_overlap.most == 1  # 512 KiB reads


def test_a_broken_range_resumes_and_the_md5_still_matches(single, tmp_path):
    blob, etag, proxy, env = single
    proxy.cut_next_response(after_bytes=300 * KiB)
    kf = kitfile(("one.bin", "s3://data/one.bin", etag))
    [res] = unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env, cache=False,
                                   workers=2, range_size=MiB)
    assert proxy.cuts_done == 1 and res.retries == 1
    assert (tmp_path / "one.bin").read_bytes() == blob


def test_small_objects_stay_one_request(s3, tcp_proxy, tmp_path):
    s3.bucket("data")
    blob = os.urandom(100 * KiB)
    etag = s3.put("data", "small.bin", blob)["etag"]
    proxy = tcp_proxy(s3.server.port)
    kf = kitfile(("s.bin", "s3://data/small.bin", etag))
    [res] = unpack_remote_datasets(kf, tmp_path, include_remote=True, cache=False, workers=4,
                                   env=s3.env(S3_API_ENDPOINT=proxy.endpoint))
    assert res.requests == 1 and (tmp_path / "s.bin").read_bytes() == blob


def ordered_get(data: bytes, delays: dict[int, float]):
    """get_object over ``data``; the range starting at ``k`` answers after ``delays[k]`` s, so
    later ranges are written before earlier ones."""
    def get(Range: str) -> dict:  # noqa: N803 - boto3 spelling
        a, b = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        time.sleep(delays.get(a, 0.0))
        return {"Body": FakeBody(data[a:b + 1], None), "ContentRange": f"bytes {a}-{b}/{len(data)}",
                "ContentLength": b + 1 - a}
    return get


def test_ranges_finishing_out_of_order_are_hashed_in_order(tmp_path):
    data = os.urandom(4 * 64 * KiB + 11)
    info = ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"')
    plan = etag_plan(info)
    d = Downloader(ordered_get(data, {0: 0.3}), info, plan, tmp_path / "o", workers=4,
                   range_size=64 * KiB)
    assert d.run() == "MD5 verified"
    assert (tmp_path / "o").read_bytes() == data and d.requests == 5
    assert d._hasher is not None and d._hasher.hashed == len(data)


def test_one_wrong_byte_in_a_later_range_is_caught(tmp_path):
    data = bytearray(os.urandom(4 * 64 * KiB))
    info = ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"')
    data[3 * 64 * KiB + 7] ^= 1
    target = tmp_path / "o"
    target.write_bytes(b"previous")
    with pytest.raises(DigestMismatch):
        Downloader(ordered_get(bytes(data), {}), info, etag_plan(info), target, workers=4,
                   range_size=64 * KiB).run()
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["o"]


def test_a_failing_range_stops_the_hasher_and_leaves_nothing(tmp_path):
    data = os.urandom(4 * 64 * KiB)
    info = ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"')
    good = ordered_get(data, {})

    def get(Range: str) -> dict:  # noqa: N803
        if Range.startswith(f"bytes={2 * 64 * KiB}-"):
            raise PermissionError("403")              # not transient: the download fails
        return good(Range=Range)

    before = threading.active_count()
    d = Downloader(get, info, etag_plan(info), tmp_path / "o", workers=2, range_size=64 * KiB)
    with pytest.raises(PermissionError):
        d.run()
    assert os.listdir(tmp_path) == []
    assert d._hasher is not None and d._hasher.stopped
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_the_hasher_maps_windows_from_unaligned_positions(tmp_path, monkeypatch):
    """The MD5 thread hashes the written prefix from the file mapped a window at a time; a
    mapping starts on a page boundary, the prefix anywhere (1000-byte reads, a window of three
    pages and a byte): every byte is still hashed once, in order."""
    from kit_jupyter.transport import s3_download

    monkeypatch.setattr(s3_download, "HASH_WINDOW", 3 * 4096 + 1)
    data = os.urandom(3 * 64 * KiB + 123)
    info = ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"')
    d = Downloader(ordered_get(data, {0: 0.2}), info, etag_plan(info), tmp_path / "o",
                   workers=3, range_size=64 * KiB, read_size=1000)
    assert d.run() == "MD5 verified"
    assert (tmp_path / "o").read_bytes() == data
    assert d._hasher is not None and d._hasher.hashed == len(data)
