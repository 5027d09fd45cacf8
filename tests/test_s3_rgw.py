"""End to end against a production S3 implementation: Ceph RGW on loopback (see plugins/rgw.py).

RGW checks signatures, honours If-Match, computes real multipart ETags and -- unlike moto --
ignores ``HEAD ?partNumber``, so the part size is inferred here (unique guess, and an ambiguous
size verified by a second pass).
"""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace as NS

import pytest

from kit_jupyter.commands.unpack import unpack_remote_datasets
from kit_jupyter.commands.validate import check_remote_findings
from kit_jupyter.errors import KitError, RemoteDatasetError
from kit_jupyter.kitfile.model import DataSet, Kitfile
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport import s3 as ks3

pytestmark = pytest.mark.rgw
MiB = 1 << 20


def kitfile(*datasets):
    return Kitfile(datasets=[DataSet(name=f"d{i}", path=p, remote_path=rp, remote_hash=rh)
                             for i, (p, rp, rh) in enumerate(datasets)])


def multipart_upload(client, bucket, key, data, part):
    mp = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, s in enumerate(range(0, len(data), part), start=1):
        r = client.upload_part(Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=n,
                               Body=data[s:s + part])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=mp["UploadId"],
                                     MultipartUpload={"Parts": parts})
    return client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


@pytest.fixture(scope="module")
def objs(rgw):
    c = rgw.client()
    c.create_bucket(Bucket="kitdata")
    single = os.urandom(MiB + 17)
    nine = os.urandom(40 * MiB + 1)            # 5 MiB parts, 9 parts: part size guess is unique
    three = os.urandom(11 * MiB)               # 5+5+1 MiB: 4 or 5 MiB possible -> second pass
    return NS(
        single=single, single_etag=c.put_object(Bucket="kitdata", Key="single.bin",
                                                Body=single)["ETag"].strip('"'),
        nine=nine, nine_etag=multipart_upload(c, "kitdata", "nine.bin", nine, 5 * MiB),
        three=three, three_etag=multipart_upload(c, "kitdata", "three.bin", three, 5 * MiB),
    )


class TestRGW:
    def test_multipart_etags_are_real(self, objs):
        digests = b"".join(hashlib.md5(objs.nine[s:s + 5 * MiB]).digest()
                           for s in range(0, len(objs.nine), 5 * MiB))
        assert objs.nine_etag == f"{hashlib.md5(digests).hexdigest()}-9"
        assert objs.single_etag == hashlib.md5(objs.single).hexdigest()

    def test_pack_verify(self, rgw, objs):
        r = NullReporter()
        kf = kitfile(("a.bin", "s3://kitdata/single.bin", objs.single_etag),
                     ("b.bin", "s3://kitdata/nine.bin", objs.nine_etag))
        ks3.verify_remote_datasets(kf.remote_datasets(), reporter=r, env=rgw.env())
        assert [m for _, m in r.messages] == ["Verified remote S3 dataset for path a.bin",
                                             "Verified remote S3 dataset for path b.bin"]
        bad = kitfile(("b.bin", "s3://kitdata/nine.bin", objs.single_etag))
        with pytest.raises(RemoteDatasetError, match="object in s3 bucket does not match hash"):
            ks3.verify_remote_datasets(bad.remote_datasets(), reporter=r, env=rgw.env())

    def test_download_verified(self, rgw, objs, tmp_path):
        kf = kitfile(("a/single.bin", "s3://kitdata/single.bin", objs.single_etag),
                     ("b/nine.bin", "s3://kitdata/nine.bin", objs.nine_etag),
                     ("c/three.bin", "s3://kitdata/three.bin", objs.three_etag))
        r = NullReporter()
        res = unpack_remote_datasets(kf, tmp_path, include_remote=True, reporter=r,
                                         env=rgw.env(), range_size=10 * MiB)
        assert (tmp_path / "a/single.bin").read_bytes() == objs.single
        assert (tmp_path / "b/nine.bin").read_bytes() == objs.nine
        assert (tmp_path / "c/three.bin").read_bytes() == objs.three
        assert [x.verification for x in res] == ["MD5 verified",
                                                 "multipart MD5 verified (9 parts)",
                                                 "multipart MD5 verified (3 parts)"]
        assert res[1].requests == 5                # 10 MiB ranges = 2 parts each
        assert [t.ok for t in r.tasks] == [True] * 4
        again = unpack_remote_datasets(kf, tmp_path, include_remote=True, env=rgw.env())
        assert [x.status for x in again] == ["up-to-date"] * 3

    def test_if_match_refuses_a_changed_object(self, rgw, objs, tmp_path):
        c = rgw.client()
        old = c.put_object(Bucket="kitdata", Key="mut.bin", Body=b"v1" * 1000)["ETag"].strip('"')
        c.put_object(Bucket="kitdata", Key="mut.bin", Body=b"v2" * 1000)
        kf = kitfile(("mut.bin", "s3://kitdata/mut.bin", old))
        with pytest.raises(RemoteDatasetError) as e:
            unpack_remote_datasets(kf, tmp_path, include_remote=True, env=rgw.env())
        assert "(412 PreconditionFailed)" in str(e.value)
        # and the GET itself (not only our HEAD) carries If-Match: RGW answers 412
        obj = ks3.parse_s3_url("s3://kitdata/mut.bin", old)
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as ce:
            rgw.client().get_object(**obj.params(), IfMatch=ks3.if_match_value(old))
        assert ce.value.response["Error"]["Code"] == "PreconditionFailed"
        assert list(tmp_path.iterdir()) == []

    def test_wrong_signature(self, rgw, objs, tmp_path):
        kf = kitfile(("a.bin", "s3://kitdata/single.bin", objs.single_etag))
        wrong = "definitely-not-the-secret-42"
        env = {**rgw.env(), "S3_SECRET_KEY": wrong}
        msgs = []
        for call in (lambda: ks3.verify_remote_datasets(kf.remote_datasets(),
                                                        reporter=NullReporter(), env=env),
                     lambda: unpack_remote_datasets(kf, tmp_path, include_remote=True,
                                                        env=env)):
            with pytest.raises(KitError) as e:
                call()
            msgs.append(str(e.value))
        findings = check_remote_findings(kf, env=env)
        msgs += [f.message for f in findings]
        assert len(msgs) == 3
        for m in msgs:
            assert "access denied (403)" in m and "s3://kitdata/single.bin" in m
            assert wrong not in m and rgw.secret_key not in m
        assert list(tmp_path.iterdir()) == []

    def test_check_remote_shows_current_etag(self, rgw, objs):
        kf = kitfile(("b.bin", "s3://kitdata/nine.bin", objs.nine_etag.split("-")[0]))
        [f] = check_remote_findings(kf, env=rgw.env())
        assert f.field == "datasets[0].remoteHash"
        assert f.message.endswith(f"set remoteHash: {objs.nine_etag}")
