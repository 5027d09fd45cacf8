"""Secrets are never printed: a password inside ``S3_API_ENDPOINT``, tokens a registry echoes
into an error body, the signature and credential of a presigned URL a registry redirects to.

One helper (:func:`kit_jupyter.transport.redact.redact`) does the masking; the tests below go
through the CLI and assert that the secret is in neither stdout nor stderr."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys

import pytest

from kit_jupyter.commands.remote import push
from kit_jupyter.errors import AuthError, RegistryError
from kit_jupyter.transport.credentials import Credentials
from kit_jupyter.transport.redact import redact
from kit_jupyter.transport.registry import RegistryClient
from tests.plugins.registry_server import start_registry
from tests.plugins.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Fixture
from tests.test_registry import make_modelkit

PASSWORD = "Sup3r-S3cret-Pw"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImFjY2VzcyI6W119.c2lnbmF0dXJlLXBhcnQ"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("text,secrets,expected", [
    (f'cannot reach http://kit:{PASSWORD}@127.0.0.1:9: "http://kit:{PASSWORD}@127.0.0.1:9/d/k"',
     (), 'cannot reach http://kit:***@127.0.0.1:9: "http://kit:***@127.0.0.1:9/d/k"'),
    ("GET https://h/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101"
     "&X-Amz-Signature=0abc&versionId=3 failed", (),
     "GET https://h/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
     "&X-Amz-Signature=***&versionId=3 failed"),
    ("https://acct.blob.core.windows.net/c/b?sv=2022&sig=abc%2Bdef&se=2026", (),
     "https://acct.blob.core.windows.net/c/b?sv=2022&sig=***&se=2026"),
    (f"UNAUTHORIZED: token {JWT} expired", (), "UNAUTHORIZED: token *** expired"),
    ("sent Authorization: Bearer abc.def-123; Basic dXNlcjpwdw==; Basic authentication", (),
     "sent Authorization: Bearer ***; Basic ***; Basic authentication"),
    ("https://tok3n@github.com/x s3://bucket/key?versionId=3", (),
     "https://***@github.com/x s3://bucket/key?versionId=3"),
    (f"password {PASSWORD} and {PASSWORD}!", (PASSWORD, "", None, "ab"),
     "password *** and ***!"),
])
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


def _kitfile(ctx, etag: str) -> None:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "README.md").write_text("x\n")
    (ctx / "Kitfile").write_text(
        "manifestVersion: 1.0.0\npackage:\n  name: sec\ndocs:\n  - path: README.md\n"
        "datasets:\n  - name: d\n    path: data/d.bin\n"
        f"    remotePath: s3://data/d.bin\n    remoteHash: {etag}\n")


def test_password_in_s3_endpoint_is_never_printed(silent_server, tmp_path):
    _kitfile(tmp_path / "ctx", "0123456789abcdef0123456789abcdef")
    for host in ("127.0.0.1:9", silent_server.host):  # refused; accepted and never answered
        env = {"S3_API_ENDPOINT": f"http://kit:{PASSWORD}@{host}", "S3_REGION": REGION,
               "S3_ACCESS_KEY_ID": ACCESS_KEY, "S3_SECRET_KEY": SECRET_KEY,
               "KITOPS_HOME": str(tmp_path / "home"), "KIT_JUPYTER_TIMEOUT": "1.5"}
        for args in (("pack", str(tmp_path / "ctx"), "-t", "sec:v1"),
                     ("validate", str(tmp_path / "ctx"), "--check-remote")):
            proc = cli(*args, env=env)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 1, out
            assert f"http://kit:***@{host}" in out, out
            assert PASSWORD not in out and SECRET_KEY not in out


def _response(status: int, body: dict, reason: str = "Unauthorized"):
    import requests

    resp = requests.Response()
    resp.status_code, resp.reason = status, reason
    resp.raw = io.BytesIO(json.dumps(body).encode())
    return resp


def test_tokens_in_registry_error_bodies_are_never_printed():
    """A registry that echoes the token (or the login) into its error message: the message is
    shown, the secrets are not."""
    client = RegistryClient("r.example.com", credentials=Credentials("alice", PASSWORD))
    basic = Credentials("alice", PASSWORD).basic()
    body = {"errors": [{"code": "DENIED", "message": f"token {JWT} (Authorization: Basic "
                                                     f"{basic}) refused for alice:{PASSWORD}"}]}
    with client, pytest.raises(AuthError) as info:
        client._raise_for(_response(403, body), "fetching manifest r.example.com/a:v1")
    msg = str(info.value)
    assert msg == ("fetching manifest r.example.com/a:v1: access denied by r.example.com (403 "
                   "Unauthorized) (DENIED: token *** (Authorization: Basic ***) refused for "
                   "alice:***)")
    with client, pytest.raises(RegistryError) as info:
        client._raise_for(_response(500, body, f"Bearer {JWT}"), "pushing")
    assert JWT not in str(info.value) and PASSWORD not in str(info.value)


@pytest.mark.registry
def test_presigned_urls_of_a_registry_on_s3_are_never_printed(moto_factory, tmp_path):
    """docker-registry storing in S3 (moto) answers blob GETs with 307 to presigned URLs.
    A blob changed in the bucket, then a stopped bucket server: both fail with one line that
    shows neither the signature nor the credential nor the key."""
    moto = moto_factory()
    fx = S3Fixture(moto)
    fx.bucket("reg")
    server = start_registry(tmp_path / "registry", s3={
        "accesskey": ACCESS_KEY, "secretkey": SECRET_KEY, "region": REGION,
        "regionendpoint": moto.endpoint, "bucket": "reg", "secure": "false",
        "v4auth": "true", "forcepathstyle": "true"})
    try:
        home = tmp_path / "home"
        kit = make_modelkit(home, "localhost/presigned", "v1", seed="p")
        dest = f"{server.host}/team/presigned:v1"
        push("presigned:v1", dest, home=home, plain_http=True)
        layer = kit["manifest"]["layers"][0]["digest"].split(":")[1]
        key = f"docker/registry/v2/blobs/sha256/{layer[:2]}/{layer}/data"
        data = bytearray(fx.client.get_object(Bucket="reg", Key=key)["Body"].read())
        data[700] ^= 1  # same size, other bytes
        fx.client.put_object(Bucket="reg", Key=key, Body=bytes(data))

        env = {"KITOPS_HOME": str(tmp_path / "dst")}
        mark = server.mark()
        proc = cli("pull", dest, "--plain-http", env=env)
        assert (("GET", f"/v2/team/presigned/blobs/sha256:{layer}", 307)
                in server.requests(mark)), "the registry did not redirect"
        outputs = [proc.stdout + proc.stderr]
        assert proc.returncode == 1
        assert f"sha256:{layer}" in proc.stderr and "does not match its digest" in proc.stderr

        os.kill(moto.process.pid, signal.SIGSTOP)
        try:
            proc = cli("pull", f"{server.host}/team/presigned@{kit['digest']}", "--plain-http",
                       env={**env, "KIT_JUPYTER_TIMEOUT": "6"})
        finally:
            os.kill(moto.process.pid, signal.SIGCONT)
        assert proc.returncode == 1
        outputs.append(proc.stdout + proc.stderr)
        for out in outputs:
            assert "Traceback" not in out
            for secret in ("X-Amz-Signature", "X-Amz-Credential", ACCESS_KEY, SECRET_KEY,
                           hashlib.sha256(SECRET_KEY.encode()).hexdigest()[:16]):
                assert secret not in out, out
    finally:
        server.stop()
