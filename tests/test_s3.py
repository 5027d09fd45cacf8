"""Remote datasets against a real S3-compatible server (moto over HTTP on 127.0.0.1)."""

from __future__ import annotations

import _thread
import hashlib
import os
import time
from types import SimpleNamespace as NS

import pytest

from kit_jupyter.commands.unpack import WARN_NOT_INCLUDED, unpack_remote_datasets
from kit_jupyter.commands.validate import check_remote_findings
from kit_jupyter.errors import KitError, RemoteDatasetError, UnpackError
from kit_jupyter.kitfile.model import DataSet, Kitfile
from kit_jupyter.reporting import NullReporter, Reporter
from kit_jupyter.transport import s3 as ks3
from tests.plugins.s3_server import SECRET_KEY, S3Fixture

KiB = 1024
MiB = 1 << 20


def kitfile(*datasets: tuple[str, str, str], name: str = "d") -> Kitfile:
    """A Kitfile with these (path, remotePath, remoteHash) datasets, as if read from YAML with
    each remoteHash on line 10 + 4 * index."""
    return Kitfile(datasets=[DataSet(name=f"{name}{i}", path=p, remote_path=rp, remote_hash=rh)
                             for i, (p, rp, rh) in enumerate(datasets)],
                   lines={f"datasets[{i}].remoteHash": 10 + 4 * i for i in range(len(datasets))})


def no_litter(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.name.endswith(".part"))


def assert_no_secret(*texts: str) -> None:
    for t in texts:
        assert SECRET_KEY not in t


@pytest.fixture
def data(s3: S3Fixture):
    bucket = s3.bucket("data")
    small = os.urandom(300 * KiB + 3)
    multi = os.urandom(2 * MiB + 123 * KiB)
    return NS(bucket=bucket, small=small, small_etag=s3.put(bucket, "small.bin", small)["etag"],
              multi=multi,
              multi_etag=s3.put_multipart(bucket, "dir/multi.bin", multi, 512 * KiB)["etag"])


# --- pack hook -----------------------------------------------------------------------------

def test_pack_verifies_etag(s3, data):
    kf = kitfile(("train.bin", "s3://data/small.bin", data.small_etag),
                 ("big.bin", "s3://data/dir/multi.bin", data.multi_etag))
    r = NullReporter()
    assert s3_verify(kf, r, s3.env()) is None
    assert r.messages == [("info", "Verified remote S3 dataset for path train.bin"),
                          ("info", "Verified remote S3 dataset for path big.bin")]
    assert data.multi_etag.endswith("-5")


def s3_verify(kf, reporter, env):
    return ks3.verify_remote_datasets(kf.remote_datasets(), reporter=reporter, env=env)


def test_pack_refuses_a_wrong_hash_with_kits_message(s3, data):
    wrong = data.small_etag[:-1] + ("0" if data.small_etag[-1] != "0" else "1")
    kf = kitfile(("train.bin", "s3://data/small.bin", wrong))
    with pytest.raises(RemoteDatasetError) as e:
        s3_verify(kf, NullReporter(), s3.env())
    assert str(e.value) == (
        "failed to verify remote object for train.bin: object in s3 bucket does not match hash: "
        f'ETag = "{data.small_etag}", hash = {wrong}')


def test_a_hash_with_a_line_break_is_shown_on_one_line(s3, data):
    """A remoteHash holding a line break (a quoted YAML string can) is shown on one line."""
    kf = kitfile(("train.bin", "s3://data/small.bin", "abc\ndef"))
    with pytest.raises(RemoteDatasetError) as e:
        s3_verify(kf, NullReporter(), s3.env())
    assert str(e.value).endswith(f'ETag = "{data.small_etag}", hash = abc def')


def test_pack_multipart_hash_must_keep_its_suffix(s3, data):
    kf = kitfile(("big.bin", "s3://data/dir/multi.bin", data.multi_etag.split("-")[0]))
    with pytest.raises(RemoteDatasetError, match="does not match hash"):
        s3_verify(kf, NullReporter(), s3.env())


