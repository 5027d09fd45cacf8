"""Pure logic of the S3 module: s3:// parsing, settings, ETag plans, the downloader's bookkeeping
(against an in-memory fake of ``get_object`` -- the real server tests are in test_s3.py)."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.unpack import WARN_NOT_INCLUDED, unpack_remote_datasets
from kit_jupyter.commands.validate import check_remote_findings
from kit_jupyter.errors import RemoteDatasetError, UnpackError
from kit_jupyter.kitfile.filters import parse_filters
from kit_jupyter.kitfile.model import DataSet, Kitfile, RemoteDataset, load_kitfile
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport import s3
from kit_jupyter.transport.s3_download import (
    DigestMismatch,
    Downloader,
    MiB,
    ObjectInfo,
    RangeError,
    etag_plan,
    file_etag,
    is_transient,
    multipart_etag,
    part_size_candidates,
    resolve_part_size,
)


@pytest.mark.parametrize("url,hash_,expected", [
    ("s3://bkt/key.csv", "abc", s3.S3Object("bkt", "key.csv")),
    ("s3://bkt/dir/key.csv?versionId=v1", "abc", s3.S3Object("bkt", "dir/key.csv", "v1")),
    ("s3://bkt//file", "abc", s3.S3Object("bkt", "/file")),          # one leading / removed
    ("S3://bkt/a%20b", "abc", s3.S3Object("bkt", "a b")),            # Go lowercases the scheme
    ("s3://bkt/k?versionId=", "abc", s3.S3Object("bkt", "k")),
    ("s3://bkt/k?versionId=%zz&versionId=v2", "abc", s3.S3Object("bkt", "k", "v2")),  # Go drops
    ("s3://user@bkt:9000/k+1#frag", "abc", s3.S3Object("bkt:9000", "k+1")),  # host keeps port
    ("s3://b%C3%A9/k%2Fx", "abc", s3.S3Object("b\u00e9", "k/x")),
])
def test_parse_s3_url(url, hash_, expected):
    assert s3.parse_s3_url(url, hash_) == expected


@pytest.mark.parametrize("url,hash_,message", [
    ("s3://bkt/key", "", "hash is required for s3 references"),
    ("not even a url", "", "hash is required for s3 references"),    # hash checked first
    ("s3://bkt/%zz", "h", 'failed to parse s3 reference: parse "s3://bkt/%zz": '
                          'invalid URL escape "%zz"'),
    ("s3://bkt/a\x7f", "h", 'failed to parse s3 reference: parse "s3://bkt/a\\x7f": '
                            "net/url: invalid control character in URL"),   # Go's %q quoting
    ("s3://b k/x", "h", 'failed to parse s3 reference: parse "s3://b k/x": invalid character '
                        '" " in host name'),
    ("s3://bkt/%ff", "h", 'failed to parse s3 reference: "s3://bkt/%ff" names a bucket, key or '
                          "version that is not valid UTF-8"),
    ("https://bkt/key", "h", "url does not use 's3' scheme"),
    ("data/file.csv", "h", "url does not use 's3' scheme"),
    ("s3:///key", "h", "bucket name is required for S3 references"),
    ("s3://bkt", "h", "bucket key is required for S3 references"),
    ("s3://bkt/", "h", "bucket key is required for S3 references"),
])
def test_parse_s3_url_errors(url, hash_, message):
    with pytest.raises(RemoteDatasetError) as e:
        s3.parse_s3_url(url, hash_)
    assert str(e.value) == message


def test_settings_both_or_neither_and_no_secret_in_repr():
    only_key = s3.S3Settings.from_env({"S3_ACCESS_KEY_ID": "k"})
    assert only_key.access_key is None and only_key.secret_key is None
    both = s3.S3Settings.from_env({"S3_ACCESS_KEY_ID": "k", "S3_SECRET_KEY": "sekrit",
                                   "S3_API_ENDPOINT": "http://h:1", "S3_REGION": "r"})
    assert (both.access_key, both.secret_key, both.endpoint, both.region) == \
        ("k", "sekrit", "http://h:1", "r")
    assert "sekrit" not in repr(both)


def test_client_config_follows_kit():
    env = {"S3_API_ENDPOINT": "http://127.0.0.1:9", "S3_REGION": "eu-central-1",
           "S3_ACCESS_KEY_ID": "k", "S3_SECRET_KEY": "sekrit"}
    c = s3.make_client(env)
    cfg = c.meta.config
    assert c.meta.endpoint_url == "http://127.0.0.1:9"
    assert c.meta.region_name == "eu-central-1"
    assert cfg.s3["addressing_style"] == "path"
    assert cfg.request_checksum_calculation == "when_required"
    assert cfg.response_checksum_validation == "when_required"
    assert cfg.connect_timeout <= 10 and cfg.retries["total_max_attempts"] <= 3
    assert c._request_signer._credentials.secret_key == "sekrit"
    aws = s3.make_client({"S3_REGION": "us-west-2", "S3_ACCESS_KEY_ID": "k",
                          "S3_SECRET_KEY": "s"})
    assert aws.meta.config.s3.get("use_arn_region") is True
    assert "addressing_style" not in aws.meta.config.s3


def test_etag_plans():
    md5 = hashlib.md5(b"x").hexdigest()
    assert etag_plan(ObjectInfo(1, f'"{md5}"')).mode == "md5"
    p = etag_plan(ObjectInfo(1, f'"{md5}-3"'))
    assert (p.mode, p.parts) == ("multipart", 3)
    kms = etag_plan(ObjectInfo(1, f'"{md5}"', sse="aws:kms"))
    assert kms.mode == "none" and "aws:kms" in kms.reason
    assert etag_plan(ObjectInfo(1, f'"{md5}"', sse="AES256")).mode == "md5"
    assert etag_plan(ObjectInfo(1, '"W/xyz"')).mode == "none"


_MD5 = "0123456789abcdef" * 2
_ETAGS = st.builds(
    lambda weak, quote, md5, count, junk: f"{weak}{quote}{md5}{count}{junk}{quote}",
    st.sampled_from([""] * 4 + ["W/"]), st.sampled_from(['"', '"', ""]),
    st.sampled_from([_MD5] * 3 + [_MD5.upper(), _MD5[:31], "g" * 32, "\u0663" * 32]),
    st.sampled_from(["", "", "-1", "-12", "-10000", "-0", "-012", "--3", "-" + "9" * 12,
                     "-" + "9" * 5000, "-\u0663"]),
    st.sampled_from([""] * 6 + ["\n", "\r\n", " ", "x"]))


@settings(max_examples=400, deadline=None)
@given(_ETAGS | _ETAGS | st.text(max_size=40),
       st.none() | st.sampled_from(["AES256", "aes256", "aws:kms", "aws:kms\nx", ""]),
       st.integers(min_value=0, max_value=2**63))
def test_any_etag_gives_an_honest_plan(etag: str, sse: str | None, size: int) -> None:
    """Whatever ETag (and SSE header) a server sends: a plan, never an exception (a part count
    of 5000 digits is int()'s ValueError), described in one line; an MD5 plan only for 32 hex
    digits and a multipart one only for an ETag a download could reproduce exactly."""
    info = ObjectInfo(size, etag, sse=sse)
    plan = etag_plan(info)
    assert len(plan.describe().splitlines()) == 1
    value = info.etag_value.lower()
    if plan.mode == "md5":
        assert re.fullmatch("[0-9a-f]{32}", value)
    elif plan.mode == "multipart":
        assert value == value[:32] + f"-{plan.parts}" and re.fullmatch("[0-9a-f]{32}", value[:32])
        resolve_part_size(plan, info, None)  # the next step takes any count the plan names
    else:
        assert plan.mode == "none" and plan.reason
    if sse and sse.lower() != "aes256":
        assert plan.mode == "none"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=40))
def test_multipart_etag_is_s3s_definition(parts: list[bytes]) -> None:
    """The MD5 of the parts' MD5s, in hex, then ``-`` and the number of parts (computed here
    from hashlib alone) -- and its plan checks that many parts."""
    digests = [hashlib.md5(p).digest() for p in parts]
    reference = hashlib.md5()
    for d in digests:
        reference.update(d)
    etag = multipart_etag(digests)
    assert etag == f"{reference.hexdigest()}-{len(parts)}"
    plan = etag_plan(ObjectInfo(sum(map(len, parts)), f'"{etag}"'))
    assert (plan.mode, plan.parts) == ("multipart", len(parts))


def _range_accepted(resp: dict, start: int, end: int) -> bool:
    """RFC 9110's ``bytes first-last/total`` naming exactly the range asked for (ASCII digits,
    leading zeros allowed); without one, only the whole object from byte 0."""
    cr = resp.get("ContentRange")
    if cr:
        m = re.match(r"bytes ([0-9]+)-([0-9]+)/", cr, re.ASCII)
        return bool(m) and (m[1].lstrip("0") or "0") == str(start) and \
            (m[2].lstrip("0") or "0") == str(end - 1)
    return start == 0 and resp.get("ContentLength", end) == end


@st.composite
def _ranged_answers(draw: st.DrawFn) -> tuple[dict, int, int]:
    """(GetObject answer, start, end): the right Content-Range (leading zeros or not), one with
    a wrong, huge or non-ASCII number, any text, or none (then maybe a Content-Length)."""
    start = draw(st.just(0) | st.integers(min_value=0, max_value=2**64))
    end = start + draw(st.integers(min_value=1, max_value=2**40))
    zeros = draw(st.sampled_from(["", "0", "000"]))
    first, last = str(start), str(end - 1)
    kind = draw(st.sampled_from(["exact", "zeros", "wrong", "other script", "text", "none"]))
    if kind == "zeros":
        first, last = zeros + first, zeros + last
    elif kind == "wrong":
        bad = draw(st.sampled_from([str(end), str(start + 1), "0", str(2**64), "9" * 5000, ""]))
        first, last = (bad, last) if draw(st.booleans()) else (first, bad)
    elif kind == "other script":
        first = first.translate({48 + i: 0x660 + i for i in range(10)})
    tail = draw(st.sampled_from([str(end), "*", "x\n", ""]))
    cr = {"text": draw(st.text(max_size=30)), "none": None}.get(kind,
                                                                f"bytes {first}-{last}/{tail}")
    resp: dict = {"ContentRange": cr} if cr is not None else {}
    if draw(st.booleans()):
        resp["ContentLength"] = draw(st.sampled_from([end, end - start, end + 1, 0, None]))
    return resp, start, end


@settings(max_examples=400, deadline=None)
@given(_ranged_answers())
def test_any_content_range_is_accepted_or_a_range_error(answer: tuple[dict, int, int]) -> None:
    """Whatever Content-Range a server answers a ranged GET with: accepted exactly when it
    names the bytes asked for, else a RangeError -- retried, then worded in one line -- never
    another exception (5000 digits are int()'s ValueError; other scripts' digits no digits)."""
    resp, start, end = answer
    info = ObjectInfo(end, f'"{_MD5}"')
    downloader = Downloader(lambda **kw: {}, info, etag_plan(info), Path("unused"))
    try:
        downloader._check_range(resp, start, end)
    except RangeError as err:
        assert not _range_accepted(resp, start, end)
        assert is_transient(err) and "\n" not in str(err)
        assert len(s3.describe_error(err).splitlines()) == 1
    else:
        assert _range_accepted(resp, start, end)


def test_part_size_candidates():
    assert part_size_candidates(1 << 30, 128) == [8 * MiB]
    assert part_size_candidates(11 * MiB, 3) == [4 * MiB, 5 * MiB]
    assert part_size_candidates(7, 1) == [7]
    assert part_size_candidates(5 * 1024**3, 1000) == []


def test_resolve_part_size_prefers_the_servers_answer_then_guesses():
    info = ObjectInfo(1 << 30, '"' + "a" * 32 + '-128"')
    plan = resolve_part_size(etag_plan(info), info,
                             lambda: {"PartsCount": 128, "ContentLength": 8 * MiB})
    assert (plan.part_size, plan.confirmed) == (8 * MiB, True)
    # RGW ignores partNumber: whole length, no PartsCount -> the unique MiB guess
    plan = resolve_part_size(etag_plan(info), info, lambda: {"ContentLength": 1 << 30})
    assert (plan.part_size, plan.confirmed) == (8 * MiB, False)


class FakeBody(io.BytesIO):
    def __init__(self, data: bytes, fail_at: int | None = None):
        super().__init__(data)
        self.fail_at = fail_at

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.tell() >= self.fail_at:
            raise ConnectionResetError("reset by peer")
        if self.fail_at is not None:
            n = min(n, self.fail_at - self.tell())
        return super().read(n)

    def readinto(self, b) -> int:  # the downloader's call: through read, so fail_at holds
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def fake_get(data: bytes, *, fail_first: dict[int, int] | None = None, log: list | None = None):
    """get_object over ``data``; ``fail_first`` maps a range start to a byte count after which
    the first response for that range breaks."""
    fail_first = dict(fail_first or {})

    def get(Range: str) -> dict:  # noqa: N803 - boto3 spelling
        a, b = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        if log is not None:
            log.append((a, b))
        fail = fail_first.pop(a, None)
        return {"Body": FakeBody(data[a:b + 1], fail), "ContentRange": f"bytes {a}-{b}/{len(data)}",
                "ContentLength": b + 1 - a}
    return get


def multipart_of(data: bytes, part: int) -> str:
    return multipart_etag([hashlib.md5(data[s:s + part]).digest()
                           for s in range(0, len(data), part)])


def test_downloader_multipart_resumes_from_the_byte_written(tmp_path):
    data = os.urandom(5 * 1000 + 7)
    part = 1000
    info = ObjectInfo(len(data), f'"{multipart_of(data, part)}"')
    plan = etag_plan(info)
    plan.part_size, plan.confirmed = part, True
    log: list = []
    advanced: list[int] = []
    d = Downloader(fake_get(data, fail_first={2000: 500}, log=log), info, plan,
                   tmp_path / "out.bin", advance=advanced.append, workers=3, range_size=2000,
                   read_size=300)
    assert d.run() == "multipart MD5 verified (6 parts)"
    assert (tmp_path / "out.bin").read_bytes() == data
    assert (2500, 2999) in log                 # resumed mid-part, from the byte written
    assert sum(advanced) == len(data) and min(advanced) > 0
    assert d.retries == 1
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failed_request_is_retried_within_the_no_progress_limit(tmp_path, monkeypatch):
    """botocore makes one attempt; the downloader retries a refused request with its back-off,
    but only while another attempt could still end within KIT_JUPYTER_TIMEOUT (checked on a
    clock that the back-off advances, not on a stopwatch)."""
    from functools import partial

    from kit_jupyter.transport import s3_download
    from kit_jupyter.transport.deadline import Deadline, Timeouts

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(s3_download.time, "sleep", sleep)
    monkeypatch.setattr(s3_download, "Deadline", partial(Deadline, clock=lambda: now[0]))
    info = ObjectInfo(10, f'"{hashlib.md5(b"0123456789").hexdigest()}"')
    calls = []

    def get(Range: str) -> dict:  # noqa: N803
        calls.append(Range)
        raise ConnectionRefusedError("refused")

    with pytest.raises(ConnectionRefusedError):
        Downloader(get, info, etag_plan(info), tmp_path / "o", timeouts=Timeouts(3.0)).run()
    # read timeout 1 s: after 0.1 + 0.3 + 0.7 s of back-off, 1.5 s more would not leave 1 s
    assert slept == [0.1, 0.3, 0.7] and len(calls) == 4
    assert os.listdir(tmp_path) == []

    calls.clear()
    with pytest.raises(ConnectionRefusedError):  # with time to spare: MAX_ATTEMPTS
        Downloader(get, info, etag_plan(info), tmp_path / "o", timeouts=Timeouts(60)).run()
    assert len(calls) == s3_download.MAX_ATTEMPTS == 5


@pytest.mark.parametrize("mirrored", [False, True])
def test_downloader_mismatch_leaves_nothing(tmp_path, mirrored):
    """Bytes that do not match the ETag reach neither the target nor the mirror (the remote
    cache's entry and the unpacked file): both keep what they held, no temporary file stays."""
    data = os.urandom(3000)
    info = ObjectInfo(len(data), f'"{hashlib.md5(b"other").hexdigest()}"')
    target, mirror = tmp_path / "out.bin", tmp_path / "m" / "copy.bin"
    target.write_bytes(b"previous")
    with pytest.raises(DigestMismatch):
        Downloader(fake_get(data), info, etag_plan(info), target,
                   mirror=mirror if mirrored else None).run()
    assert target.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == (["m", "out.bin"] if mirrored else ["out.bin"])
    assert not mirror.exists() and (not mirrored or os.listdir(mirror.parent) == [])


def test_downloader_writes_the_mirror_with_the_same_bytes(tmp_path):
    """The mirror gets every byte the target gets, as a separate file; a mirror that cannot be
    made (its directory is a file) fails the download before any request, and the target's
    temporary file goes with it."""
    data = os.urandom(5 * MiB + 77)
    info = ObjectInfo(len(data), f'"{multipart_of(data, MiB)}"')
    log: list = []
    d = Downloader(fake_get(data, log=log), info, etag_plan(info), tmp_path / "a" / "o",
                   mirror=tmp_path / "b" / "o", range_size=2 * MiB)
    d.plan.part_size = MiB
    assert d.run() == "multipart MD5 verified (6 parts)"
    a, b = (tmp_path / "a" / "o"), (tmp_path / "b" / "o")
    assert a.read_bytes() == data == b.read_bytes() and a.stat().st_ino != b.stat().st_ino
    (tmp_path / "file").write_bytes(b"")
    calls = len(log)
    with pytest.raises(FileExistsError):  # pathlib's mkdir(parents=True, exist_ok=True)
        Downloader(fake_get(data, log=log), info, etag_plan(info), tmp_path / "c" / "o",
                   mirror=tmp_path / "file" / "o").run()
    assert len(log) == calls and os.listdir(tmp_path / "c") == []


def test_downloader_ambiguous_part_size_verified_by_second_pass(tmp_path):
    data = os.urandom(11 * MiB)
    info = ObjectInfo(len(data), f'"{multipart_of(data, 5 * MiB)}"')
    plan = resolve_part_size(etag_plan(info), info, None)
    assert plan.candidates == [4 * MiB, 5 * MiB]
    d = Downloader(fake_get(data), info, plan, tmp_path / "o", range_size=3 * MiB)
    assert d.run().startswith("multipart MD5 verified")
    assert plan.part_size == 5 * MiB
    assert file_etag(tmp_path / "o", plan) == info.etag_value


def test_downloader_gives_up_after_bounded_retries(tmp_path, monkeypatch):
    monkeypatch.setattr("kit_jupyter.transport.s3_download.BACKOFF", (0.0,))
    data = os.urandom(1000)
    info = ObjectInfo(len(data), f'"{hashlib.md5(data).hexdigest()}"')
    calls = []

    def get(Range: str) -> dict:  # noqa: N803
        calls.append(Range)
        return {"Body": FakeBody(data, fail_at=0), "ContentRange": "bytes 0-999/1000"}

    with pytest.raises(ConnectionResetError):
        Downloader(get, info, etag_plan(info), tmp_path / "o").run()
    assert len(calls) == 5                    # MAX_ATTEMPTS, then the error surfaces
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path,message", [
    ("/etc/passwd", "absolute paths are not supported (/etc/passwd)"),
    ("../outside.csv", "layer paths must stay within context directory"),
    ("a/../../x", "layer paths must stay within context directory"),
])
def test_unpack_path_checks(tmp_path, path, message):
    with pytest.raises(ValueError) as e:
        s3.check_unpack_path(path, tmp_path)
    assert str(e.value) == message


