"""Helpers for the demo notebooks: local stand-ins for the cloud, so a demo needs no account.

The notebooks in ``notebooks/`` call these to get an S3-compatible server (moto's server mode,
in-process, bound to 127.0.0.1 with dummy credentials), an OCI registry (Debian's
``docker-registry`` as a child process on 127.0.0.1), a private temporary ``KITOPS_HOME`` and
generated data. Each ``start_*`` returns a handle whose ``stop()`` undoes everything it did
(environment variables included), and every handle is idempotent to stop, so a notebook can be
run top to bottom any number of times in the same kernel.

Library code: nothing here prints. moto, boto3 and werkzeug are imported only when used.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit_jupyter._fs import atomic_write
from kit_jupyter.errors import KitError

MiB = 1024 * 1024

#: Dummy credentials: moto accepts any, and these make it obvious nothing real is used.
DEMO_ACCESS_KEY = "demo-access-key"
DEMO_SECRET_KEY = "demo-secret-key"
DEMO_REGION = "us-east-1"


class DemoError(KitError):
    """A demo service could not be started (binary missing, port not answering)."""


# -- environment ------------------------------------------------------------------------------

class _EnvPatch:
    """Sets environment variables and remembers what was there, so ``restore`` puts back the
    exact previous state (unset stays unset) -- a re-run notebook must not inherit a dead
    endpoint from an earlier run."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if key not in self._saved:
                self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def restore(self) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved.clear()


# -- workspace --------------------------------------------------------------------------------

@dataclass
class Workspace:
    """A temporary directory holding a project directory and a private ``KITOPS_HOME``.

    ``path`` is where a notebook creates its project; ``home`` is the storage root; both live
    under ``root``. While the workspace is open the process works in ``path`` (so relative paths
    in ``%kit`` lines land there) and ``KITOPS_HOME`` points at ``home``; ``close()`` restores
    both and deletes ``root`` (unless ``keep``).
    """

    root: Path
    path: Path
    home: Path
    previous_cwd: Path | None = None
    keep: bool = False
    closed: bool = False
    _env: _EnvPatch = field(default_factory=_EnvPatch, repr=False)

    def sub(self, *parts: str) -> Path:
        """A directory inside the workspace root (beside the project), created if needed."""
        p = self.root.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._env.restore()
        if self.previous_cwd is not None:
            with contextlib.suppress(OSError):
                os.chdir(self.previous_cwd)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_workspace(name: str = "kit-demo", *, chdir: bool = True, keep: bool = False,
                   base: str | os.PathLike[str] | None = None) -> Workspace:
    """Create a fresh workspace and point ``KITOPS_HOME`` at its ``kitops-home`` directory.

    A new directory every time, so running a notebook twice never meets the first run's files.
    ``base`` defaults to the system temp dir (``KIT_DEMO_TMP`` overrides it, read now).
    """
    base = base or os.environ.get("KIT_DEMO_TMP") or None
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base)).resolve()
    home = root / "kitops-home"
    home.mkdir()
    project = root / "project"
    project.mkdir()
    ws = Workspace(root=root, path=project, home=home, keep=keep)
    ws._env.set({"KITOPS_HOME": str(home)})
    if chdir:
        ws.previous_cwd = Path.cwd()
        os.chdir(project)
    return ws


# -- generated data ---------------------------------------------------------------------------

