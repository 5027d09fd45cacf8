"""``unpack``: a ModelKit's Kitfile and layers into a directory, with kit's rules (spec §11).

Each Kitfile entry finds its layer by digest (the newest kit's unpack plan, :func:`unpack_plan`;
by position within each layer type for Kitfiles from before digests), and only the blobs the
filters select are fetched. Reading and
writing the layers is :mod:`kit_jupyter.oci.extract` (one tar reader for every blob, verified
before anything is published); this module decides what to unpack where. The whole unpack --
Kitfile, parent ModelKit, every layer -- is one :class:`~kit_jupyter.oci.extract.Extraction`:
files are renamed into place only after every blob verified, and a refused or interrupted
unpack leaves nothing behind, not even the directories it created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import posixpath
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kit_jupyter._arguments import COUNT, OPT_PATH, PATH, TEXT, VALUES, arguments
from kit_jupyter._fs import make_dirs, remove_dirs
from kit_jupyter.commands.chain import (
    DatasetModelKit,
    parent_path,
    walk_dataset_modelkits,
    walk_parents,
)
from kit_jupyter.commands.results import UnpackResult
from kit_jupyter.commands.sources import (
    BlobSource,
    close_source,
    generated_kitfile,
    open_and_resolve,
    open_source,
    read_kitfile,
    resolve_in,
)
from kit_jupyter.errors import (
    ExistingPathError,
    KitError,
    RemoteDatasetError,
    UnpackError,
)
from kit_jupyter.gocompat.gojson import unmarshal
from kit_jupyter.kitfile.filters import Filter, matches, parse_filters, restrict
from kit_jupyter.kitfile.model import Kitfile, RemoteDataset
from kit_jupyter.kitfile.reference import (
    Reference,
    default_tag_message,
    is_modelkit_reference,
    parse_reference,
)
from kit_jupyter.oci.extract import Extraction, FileInput, StreamInput, layer_input
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_FILE_METADATA,
    ANNOTATION_FILEPATH,
    ANNOTATION_LAYER_SUBTYPE,
    LAYER_SUBTYPE_PROMPT,
    MediaType,
    MediaTypeError,
    parse_media_type,
)
from kit_jupyter.reporting import NullReporter, Reporter, positioned
from kit_jupyter.transport.registry import RegistryOptions
from kit_jupyter.transport.remote_cache import RemoteCache, download_through_cache
from kit_jupyter.transport.s3 import (
    DownloadResult,
    PreparedDownload,
    S3Object,
    check_unpack_path,
    download_clients,
    parse_s3_url,
    prepare_download,
)


@arguments(ref=TEXT, dir=PATH, filters=VALUES, home=OPT_PATH, concurrency=COUNT)
def unpack(ref: str, *, dir: str | os.PathLike[str] = ".",  # noqa: A002 - kit's flag name
           overwrite: bool = False, ignore_existing: bool = False,
           filters: Sequence[str | Filter] = (), include_remote: bool = False,
           home: str | os.PathLike[str] | None = None, source: BlobSource | None = None,
           reporter: Reporter | None = None, env: Mapping[str, str] | None = None,
           plain_http: bool = False, tls_verify: bool | str = True,
           concurrency: int = 5, remote_cache: bool = True) -> UnpackResult:
    """Extract a ModelKit's Kitfile and layers into a directory (``kit unpack REF``).

    The ModelKit is read from local storage when it is there, else streamed from its registry
    (nothing is saved locally); every blob is verified against its digest.

    Args:
        ref: ``[registry/]repository[:tag|@digest]``; no tag means ``latest``.
        dir: target directory, created if missing (``-d``).
        overwrite: replace files that already exist (``-o``); otherwise an existing file is an
            error.
        ignore_existing: skip files that already exist (``-i``).
        filters: kit's ``--filter`` strings, e.g. ``["model", "datasets:train"]``.
        include_remote: also download S3 remote datasets, verified against their ETag, and
            unpack the datasets of the ModelKits that datasets refer to into those datasets'
            paths (``--include-remote``).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        source: read blobs from this source instead of local storage or the registry.
        reporter: receives kit's messages and progress (see ``make_reporter``).
        env: environment for S3 settings (``S3_API_ENDPOINT`` ...) and the remote-dataset
            cache's (``KIT_JUPYTER_REMOTE_CACHE``, ``..._MAX``); default ``os.environ``.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle
            (``--tls-verify``).
        concurrency: parallel registry transfers (``--concurrency``).
        remote_cache: keep remote datasets in the shared cache under ``$KITOPS_HOME/cache`` and
            copy them from there on the next unpack (``--no-cache``: False; see
            :mod:`kit_jupyter.transport.remote_cache`).

    Returns:
        UnpackResult: the digest, the directory, the files of each layer and the remote datasets.
    """
    rep = reporter if reporter is not None else NullReporter()
    start = len(rep.messages)
    parsed = parse_reference(ref)
    if not parsed.reference:

        parsed, _ = parsed.with_default_tag()
        rep.info(default_tag_message("unpack", parsed))
    if parsed.extra_tags:
        raise KitError("can not unpack multiple tags")
    flts = parse_filters(filters)
    target = Path(dir).expanduser().absolute()
    with Extraction(target, overwrite=overwrite, ignore_existing=ignore_existing,
                    keep_journal=True) as tx:
        # said once the reference has resolved (and a failure removes what Extraction created)
        ctx = _Unpack(tx=tx, home=home, reporter=rep, include_remote=include_remote,
                      on_resolved=lambda: rep.info(f"Unpacking to {target}"),
                      registry_options=RegistryOptions(plain_http=plain_http,
                                                       tls_verify=tls_verify,
                                                       concurrency=concurrency, home=home))
        digest, kf, layers, kitfile_path = ctx.run(parsed, flts, source)
    download = functools.partial(unpack_remote_datasets, overwrite=overwrite,
                                 ignore_existing=ignore_existing, reporter=rep, env=env,
                                 home=home, cache=remote_cache, journal=tx)
    try:
        remote = download(kf, target, include_remote=include_remote, filters=flts)
        for node in ctx.dataset_modelkits:  # S3 datasets of the referenced ModelKits
            remote += [dataclasses.replace(r, path=posixpath.join(node.path, r.path))
                       for r in download(node.kitfile, target / node.path,
                                         include_remote=True, filters=node.filters)]
    finally:
        tx.release()
    remote = _in_kitfile_order(kf, [*ctx.referenced, *remote])
    return UnpackResult(reference=parsed.display(), digest=digest, directory=str(target),
                        kitfile_path=kitfile_path, layers=layers, remote=remote,
                        messages=list(rep.messages[start:]))


# --------------------------------------------------------------------------------------------
# filters and the remote-dataset hook (other modules; imported lazily)


def _in_kitfile_order(kf: Kitfile, results: list[DownloadResult]) -> list[DownloadResult]:
    """Remote datasets as the Kitfile lists them; those of referenced ModelKits follow."""
    order = {d.path: i for i, d in enumerate(kf.datasets)}
    return sorted(results, key=lambda r: order.get(r.path, len(order)))


WARN_NOT_INCLUDED = ("ModelKit contains remote datasets. "
                     "To unpack, specify the --include-remote flag")


def unpack_remote_datasets(kf: Kitfile | None, target: Path, *, include_remote: bool,
                           filters: Sequence[Filter] = (), overwrite: bool = False,
                           ignore_existing: bool = False, reporter: Reporter | None = None,
                           env: Mapping[str, str] | None = None, workers: int | None = None,
                           range_size: int | None = None,
                           home: str | os.PathLike[str] | None = None,
                           cache: bool = True,
                           journal: Extraction | None = None) -> list[DownloadResult]:
    """The last step of unpack (spec §12.4/§12.5): the S3 remote datasets the filters select,
    with kit's existing-file rules. Every path, existing-file and HEAD check runs before the
    first byte is downloaded, so a problem with the third dataset does not leave the first two
    half done. Without ``include_remote`` every selected remote dataset, S3 or ModelKit
    reference, is reported ``not-included`` under kit's one warning; with it, ModelKit-reference
    datasets are not this step's business (``_Unpack`` unpacked them with the layers). With
    ``cache`` (and unless ``KIT_JUPYTER_REMOTE_CACHE=off``) objects go through the
    shared cache under ``home`` (:mod:`kit_jupyter.transport.remote_cache`). ``journal`` is the
    unpack's :class:`~kit_jupyter.oci.extract.Extraction`: a file a killed unpack downloaded
    is kept if it matches its ETag and replaced if not (never refused as existing), and every
    download is named in the journal before it starts."""
    rep = reporter if reporter is not None else NullReporter()
    selected = [d for d in (kf.remote_datasets() if kf is not None else [])
                if matches(list(filters), "dataset", d.name, d.path)]
    if not selected:
        return []
    if not include_remote:
        rep.warning(WARN_NOT_INCLUDED)
        return [DownloadResult(d.path, d.remote_path, "not-included") for d in selected]
    wanted: list[tuple[RemoteDataset, S3Object, Path, bool]] = []
    for d in selected:
        if is_modelkit_reference(d.remote_path):
            continue
        try:
            obj = parse_s3_url(d.remote_path, d.remote_hash)
        except RemoteDatasetError as e:
            raise RemoteDatasetError(
                f"failed to parse S3 object reference for dataset {d.path}: {e}") from None
        try:
            file = check_unpack_path(d.path, target)
        except ValueError as e:
            raise UnpackError(f"error verifying path {d.path} for remote reference: {e}") from None
        wanted.append((d, obj, file, _existing_file(file, d.path)))
    if not wanted:
        return []
    clients = download_clients(env, workers=workers)
    shared = RemoteCache.open(home, env) if cache else None
    done: dict[int, DownloadResult] = {}
    todo: list[tuple[int, PreparedDownload]] = []
    for n, (d, obj, file, exists) in enumerate(wanted):
        left_by_killed = exists and journal is not None and journal.left_by_killed(file)
        if exists and ignore_existing and not left_by_killed:
            done[n] = DownloadResult(d.path, d.remote_path, "skipped-existing")
            rep.info(f"Path {d.path} already exists; skipping remote dataset {d.remote_path} "
                     f"(--ignore-existing)")
            continue
        item = prepare_download(clients, obj, d.remote_hash, file, dataset_path=d.path,
                                head_part=exists or shared is None)  # a cache hit: one HEAD
        if exists:
            if item.up_to_date(workers):
                done[n] = item.result("up-to-date")
                rep.info(f"Remote S3 dataset for path {d.path} is up to date (existing file "
                         f"matches ETag {item.info.etag_value}); not downloaded again")
                continue
            if not overwrite and not left_by_killed:
                raise ExistingPathError(
                    f"failed to unpack remote dataset: path '{d.path}' already exists")
        todo.append((n, item))
    made: list[str] = []  # directories made for the datasets: gone again if they fail
    try:
        for _, it in todo:
            made += _dataset_dirs(it.target.parent, target)
        if journal is not None and todo:
            journal.record([it.target for _, it in todo])
        fetched = download_through_cache([it for _, it in todo], cache=shared, reporter=rep,
                                         workers=workers, range_size=range_size)
    except BaseException:
        remove_dirs(made)
        raise
    done.update(zip([n for n, _ in todo], fetched, strict=True))
    return [done[n] for n in sorted(done)]


def _dataset_dirs(directory: Path, target: Path) -> list[str]:
    """Make the directory a remote dataset goes to (before any download starts: something in
    the way fails the unpack with one line naming it); returns what was made."""
    try:
        return make_dirs(directory)
    except OSError as exc:
        where = os.path.relpath(exc.filename, target) if exc.filename else str(directory)
        raise UnpackError(f"failed to create directory {where}: {exc.strerror}") from None


def _existing_file(target: Path, path: str) -> bool:
    """Whether a remote dataset's target exists; only a regular file may be there."""
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise UnpackError(f"failed to unpack remote dataset: path '{path}': a parent already "
                          "exists and is not a directory") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnpackError(f"failed to unpack remote dataset: path '{path}' already exists and is "
                          f"not a regular file")
    return True


