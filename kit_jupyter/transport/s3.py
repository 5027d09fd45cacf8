"""Remote datasets in S3 (spec §12): configuration, ``s3://`` references, the HEAD/ETag check and
the verified download of one object to a path.

What to do with these is the commands' business: which datasets unpack selects and what happens
to a file already there (commands/unpack.py), how a stale ``remoteHash`` becomes a finding
(commands/validate.py). This module only talks to S3 and words its failures.

Configuration follows kit: boto3's default chain, overridden by ``S3_API_ENDPOINT`` (path-style
addressing, since most S3-compatible stores need it), ``S3_REGION`` and ``S3_ACCESS_KEY_ID`` +
``S3_SECRET_KEY`` (only together). The environment is read when a command runs, from a mapping that
tests can inject. Without any configured region the bucket's region is asked for
(``x-amz-bucket-region``) instead of failing the way kit does.

Errors name the dataset path and its ``remotePath`` in kit's wording; the secret key is scrubbed
from every message we build.
"""

from __future__ import annotations

import os
import posixpath
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kit_jupyter.errors import RemoteDatasetError, UnpackError, one_line
from kit_jupyter.gocompat import gostrconv, gourl
from kit_jupyter.kitfile.model import RemoteDataset
from kit_jupyter.reporting import NullReporter, Reporter, Task, positioned
from kit_jupyter.transport.deadline import Timeouts, retry
from kit_jupyter.transport.redact import redact
from kit_jupyter.transport.s3_download import (
    DigestMismatch,
    Downloader,
    ObjectInfo,
    Plan,
    default_workers,
    etag_plan,
    file_etag,
    is_transient,
    resolve_part_size,
)

ENV_ENDPOINT = "S3_API_ENDPOINT"
ENV_REGION = "S3_REGION"
ENV_ACCESS_KEY = "S3_ACCESS_KEY_ID"
ENV_SECRET_KEY = "S3_SECRET_KEY"

# botocore makes one attempt per call: the retries are ours (deadline.py), bounded by
# KIT_JUPYTER_TIMEOUT, which also gives botocore's connect and per-read timeouts.
MAX_REQUEST_ATTEMPTS = 1


# ---------------------------------------------------------------------------------------------
# s3:// references

@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version_id: str | None = None

    def __str__(self) -> str:
        q = f"?versionId={urllib.parse.quote(self.version_id)}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{q}"

    def params(self) -> dict[str, str]:
        p = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            p["VersionId"] = self.version_id
        return p


def parse_s3_url(remote_path: str, remote_hash: str) -> S3Object:
    """``s3://bucket/key[?versionId=…]`` with kit's checks and texts, in kit's order: Go's
    ``url.Parse``, bucket = host, key = path with one leading ``/`` removed."""
    if not remote_hash:
        raise RemoteDatasetError("hash is required for s3 references")
    try:
        u = gourl.parse(remote_path)
    except gourl.URLError as e:
        raise RemoteDatasetError(f"failed to parse s3 reference: {e}") from None
    if u.scheme != "s3":
        raise RemoteDatasetError("url does not use 's3' scheme")
    if not u.host:
        raise RemoteDatasetError("bucket name is required for S3 references")
    key = u.path.removeprefix("/")
    if not key:
        raise RemoteDatasetError("bucket key is required for S3 references")
    version = u.query().get("versionId", [""])[0]
    for part in (u.host, key, version):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:  # %-escapes that are not UTF-8: S3 names are UTF-8
            raise RemoteDatasetError(
                f"failed to parse s3 reference: {gostrconv.quote(remote_path)} names a bucket, "
                f"key or version that is not valid UTF-8") from None
    return S3Object(u.host, key, version or None)


def is_s3_path(remote_path: str) -> bool:
    """The path's URL scheme is ``s3`` (whether or not the rest parses: that is
    :func:`parse_s3_url`'s to report)."""
    return gourl.get_scheme(remote_path) == "s3"


# ---------------------------------------------------------------------------------------------
# configuration and clients

