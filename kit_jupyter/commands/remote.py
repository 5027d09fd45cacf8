"""push, pull, login, logout, remote list and remote inspect -- kit's registry commands.

A push copies the exact local bytes (manifest, config, layers) so the registry's digest is the
local one; a pull stores what it fetched the way a local pack would (blobs, ``index.json``,
the repository's index and tags), so a pushed-then-pulled ModelKit is bit for bit the same.
Transfers run ``concurrency`` layers at a time, each with its own progress task, and every
downloaded blob is verified before it is committed to storage.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.commands import results
from kit_jupyter.commands.local import single_reference
from kit_jupyter.commands.results import InspectResult, ListResult
from kit_jupyter.errors import (
    AuthError,
    NotFoundError,
    ReferenceError_,
    RegistryError,
    StorageError,
)
from kit_jupyter.kitfile.reference import display_repository, is_modelkit_reference, parse_reference
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter, Reporter, human_size
from kit_jupyter.transport import credentials
from kit_jupyter.transport.registry import (
    OCI_MANIFEST,
    RegistryClient,
    RegistryOptions,
    make_client,
    manifest_blobs,
)

KIT_CONFIG_TYPE = "application/vnd.kitops.modelkit.config.v1+json"
KIT_ARTIFACT_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
MODELPACK_CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
MODELPACK_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CLI_VERSION_ANNOTATION = "ml.kitops.modelkit.cli-version"
MAX_REFERENCE_CHAIN = 10
_SMALL_BLOB = 16 << 20

Home = str | os.PathLike[str] | None


# -- references -------------------------------------------------------------------------------

def _parse(s: str) -> Any:

    return parse_reference(s)


def ref_string(registry: str, repository: str, reference: str) -> str:
    """oras-go's ``Reference.String()``: ``reg/repo:tag`` or ``reg/repo@digest``."""
    if not reference:
        return f"{registry}/{repository}"
    sep = "@" if ":" in reference else ":"
    return f"{registry}/{repository}{sep}{reference}"


def display(ref_str: str) -> str:
    """kit's FormatRepositoryForDisplay (spec 6.3)."""

    return display_repository(ref_str)


def _is_modelkit_reference(s: str) -> bool:

    return is_modelkit_reference(s)


def _network(home: Home, plain_http: bool, tls_verify: bool | str, concurrency: int) -> Any:

    return RegistryOptions(plain_http=plain_http, tls_verify=tls_verify,
                           concurrency=max(1, int(concurrency)), home=home)


# -- results ----------------------------------------------------------------------------------