def test_pack_not_found_names_path_and_remote_path(s3, data):
    kf = kitfile(("train.bin", "s3://data/missing.bin", "abc"))
    with pytest.raises(RemoteDatasetError) as e:
        s3_verify(kf, NullReporter(), s3.env())
    msg = str(e.value)
    assert msg.startswith("failed to verify remote object for train.bin: failed to HEAD object "
                          "in S3 bucket: s3://data/missing.bin: not found (404)")
    assert "\n" not in msg


def test_pack_skips_modelkit_reference_datasets(s3):
    kf = kitfile(("ds", "registry.example/org/data:v1", ""))
    r = NullReporter()
    s3_verify(kf, r, s3.env(S3_API_ENDPOINT="http://127.0.0.1:9"))  # never contacted
    assert r.messages == []


def test_region_is_discovered_when_none_is_configured(s3, monkeypatch):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/kit-jupyter-test")
    s3.bucket("euro", region="eu-west-1")
    etag = s3.put("euro", "x.csv", b"a,b\n")["etag"]
    env = s3.env(S3_REGION=None)
    clients = ks3.S3Clients(env)
    assert clients.region is None
    assert clients.bucket_region("euro") == "eu-west-1"
    assert clients.for_bucket("euro").meta.region_name == "eu-west-1"
    r = NullReporter()
    s3_verify(kitfile(("x.csv", "s3://euro/x.csv", etag)), r, env)
    assert r.messages == [("info", "Verified remote S3 dataset for path x.csv")]


# --- check-remote findings ---------------------------------------------------------------------

def test_check_remote_reports_stale_hash_with_current_etag(s3, data):
    kf = kitfile(("ok.bin", "s3://data/small.bin", data.small_etag),
                 ("big.bin", "s3://data/dir/multi.bin", "0" * 32))
    findings = check_remote_findings(kf, env=s3.env())
    assert len(findings) == 1
    f = findings[0]
    assert (f.severity, f.field, f.line) == ("error", "datasets[1].remoteHash", 14)
    assert f.message == (f"remoteHash {'0' * 32} does not match the object's current ETag "
                         f"{data.multi_etag} (s3://data/dir/multi.bin); "
                         f"set remoteHash: {data.multi_etag}")


def test_check_remote_reports_unreachable_and_missing(s3, data):
    kf = kitfile(("gone.bin", "s3://data/gone.bin", "abc"))
    [f] = check_remote_findings(kf, env=s3.env())
    assert f.field == "datasets[0].remotePath" and "not found (404)" in f.message
    [f] = check_remote_findings(kf, env=s3.env(S3_API_ENDPOINT="http://127.0.0.1:9"))
    assert "cannot reach http://127.0.0.1:9" in f.message
    assert_no_secret(f.message)


# --- unpack hook --------------------------------------------------------------------------------

def test_unpack_downloads_and_verifies(s3, data, tmp_path):
    kf = kitfile(("train/small.bin", "s3://data/small.bin", data.small_etag),
                 ("big.bin", "s3://data/dir/multi.bin", data.multi_etag))
    r = NullReporter()
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True, filters=[],
                                    overwrite=False, ignore_existing=False, reporter=r,
                                    env=s3.env(), range_size=MiB, workers=2)
    assert (tmp_path / "train/small.bin").read_bytes() == data.small
    assert (tmp_path / "big.bin").read_bytes() == data.multi
    assert oct((tmp_path / "big.bin").stat().st_mode & 0o777) == "0o644"
    assert [x.status for x in res] == ["downloaded", "downloaded"]
    assert res[0].verification == "MD5 verified"
    assert res[1].verification == "multipart MD5 verified (5 parts)"
    assert res[1].requests == 3                      # 1 MiB ranges = 2 parts each, in parallel
    assert ("info", "Downloaded remote S3 dataset for path big.bin") in r.messages
    # progress: an overall task and one task per dataset under it, all complete
    overall, *rows = r.tasks
    assert [t.label for t in rows] == ["train/small.bin (file 1 of 2)", "big.bin (file 2 of 2)"]
    assert overall.total == overall.done == len(data.small) + len(data.multi)
    assert all(t.ok and t.done == t.total for t in r.tasks)
    assert no_litter(tmp_path) == []