# --------------------------------------------------------------------------------------------
# the unpack itself


class _Unpack:
    def __init__(self, *, tx: Extraction, home: str | os.PathLike[str] | None, reporter: Reporter,
                 registry_options: RegistryOptions, include_remote: bool = False,
                 on_resolved: Callable[[], None] | None = None):
        self.on_resolved = on_resolved  # called once, when the top reference has resolved
        self.tx = tx
        self.target = tx.target
        self.overwrite = tx.overwrite
        self.home = home
        self.reporter = reporter
        self.registry_options = registry_options
        self.include_remote = include_remote
        self.dataset_modelkits: list[DatasetModelKit] = []  # every one unpacked, nested too
        self.referenced: list[DownloadResult] = []  # one per dataset of the top ModelKit
        self.referenced_layers: list[dict[str, Any]] = []  # what those brought, where it went

    def run(self, ref: Reference, filters: list[Filter], source: BlobSource | None
            ) -> tuple[str, Kitfile, list[dict[str, Any]], str | None]:
        if source is not None:
            return self._run_with(source, ref, filters)
        src = open_source(ref, home=self.home, registry_options=self.registry_options,
                          warn=self.reporter.warning)
        try:
            return self._run_with(src, ref, filters)
        finally:
            close_source(src)

    def _run_with(self, src: BlobSource, ref: Reference, filters: list[Filter]
                  ) -> tuple[str, Kitfile, list[dict[str, Any]], str | None]:
        manifest = resolve_in(src, ref)
        kf = read_kitfile(src, manifest)
        generated = kf is None
        if kf is None:  # a ModelPack without a Kitfile: kit unpacks it with a generated one
            kf = self._kitfile_or_generated(src, manifest)
        resolved, self.on_resolved = self.on_resolved, None
        if resolved is not None:
            resolved()
        kitfile_path = None  # the newest kit's order: Kitfile, parents, referenced datasets
        if not generated and matches(filters, "kitfile", "", ""):  # kit writes none then
            kitfile_path = self._write_kitfile(kf)
        self._unpack_parents(kf, filters)
        if self.include_remote:
            self._unpack_dataset_modelkits(kf, filters)
        layers = self._layers(src, manifest, kf, filters) + self.referenced_layers
        return manifest.digest, kf, layers, kitfile_path

    def _unpack_parents(self, kf: Kitfile, filters: list[Filter]) -> None:
        """kit unpacks the parent ModelKits' models first, the farthest first, with only the
        ``model`` part of each filter; a filter without ``model`` leaves the parents out (kit
        still names the first). Every parent is read before anything is written."""
        path = parent_path(kf)
        if not path:
            return
        announce = functools.partial(_announce_parent, self.reporter)
        parent_filters = _parent_filters(filters)
        if parent_filters is None:
            announce(path)
            return
        with contextlib.ExitStack() as stack:
            parents = list(walk_parents(kf, self._resolve, stack, announce=announce,
                                        form="canonical", read=self._kitfile_or_generated))
            for parent in reversed(parents):
                self._layers(parent.source, parent.manifest, parent.kitfile, parent_filters)

    def _resolve(self, ref: Reference) -> tuple[BlobSource, Manifest]:
        """A referenced ModelKit, as kit's ``getStoreForRef`` finds it: local storage, else
        streamed from its registry (nothing saved locally); kit's texts when it is neither."""
        return open_and_resolve(ref, home=self.home, registry_options=self.registry_options)

    def _unpack_dataset_modelkits(self, kf: Kitfile, filters: list[Filter]) -> None:
        """Datasets whose ``remotePath`` names a ModelKit (spec §12.6, the newest kit's
        ``handleRemoteData``): that ModelKit's datasets go beneath the dataset's path, selected
        by the ``datasets`` part of the filters, and so on for the datasets *they* refer to
        (cycles and depth checked by :func:`walk_dataset_modelkits`). They are written in this
        unpack's one transaction, so a missing or looping reference leaves nothing behind."""
        with contextlib.ExitStack() as stack:
            for node in walk_dataset_modelkits(kf, list(filters), self._resolve, stack,
                                               announce=self._announce_dataset_modelkit,
                                               check_path=self._check_dataset_path,
                                               read=self._kitfile_or_generated):
                layers = self._layers(node.source, node.manifest, node.kitfile, node.filters,
                                      under=node.path)
                self.dataset_modelkits.append(node)
                self.referenced_layers += layers
                if node.top:
                    self.referenced.append(DownloadResult(
                        node.path, node.remote_path, "unpacked",
                        size=sum(x["size"] or 0 for x in layers),
                        verification=f"ModelKit {node.manifest.digest}"))

    def _kitfile_or_generated(self, src: BlobSource, manifest: Manifest) -> Kitfile:
        """The Kitfile of a ModelKit being unpacked, or of one it references (a parent, a
        dataset's ModelKit); a ModelPack without one gets kit's generated stand-in, with kit's
        warning (the newest kit's ``unpackRecursive``)."""
        kf = read_kitfile(src, manifest)
        if kf is None:
            self.reporter.warning("Artifact does not include Kitfile: functionality may be "
                                  "impacted")
            kf = generated_kitfile(src, manifest)
        return kf

    def _announce_dataset_modelkit(self, ref: str, path: str) -> None:
        self.reporter.info(f"Unpacking referenced dataset ModelKit {ref} to {path}")

    def _check_dataset_path(self, path: str, base: str) -> None:
        """kit's ``VerifySubpath`` of a dataset path, relative to where the ModelKit naming it
        is unpacked (the target, or a referenced ModelKit's dataset directory)."""
        try:
            check_unpack_path(path, self.target / base if base else self.target)
        except ValueError as exc:
            raise UnpackError(f"error resolving dataset path {path}: {exc}") from None

    # -- Kitfile ---------------------------------------------------------------------------
    def _write_kitfile(self, kf: Kitfile) -> str:
        data = kf.to_yaml().encode("utf-8")
        path = self.target / "Kitfile"
        if (path.exists() or path.is_symlink()) and not (
                "Kitfile" in self.tx.replaceable and path.is_file() and not path.is_symlink()):
            if not path.is_file() or path.is_symlink():
                raise UnpackError(f"failed to unpack config: path {path} exists and is not a "
                                  "regular file")
            if not self.overwrite:
                if path.stat().st_size != len(data):
                    raise UnpackError(f"failed to unpack config: path {path} already "
                                      "exists").with_hint("-o/--overwrite replaces it")
                if path.read_bytes() == data:
                    self.reporter.info(f"Found existing Kitfile at {path}")
                    return str(path)
                raise UnpackError("failed to unpack: Kitfile exists and does not match model's "
                                  "Kitfile")
        self.reporter.info(f"Unpacking config to {path}")
        self.tx.add_bytes("Kitfile", data, 0o644)  # published with the layers
        return str(path)

    # -- layers ----------------------------------------------------------------------------
    def _layers(self, src: BlobSource, manifest: Manifest, kf: Kitfile,
                filters: list[Filter], under: str = "") -> list[dict[str, Any]]:
        """The layers the filters select, unpacked as the newest kit does: by
        :func:`unpack_plan` (each Kitfile entry finds its layer by digest) when the Kitfile
        records digests, as every Kitfile kit 1.0+ or we pack and every generated ModelPack
        one does; by position within each layer type (kit's legacy unpack) when it records
        none. ``under``: a directory under the target that the layers' paths are relative to
        (the datasets of a ModelKit a dataset refers to)."""
        try:
            has_digest, _ = kf.has_layer_info()
        except ValueError as exc:
            raise UnpackError(str(exc)) from None
        if not has_digest:
            return self._legacy_layers(src, manifest, kf, filters, under)
        steps = unpack_plan(manifest, kf, filters)
        done: list[dict[str, Any]] = []
        extracted: set[str] = set()
        for n, step in enumerate(steps, 1):
            self.reporter.info(step.message)
            path = posixpath.join(under, step.path) if under else step.path
            desc = step.descriptor
            # entries sharing a tar layer (same digest: the same members): kit extracts the
            # blob again, which fails "already exists" without -o; its bytes are already here
            if step.media_type.format == "raw" or desc.digest not in extracted:
                self._unpack_layer(src, desc, _layer_format(step.media_type), under, path,
                                   (n, len(steps)))
                extracted.add(desc.digest)
            done.append({"type": step.kind, "name": step.name, "path": path,
                         "digest": desc.digest, "size": desc.size})
        return done

    def _legacy_layers(self, src: BlobSource, manifest: Manifest, kf: Kitfile,
                       filters: list[Filter], under: str) -> list[dict[str, Any]]:
        """kit's legacy unpack, for Kitfiles without digests (ModelKits packed before kit
        1.0): each layer is matched, by position within its type, to its Kitfile entry and
        extracted into the directory of the entry's path (old tars hold paths relative to
        it)."""
        model = kf.model
        entries: dict[str, list[Any]] = {
            "modelpart": list(model.parts) if model is not None else [],
            "code": list(kf.code), "prompt": list(kf.prompts), "docs": list(kf.docs),
            "dataset": [d for d in kf.datasets if not d.remote_path],
            "mcpserver": list(kf.mcp_servers)}
        taken = dict.fromkeys(entries, 0)
        model_taken = False
        done: list[dict[str, Any]] = []
        for index, desc in enumerate(manifest.layers, 1):
            try:
                media_type = parse_media_type(desc.media_type)
            except MediaTypeError:
                self.reporter.warning(f"Unknown media type {desc.media_type}: skipping unpack")
                continue
            base = media_type.base
            if base == "config":
                continue
            if base == "model":
                kind = "modelpart" if model_taken and entries["modelpart"] else "model"
                model_taken = True
            elif base == "code" and (desc.annotations.get(ANNOTATION_LAYER_SUBTYPE)
                                     == LAYER_SUBTYPE_PROMPT):
                kind = "prompt"
            else:
                kind = {"mcpb": "mcpserver"}.get(base, base)
            if kind == "model":
                entry = model
            else:
                i = taken[kind]
                taken[kind] = i + 1
                entry = entries[kind][i] if i < len(entries[kind]) else None
            if entry is None:
                raise UnpackError(f"failed to unpack: no Kitfile entry for {kind} layer "
                                  f"{desc.digest}")
            name = getattr(entry, "name", "")
            if not matches(filters, kind, name, entry.path):
                continue
            self.reporter.info(_UNPACKING[kind].format(name=name, path=entry.path))
            extract_dir = _legacy_dir(entry.path, base)
            if under:
                extract_dir = posixpath.join(under, extract_dir) if extract_dir else under
            path = posixpath.join(under, entry.path) if under else entry.path
            self._unpack_layer(src, desc, _layer_format(media_type), extract_dir, path,
                               (index, len(manifest.layers)))
            done.append({"type": kind, "name": name, "path": path, "digest": desc.digest,
                         "size": desc.size})
        return done

    def _unpack_layer(self, src: BlobSource, desc: Descriptor, fmt: str,
                      extract_dir: str, path: str, position: tuple[int, int]) -> None:
        task = self.reporter.task(positioned(f"unpack {path or desc.digest[:19]}", "layer",
                                             *position), desc.size)
        ok = False
        try:
            kind, _, compression = fmt.partition("+")
            with layer_input(src, desc, compression, task) as inp:
                if kind == "raw":
                    self._write_raw(inp, desc, path)
                else:
                    self.tx.tar(inp, extract_dir)
            ok = True
        finally:
            task.finish(ok)

    def _write_raw(self, inp: FileInput | StreamInput, desc: Descriptor, path: str) -> None:
        """A raw layer (spec §8.9, e.g. an ``.mcpb``) is the file itself: it goes to the
        entry's path under the same existing-file rules as a tar member."""
        annotations = desc.annotations
        name = path or annotations.get(ANNOTATION_FILEPATH, "")
        if not name:
            raise UnpackError("failed to unpack: unknown file path for layer: no "
                              "org.cncf.model.filepath annotation")
        self.tx.raw(inp, name, _raw_mode(annotations))