def test_unpack_path_through_symlink_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(ValueError, match="paths must be within context directory"):
        s3.check_unpack_path("link/x.csv", tmp_path)


def remote_kitfile(*datasets: tuple[str, str, str, str]) -> Kitfile:
    """(name, path, remotePath, remoteHash) datasets; an empty remotePath is a local dataset."""
    return Kitfile(datasets=[DataSet(name=n, path=p, remote_path=rp, remote_hash=rh)
                             for n, p, rp, rh in datasets])


def test_remote_datasets_are_typed_with_their_lines():
    kf = load_kitfile("manifestVersion: 1.0.0\ndatasets:\n"
                      "  - name: local\n    path: x\n"
                      "  - name: train\n    path: data/train.csv\n"
                      "    remotePath: s3://b/k\n    remoteHash: h\n"
                      "  - path: y\n    remotePath: s3://b/y\n")
    assert kf.remote_datasets() == [
        RemoteDataset(1, "train", "data/train.csv", "s3://b/k", "h", 7, 8),
        RemoteDataset(2, "", "y", "s3://b/y", "", 10, 10)]     # no remoteHash: remotePath's line
    assert kf.remote_datasets()[0].field == "datasets[1]"
    built = remote_kitfile(("a", "p", "s3://b/k", "h"))
    assert built.remote_datasets() == [RemoteDataset(0, "a", "p", "s3://b/k", "h")]