@pytest.mark.parametrize("cache", [True, False])
def test_one_remote_file_has_one_progress_task(s3, data, tmp_path, cache):
    """A single file is its own bar: no overall task that would show the same bytes twice
    (through the remote-dataset cache and without it)."""
    kf = kitfile(("small.bin", "s3://data/small.bin", data.small_etag))
    r = NullReporter()
    unpack_remote_datasets(kf, tmp_path, include_remote=True, reporter=r, env=s3.env(),
                           cache=cache)
    [row] = r.tasks
    assert (row.label, row.parent, row.ok) == ("small.bin", None, True)
    assert row.done == row.total == len(data.small)

def test_unpack_versioned_object(s3, tmp_path):
    s3.bucket("ver", versioned=True)
    v1 = s3.put("ver", "d.csv", b"version one\n")
    s3.put("ver", "d.csv", b"version two, longer\n")
    kf = kitfile(("d.csv", f"s3://ver/d.csv?versionId={v1['version']}", v1["etag"]))
    s3_verify(kf, NullReporter(), s3.env())
    unpack_remote_datasets(kf, tmp_path, include_remote=True, env=s3.env())
    assert (tmp_path / "d.csv").read_bytes() == b"version one\n"


def test_unpack_changed_object_fails_with_412_and_writes_nothing(s3, data, tmp_path):
    old = data.small_etag
    s3.put("data", "small.bin", b"changed after packing")
    kf = kitfile(("small.bin", "s3://data/small.bin", old))
    with pytest.raises(RemoteDatasetError) as e:
        unpack_remote_datasets(kf, tmp_path, include_remote=True, env=s3.env())
    assert str(e.value) == (
        "failed to download remote dataset for path small.bin: failed to get object from S3 "
        f"bucket: s3://data/small.bin: object changed since the ModelKit was packed: its ETag "
        f"no longer matches remoteHash {old} (412 PreconditionFailed)")
    assert list(tmp_path.iterdir()) == []


def test_unpack_existing_file_rules(s3, data, tmp_path):
    kf = kitfile(("small.bin", "s3://data/small.bin", data.small_etag))
    target = tmp_path / "small.bin"
    target.write_bytes(b"something else")
    with pytest.raises(UnpackError) as e:
        unpack_remote_datasets(kf, tmp_path, include_remote=True, env=s3.env())
    assert str(e.value) == "failed to unpack remote dataset: path 'small.bin' already exists"
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True, ignore_existing=True,
                                    env=s3.env())
    assert res[0].status == "skipped-existing" and target.read_bytes() == b"something else"
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True, overwrite=True,
                                    env=s3.env())
    assert res[0].status == "downloaded" and target.read_bytes() == data.small


@pytest.mark.parametrize("which", ["small", "multi"])
def test_unchanged_file_is_not_downloaded_again(s3, data, tmp_path, tcp_proxy, which):
    proxy = tcp_proxy(s3.server.port)
    rp, etag, content = (("s3://data/small.bin", data.small_etag, data.small) if which == "small"
                         else ("s3://data/dir/multi.bin", data.multi_etag, data.multi))
    kf = kitfile(("f.bin", rp, etag))
    env = s3.env(S3_API_ENDPOINT=proxy.endpoint)
    unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env)
    assert len(proxy.gets()) >= 1
    before = len(proxy.gets())
    r = NullReporter()
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env, reporter=r)
    assert len(proxy.gets()) == before                # HEADs only
    assert res[0].status == "up-to-date"
    assert r.messages == [("info", f"Remote S3 dataset for path f.bin is up to date (existing "
                                   f"file matches ETag {etag}); not downloaded again")]
    assert (tmp_path / "f.bin").read_bytes() == content