class _Result(results.Result):
    """Registry results: kit's lines already went to the reporter while the command ran, so a
    terminal prints nothing more (``text()``); ``summary()`` is the one line a notebook shows."""

    def text(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.summary()


@dataclass
class BlobTransfer:
    """One blob of a push or pull: ``action`` is uploaded/skipped (push) or
    downloaded/present (pull)."""

    digest: str
    media_type: str
    size: int
    action: str

    @property
    def data(self) -> dict[str, Any]:
        return {"digest": self.digest, "mediaType": self.media_type, "size": self.size,
                "action": self.action}


def _blobs_html(blobs: list[BlobTransfer], caption: str) -> str:
    rows = [[b.media_type, b.digest, human_size(b.size), b.action] for b in blobs]
    return results.html_table(["MEDIA TYPE", "DIGEST", "SIZE", ""], rows, caption)


@dataclass(repr=False)
class PushResult(_Result):
    source: str
    destination: str
    digest: str
    blobs: list[BlobTransfer]
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def uploaded(self) -> list[BlobTransfer]:
        return [b for b in self.blobs if b.action == "uploaded"]

    @property
    def skipped(self) -> list[BlobTransfer]:
        return [b for b in self.blobs if b.action == "skipped"]

    @property
    def data(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "digest": self.digest,
                "blobs": [b.data for b in self.blobs]}

    def summary(self) -> str:
        sent = sum(b.size for b in self.uploaded)
        return (f"Pushed {self.digest} to {self.destination} ({len(self.uploaded)} blob(s), "
                f"{human_size(sent)} uploaded, {len(self.skipped)} already present)")

    def _html_body(self) -> str:
        return _blobs_html(self.blobs, self.summary())


@dataclass(repr=False)
class PullResult(_Result):
    reference: str
    digest: str
    repository: str
    tags: list[str]
    blobs: list[BlobTransfer]
    parents: list[PullResult] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def downloaded(self) -> list[BlobTransfer]:
        return [b for b in self.blobs if b.action == "downloaded"]

    @property
    def data(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest,
                "repository": self.repository, "tags": list(self.tags),
                "blobs": [b.data for b in self.blobs],
                "parents": [p.data for p in self.parents]}

    def summary(self) -> str:
        got = sum(b.size for b in self.downloaded)
        return (f"Pulled {self.digest} ({self.reference}; {len(self.downloaded)} blob(s), "
                f"{human_size(got)} downloaded, "
                f"{len(self.blobs) - len(self.downloaded)} already present)")

    def _html_body(self) -> str:
        return _blobs_html(self.blobs, self.summary())


@dataclass(repr=False)
class LoginResult(_Result):
    registry: str
    username: str
    path: str
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def data(self) -> dict[str, Any]:
        return {"registry": self.registry, "username": self.username, "path": self.path}

    def summary(self) -> str:
        return f"Logged in to {self.registry} as {self.username}"


@dataclass(repr=False)
class LogoutResult(_Result):
    registry: str
    removed: bool
    messages: list[tuple[str, str]] = field(default_factory=list)
    reported: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return {"registry": self.registry, "removed": self.removed}

    def summary(self) -> str:
        return f"Successfully logged out from {self.registry}"

    def text(self) -> str:
        # The CLI calls logout without a reporter, so the line is printed from here.
        return "" if self.reported else self.summary()


# -- helpers ----------------------------------------------------------------------------------

def _default_tag(ref: Any, arg: str, what: str, reporter: Reporter) -> str:
    if ref.reference:
        return ref.reference
    reporter.info(f"No tag specified for {what}. Using 'latest' as default ('{arg}:latest')")
    return "latest"


def _label(desc: dict[str, Any]) -> str:
    mt = desc.get("mediaType", "")
    kind = "config" if mt.endswith("config.v1+json") else mt.split("modelkit.")[-1].split(
        ".v1")[0] if "modelkit." in mt else mt.rsplit("/", 1)[-1]
    return f"{kind} {desc['digest'].split(':', 1)[-1][:12]}"


def _parallel(concurrency: int, items: list[Any], fn: Callable[[Any], Any],
              cancel: Callable[[], None] | None = None) -> list[Any]:
    """Run ``fn`` over ``items``, ``concurrency`` at a time. The first failure -- or an
    interrupt in the calling thread -- cancels what has not started and calls ``cancel`` so
    running transfers stop at their next chunk; then the first error is raised."""
    if not items:
        return []
    if concurrency <= 1 or len(items) == 1:
        return [fn(i) for i in items]
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(items)),
                              thread_name_prefix="kit-transfer")
    futures = [pool.submit(fn, i) for i in items]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled()
                  and f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        if cancel is not None:
            cancel()
        raise
    finally:
        pool.shutdown(wait=True)


def _tasks(reporter: Reporter, blobs: list[dict[str, Any]]) -> dict[str, Any]:
    """One progress row per blob to transfer, created up front in the calling thread (widgets
    are made where the kernel runs the cell, and every row shows from the start)."""
    return {b["digest"]: reporter.task(_label(b), int(b["size"])) for b in blobs}


def _run_tasks(concurrency: int, blobs: list[dict[str, Any]], fn: Callable[[Any], Any],
               tasks: dict[str, Any], client: Any) -> None:
    try:
        _parallel(concurrency, blobs, fn, client.cancelled.set)
    except BaseException:
        for t in tasks.values():  # rows of transfers that never started end as failed too
            t.finish(ok=False)
        raise


def _is_model_manifest(manifest: dict[str, Any]) -> bool:
    config_type = (manifest.get("config") or {}).get("mediaType")
    return (manifest.get("artifactType") in (KIT_ARTIFACT_TYPE, MODELPACK_ARTIFACT_TYPE)
            or config_type in (KIT_CONFIG_TYPE, MODELPACK_CONFIG_TYPE))


def _read_small(stream: Any) -> bytes:
    with stream:
        data = stream.read(_SMALL_BLOB + 1)
        if len(data) > _SMALL_BLOB:
            raise RegistryError("config blob is larger than 16 MiB")
        while stream.read(1 << 16):  # drain so the verifying reader checks the digest
            pass
    return data


