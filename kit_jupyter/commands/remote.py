"""push, pull, login, logout, remote list and remote inspect -- kit's registry commands.

A push copies the exact local bytes (manifest, config, layers) so the registry's digest is the
local one; a pull stores what it fetched the way a local pack would (blobs, ``index.json``,
the repository's index and tags), so a pushed-then-pulled ModelKit is bit for bit the same.
Transfers run ``concurrency`` layers at a time, each with its own progress task, and every
downloaded blob is verified before it is committed to storage.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from kit_jupyter._arguments import COUNT, OPT_PATH, OPT_TEXT, TEXT, arguments
from kit_jupyter._fs import Writeback, syncing_file, temp_path
from kit_jupyter.commands import render, results
from kit_jupyter.commands.chain import parent_path, walk_parents
from kit_jupyter.commands.local import _ref_with_tag, inspect
from kit_jupyter.commands.results import InspectResult, ListResult, list_row
from kit_jupyter.commands.sources import BlobSource, read_kitfile
from kit_jupyter.errors import (
    AuthError,
    KitError,
    NotFoundError,
    ReferenceError_,
    RegistryError,
    StorageError,
)
from kit_jupyter.gocompat.godigest import is_digest
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import (
    Reference,
    check_registry,
    parse_reference,
    without_password,
)
from kit_jupyter.oci.manifest import Descriptor, Manifest, ManifestError
from kit_jupyter.oci.mediatypes import OCI_MANIFEST, format_for_user
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter, Reporter, Task, format_bytes, positioned
from kit_jupyter.transport import credentials
from kit_jupyter.transport.blobinfo import BlobLocations
from kit_jupyter.transport.registry import (
    RANGE_MIN,
    DeleteUnsupported,
    RegistryClient,
    RegistryOptions,
    RemoteSource,
    make_client,
)

Home = str | os.PathLike[str] | None
_T = TypeVar("_T")
_U = TypeVar("_U")


def _network(home: Home, plain_http: bool, tls_verify: bool | str,
             concurrency: int) -> RegistryOptions:
    return RegistryOptions(plain_http=plain_http, tls_verify=tls_verify,
                           concurrency=concurrency, home=home)


# -- results ----------------------------------------------------------------------------------

class _Result(results.Result):
    """Registry results: kit's lines already went to the reporter while the command ran, so a
    terminal prints nothing more (``text()``); ``summary()`` is the one line a notebook shows."""

    _html_messages = False

    def _html_body(self) -> str:
        return results.headline(render.esc(self.summary()))

    def text(self) -> str:
        return ""

    def __str__(self) -> str:
        return self.summary()


@dataclass
class BlobTransfer:
    """One blob of a push or pull: ``action`` is uploaded/mounted/skipped (push) or
    downloaded/present (pull)."""

    digest: str
    media_type: str
    size: int
    action: str

    @property
    def data(self) -> dict[str, Any]:
        return {"digest": self.digest, "mediaType": self.media_type, "size": self.size,
                "action": self.action}


def _blob_records(blobs: list[BlobTransfer]) -> list[dict[str, Any]]:
    return [{"type": results.layer_type(b.media_type), "action": b.action, "size": b.size,
             "digest": b.digest, "mediaType": b.media_type} for b in blobs]


def _blobs_html(blobs: list[BlobTransfer], headline: str) -> str:
    rows = [[r["type"], r["action"], render.size_cell(r["size"]), render.digest_cell(r["digest"])]
            for r in _blob_records(blobs)]
    return (results.headline(render.esc(headline))
            + render.html_table(["TYPE", "", "SIZE", "DIGEST"], rows))


class _TransferResult(_Result):
    """push and pull: what happened to each blob, as a table under the summary."""

    blobs: list[BlobTransfer]

    def with_action(self, action: str) -> list[BlobTransfer]:
        return [b for b in self.blobs if b.action == action]

    def records(self) -> list[dict[str, Any]]:
        return _blob_records(self.blobs)

    def _html_body(self) -> str:
        return _blobs_html(self.blobs, self.summary())


@dataclass(repr=False)
class PushResult(_TransferResult):
    """A ModelKit pushed to a registry (``%kit push``): ``source``, ``destination``, ``digest``,
    ``blobs`` (each with ``action`` uploaded or skipped), ``uploaded`` / ``skipped``.
    ``to_pandas()``: one row per blob."""

    source: str
    destination: str
    digest: str
    blobs: list[BlobTransfer]
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def uploaded(self) -> list[BlobTransfer]:
        return self.with_action("uploaded")

    @property
    def skipped(self) -> list[BlobTransfer]:
        return self.with_action("skipped")

    @property
    def mounted(self) -> list[BlobTransfer]:
        """Linked from another repository of the registry (cross-repository mount)."""
        return self.with_action("mounted")

    @property
    def data(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "digest": self.digest,
                "blobs": [b.data for b in self.blobs]}

    def summary(self) -> str:
        sent = sum(b.size for b in self.uploaded)
        mounted = f", {len(self.mounted)} mounted" if self.mounted else ""
        return (f"Pushed {self.digest} to {self.destination} ({len(self.uploaded)} blob(s), "
                f"{format_bytes(sent)} uploaded{mounted}, {len(self.skipped)} already present)")


@dataclass(repr=False)
class PullResult(_TransferResult):
    """A ModelKit pulled into local storage (``%kit pull``): ``reference``, ``digest``,
    ``repository``, ``tags``, ``blobs`` (each with ``action`` downloaded or present),
    ``parents`` (pulls of the ModelKits it refers to). ``to_pandas()``: one row per blob."""

    reference: str
    digest: str
    repository: str
    tags: list[str]
    blobs: list[BlobTransfer]
    parents: list[PullResult] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def downloaded(self) -> list[BlobTransfer]:
        return self.with_action("downloaded")

    @property
    def data(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest,
                "repository": self.repository, "tags": list(self.tags),
                "blobs": [b.data for b in self.blobs],
                "parents": [p.data for p in self.parents]}

    def summary(self) -> str:
        got = sum(b.size for b in self.downloaded)
        return (f"Pulled {self.digest} ({self.reference}; {len(self.downloaded)} blob(s), "
                f"{format_bytes(got)} downloaded, "
                f"{len(self.blobs) - len(self.downloaded)} already present)")


@dataclass(repr=False)
class LoginResult(_Result):
    """Credentials checked and stored (``%kit login``): ``registry``, ``username``, ``path`` of
    the credentials file (the password is never kept here)."""

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
    """Stored credentials forgotten (``%kit logout``): ``registry``, ``removed`` (whether there
    were any)."""

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

def _default_tag(ref: Reference, arg: str, what: str, reporter: Reporter) -> str:
    if ref.reference:
        return ref.reference
    reporter.info(f"No tag specified for {what}. Using 'latest' as default ('{arg}:latest')")
    return "latest"


def _label(desc: Descriptor) -> str:
    """A progress row's name: kit's word for the blob and the start of its digest."""
    return f"{format_for_user(desc.media_type)} {desc.digest.split(':', 1)[-1][:12]}"


def _parallel(concurrency: int, items: Sequence[_T], fn: Callable[[_T], _U],
              cancel: Callable[[], None] | None = None) -> list[_U]:
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
        for f in futures:
            error = f.exception() if f.done() and not f.cancelled() else None
            if error is not None:
                raise error
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        if cancel is not None:
            cancel()
        raise
    finally:
        pool.shutdown(wait=True)


def _tasks(reporter: Reporter, blobs: list[Descriptor]) -> dict[str, Task]:
    """One progress row per blob to transfer, created up front in the calling thread (widgets
    are made where the kernel runs the cell, and every row shows from the start)."""
    return {b.digest: reporter.task(positioned(_label(b), "blob", i, len(blobs)), b.size)
            for i, b in enumerate(blobs, 1)}


def _run_tasks(concurrency: int, blobs: list[Descriptor], fn: Callable[[Descriptor], None],
               tasks: dict[str, Task], client: RegistryClient) -> None:
    try:
        _parallel(concurrency, blobs, fn, client.cancelled.set)
    except BaseException:
        for t in tasks.values():  # rows of transfers that never started end as failed too
            t.finish(ok=False)
        raise


# -- push -------------------------------------------------------------------------------------

def _open_local(store: LocalStore, blob: Descriptor) -> BinaryIO:
    """The local blob file for an upload, size-checked only: the registry verifies the digest
    of every upload (``PUT ?digest=``) and rejects a mismatch, so hashing it here as well would
    only double the CPU on the critical path."""
    try:
        f = open(store.blob_path(blob.digest), "rb")  # noqa: SIM115 - closed by the upload
    except FileNotFoundError:
        raise NotFoundError(f"blob {blob.digest} not found in local storage") from None
    actual = os.fstat(f.fileno()).st_size
    if actual != blob.size:
        f.close()
        raise StorageError(f"blob {blob.digest} is corrupt: {actual} bytes, "
                           f"{blob.size} expected")
    return f


def _push_references(source_ref: str, dest_ref: str | None,
                     reporter: Reporter) -> tuple[Reference, Reference]:
    """``push``'s source and destination with kit's checks and its default tag (``latest``,
    with kit's line saying so); the destination is the source when none is given."""
    src = parse_reference(source_ref)
    if src.extra_tags:
        raise ReferenceError_("reference cannot include multiple tags")
    src = Reference(src.registry, src.repository,
                    _default_tag(src, source_ref, "push", reporter))
    if dest_ref is None:
        dest = src
    else:
        dest = parse_reference(dest_ref)
        if dest.extra_tags:
            raise ReferenceError_("target reference cannot include multiple tags")
        dest = Reference(dest.registry, dest.repository,
                         _default_tag(dest, dest_ref, "push target", reporter))
    if dest.registry == "localhost":
        raise ReferenceError_("registry is required when pushing")
    return src, dest


@arguments(source_ref=TEXT, dest_ref=OPT_TEXT, home=OPT_PATH, concurrency=COUNT)
def push(source_ref: str, dest_ref: str | None = None, *, home: Home = None,
         plain_http: bool = False, tls_verify: bool | str = True, concurrency: int = 5,
         reporter: Reporter | None = None) -> PushResult:
    """Upload a ModelKit from local storage to a registry (``kit push SOURCE [DESTINATION]``).

    Blobs the registry already has are not sent again, and blobs known to be in another
    repository of the same registry (pushed or pulled before) are mounted from there instead of
    uploaded; the manifest's digest in the registry is the local one.

    Args:
        source_ref: the local ModelKit, ``registry/repository[:tag]`` (no tag: ``latest``).
        dest_ref: where to push it; default ``source_ref``.
        home: storage root and credentials (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: layers uploaded in parallel (``--concurrency``).
        reporter: receives kit's messages and progress (see ``make_reporter``).

    Returns:
        PushResult: ``digest``, ``destination`` and each blob's ``action``
        (uploaded/mounted/skipped).
    """

    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    src, dest = _push_references(source_ref, dest_ref, reporter)
    store = LocalStore(home)
    desc = store.resolve_descriptor(src.repo_key, src.reference)
    if desc is None:
        raise NotFoundError(f"Failed to push: {src.display()} not found in local storage")
    manifest = store.read_manifest(desc)
    reporter.info(f"Pushing {src} to {dest}" if src != dest else f"Pushing {src}")
    opts = _network(home, plain_http, tls_verify, concurrency)
    locations = BlobLocations(home)

    with make_client(dest.registry, opts) as client:
        client.ping()  # one clear failure before any parallel work
        repo = dest.repository

        blobs = manifest.blobs()
        try:
            present = _parallel(opts.concurrency, blobs,
                                lambda b: client.blob_exists(repo, b.digest),
                                client.cancelled.set)
            missing = [b for b, p in zip(blobs, present, strict=True) if not p]
            tasks = _tasks(reporter, missing)
            mounted: set[str] = set()
            denied: set[str] = set()

            def upload(blob: Descriptor) -> None:
                with tasks[blob.digest] as task:
                    if _mount(client, locations, dest, blob.digest, denied):
                        mounted.add(blob.digest)
                        task.advance(blob.size)
                        return
                    client.push_blob(repo, blob, lambda: _open_local(store, blob), task)

            _run_tasks(opts.concurrency, missing, upload, tasks, client)
            media_type = desc.media_type or manifest.media_type or OCI_MANIFEST
            digest = client.put_manifest(repo, dest.reference, manifest.raw, media_type)
        except AuthError as exc:
            if exc.status is None:
                raise
            msg = f"Failed to push: got response {exc.status} ({exc.reason}) from remote"
            if exc.status == 401:
                msg += ". Ensure the repository exists and you have push access to it."
            raise AuthError(msg) from None
    if digest != desc.digest:  # put_manifest checks the registry; this checks storage
        raise RegistryError(f"pushed manifest digest {digest} differs from local "
                            f"{desc.digest}")
    reporter.info(f"Pushed {digest}")
    locations.record(dest.registry, dest.repository, [b.digest for b in blobs])
    transfers = [BlobTransfer(b.digest, b.media_type, b.size, "skipped" if p else
                              "mounted" if b.digest in mounted else "uploaded")
                 for b, p in zip(blobs, present, strict=True)]
    return PushResult(str(src), str(dest), digest, transfers, list(reporter.messages[start:]))


def _mount(client: RegistryClient, locations: BlobLocations, dest: Reference, digest: str,
           denied: set[str]) -> bool:
    """Link the blob from a repository of the same registry that is known to hold it
    (:mod:`kit_jupyter.transport.blobinfo`) instead of uploading it; False: upload it. A source
    that no longer has the blob is forgotten; one these credentials cannot read is not asked
    again during this push."""
    for source in locations.sources(dest.registry, digest, exclude=dest.repository):
        if source in denied:
            continue
        outcome = client.mount_blob(dest.repository, digest, source)
        if outcome == "mounted":
            return True
        if outcome == "denied":
            denied.add(source)
        else:
            locations.forget(dest.registry, source, digest)
    return False


# -- pull -------------------------------------------------------------------------------------

@arguments(ref=TEXT, home=OPT_PATH, concurrency=COUNT)
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
    parsed = parse_reference(ref)
    if parsed.registry == "localhost":
        raise ReferenceError_("registry is required when pulling")
    if parsed.extra_tags:
        raise ReferenceError_("reference cannot include multiple tags")
    target = Reference(parsed.registry, parsed.repository,
                       _default_tag(parsed, ref, "pull", reporter))
    opts = _network(home, plain_http, tls_verify, concurrency)
    store = LocalStore(opts.home)
    reporter.info(f"Pulling {target}")
    result, manifest = _pull_one(target, opts, reporter, store)
    kitfile = read_kitfile(store, manifest)
    if kitfile is not None and parent_path(kitfile):
        _pull_parents(result, kitfile, opts, reporter, store, start=target.display())
    reporter.info(f"Pulled {result.digest}")
    result.messages = list(reporter.messages[start:])
    return result


def _pull_parents(result: PullResult, kitfile: Kitfile, opts: RegistryOptions,
                  reporter: Reporter, store: LocalStore, *, start: str) -> None:
    """kit's ``pullParents``: each parent ModelKit is pulled in turn (and read back from
    storage to find the next), each result nested in its child's ``parents``. A failure at
    the n-th parent says ``failed to pull referenced modelkits: `` n times, as kit's
    recursion wraps it once per level (``[x=>y=>x]`` fails at the second parent: twice)."""
    child = result
    depth = 0

    def resolve(ref: Reference) -> tuple[BlobSource, Manifest]:
        nonlocal child
        if ref.registry == "localhost":
            raise RegistryError(f"{ref.display()} has no registry")
        pulled, manifest = _pull_one(ref, opts, reporter, store)
        child.parents.append(pulled)
        child = pulled
        return store, manifest

    def announce(path: str) -> None:
        nonlocal depth
        depth += 1
        reporter.info(f"Pulling referenced image {path}")

    try:
        with contextlib.ExitStack() as stack:
            for _ in walk_parents(kitfile, resolve, stack, start=start, announce=announce,
                                  form="display", strict_start=True):
                pass
    except KitError as exc:
        raise RegistryError("failed to pull referenced modelkits: " * depth + str(exc)) \
            from None


class _WriteBehind:
    """A file writer that starts writeback (:class:`kit_jupyter._fs.Writeback`) of every
    ``WRITEBACK_STEP`` written, so the fsync that makes the blob durable before it is renamed
    into storage has little left to do instead of writing the whole blob at the end."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._written = 0
        self._writeback = Writeback(f.fileno(), before=f.flush)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._f.write(data)
        self._written += len(data)
        self._writeback.wrote(self._written)
        return n

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def _download(client: RegistryClient, store: LocalStore, repository: str, blob: Descriptor,
              task: Task) -> None:
    """Download one blob into ``storage/ingest``, verified (digest and size) while it arrives,
    then hand it to storage (fsync + rename). A blob of ``RANGE_MIN`` bytes or more comes as
    concurrent ranged GETs (:meth:`RegistryClient.pull_blob_ranged`), a smaller one -- or any
    from a registry that ignores ranges -- as one stream. Any failure leaves nothing behind."""
    store.ingest_dir.mkdir(parents=True, exist_ok=True)
    # owner-tagged: a pull killed mid-blob leaves a file the next pack or pull (or
    # ``cache clear``) sweeps, where a random name would stay forever
    tmp = temp_path(store.ingest_dir, "kitjupyter-pull-")
    try:
        # read-write: the ranged path hashes what it wrote, read back from the page cache
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        with open(fd, "r+b") as f, syncing_file(fd):  # flushed as it arrives
            if not (blob.size >= RANGE_MIN
                    and client.pull_blob_ranged(repository, blob, f.fileno(), task)):
                with _WriteBehind(f) as out:
                    client.pull_blob(repository, blob, out, task)
        store.adopt_file(tmp, blob.digest, blob.size, blob.media_type)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fetch_modelkit(client: RegistryClient, ref: Reference) -> Manifest:
    """kit's ``referenceIsModel`` before a pull: an image manifest, and a ModelKit's."""
    try:
        data, media_type, _ = client.get_manifest(ref.repository, ref.reference)
    except NotFoundError:
        raise NotFoundError(f"failed to fetch {ref}: not found") from None
    if media_type != OCI_MANIFEST:
        raise RegistryError(f"reference {ref} is not an image manifest")
    try:
        manifest = Manifest.parse(data, f"manifest of {ref}")
    except ManifestError as exc:
        raise RegistryError(f"failed to parse {exc}") from None
    if not manifest.is_modelkit:
        raise RegistryError(f"reference {ref} does not refer to a model")
    return manifest


def _pull_one(ref: Reference, opts: RegistryOptions, reporter: Reporter, store: LocalStore
              ) -> tuple[PullResult, Manifest]:
    """One ModelKit into storage: every missing blob downloaded and verified, then the
    manifest recorded (with its tag). The blobs found stored and those downloaded are pinned
    until the manifest is listed (:meth:`LocalStore.pinning`): a remove in another process
    meanwhile keeps them."""
    with store.pinning():
        with make_client(ref.registry, opts, warn=reporter.warning) as client:
            manifest = _fetch_modelkit(client, ref)
            blobs = manifest.blobs()
            present = store.hold(b.digest for b in blobs)
            missing = [b for b in blobs if b.digest not in present]
            tasks = _tasks(reporter, missing)  # hold() took the lock: leftovers are swept

            def download(blob: Descriptor) -> None:
                with tasks[blob.digest] as task:
                    _download(client, store, ref.repository, blob, task)

            _run_tasks(opts.concurrency, missing, download, tasks, client)
        BlobLocations(opts.home).record(ref.registry, ref.repository,
                                        [b.digest for b in blobs])
        fetched = {b.digest for b in missing}
        transfers = [BlobTransfer(b.digest, b.media_type or "application/octet-stream",
                                  b.size, "downloaded" if b.digest in fetched else "present")
                     for b in blobs]
        tags = [] if ref.digest else [ref.reference]
        stored = store.add_manifest(ref.repo_key, manifest, tags)
    if stored != manifest.digest:  # pragma: no cover - the same bytes, hashed twice
        raise RegistryError(f"stored manifest digest {stored} differs from {manifest.digest}")
    return PullResult(str(ref), manifest.digest, ref.repo_key, tags, transfers), manifest


# -- remote list / inspect --------------------------------------------------------------------

def _remote_modelkit(client: RegistryClient, ref: Reference
                     ) -> tuple[Manifest, Kitfile | None] | None:
    """The manifest and Kitfile of a tag, or None when it is not a ModelKit."""
    data, media_type, _ = client.get_manifest(ref.repository, ref.reference)
    if media_type != OCI_MANIFEST:
        return None
    manifest = Manifest.parse(data, f"manifest of {ref}")
    if not manifest.is_modelkit:
        return None
    return manifest, read_kitfile(RemoteSource(ref, client=client), manifest)


@arguments(repository=TEXT, home=OPT_PATH, concurrency=COUNT)
def list_remote(repository: str, *, home: Home = None, plain_http: bool = False,
                tls_verify: bool | str = True, concurrency: int = 5,
                reporter: Reporter | None = None) -> ListResult:
    """The ModelKits of a registry repository, one row per tag (``kit list REPOSITORY``).

    Tags that are not ModelKits are left out; one that cannot be read is skipped with a
    warning.

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
    ref = parse_reference(repository)
    if ref.registry == "localhost":
        raise ReferenceError_(f"can not list remote: {ref.display()} does not contain "
                              "registry")
    opts = _network(home, plain_http, tls_verify, concurrency)
    models: list[dict[str, Any]] = []
    with make_client(ref.registry, opts, warn=reporter.warning) as client:
        tags = [ref.reference] if ref.reference else client.list_tags(ref.repository)

        def one(tag: str) -> dict[str, Any] | None:
            tagged = Reference(ref.registry, ref.repository, tag)
            try:
                found = _remote_modelkit(client, tagged)
            except NotFoundError:
                if ref.reference:
                    raise NotFoundError(f"failed to resolve reference {tag}: not found in "
                                        f"{ref.repo_key}") from None
                return None  # deleted between listing and reading
            except KitError as exc:
                if isinstance(exc, RegistryError):  # the registry, not this ModelKit
                    raise
                reporter.warning(f"Skipping {tagged}: {exc}")
                return None
            if found is None:
                return None
            manifest, kitfile = found
            return list_row(ref.repository, manifest.digest, [tag], kitfile, manifest)

        for row in _parallel(opts.concurrency, sorted(tags), one):
            if row is not None:
                models.append(row)
    return ListResult(models, list(reporter.messages))


@arguments(ref=TEXT, home=OPT_PATH, concurrency=COUNT)
def inspect_remote(ref: str, *, home: Home = None, plain_http: bool = False,
                   tls_verify: bool | str = True, concurrency: int = 5,
                   reporter: Reporter | None = None) -> InspectResult:
    """A ModelKit's manifest and Kitfile read from its registry (``kit inspect -r REF``).

    Nothing is stored locally. kit reads both places the same way, so this is
    :func:`~kit_jupyter.commands.local.inspect` with ``remote=True``.

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
    return inspect(ref, home=home, remote=True, reporter=reporter, plain_http=plain_http,
                   tls_verify=tls_verify, concurrency=concurrency)


# -- login / logout ---------------------------------------------------------------------------

@arguments(registry=TEXT, username=TEXT, password=TEXT, home=OPT_PATH)
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
        RegistryError: ``registry`` is no host[:port] (kit's ``could not resolve registry``),
            or the registry could not be reached.
    """

    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    if not username:
        raise AuthError("login: a username is required")
    if not password:
        raise AuthError("login: a password is required")
    try:
        check_registry(registry)  # oras NewRegistry, before anything is sent
    except ReferenceError_ as exc:
        raise RegistryError(f"could not resolve registry {without_password(registry)}: "
                            f"{exc}") from None
    creds = credentials.Credentials(username, password)
    with RegistryClient(registry, plain_http=plain_http, tls_verify=tls_verify,
                        credentials=creds, lookup_credentials=False) as client:
        client.ping()
    path = credentials.store(registry, creds, home=home)
    reporter.info("Log in successful")
    return LoginResult(registry, username, str(path), list(reporter.messages[start:]))


@arguments(registry=TEXT, home=OPT_PATH)
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
    shown = without_password(registry)  # the result is shown and kept in the notebook
    message = f"Successfully logged out from {shown}"
    if reporter is not None:
        reporter.info(message)
    return LogoutResult(shown, removed, [("info", message)], reported=reporter is not None)


# -- remove --remote ------------------------------------------------------------------------

@arguments(ref=TEXT, home=OPT_PATH)
def remove_remote(ref: str, *, force: bool = False, home: Home = None,
                  plain_http: bool = False, tls_verify: bool | str = True,
                  reporter: Reporter | None = None) -> results.RemoveResult:
    """Remove a ModelKit or a tag from its registry (``kit remove --remote REF``).

    As kit's ``removeRemoteModel``: a tag without ``force`` is only untagged (the registry is
    trusted to prune what is left untagged); a digest, or ``force``, deletes the manifest, which
    removes every tag that points to it. Local storage is not touched.

    Args:
        ref: ``registry/repository:tag`` or ``registry/repository@digest``.
        force: delete the manifest a tag points to, with all its tags (``-f``).
        home: credentials (``--config``); default ``$KITOPS_HOME``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        reporter: receives kit's messages.

    Returns:
        RemoveResult: one entry, ``action`` ``untagged`` or ``removed``.
    """
    live = reporter is not None  # its messages are seen as they come
    reporter = reporter or NullReporter()
    start = len(reporter.messages)
    parsed = _ref_with_tag(ref, f"tag or digest is required when removing ({ref}:<tag>)")
    if parsed.extra_tags:
        raise ReferenceError_("Invalid arguments: --remote removes one tag or digest at a time")
    target = Reference(parsed.registry, parsed.repository, parsed.reference)
    with make_client(parsed.registry, _network(home, plain_http, tls_verify, 1)) as client:
        try:
            _, _, digest = client.get_manifest(parsed.repository, parsed.reference)
        except NotFoundError:
            raise NotFoundError(f"model {target.display()} not found") from None
        except RegistryError as exc:
            raise RegistryError(f"error resolving modelkit: {exc}") from None
        if not is_digest(parsed.reference) and not force:
            reporter.info(f"Untagging remote ModelKit {target.display()}")
            try:
                client.delete_manifest(parsed.repository, parsed.reference)
            except RegistryError as exc:
                raise RegistryError(f"failed to untag ModelKit in remote: {exc}") from None
            action = "untagged"
        else:
            shown = Reference(parsed.registry, parsed.repository, digest).display()
            reporter.info(f"Deleting remote ModelKit {shown}")
            try:
                client.delete_manifest(parsed.repository, digest)
            except DeleteUnsupported:
                raise RegistryError("removing models is unsupported by registry "
                                    f"{parsed.registry}") from None
            except RegistryError as exc:
                raise RegistryError(f"failed to remove remote model: {exc}") from None
            action = "removed"
    removed = [{"reference": target.display(), "digest": digest, "action": action}]
    return results.RemoveResult(removed=removed, messages=list(reporter.messages[start:]),
                                shown=live)