def test_resume_after_connection_reset(s3, data, tmp_path, tcp_proxy):
    proxy = tcp_proxy(s3.server.port)
    kf = kitfile(("big.bin", "s3://data/dir/multi.bin", data.multi_etag))
    proxy.cut_next_response(after_bytes=700 * KiB)
    res = unpack_remote_datasets(kf, tmp_path, include_remote=True,
                                    env=s3.env(S3_API_ENDPOINT=proxy.endpoint), workers=1)
    assert proxy.cuts_done == 1
    assert (tmp_path / "big.bin").read_bytes() == data.multi
    assert res[0].retries == 1, res[0].retry_reasons
    ranges = [g[2] for g in proxy.gets()]
    assert ranges[0] == f"bytes=0-{2 * MiB - 1}"          # ranges are whole parts (4 x 512 KiB)
    resumed = ranges[1]
    start = int(resumed.removeprefix("bytes=").split("-")[0])
    assert 0 < start <= 700 * KiB                        # from the last byte written
    assert resumed == f"bytes={start}-{2 * MiB - 1}"


class InterruptingReporter(Reporter):
    """Sends Ctrl-C to the main thread once ``after`` bytes have arrived (like the notebook's
    interrupt button while a cell downloads)."""

    def __init__(self, after: int, action=None):
        super().__init__()
        self.after = after
        self.fired = False
        self.action = action or _thread.interrupt_main

    def _changed(self, final: bool) -> None:
        with self._lock:
            done = max((t.done for t in self.tasks), default=0)
            fire = not self.fired and done >= self.after
            if fire:
                self.fired = True
        if fire:
            self.action()


def test_keyboard_interrupt_leaves_no_partial_file(s3, data, tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"old content stays")
    kf = kitfile(("big.bin", "s3://data/dir/multi.bin", data.multi_etag))
    r = InterruptingReporter(after=600 * KiB)
    with pytest.raises(KeyboardInterrupt):
        unpack_remote_datasets(kf, tmp_path, include_remote=True, overwrite=True,
                                  env=s3.env(), reporter=r, range_size=512 * KiB, workers=2)
        time.sleep(5)   # interrupt_main is delivered asynchronously
    assert r.fired
    assert target.read_bytes() == b"old content stays"
    assert no_litter(tmp_path) == []
    assert [t.ok for t in r.tasks] == [False]  # the one file's bar, marked failed


def test_server_killed_mid_download(moto_factory, tmp_path):
    server = moto_factory()
    fx = S3Fixture(server)
    fx.bucket("data")
    blob = os.urandom(2 * MiB)
    etag = fx.put_multipart("data", "k.bin", blob, 256 * KiB)["etag"]
    kf = kitfile(("k.bin", "s3://data/k.bin", etag))
    r = InterruptingReporter(after=300 * KiB, action=server.kill)
    t0 = time.monotonic()
    with pytest.raises(RemoteDatasetError) as e:
        unpack_remote_datasets(kf, tmp_path / "out", include_remote=True, env=fx.env(),
                                   reporter=r, range_size=256 * KiB, workers=1)
    assert r.fired
    msg = str(e.value)
    assert msg.startswith("failed to download remote dataset for path k.bin: failed to get "
                          "object from S3 bucket: s3://data/k.bin: ")
    assert "cannot reach" in msg or "connection" in msg.lower()
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "out").exists()  # made for the dataset, and taken back
    print(msg)


def test_unreachable_endpoint_fails_fast_and_clearly(tmp_path):
    kf = kitfile(("x.bin", "s3://data/x.bin", "abc"))
    env = {"S3_API_ENDPOINT": "http://127.0.0.1:9", "S3_REGION": "us-east-1",
           "S3_ACCESS_KEY_ID": "k", "S3_SECRET_KEY": SECRET_KEY}
    with pytest.raises(RemoteDatasetError) as e:
        unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env)
    assert str(e.value) == (
        "failed to download remote dataset for path x.bin: failed to get object from S3 bucket: "
        "s3://data/x.bin: cannot reach http://127.0.0.1:9 (connection refused)")  # URL said once
    assert_no_secret(str(e.value))