# -- push -------------------------------------------------------------------------------------

def _open_local(store: Any, blob: dict[str, Any]) -> Any:
    """The local blob file for an upload, size-checked only: the registry verifies the digest
    of every upload (``PUT ?digest=``) and rejects a mismatch, so hashing it here as well would
    only double the CPU on the critical path."""

    try:
        f = open(store.blob_path(blob["digest"]), "rb")  # noqa: SIM115 - closed by the upload
    except FileNotFoundError:
        raise NotFoundError(f"blob {blob['digest']} not found in local storage") from None
    actual = os.fstat(f.fileno()).st_size
    if actual != int(blob["size"]):
        f.close()
        raise StorageError(f"blob {blob['digest']} is corrupt: {actual} bytes, "
                           f"{blob['size']} expected")
    return f


def push(source_ref: str, dest_ref: str | None = None, *, home: Home = None,
         plain_http: bool = False, tls_verify: bool | str = True, concurrency: int = 5,
         reporter: Reporter | None = None) -> PushResult:
    """Upload a ModelKit from local storage to a registry (``kit push SOURCE [DESTINATION]``).

    Blobs the registry already has are not sent again; the manifest's digest in the registry is
    the local one.

    Args:
        source_ref: the local ModelKit, ``registry/repository[:tag]`` (no tag: ``latest``).
        dest_ref: where to push it; default ``source_ref``.
        home: storage root and credentials (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: layers uploaded in parallel (``--concurrency``).
        reporter: receives kit's messages and progress (see ``make_reporter``).

    Returns:
        PushResult: ``digest``, ``destination`` and each blob's ``action`` (uploaded/skipped).
    """

    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    src = _parse(source_ref)
    if src.extra_tags:
        raise ReferenceError_("reference cannot include multiple tags")
    src_tag = _default_tag(src, source_ref, "push", reporter)
    if dest_ref is None:
        dest, dest_tag = src, src_tag
    else:
        dest = _parse(dest_ref)
        if dest.extra_tags:
            raise ReferenceError_("target reference cannot include multiple tags")
        dest_tag = _default_tag(dest, dest_ref, "push target", reporter)
    if dest.registry == "localhost":
        raise ReferenceError_("registry is required when pushing")
    src_str = ref_string(src.registry, src.repository, src_tag)
    dest_str = ref_string(dest.registry, dest.repository, dest_tag)

    store = LocalStore(home)
    desc = store.resolve_descriptor(f"{src.registry}/{src.repository}", src_tag)
    if desc is None:
        raise NotFoundError(f"Failed to push: {display(src_str)} not found in local storage")
    data, manifest = store.read_manifest(desc)
    reporter.info(f"Pushing {src_str} to {dest_str}" if src_str != dest_str
                  else f"Pushing {src_str}")
    opts = _network(home, plain_http, tls_verify, concurrency)

    with make_client(dest.registry, opts) as client:
        client.ping()  # one clear failure before any parallel work
        repo = dest.repository

        blobs = manifest_blobs(manifest)
        try:
            present = _parallel(opts.concurrency, blobs,
                                lambda b: client.blob_exists(repo, b["digest"]),
                                client.cancelled.set)
            missing = [b for b, p in zip(blobs, present, strict=True) if not p]
            tasks = _tasks(reporter, missing)

            def upload(blob: dict[str, Any]) -> None:
                with tasks[blob["digest"]] as task:
                    client.push_blob(repo, blob, lambda: _open_local(store, blob), task)

            _run_tasks(opts.concurrency, missing, upload, tasks, client)
            media_type = desc.get("mediaType") or manifest.get("mediaType") or OCI_MANIFEST
            digest = client.put_manifest(repo, dest_tag, data, media_type)
        except AuthError as exc:
            if exc.status is None:
                raise
            msg = f"Failed to push: got response {exc.status} ({exc.reason}) from remote"
            if exc.status == 401:
                msg += ". Ensure the repository exists and you have push access to it."
            raise AuthError(msg) from None
    if digest != desc["digest"]:  # put_manifest checks the registry; this checks storage
        raise RegistryError(f"pushed manifest digest {digest} differs from local "
                            f"{desc['digest']}")
    reporter.info(f"Pushed {digest}")
    transfers = [BlobTransfer(b["digest"], b.get("mediaType", ""), int(b["size"]),
                              "skipped" if p else "uploaded")
                 for b, p in zip(blobs, present, strict=True)]
    return PushResult(src_str, dest_str, digest, transfers, list(reporter.messages[start:]))