def test_no_include_remote_warns_in_kits_words(tmp_path):
    kf = remote_kitfile(("train", "data/train.csv", "s3://b/k", "h"), ("local", "x", "", ""))
    r = NullReporter()
    res = unpack_remote_datasets(kf, tmp_path, include_remote=False, filters=[], reporter=r)
    assert r.messages == [("warning", WARN_NOT_INCLUDED)]
    assert [x.status for x in res] == ["not-included"]
    r2 = NullReporter()
    none = unpack_remote_datasets(kf, tmp_path, include_remote=False, reporter=r2,
                                  filters=parse_filters(["datasets:local"]))
    assert none == [] and r2.messages == []
    assert list(tmp_path.iterdir()) == []


def test_unpack_errors_before_any_request(tmp_path):
    def kf(path, rp="s3://b/k", rh="h"):
        return remote_kitfile(("d", path, rp, rh))

    env = {"S3_API_ENDPOINT": "http://127.0.0.1:9"}
    with pytest.raises(RemoteDatasetError) as e:
        unpack_remote_datasets(kf("d.csv", rh=""), tmp_path, include_remote=True, env=env)
    assert str(e.value) == ("failed to parse S3 object reference for dataset d.csv: "
                            "hash is required for s3 references")
    with pytest.raises(UnpackError) as e:
        unpack_remote_datasets(kf("../d.csv"), tmp_path, include_remote=True, env=env)
    assert str(e.value) == ("error verifying path ../d.csv for remote reference: "
                            "layer paths must stay within context directory")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UnpackError) as e:
        unpack_remote_datasets(kf("dir.csv"), tmp_path, include_remote=True, env=env)
    assert str(e.value) == ("failed to unpack remote dataset: path 'dir.csv' already exists "
                            "and is not a regular file")


def test_check_remote_without_s3_datasets_is_empty():
    kf = remote_kitfile(("a", "p", "", ""), ("m", "q", "registry.example/org/data:v1", ""))
    assert check_remote_findings(kf, env={"S3_API_ENDPOINT": "http://127.0.0.1:9"}) == []


def test_file_etag_matches_s3_forms(tmp_path):
    data = os.urandom(2 * MiB + 5)
    f = tmp_path / "f"
    f.write_bytes(data)
    assert file_etag(f, etag_plan(ObjectInfo(len(data), '"' + "0" * 32 + '"'))) == \
        hashlib.md5(data).hexdigest()
    plan = etag_plan(ObjectInfo(len(data), '"' + "0" * 32 + '-3"'))
    assert file_etag(f, plan, MiB) == multipart_of(data, MiB)