#: kit's legacy unpack's line per layer kind (Kitfiles without digests; ``Unpacking model
#: %s to %s`` keeps its double space for a nameless model, as kit prints it)
_UNPACKING = {"model": "Unpacking model {name} to {path}",
              "modelpart": "Unpacking model part {name} to {path}",
              "prompt": "Unpacking prompt to {path}", "code": "Unpacking code to {path}",
              "dataset": "Unpacking dataset {name} to {path}", "docs": "Unpacking docs to {path}",
              "mcpserver": "Unpacking MCP server {name} to {path}"}


#: the newest kit's ``generateUnpackPlan``: its word per layer kind, and its order (model,
#: model parts, datasets, code, docs, prompts, MCP servers -- datasets before code, unlike
#: the layer order pack writes)
_PLAN_TYPE = {"model": "model", "modelpart": "modelpart", "dataset": "dataset", "code": "code",
              "docs": "docs", "prompt": "prompt", "mcpserver": "MCP server"}
_PLAN_ORDER = {kind: i for i, kind in enumerate(_PLAN_TYPE)}


@dataclasses.dataclass(frozen=True)
class PlanStep:
    """One layer the newest kit's unpack writes: the Kitfile entry and the layer its digest
    names, with the line kit prints before it."""

    kind: str  # model, modelpart, dataset, code, docs, prompt, mcpserver
    name: str
    path: str
    descriptor: Descriptor
    media_type: MediaType
    message: str