class S3Client(Protocol):
    """The calls made on a boto3 S3 client (boto3 ships no types); answers are boto3's dicts."""

    def head_object(self, **params: str | int) -> dict[str, Any]: ...

    def get_object(self, **params: str | int) -> dict[str, Any]: ...

    def head_bucket(self, **params: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None
    region: str | None
    access_key: str | None
    secret_key: str | None = field(default=None, repr=False)
    aws: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if env is None else env
        key, secret = env.get(ENV_ACCESS_KEY) or None, env.get(ENV_SECRET_KEY) or None
        if not (key and secret):            # kit: ignored unless both are set
            key = secret = None
        aws = {k: v for k, v in env.items() if k.startswith("AWS_") and v}
        return cls(env.get(ENV_ENDPOINT) or None, env.get(ENV_REGION) or None, key, secret, aws)

    def secrets(self) -> list[str]:
        return [s for s in (self.secret_key, self.aws.get("AWS_SECRET_ACCESS_KEY"),
                            self.aws.get("AWS_SESSION_TOKEN")) if s]


def _botocore_config(settings: S3Settings, region: str | None, pool: int):
    from botocore.config import Config

    s3opts: dict[str, Any] = ({"addressing_style": "path"} if settings.endpoint
                              else {"use_arn_region": True})
    timeouts = Timeouts.from_env()
    return Config(region_name=region, signature_version="s3v4", s3=s3opts,
                  request_checksum_calculation="when_required",
                  response_checksum_validation="when_required",
                  connect_timeout=timeouts.connect, read_timeout=timeouts.read,
                  retries={"total_max_attempts": MAX_REQUEST_ATTEMPTS, "mode": "standard"},
                  max_pool_connections=pool, user_agent_extra="kit-jupyter")


class S3Clients:
    """One per command: boto3 clients per region (a region is discovered per bucket when none is
    configured), plus the settings needed to word errors and scrub secrets."""

    def __init__(self, env: Mapping[str, str] | None = None, *, pool: int = 16) -> None:
        self.settings = S3Settings.from_env(env)
        self._pool = pool
        self._lock = threading.Lock()
        self._clients: dict[str | None, S3Client] = {}
        self._bucket_region: dict[str, str] = {}
        try:
            import boto3

            s = self.settings
            kwargs: dict[str, Any] = {}
            if "AWS_PROFILE" in s.aws:
                kwargs["profile_name"] = s.aws["AWS_PROFILE"]
            if s.access_key:
                kwargs.update(aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key)
            elif "AWS_ACCESS_KEY_ID" in s.aws and "AWS_SECRET_ACCESS_KEY" in s.aws:
                kwargs.update(aws_access_key_id=s.aws["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=s.aws["AWS_SECRET_ACCESS_KEY"],
                              aws_session_token=s.aws.get("AWS_SESSION_TOKEN"))
            self._session = boto3.session.Session(**kwargs)
            self.region = (s.region or s.aws.get("AWS_REGION") or s.aws.get("AWS_DEFAULT_REGION")
                           or self._session.region_name or None)
        except Exception as e:  # noqa: BLE001 - botocore config errors are many
            raise RemoteDatasetError(
                f"failed to load S3 configuration: {self.scrub(str(e))}") from None

    def scrub(self, text: str) -> str:
        return redact(text, self.settings.secrets())

    def _client(self, region: str | None) -> S3Client:
        with self._lock:
            c = self._clients.get(region)
            if c is None:
                try:
                    c = self._session.client(
                        "s3", endpoint_url=self.settings.endpoint,
                        config=_botocore_config(self.settings, region or "us-east-1", self._pool))
                except Exception as e:  # noqa: BLE001
                    raise RemoteDatasetError(
                        f"failed to load S3 configuration: {self.scrub(str(e))}") from None
                self._clients[region] = c
            return c

    def for_bucket(self, bucket: str) -> S3Client:
        if self.region:
            return self._client(self.region)
        return self._client(self.bucket_region(bucket))

    def bucket_region(self, bucket: str) -> str:
        """HeadBucket's ``x-amz-bucket-region`` (also present on 301/403 answers)."""
        if bucket in self._bucket_region:
            return self._bucket_region[bucket]
        from botocore.exceptions import BotoCoreError, ClientError

        headers: dict[str, str] = {}
        try:
            r = self._client(None).head_bucket(Bucket=bucket)
            headers = r.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except ClientError as e:
            headers = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except BotoCoreError:
            pass  # the real request will fail with a proper message
        region = headers.get("x-amz-bucket-region") or "us-east-1"
        self._bucket_region[bucket] = region
        return region


def make_client(env: Mapping[str, str] | None = None, *,
                bucket: str | None = None) -> S3Client:
    """A boto3 S3 client configured as kit's (spec §12.2)."""
    clients = S3Clients(env)
    return clients.for_bucket(bucket) if bucket else clients._client(clients.region)


# ---------------------------------------------------------------------------------------------
# errors

def describe_error(exc: BaseException, clients: S3Clients | None = None,
                   remote_hash: str | None = None) -> str:
    """One line for an S3 failure, saying what to do; never the secret."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    endpoint = (clients.settings.endpoint if clients else None) or "the S3 endpoint"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        text = ("no S3 credentials found: set S3_ACCESS_KEY_ID and S3_SECRET_KEY "
                "(or configure AWS credentials)")
    elif isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(err.get("Code") or "")
        status = int(meta.get("HTTPStatusCode") or (code if code.isdigit() else 0) or 0)
        label = f"{status} {code}" if code and code != str(status) else str(status)
        if status == 412 or code == "PreconditionFailed":
            text = (f"object changed since the ModelKit was packed: its ETag no longer matches "
                    f"remoteHash {remote_hash} ({status or 412} PreconditionFailed)")
        elif code == "InvalidAccessKeyId":
            text = f"access denied ({label}): the access key ID is not known to {endpoint}"
        elif code == "SignatureDoesNotMatch":
            text = f"access denied ({label}): the secret key does not match the access key ID"
        elif status == 403 or code in ("AccessDenied", "Forbidden"):
            text = (f"access denied ({label}): check the S3 credentials "
                    f"(S3_ACCESS_KEY_ID / S3_SECRET_KEY) and their permissions")
        elif code == "NoSuchBucket":
            text = f"bucket not found ({label})"
        elif code in ("NoSuchKey", "NoSuchVersion"):
            text = f"{'key' if code == 'NoSuchKey' else 'version'} not found ({label})"
        elif status == 404:
            text = f"not found ({label}): the bucket, key or version does not exist"
        elif status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            text = f"wrong region ({label}): set S3_REGION to the bucket's region"
        else:
            msg = err.get("Message") or ""
            text = f"{label}: {msg}" if msg else f"HTTP {label}"
    elif isinstance(exc, ReadTimeoutError):
        t = Timeouts.from_env()
        text = f"{endpoint} did not answer within {t.read:g}s; {t.hint()}"
    elif isinstance(exc, (BotoConnectionError, ConnectionClosedError)):  # also ConnectTimeout
        text = f"cannot reach {endpoint} ({_connection_cause(exc)})"
    elif isinstance(exc, (ConnectionError, TimeoutError)):
        text = f"connection to {endpoint} failed: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split())
    return clients.scrub(text) if clients else redact(text)


def _connection_cause(exc: BaseException) -> str:
    """Why a connection failed, in a few words: botocore's own text repeats the object's URL
    after the endpoint we already name."""
    inner = getattr(exc, "kwargs", {}).get("error") or exc
    found = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", str(inner))
    if found:
        return found.group(1).strip().rstrip(".").lower()
    if "timeout" in type(exc).__name__.lower() or "timed out" in str(inner):
        return "timed out"
    return "connection closed" if "Closed" in type(exc).__name__ else type(exc).__name__


def _is_s3_error(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError


    return isinstance(exc, (BotoCoreError, ClientError)) or is_transient(exc)


# ---------------------------------------------------------------------------------------------
# HEAD

def if_match_value(remote_hash: str) -> str:
    """remoteHash as an entity tag. kit sends it bare; RFC 9110 wants quotes, AWS and Ceph accept
    both, and moto's HEAD only matches the quoted form -- so quote it."""
    return remote_hash if remote_hash.startswith('"') else f'"{remote_hash}"'


def _head(client: S3Client, obj: S3Object, if_match: str | None = None,
          **extra: str | int) -> dict[str, Any]:
    params: dict[str, str | int] = dict(obj.params())
    if if_match:
        params["IfMatch"] = if_match_value(if_match)
    params.update(extra)
    return retry(lambda _: client.head_object(**params), transient=is_transient,
                 timeouts=Timeouts.from_env())


def _info(resp: dict, obj: S3Object) -> ObjectInfo:
    sse = resp.get("ServerSideEncryption")
    if resp.get("SSECustomerAlgorithm"):
        sse = "SSE-C"
    return ObjectInfo(size=int(resp.get("ContentLength") or 0), etag=resp.get("ETag") or "",
                      sse=sse, version_id=resp.get("VersionId") or obj.version_id)


def head_etag(client: S3Client, obj: S3Object) -> str:
    """The object's ETag as returned (with quotes); '' when the server sent none."""
    return _head(client, obj).get("ETag") or ""


def verify_remote(client: S3Client, dataset_path: str, obj: S3Object, remote_hash: str,
                  clients: S3Clients | None = None) -> None:
    """kit's pack check (§12.3): ETag without quotes must equal remoteHash exactly."""
    prefix = f"failed to verify remote object for {dataset_path}"
    try:
        etag = head_etag(client, obj)
    except Exception as e:
        if not _is_s3_error(e):
            raise
        raise RemoteDatasetError(
            f"{prefix}: failed to HEAD object in S3 bucket: {obj}: "
            f"{describe_error(e, clients, remote_hash)}") from None
    if not etag:
        raise RemoteDatasetError(f"{prefix}: missing ETag on object")
    if etag.strip('"') != remote_hash:
        raise RemoteDatasetError(
            f"{prefix}: object in s3 bucket does not match hash: ETag = {one_line(etag)}, "
            f"hash = {one_line(remote_hash)}")


# ---------------------------------------------------------------------------------------------
# pack check

def verify_remote_datasets(datasets: Iterable[RemoteDataset], *, reporter: Reporter | None = None,
                           env: Mapping[str, str] | None = None) -> None:
    """HEAD every S3 remote dataset before pack writes anything (spec §12.3); ModelKit-reference
    datasets are not S3's business and are skipped."""
    reporter = reporter or NullReporter()
    todo = [d for d in datasets if is_s3_path(d.remote_path)]
    if not todo:
        return
    clients = S3Clients(env)
    for d in todo:
        prefix = f"failed to verify remote object for {d.path}"
        try:
            obj = parse_s3_url(d.remote_path, d.remote_hash)
        except RemoteDatasetError as e:
            raise RemoteDatasetError(f"{prefix}: {e}") from None
        client = _client_or_raise(clients, obj, f"{prefix}: failed to HEAD object in S3 bucket",
                                  d.remote_hash)
        verify_remote(client, d.path, obj, d.remote_hash, clients)
        reporter.info(f"Verified remote S3 dataset for path {d.path}")


def _client_or_raise(clients: S3Clients, obj: S3Object, prefix: str,
                     remote_hash: str) -> S3Client:
    try:
        return clients.for_bucket(obj.bucket)
    except RemoteDatasetError:
        raise
    except Exception as e:
        if not _is_s3_error(e):
            raise
        raise RemoteDatasetError(
            f"{prefix}: {obj}: {describe_error(e, clients, remote_hash)}") from None


def current_etag(clients: S3Clients, obj: S3Object, remote_hash: str = "") -> str:
    """The object's ETag as the server returns it (with quotes; '' when it sent none). Any S3
    failure is a RemoteDatasetError holding :func:`describe_error`'s line, so callers (the
    ``--check-remote`` findings) need no botocore knowledge."""
    try:
        return head_etag(clients.for_bucket(obj.bucket), obj)
    except RemoteDatasetError:
        raise
    except Exception as e:
        if not _is_s3_error(e):
            raise
        raise RemoteDatasetError(describe_error(e, clients, remote_hash)) from None


# ---------------------------------------------------------------------------------------------
# verified download of one object to a path

@dataclass
class DownloadResult:
    path: str                       # dataset path as in the Kitfile
    remote_path: str
    status: str     # downloaded | from-cache | up-to-date | skipped-existing | not-included
    size: int = 0
    etag: str = ""
    verification: str = ""
    seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    retry_reasons: list[str] = field(default_factory=list, repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)  # transfer/verify/fsync
    cache: str = ""                 # remote_cache: "stored" or "hit", and how it was copied out

    def __repr__(self) -> str:
        extra = f", {self.verification}" if self.verification else ""
        return f"<{self.status}: {self.path} <- {self.remote_path} ({self.size} bytes{extra})>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def check_unpack_path(path: str, target_dir: Path) -> Path:
    """The layer path checks of §8.8 for a remote dataset's ``path``; returns the target file."""
    if path.startswith("/") or os.path.isabs(path):
        raise ValueError(f"absolute paths are not supported ({path})")
    clean = posixpath.normpath(path.replace("\\", "/")) if path else ""
    if not clean or clean == ".." or clean.startswith("../"):
        raise ValueError("layer paths must stay within context directory")
    target = Path(target_dir) / clean
    root = os.path.realpath(target_dir)
    resolved = os.path.realpath(target)
    if resolved != root and not resolved.startswith(root.rstrip(os.sep) + os.sep):
        raise ValueError("paths must be within context directory")
    return target


@dataclass
class PreparedDownload:
    """One object after its HEAD (If-Match): its size, ETag and how its bytes can be verified,
    known before the first byte is fetched. ``path`` is the dataset path that errors name."""

    path: str
    obj: S3Object
    remote_hash: str
    target: Path
    client: S3Client
    clients: S3Clients | None
    info: ObjectInfo
    plan: Plan
    parts_asked: bool = False       # HEAD ?partNumber=1 done (resolve_parts)
    mirror: Path | None = None      # a second file that gets the same bytes (remote_cache)

    @property
    def remote_path(self) -> str:
        return str(self.obj)

    def up_to_date(self, workers: int | None = None) -> bool:
        """The file at ``target`` has the object's bytes: same size and the same ETag computed
        from the local bytes (never trusts an unverifiable ETag)."""
        st = self.target.stat()
        if st.st_size != self.info.size or self.plan.mode == "none":
            return False
        want = self.info.etag_value.lower()
        sizes: list[int | None] = ([self.plan.part_size] if self.plan.part_size
                                   else list(self.plan.candidates))
        if self.plan.mode == "md5":
            sizes = [None]
        return any(file_etag(self.target, self.plan, ps, workers or default_workers()) == want
                   for ps in sizes)

    def resolve_parts(self, *, ask_server: bool = True) -> PreparedDownload:
        """Learn the part boundaries of a multipart object (``HEAD ?partNumber=1`` when
        ``ask_server``, else the usual part sizes); separate from the first HEAD so that a cache
        hit costs that HEAD only. Returns ``self``."""
        if self.parts_asked or (not ask_server and self.plan.mode != "multipart"):
            return self
        client, obj, remote_hash = self.client, self.obj, self.remote_hash

        def part1() -> dict[str, Any]:
            # Learns only the part size: the GETs carry If-Match and the bytes are verified. moto
            # compares If-Match with the *part's* ETag here, so a 412 is retried without it.
            from botocore.exceptions import ClientError

            try:
                return _head(client, obj, remote_hash, PartNumber=1)
            except ClientError as e:
                if e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 412:
                    return {}
                return _head(client, obj, None, PartNumber=1)

        try:
            self.plan = resolve_part_size(etag_plan(self.info), self.info,
                                          part1 if ask_server else None)
            self.parts_asked = ask_server
        except Exception as e:
            if not _is_s3_error(e):
                raise
            raise _download_error(self.path, obj, remote_hash, e, self.clients) from None
        return self

    def result(self, status: str) -> DownloadResult:
        """A result for an object that was not fetched (e.g. ``up-to-date``)."""
        return DownloadResult(self.path, self.remote_path, status, self.info.size,
                              self.info.etag_value, self.plan.describe())


def download_clients(env: Mapping[str, str] | None = None, *,
                     workers: int | None = None) -> S3Clients:
    """Clients whose connection pool fits parallel ranged GETs."""
    return S3Clients(env, pool=max(16, (workers or default_workers()) * 2))


def _download_error(path: str, obj: S3Object, remote_hash: str, e: BaseException,
                    clients: S3Clients | None) -> RemoteDatasetError:
    return RemoteDatasetError(
        f"failed to download remote dataset for path {path}: failed to get object from S3 "
        f"bucket: {obj}: {describe_error(e, clients, remote_hash)}")


def prepare_download(clients: S3Clients, obj: S3Object, remote_hash: str, target: Path, *,
                     dataset_path: str, client: S3Client | None = None,
                     head_part: bool = True) -> PreparedDownload:
    """HEAD (If-Match ``remote_hash``) and learn how the bytes can be verified. Nothing is
    written; a changed object fails here (412) before any download starts."""
    try:
        client = client or _client_or_raise(
            clients, obj, f"failed to download remote dataset for path {dataset_path}: failed to "
                          f"get object from S3 bucket", remote_hash)
        info = _info(_head(client, obj, remote_hash), obj)
    except RemoteDatasetError:
        raise
    except Exception as e:
        if not _is_s3_error(e):
            raise
        raise _download_error(dataset_path, obj, remote_hash, e, clients) from None
    item = PreparedDownload(dataset_path, obj, remote_hash, Path(target), client, clients, info,
                            etag_plan(info))
    return item.resolve_parts(ask_server=head_part)


def write_error(path: str, exc: OSError) -> UnpackError:
    """The one line for a remote dataset that could not be written (a full disk, a quota, a
    file-size limit, permissions), however it was being written (downloaded, or copied out of
    the shared cache): the dataset's path and the system's reason, without ``[Errno N]`` and
    the hidden temporary file's name."""
    return UnpackError(f"failed to write file {path}: {exc.strerror or exc}")


def _fetch(item: PreparedDownload, task: Task | None, workers: int,
           range_size: int | None) -> Downloader:
    params: dict[str, str | int] = dict(item.obj.params())
    params["IfMatch"] = if_match_value(item.remote_hash)
    client = item.client

    def get(**kw: str) -> dict[str, Any]:
        return client.get_object(**params, **kw)

    kwargs: dict[str, Any] = {"workers": workers}
    if range_size:
        kwargs["range_size"] = range_size
    d = Downloader(get, item.info, item.plan, item.target, mirror=item.mirror,
                   advance=task.advance if task else None, **kwargs)
    try:
        d.run()
    except DigestMismatch:
        raise RemoteDatasetError(
            f"failed to download remote dataset for path {item.path}: downloaded data does not "
            f"match ETag {one_line(item.info.etag)}") from None
    except OSError as e:
        if _is_s3_error(e):
            raise _download_error(item.path, item.obj, item.remote_hash, e, item.clients) from None
        raise write_error(item.path, e) from None
    except Exception as e:
        if not _is_s3_error(e):
            raise
        raise _download_error(item.path, item.obj, item.remote_hash, e, item.clients) from None
    return d


def download_each(items: Sequence[PreparedDownload], reporter: Reporter,
                  fetch: Callable[[PreparedDownload, Task], DownloadResult],
                  announce: Callable[[PreparedDownload, DownloadResult], None] | None = None,
                  task: Task | None = None) -> list[DownloadResult]:
    """The one home of remote-dataset progress rows (downloads and shared-cache copies alike):
    ``fetch`` each item with its own row (``path (file 2 of 3)``) under a "Remote datasets" row
    when there are several (one file would show twice), or everything on ``task`` when given;
    ``announce`` says what happened once the item's row has ended."""
    results: list[DownloadResult] = []
    if not items:
        return results
    overall = task or (reporter.task("Remote datasets", sum(it.info.size for it in items))
                       if len(items) > 1 else None)
    ok = False
    try:
        for index, item in enumerate(items, 1):
            sub = task or reporter.task(positioned(item.path, "file", index, len(items)),
                                        item.info.size, parent=overall)
            try:
                got = fetch(item, sub)
            except BaseException:
                if task is None:
                    sub.finish(ok=False)
                raise
            if task is None:
                sub.finish(ok=True)
            results.append(got)
            if announce is not None:
                announce(item, got)
        ok = True
    finally:
        if task is None and overall is not None:
            overall.finish(ok=ok)
    return results


def download_prepared(items: Sequence[PreparedDownload], *, reporter: Reporter | None = None,
                      workers: int | None = None, range_size: int | None = None,
                      task: Task | None = None) -> list[DownloadResult]:
    """Fetch each prepared object into its target: ranged GETs with If-Match, bytes verified
    against the ETag, written to a temporary file and renamed into place (an existing file is
    replaced: what to do with one is the caller's policy). Progress: :func:`download_each`."""
    rep = reporter or NullReporter()
    n_workers = workers or default_workers()

    def fetch(item: PreparedDownload, sub: Task) -> DownloadResult:
        t0 = time.monotonic()
        d = _fetch(item, sub, n_workers, range_size)
        return DownloadResult(
            item.path, item.remote_path, "downloaded", item.info.size, item.info.etag_value,
            item.plan.describe(), time.monotonic() - t0, d.requests, d.retries,
            d.retry_reasons, dict(d.timings))

    def announce(item: PreparedDownload, _: DownloadResult) -> None:
        if item.plan.mode == "none":
            rep.warning(f"Remote S3 dataset for path {item.path}: {item.plan.describe()}")
        rep.info(f"Downloaded remote S3 dataset for path {item.path}")

    return download_each(items, rep, fetch, announce, task)


__all__ = [
    "DownloadResult", "PreparedDownload", "S3Clients", "S3Object", "S3Settings",
    "check_unpack_path", "current_etag", "describe_error", "download_clients",
    "download_each", "download_prepared", "head_etag", "if_match_value", "is_s3_path",
    "make_client", "parse_s3_url", "prepare_download", "verify_remote", "verify_remote_datasets",
    "write_error",
]