# -- pull -------------------------------------------------------------------------------------

def pull(ref: str, *, home: Home = None, plain_http: bool = False,
         tls_verify: bool | str = True, concurrency: int = 5,
         reporter: Reporter | None = None) -> PullResult:
    """Download a ModelKit from its registry into local storage (``kit pull REF``).

    The ModelKits its ``model.path`` refers to come along; every blob is verified before it is
    stored, and blobs already in storage are not downloaded again.

    Args:
        ref: ``registry/repository[:tag|@digest]`` (no tag: ``latest``).
        home: storage root and credentials (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: layers downloaded in parallel (``--concurrency``).
        reporter: receives kit's messages and progress (see ``make_reporter``).

    Returns:
        PullResult: ``digest``, ``tags``, each blob's ``action`` and the pulled ``parents``.
    """
    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    parsed = _parse(ref)
    if parsed.registry == "localhost":
        raise ReferenceError_("registry is required when pulling")
    if parsed.extra_tags:
        raise ReferenceError_("reference cannot include multiple tags")
    tag = _default_tag(parsed, ref, "pull", reporter)
    opts = _network(home, plain_http, tls_verify, concurrency)
    result = _pull_recursive(parsed.registry, parsed.repository, tag, opts, reporter, [])
    result.messages = list(reporter.messages[start:])
    return result


def _pull_recursive(registry: str, repository: str, tag: str, opts: Any, reporter: Reporter,
                    chain: list[str]) -> PullResult:
    ref_str = ref_string(registry, repository, tag)
    shown = display(ref_str)
    if shown in chain:
        idx = chain.index(shown)
        raise RegistryError("found cycle in modelkit references: "
                            f"[{'=>'.join(chain[idx:])}=>{shown}]")
    chain = [*chain, shown]
    if len(chain) > MAX_REFERENCE_CHAIN:
        raise RegistryError(f"reached maximum number of model references: [{'=>'.join(chain)}]")
    reporter.info(f"Pulling {ref_str}")
    result, config = _pull_one(registry, repository, tag, opts, reporter)
    model_path = ((config or {}).get("model") or {}).get("path") or ""
    if model_path and _is_modelkit_reference(model_path):
        reporter.info(f"Pulling referenced image {model_path}")
        parent = _parse(model_path)
        if parent.registry == "localhost":
            raise RegistryError(f"failed to pull referenced modelkits: {model_path} has no "
                                "registry")
        result.parents.append(_pull_recursive(parent.registry, parent.repository,
                                              parent.reference or "latest", opts, reporter,
                                              chain))
    reporter.info(f"Pulled {result.digest}")
    return result


class _WriteBehind:
    """A file writer that starts flushing to disk (``fdatasync`` in a helper thread, one at a
    time) every 64 MiB, so the fsync that makes the blob durable before it is renamed into
    storage has little left to do instead of writing the whole blob at the end."""

    STEP = 64 << 20

    def __init__(self, f: Any) -> None:
        self._f = f
        self._since = 0
        self._sync: Any = None

    def write(self, data: Any) -> int:
        n = self._f.write(data)
        self._since += len(data)
        if self._since >= self.STEP and (self._sync is None or not self._sync.is_alive()):

            self._since = 0
            self._f.flush()
            self._sync = threading.Thread(target=os.fdatasync, args=(self._f.fileno(),),
                                          name="kit-writeback", daemon=True)
            self._sync.start()
        return n

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(self, *_: Any) -> None:
        if self._sync is not None:
            self._sync.join()