def unpack_plan(manifest: Manifest, kf: Kitfile, filters: Sequence[Filter] = ()
                ) -> list[PlanStep]:
    """The newest kit's ``generateUnpackPlan``, for a Kitfile whose entries record digests.

    Every entry the filters select, in kit's order (:data:`_PLAN_ORDER`), finds its layer by
    digest, whatever the layers' order or types in the manifest; a layer no entry names is
    not unpacked, silently, as in kit. An entry whose digest no layer has fails the whole
    unpack before anything is written: ``failed to plan unpack: digest sha256:… not found in
    manifest`` (and ``failed to plan unpack: <media type error>`` for a layer whose media type
    does not parse). Where several layers share a digest (two identical files as raw layers)
    kit takes the last for every entry, so it writes the last file's path twice and never the
    first; we take the layer whose ``org.cncf.model.filepath`` is the entry's path, else the
    last, so each file lands at its own path.
    """
    by_digest: dict[str, list[Descriptor]] = {}
    for desc in manifest.layers:
        by_digest.setdefault(desc.digest, []).append(desc)
    entries = sorted(kf.layer_entries(), key=lambda e: _PLAN_ORDER[e.kind])
    steps: list[PlanStep] = []
    for entry in entries:
        if not matches(list(filters), entry.kind, entry.name, entry.path):
            continue
        digest = entry.entity.digest
        found = by_digest.get(digest)
        if not found:
            raise UnpackError(f"failed to plan unpack: digest {digest} not found in manifest")
        desc = next((d for d in found if d.annotations.get(ANNOTATION_FILEPATH) == entry.path),
                     found[-1])
        try:
            media_type = parse_media_type(desc.media_type)
        except MediaTypeError as exc:
            raise UnpackError(f"failed to plan unpack: {exc}") from None
        steps.append(PlanStep(entry.kind, entry.name, entry.path, desc, media_type,
                              _unpacking_line(entry.kind, entry.name, entry.path)))
    return steps