def test_missing_credentials(s3, data, tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kit-jupyter-test")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/kit-jupyter-test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    kf = kitfile(("small.bin", "s3://data/small.bin", data.small_etag))
    env = s3.env(S3_ACCESS_KEY_ID=None, S3_SECRET_KEY=None)
    with pytest.raises(RemoteDatasetError) as e:
        s3_verify(kf, NullReporter(), env)
    assert str(e.value) == (
        "failed to verify remote object for small.bin: failed to HEAD object in S3 bucket: "
        "s3://data/small.bin: no S3 credentials found: set S3_ACCESS_KEY_ID and S3_SECRET_KEY "
        "(or configure AWS credentials)")


@pytest.fixture
def auth_s3(moto_factory):
    """A moto that checks credentials: the first 3 requests (IAM setup) are free."""
    import boto3

    server = moto_factory(auth_free_actions=3)
    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    iam.create_user(UserName="kit")
    iam.put_user_policy(UserName="kit", PolicyName="all", PolicyDocument=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*",'
        '"Resource":"*"}]}'))
    key = iam.create_access_key(UserName="kit")["AccessKey"]
    admin = server.client(key["AccessKeyId"], key["SecretAccessKey"])
    admin.create_bucket(Bucket="data")
    etag = admin.put_object(Bucket="data", Key="a.bin", Body=b"hello")["ETag"].strip('"')
    return NS(endpoint=server.endpoint, key=key["AccessKeyId"], secret=key["SecretAccessKey"],
              etag=etag)


def test_credentials_are_checked(auth_s3, tmp_path):
    kf = kitfile(("a.bin", "s3://data/a.bin", auth_s3.etag))
    env = {"S3_API_ENDPOINT": auth_s3.endpoint, "S3_REGION": "us-east-1",
           "S3_ACCESS_KEY_ID": auth_s3.key, "S3_SECRET_KEY": auth_s3.secret}
    unpack_remote_datasets(kf, tmp_path, include_remote=True, env=env)
    assert (tmp_path / "a.bin").read_bytes() == b"hello"

    messages = []
    # HEAD answers carry no error code: "access denied (403)" for unknown key and wrong secret
    for bad, expect in [({"S3_ACCESS_KEY_ID": "AKIDUNKNOWN", "S3_SECRET_KEY": SECRET_KEY},
                         "access denied (403)"),
                        ({"S3_SECRET_KEY": SECRET_KEY}, "access denied (403)")]:
        for call in (lambda e: s3_verify(kf, NullReporter(), e),
                     lambda e: unpack_remote_datasets(kf, tmp_path / "new",
                                                         include_remote=True, env=e)):
            with pytest.raises(KitError) as e:
                call({**env, **bad})
            messages.append(str(e.value))
            assert expect in str(e.value), str(e.value)
            assert "s3://data/a.bin" in str(e.value) and "a.bin" in str(e.value)
    assert_no_secret(*messages)
    assert not any(auth_s3.secret in m for m in messages)
    assert not (tmp_path / "new").exists() or no_litter(tmp_path / "new") == []
    findings = check_remote_findings(kf, env={**env, "S3_SECRET_KEY": SECRET_KEY})
    assert len(findings) == 1 and "access denied" in findings[0].message
    assert_no_secret(findings[0].message)


def test_prepared_download_contract(s3, data, tmp_path):
    """One object to one path: HEAD first (nothing written), then the verified download, which
    replaces a file already there (the existing-file policy is unpack's)."""
    clients = ks3.download_clients(s3.env(), workers=2)
    obj = ks3.parse_s3_url("s3://data/dir/multi.bin", data.multi_etag)
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")
    item = ks3.prepare_download(clients, obj, data.multi_etag, target, dataset_path="m.bin")
    assert (item.info.size, item.plan.parts, item.remote_path) == \
        (len(data.multi), 5, "s3://data/dir/multi.bin")
    assert not item.up_to_date() and target.read_bytes() == b"old"
    [res] = ks3.download_prepared([item], range_size=MiB)
    assert (res.status, res.path, res.size) == ("downloaded", "m.bin", len(data.multi))
    assert hashlib.md5(target.read_bytes()).digest() == hashlib.md5(data.multi).digest()
    assert item.up_to_date() and item.result("up-to-date").verification == \
        "multipart MD5 verified (5 parts)"
    assert ks3.current_etag(clients, obj) == f'"{data.multi_etag}"'
    with pytest.raises(RemoteDatasetError, match=r"^not found \(404\)"):
        ks3.current_etag(clients, ks3.parse_s3_url("s3://data/nothere", "x"))