def generated_chunks(size: int, seed: int = 0, chunk: int = MiB) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes (same seed and size, same bytes, hence same ETag), one
    chunk at a time so memory stays bounded whatever the size."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def generate_file(path: str | os.PathLike[str], size: int, seed: int = 0) -> Path:
    """Write ``size`` generated bytes to ``path`` atomically (parents created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as f:
        for block in generated_chunks(size, seed):
            f.write(block)
    return target


def dataset_size_mb(default: int = 200) -> int:
    """Size of the remote-datasets demo's dataset in MiB: ``KIT_DEMO_DATASET_MB`` (read at call
    time; tests set it small) or ``default``."""
    raw = os.environ.get("KIT_DEMO_DATASET_MB", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise DemoError(f"KIT_DEMO_DATASET_MB must be a whole number of MiB, not {raw!r}") from None
    if value < 1:
        raise DemoError("KIT_DEMO_DATASET_MB must be at least 1")
    return value


def multipart_etag(chunks: Iterator[bytes] | list[bytes], part_size: int) -> str:
    """The ETag S3 gives a multipart upload of these bytes in ``part_size`` parts (no quotes)."""
    digests: list[bytes] = []
    h = hashlib.md5()
    filled = 0
    for block in chunks:
        view = memoryview(block)
        while view:
            take = min(part_size - filled, len(view))
            h.update(view[:take])
            filled += take
            view = view[take:]
            if filled == part_size:
                digests.append(h.digest())
                h, filled = hashlib.md5(), 0
    if filled or not digests:
        digests.append(h.digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


# -- S3 (moto server mode, in-process) --------------------------------------------------------

@dataclass
class S3Server:
    """A running in-process moto S3 server and the environment that points kit at it."""

    host: str
    port: int
    env: dict[str, str] = field(repr=False)  # holds the (dummy) secret key
    _server: Any = field(repr=False, default=None)
    _env: _EnvPatch = field(default_factory=_EnvPatch, repr=False)
    stopped: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        """A boto3 client for setting the scene (buckets, uploads) -- not what kit uses."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=DEMO_REGION,
            aws_access_key_id=DEMO_ACCESS_KEY, aws_secret_access_key=DEMO_SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` unless it exists (a re-run notebook meets its own bucket)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def upload_generated(self, bucket: str, key: str, size: int, *, seed: int = 0,
                         part_size: int | None = None) -> str:
        """Upload ``size`` generated bytes as a multipart object; returns its ETag (no quotes).

        Always multipart, as real datasets of this size are, so the ETag has the ``-N`` form
        that kit's ``remoteHash`` must carry. Parts are generated one at a time (bounded
        memory); nothing is written to local disk.
        """
        if part_size is None:
            part_size = 8 * MiB if size >= 16 * MiB else 5 * MiB
        self.create_bucket(bucket)
        client = self.client()
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)
        parts = []
        try:
            for number, data in enumerate(generated_chunks(size, seed, part_size), start=1):
                r = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                       PartNumber=number, Body=data)
                parts.append({"ETag": r["ETag"], "PartNumber": number})
            if not parts:  # an empty object still needs one (empty) part
                r = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                       PartNumber=1, Body=b"")
                parts.append({"ETag": r["ETag"], "PartNumber": 1})
            client.complete_multipart_upload(Bucket=bucket, Key=key,
                                             UploadId=upload["UploadId"],
                                             MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=key,
                                              UploadId=upload["UploadId"])
            raise
        return self.etag(bucket, key)

    def upload_file(self, bucket: str, key: str, path: str | os.PathLike[str]) -> str:
        """Upload a local file (single PUT); returns its ETag (no quotes)."""
        self.create_bucket(bucket)
        client = self.client()
        with open(path, "rb") as f:
            client.put_object(Bucket=bucket, Key=key, Body=f)
        return self.etag(bucket, key)

    def etag(self, bucket: str, key: str) -> str:
        return str(self.client().head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')

    def stop(self, reset: bool = True) -> None:
        """Stop serving and restore the environment. ``reset`` drops moto's (process-global)
        state first, which frees the memory a large demo object holds."""
        if self.stopped:
            return
        self.stopped = True
        self._env.restore()
        if reset:
            with contextlib.suppress(OSError, urllib.error.URLError):
                req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
                urllib.request.urlopen(req, timeout=10).close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_s3(*, port: int = 0, set_env: bool = True) -> S3Server:
    """Start moto's S3 server in this process on 127.0.0.1 and (by default) export kit's S3
    variables (``S3_API_ENDPOINT``, ``S3_REGION``, ``S3_ACCESS_KEY_ID``, ``S3_SECRET_KEY``)
    pointing at it with dummy credentials.

    moto's default address is 0.0.0.0; we always bind loopback. werkzeug's per-request log lines
    would otherwise land in the notebook's output, so its logger is set to errors only.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DemoError("the demo S3 server needs moto: pip install 'kit-jupyter[demo]'") from e
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    endpoint = f"http://{host}:{real_port}"
    env = {
        "S3_API_ENDPOINT": endpoint,
        "S3_REGION": DEMO_REGION,
        "S3_ACCESS_KEY_ID": DEMO_ACCESS_KEY,
        "S3_SECRET_KEY": DEMO_SECRET_KEY,
    }
    s3 = S3Server(host=host, port=real_port, env=env, _server=server)
    if set_env:
        s3._env.set(env)
    _wait_http(f"{endpoint}/moto-api/", timeout=10.0, what="moto S3 server")
    return s3


# -- OCI registry (Debian docker-registry) ----------------------------------------------------

_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: kit-demo-not-a-secret
"""

_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def find_registry_binary() -> str | None:
    """``docker-registry`` (Debian's package name) or ``registry`` (upstream), if installed."""
    for name in ("docker-registry", "registry"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Registry:
    """A running docker-registry child process serving plain HTTP on 127.0.0.1."""

    host: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path = field(repr=False)
    owns_root: bool = field(default=False, repr=False)
    stopped: bool = False

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the registry part of a ModelKit reference."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_registry(root: str | os.PathLike[str] | None = None, *, port: int = 0,
                   timeout: float = 20.0) -> Registry:
    """Start ``docker-registry serve`` on 127.0.0.1 with filesystem storage under ``root`` (a
    new temp dir under ``KIT_DEMO_TMP`` or the system temp dir, removed on stop, when not
    given). Port 0 picks a free port, read back from
    the registry's log line."""
    binary = find_registry_binary()
    if binary is None:
        raise DemoError("docker-registry is not installed (Debian/Ubuntu: apt-get install "
                        "docker-registry)")
    owns_root = root is None
    if root is None:
        base = Path(tempfile.mkdtemp(prefix="kit-demo-registry-",
                                     dir=os.environ.get("KIT_DEMO_TMP") or None))
    else:
        base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    config = base / "config.yml"
    log_path = base / "registry.log"
    with atomic_write(config) as f:
        f.write(_REGISTRY_CONFIG.format(root=data, port=port).encode())
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns the descriptor
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    real_port = port
    while not real_port:
        if process.poll() is not None:
            raise DemoError(f"docker-registry exited at start: {_tail(log_path)}")
        m = _LISTENING.search(log_path.read_text(errors="replace"))
        if m:
            real_port = int(m.group(1))
            break
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise DemoError("docker-registry did not report its port in time")
        time.sleep(0.02)
    reg = Registry(host="127.0.0.1", port=real_port, root=base, process=process,
                   log_path=log_path, owns_root=owns_root)
    # The registry runs in its own session (a notebook interrupt must not kill it mid-push), so
    # make sure a kernel shutdown or restart still stops it instead of leaving it orphaned.
    atexit.register(reg.stop)
    try:
        _wait_http(f"{reg.url}/v2/", timeout=max(deadline - time.monotonic(), 1.0),
                   what="docker-registry", process=process)
    except BaseException:
        reg.stop()
        raise
    return reg


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _wait_http(url: str, *, timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise DemoError(f"{what} exited before answering on {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except (urllib.error.URLError, OSError):  # TimeoutError is an OSError
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not answer on {url} within {timeout:.0f}s")
        time.sleep(0.05)


# -- sample project ---------------------------------------------------------------------------

def write_sample_project(directory: str | os.PathLike[str], *, model_size: int = 256 * 1024,
                         seed: int = 1) -> Path:
    """A small project to pack: a model file, training code, a local eval set and a README."""
    root = Path(directory)
    generate_file(root / "model" / "clf.bin", model_size, seed=seed)
    files = {
        "src/train.py": "# trains the churn classifier (demo)\nprint('training...')\n",
        "data/eval.csv": "customer,churned\n1,0\n2,1\n3,0\n",
        "README.md": "# churn\n\nDemo ModelKit built by kit-jupyter's notebooks.\n",
    }
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as f:
            f.write(text.encode())
    return root
