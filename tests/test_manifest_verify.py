"""Manifests are verified like blobs: against the digest a pull names, else against the
registry's ``Docker-Content-Digest``, and refused above 4 MiB; without a digest header the
result says so and the computed digest is what is stored.

The tampering happens in the real docker-registry's storage directory: the registry keeps
serving the tag with the digest recorded at push time, and the bytes no longer match it."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from kit_jupyter.commands.local import info
from kit_jupyter.commands.remote import inspect_remote, pull, push
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter
from tests.test_registry import make_modelkit

pytestmark = pytest.mark.registry


def cli(*args: str, home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args, "--plain-http"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "KITOPS_HOME": str(home)})


@pytest.fixture
def tampered(registry, tmp_path) -> Iterator[tuple[str, str, str]]:
    """A pushed ModelKit whose manifest bytes were changed in the registry's storage (an
    annotation injected): (reference by tag, reference by digest, the pushed digest)."""
    home = tmp_path / "src"
    kit = make_modelkit(home, "localhost/mtamper", "v1", seed="m")
    push("mtamper:v1", f"{registry.host}/acme/mtamper:v1", home=home, plain_http=True)
    path = registry.blob_data_path(kit["digest"])
    original = path.read_bytes()
    manifest = json.loads(original)
    manifest.setdefault("annotations", {})["injected"] = "by an attacker"
    path.write_bytes(json.dumps(manifest).encode())
    try:
        yield (f"{registry.host}/acme/mtamper:v1", f"{registry.host}/acme/mtamper@{kit['digest']}",
               kit["digest"])
    finally:
        path.write_bytes(original)


def test_tampered_manifest_is_refused_by_pull_and_inspect(tampered, tmp_path):
    by_tag, by_digest, digest = tampered
    home = tmp_path / "dst"
    for args in (("pull", by_tag), ("inspect", "--remote", by_tag)):
        proc = cli(*args, home=home)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"[ERROR] Manifest {by_tag} does not match the digest the "
                                   f"registry sent (Docker-Content-Digest {digest}): got "
                                   "sha256:"), lines[0]
        assert "injected" not in proc.stdout + proc.stderr
    proc = cli("pull", by_digest, home=home)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith(
        f"[ERROR] Manifest {by_digest} does not match its digest: got sha256:"), proc.stderr
    assert LocalStore(home).repositories() == []  # nothing was stored


#: what a proxy may do to a successful answer: (request path, body) -> (body, extra headers)
Rewrite = Callable[[str, bytes], tuple[bytes, dict[str, str]]]


class _Proxy(http.server.ThreadingHTTPServer):
    """Forwards GET/HEAD to a real server (a registry, a Hub), changing its answers as a hostile
    server would: without ``Docker-Content-Digest`` (``strip_digest``), with ``pad``
    bytes of whitespace appended to every manifest, or as ``rewrite`` says."""

    def __init__(self, upstream: str, *, strip_digest: bool = False, pad: int = 0,
                 rewrite: Rewrite | None = None) -> None:
        self.upstream = upstream
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if "/manifests/" in self.path and resp.status == 200:
                    body += b" " * pad
                extra: dict[str, str] = {}
                if rewrite is not None and resp.status == 200:
                    body, extra = rewrite(self.path, body)
                dropped = {"transfer-encoding", "connection"}
                if self.command != "HEAD":  # a HEAD's length is the upstream's: it sent no body
                    dropped.add("content-length")
                if strip_digest:
                    dropped.add("docker-content-digest")
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() == "location":  # as a reverse proxy does: back through it
                        v = v.replace(f"//{proxy.upstream}/", f"//{proxy.host}/", 1)
                    if k.lower() not in dropped:
                        self.send_header(k, v)
                for k, v in extra.items():
                    self.send_header(k, v)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                conn.close()

            do_GET = do_HEAD = _forward  # noqa: N815 - http.server API

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_registry_without_digest_header_is_a_warning_and_the_computed_digest_is_used(
        registry, tmp_path):
    home = tmp_path / "src"
    kit = make_modelkit(home, "localhost/nodigest", "v1", seed="n")
    push("nodigest:v1", f"{registry.host}/acme/nodigest:v1", home=home, plain_http=True)
    proxy = _Proxy(registry.host, strip_digest=True)
    try:
        ref = f"{proxy.host}/acme/nodigest:v1"
        rep = NullReporter()
        res = pull(ref, home=tmp_path / "dst", plain_http=True, reporter=rep)
        warning = (f"registry {proxy.host} sent no Docker-Content-Digest for {ref}: the "
                   f"manifest could not be verified; using its computed digest {kit['digest']}")
        assert ("warning", warning) in res.messages
        assert res.digest == kit["digest"]
        store = LocalStore(tmp_path / "dst")
        assert store.resolve_descriptor(f"{proxy.host}/acme/nodigest", "v1").digest == \
            kit["digest"]
        assert ("warning", warning) in inspect_remote(ref, plain_http=True).messages
        assert ("warning", warning) in info(ref, remote=True, plain_http=True).messages
        # the terminal says it too (inspect and info dropped it: no reporter was passed)
        for command in ("inspect", "info"):
            proc = cli(command, "-r", ref, home=tmp_path / "dst")
            assert proc.returncode == 0, proc.stderr
            assert f"[WARN ] {warning}\n" in proc.stderr
        # a reporter that showed it live: the HTML does not repeat it; without one, it does
        shown = inspect_remote(ref, plain_http=True, reporter=NullReporter())
        assert warning not in shown._repr_html_()
        assert warning in inspect_remote(ref, plain_http=True)._repr_html_()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_manifest_over_4_mib_is_refused_before_it_is_read(registry, tmp_path):
    home = tmp_path / "src"
    kit = make_modelkit(home, "localhost/mbig", "v1", seed="b")
    push("mbig:v1", f"{registry.host}/acme/mbig:v1", home=home, plain_http=True)
    proxy = _Proxy(registry.host, pad=4 << 20)  # docker-registry refuses to store such a one
    try:
        proc = cli("pull", f"{proxy.host}/acme/mbig:v1", home=tmp_path / "dst")
        assert proc.returncode == 1
        size = len(kit["bytes"]) + (4 << 20)
        assert proc.stderr.strip() == (
            f"[ERROR] Manifest {proxy.host}/acme/mbig:v1 is larger than 4 MiB ({size} bytes)")
    finally:
        proxy.shutdown()
        proxy.server_close()