def _unpacking_line(kind: str, name: str, path: str) -> str:
    """The newest kit's ``messageFor``: ``Unpacking <type> <name> to <path>``, or without the
    name when there is none (no double space); code and docs are never named."""
    if kind in ("code", "docs"):
        name = ""
    word = _PLAN_TYPE[kind]
    return f"Unpacking {word} {name} to {path}" if name else f"Unpacking {word} to {path}"


def _layer_format(media_type: MediaType) -> str:
    """``tar``/``raw``, plus ``+compression`` when compressed, as ``_unpack_layer`` takes it."""
    return media_type.format + (f"+{media_type.compression}" if media_type.compressed else "")


def _announce_parent(reporter: Reporter, path: str) -> None:
    reporter.info(f"Unpacking referenced ModelKit {path}")  # the newest kit's capital


def _parent_filters(filters: list[Filter]) -> list[Filter] | None:
    """The filters a parent ModelKit is unpacked with: the ``model`` part of each (kit's
    ``unpackRemote``, :func:`~kit_jupyter.kitfile.filters.restrict`)."""
    return restrict(list(filters), "model")


def _legacy_dir(path: str, base: str) -> str:
    clean = posixpath.normpath(path or ".")
    if clean.startswith("/") or clean == ".." or clean.startswith("../"):
        raise UnpackError(f"error resolving {base} path: layer paths must stay within "
                          "context directory")
    parent = posixpath.dirname(clean)
    return "" if parent in ("", ".") else parent


def _raw_mode(annotations: Mapping[str, str]) -> int:
    """Permission bits of a raw layer's file: from its file-metadata annotation, else 0644."""
    meta = annotations.get(ANNOTATION_FILE_METADATA)
    if meta:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            mode = unmarshal(meta).get("mode")
            if isinstance(mode, int) and 0 < mode <= 0o7777:
                return mode & 0o777
    return 0o644


__all__ = ["PlanStep", "unpack", "unpack_plan"]