def _download(client: Any, store: Any, repository: str, blob: dict[str, Any], task: Any
              ) -> None:
    """Stream one blob into ``storage/ingest``, verified (digest and size) while it arrives,
    then hand it to storage (fsync + rename). Any failure leaves nothing behind."""

    store.ingest_dir.mkdir(parents=True, exist_ok=True)
    tmp = store.ingest_dir / f"kitjupyter-pull-{secrets.token_hex(8)}"
    try:
        with open(tmp, "xb") as f, _WriteBehind(f) as out:
            client.pull_blob(repository, blob, out, task)
        store.adopt_file(tmp, blob["digest"], int(blob["size"]),
                         blob.get("mediaType", "application/octet-stream"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pull_one(registry: str, repository: str, tag: str, opts: Any, reporter: Reporter
              ) -> tuple[PullResult, dict[str, Any] | None]:

    ref_str = ref_string(registry, repository, tag)
    store = LocalStore(opts.home)
    with make_client(registry, opts) as client:
        try:
            data, media_type, digest = client.get_manifest(repository, tag)
        except NotFoundError:
            raise NotFoundError(f"failed to fetch {ref_str}: not found") from None
        if media_type != OCI_MANIFEST:
            raise RegistryError(f"reference {ref_str} is not an image manifest")
        try:
            manifest = json.loads(data)
        except ValueError:
            raise RegistryError(f"failed to parse manifest of {ref_str}") from None
        if not isinstance(manifest, dict) or not _is_model_manifest(manifest):
            raise RegistryError(f"reference {ref_str} does not refer to a model")

        blobs = manifest_blobs(manifest)
        missing = [b for b in blobs if not store.has_blob(b["digest"])]
        tasks = _tasks(reporter, missing)

        def download(blob: dict[str, Any]) -> None:
            with tasks[blob["digest"]] as task:
                _download(client, store, repository, blob, task)

        _run_tasks(opts.concurrency, missing, download, tasks, client)
    fetched = {b["digest"] for b in missing}
    transfers = [BlobTransfer(b["digest"], b.get("mediaType", "application/octet-stream"),
                              int(b["size"]), "downloaded" if b["digest"] in fetched
                              else "present") for b in blobs]
    tags = [] if ":" in tag else [tag]
    stored = store.add_manifest(f"{registry}/{repository}", data, tags)
    if stored != digest:  # pragma: no cover - get_manifest hashed the same bytes
        raise RegistryError(f"stored manifest digest {stored} differs from {digest}")
    config = None
    cfg_desc = manifest.get("config") or {}
    if cfg_desc.get("mediaType") == KIT_CONFIG_TYPE and int(cfg_desc.get("size", 0)) <= _SMALL_BLOB:
        try:
            config = json.loads(store.read_blob(cfg_desc))
        except ValueError:
            config = None
    return PullResult(ref_str, digest, f"{registry}/{repository}", tags, transfers), config


# -- remote list / inspect --------------------------------------------------------------------

def _remote_modelkit(client: Any, repository: str, ref: str
                     ) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """(digest, manifest, config) of a tag, or None when it is not a ModelKit."""

    data, media_type, digest = client.get_manifest(repository, ref)
    if media_type != OCI_MANIFEST:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    if not isinstance(manifest, dict):
        return None
    cfg_desc = manifest.get("config") or {}
    config = None
    if cfg_desc.get("mediaType") == KIT_CONFIG_TYPE:
        if int(cfg_desc.get("size", 0)) > _SMALL_BLOB:
            raise RegistryError(f"config of {repository}:{ref} is larger than 16 MiB")
        config = json.loads(_read_small(client.open_blob(repository, cfg_desc)))
    return digest, manifest, config


def list_remote(repository: str, *, home: Home = None, plain_http: bool = False,
                tls_verify: bool | str = True, concurrency: int = 5,
                reporter: Reporter | None = None) -> Any:
    """The ModelKits of a registry repository, one row per tag (``kit list REPOSITORY``).

    Tags that are not ModelKits are left out.

    Args:
        repository: ``registry/repository``; with ``:tag`` only that tag is listed.
        home: where credentials are stored (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: tags read in parallel (``--concurrency``).
        reporter: receives kit's messages.

    Returns:
        ListResult: ``models`` in kit's ``--format json`` shape; ``text()`` is kit's table.
    """

    reporter = reporter or NullReporter()
    ref = _parse(repository)
    if ref.registry == "localhost":
        raise ReferenceError_(f"can not list remote: {display(repository)} does not contain "
                              "registry")
    opts = _network(home, plain_http, tls_verify, concurrency)
    models: list[dict[str, Any]] = []
    with make_client(ref.registry, opts) as client:
        tags = [ref.reference] if ref.reference else client.list_tags(ref.repository)

        def one(tag: str) -> dict[str, Any] | None:
            try:
                found = _remote_modelkit(client, ref.repository, tag)
            except NotFoundError:
                if ref.reference:
                    raise NotFoundError(f"failed to resolve reference {tag}: not found in "
                                        f"{ref.registry}/{ref.repository}") from None
                return None  # deleted between listing and reading
            if found is None or found[2] is None:
                return None
            digest, manifest, config = found
            pkg = config.get("package") or {}
            authors = pkg.get("authors") or []
            size = sum(int(x.get("size", 0)) for x in manifest.get("layers") or [])
            return {"repo": ref.repository, "digest": digest, "tags": [tag],
                    "modelName": pkg.get("name") or "<none>",
                    "size": human_size(size),
                    "author": authors[0] if authors else "<none>"}

        for row in _parallel(opts.concurrency, sorted(tags), one):
            if row is not None:
                models.append(row)
    return ListResult(models, list(reporter.messages))


def inspect_remote(ref: str, *, home: Home = None, plain_http: bool = False,
                   tls_verify: bool | str = True, concurrency: int = 5,
                   reporter: Reporter | None = None) -> Any:
    """A ModelKit's manifest and Kitfile read from its registry (``kit inspect -r REF``).

    Nothing is stored locally.

    Args:
        ref: ``registry/repository:tag`` or ``...@digest`` (a tag or digest is required).
        home: where credentials are stored (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: parallel transfers (``--concurrency``).
        reporter: receives kit's messages.

    Returns:
        InspectResult: ``digest``, ``cli_version``, ``kitfile`` and ``manifest``.
    """

    reporter = reporter or NullReporter()
    parsed = single_reference(ref)
    full = ref_string(parsed.registry, parsed.repository, parsed.reference)
    if parsed.registry == "localhost":
        raise ReferenceError_(f"can not check remote: {display(full)} does not contain "
                              "registry")
    opts = _network(home, plain_http, tls_verify, concurrency)
    with make_client(parsed.registry, opts) as client:
        try:
            found = _remote_modelkit(client, parsed.repository, parsed.reference)
        except NotFoundError:
            raise NotFoundError(f"Could not find modelkit {display(full)}") from None
    if found is None:
        raise RegistryError(f"Error resolving modelkit: reference {full} is not a modelkit")
    digest, manifest, config = found
    version = (manifest.get("annotations") or {}).get(CLI_VERSION_ANNOTATION) or "unknown"
    return InspectResult(digest, version, config, manifest, list(reporter.messages))


# -- login / logout ---------------------------------------------------------------------------

def login(registry: str, username: str, password: str, *, home: Home = None,
          plain_http: bool = False, tls_verify: bool | str = True,
          reporter: Reporter | None = None) -> LoginResult:
    """Check credentials against a registry, then store them (``kit login REGISTRY``).

    They are stored in ``credentials.json`` under the storage root, as kit does; nothing is
    stored when the registry refuses them.

    Args:
        registry: the registry host, e.g. ``ghcr.io`` or ``127.0.0.1:5000``.
        username: the user name (``-u``).
        password: the password or token (``-p``); never shown in output or errors.
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        reporter: receives kit's messages.

    Returns:
        LoginResult: ``registry``, ``username`` and the ``path`` of the credentials file.

    Raises:
        AuthError: the registry refused the credentials.
    """

    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    if not username:
        raise AuthError("login: a username is required")
    if not password:
        raise AuthError("login: a password is required")
    creds = credentials.Credentials(username, password)
    with RegistryClient(registry, plain_http=plain_http, tls_verify=tls_verify,
                        credentials=creds, lookup_credentials=False) as client:
        client.ping()
    path = credentials.store(registry, creds, home=home)
    reporter.info("Log in successful")
    return LoginResult(registry, username, str(path), list(reporter.messages[start:]))


def logout(registry: str, *, home: Home = None,
           reporter: Reporter | None = None) -> LogoutResult:
    """Forget the credentials stored for a registry (``kit logout REGISTRY``).

    Docker's own config is left alone.

    Args:
        registry: the registry host.
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives kit's message.

    Returns:
        LogoutResult: ``registry`` and whether credentials were ``removed``.
    """

    removed = credentials.remove(registry, home=home)
    message = f"Successfully logged out from {registry}"
    if reporter is not None:
        reporter.info(message)
    return LogoutResult(registry, removed, [("info", message)], reported=reporter is not None)