# --- through the real Kitfile model, pack and unpack commands --------------------------------

def test_pack_and_unpack_commands_with_a_remote_dataset(s3, data, tmp_path, kitops_home):
    from kit_jupyter.commands.pack import pack
    from kit_jupyter.commands.unpack import unpack
    from kit_jupyter.kitfile.model import load_kitfile

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "README.md").write_text("hello\n")
    kitfile_text = (
        "manifestVersion: 1.0.0\n"
        "package:\n  name: churn\n"
        "docs:\n  - path: README.md\n"
        "datasets:\n"
        "  - name: train\n    path: data/train.bin\n"
        f"    remotePath: s3://data/dir/multi.bin\n    remoteHash: {data.multi_etag}\n"
        "  - name: small\n    path: data/small.bin\n"
        f"    remotePath: s3://data/small.bin\n    remoteHash: {data.small_etag}\n")
    (ctx / "Kitfile").write_text(kitfile_text)
    rp = NullReporter()
    pack(ctx, tag="churn:v2", home=kitops_home, reporter=rp, env=s3.env())
    assert ("info", "Verified remote S3 dataset for path data/train.bin") in rp.messages

    out = tmp_path / "out"
    ru = NullReporter()
    unpack("churn:v2", dir=out, home=kitops_home, reporter=ru, env=s3.env())
    assert ("warning", WARN_NOT_INCLUDED) in ru.messages
    assert not (out / "data").exists()

    ru = NullReporter()
    res = unpack("churn:v2", dir=out, home=kitops_home, reporter=ru, env=s3.env(),
                 include_remote=True, filters=["datasets:train"], overwrite=True)
    assert (out / "data/train.bin").read_bytes() == data.multi
    assert not (out / "data/small.bin").exists()          # filtered out
    assert [r.status for r in res.remote] == ["downloaded"]
    assert ("info", "Downloaded remote S3 dataset for path data/train.bin") in ru.messages

    # a stale remoteHash in the Kitfile: a finding on the right line, showing the ETag to use
    stale = load_kitfile(kitfile_text.replace(data.small_etag, "0" * 32))
    [f] = check_remote_findings(stale, env=s3.env())
    assert f.field == "datasets[1].remoteHash" and f.line == 14
    assert f.message.endswith(f"set remoteHash: {data.small_etag}")
    assert type(f).__module__ == "kit_jupyter.kitfile.finding"

    with pytest.raises(KitError) as e:
        pack(ctx, tag="churn:v3", file=None, home=kitops_home, env=s3.env(
            S3_API_ENDPOINT="http://127.0.0.1:9"))
    assert str(e.value).startswith("Failed to pack model kit: failed to verify remote object "
                                   "for data/train.bin: failed to HEAD object in S3 bucket: "
                                   "s3://data/dir/multi.bin: cannot reach http://127.0.0.1:9")


def test_a_real_body_is_read_from_the_socket_into_the_buffer(s3):
    """body_readinto takes http.client's readinto under botocore's body and urllib3's response
    (recv_into our buffer): if a botocore or urllib3 upgrade moves it, this fails -- downloads
    would still work through the body's public readinto, at a CPU cost per GiB. The bytes of a
    range come out whole, then a read of 0."""
    import http.client

    from kit_jupyter.transport.s3_download import body_readinto

    s3.bucket("raw")
    blob = os.urandom(300 * KiB + 3)
    s3.put("raw", "b", blob)
    client = ks3.make_client(s3.env(), bucket="raw")
    body = client.get_object(Bucket="raw", Key="b", Range="bytes=1000-250999")["Body"]
    try:
        readinto = body_readinto(body)
        assert isinstance(getattr(readinto, "__self__", None), http.client.HTTPResponse)
        buf, got = memoryview(bytearray(64 * KiB)), bytearray()
        while n := readinto(buf):
            got += buf[:n]
        assert got == blob[1000:251000]
    finally:
        body.close()
