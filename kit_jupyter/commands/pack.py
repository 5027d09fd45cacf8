"""``pack``: a context directory and its Kitfile into a ModelKit in local storage (spec §10).

Order matters for "nothing half-written": the Kitfile is decoded and validated first and the
remote (S3) datasets are checked next, so a bad Kitfile or a stale ``remoteHash`` stops before a
single blob is written. Layers are then built one by one into temp files under
``$KITOPS_HOME/cache/pack`` (hashed while written, so each is read from disk exactly once) and
renamed into ``blobs/``; the config and the manifest follow, and the manifest is recorded in the
indexes last. An interrupted pack therefore leaves at most unreferenced blobs, never an index
entry pointing at something missing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat as stat_mod
import sys
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kit_jupyter._arguments import COUNT, OPT_PATH, OPT_TEXT, PATH, TEXT, arguments
from kit_jupyter._fs import NotRegularFile, open_regular
from kit_jupyter._version import __version__
from kit_jupyter.commands.chain import CYCLE_AT_PACK, parent_path, walk_parents
from kit_jupyter.commands.remote import push as push_modelkit
from kit_jupyter.commands.results import PackResult
from kit_jupyter.commands.sources import open_and_resolve
from kit_jupyter.errors import (
    KitError,
    PackError,
    ReferenceError_,
    RemoteDatasetError,
)
from kit_jupyter.gocompat.godigest import sha256_digest
from kit_jupyter.gocompat.ignore import IgnoreRules, layer_paths_from_kitfile
from kit_jupyter.kitfile.model import (
    MAX_KITFILE_BYTES,
    Kitfile,
    decode_kitfile_bytes,
    find_kitfile,
    load_kitfile,
    read_kitfile_text,
)
from kit_jupyter.kitfile.reference import (
    default_tag_message,
    display_repository,
    parse_reference,
)
from kit_jupyter.kitfile.rules import ensure_valid
from kit_jupyter.oci.layers import (
    PackedLayer,
    pack_layer_to_file,
    pack_raw_layer_to_file,
    raw_layer_file,
)
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_CLI_VERSION,
    ANNOTATION_CREATED,
    ANNOTATION_FILEPATH,
    ANNOTATION_KITFILE,
    ANNOTATION_LAYER_SUBTYPE,
    KIT_CONFIG,
    KIT_FORMAT,
    KIT_MANIFEST_ARTIFACT,
    LAYER_BASE,
    LAYER_SUBTYPE_PROMPT,
    MODELPACK_CONFIG,
    MODELPACK_FORMAT,
    MODELPACK_MANIFEST_ARTIFACT,
    OCI_MANIFEST,
    check_compression_flag,
    check_layer_format_flag,
    check_save_options,
    in_format,
    parse_media_type,
)
from kit_jupyter.oci.modelpack import modelpack_config
from kit_jupyter.oci.store import LocalStore, resolve_home
from kit_jupyter.reporting import NullReporter, Reporter, positioned
from kit_jupyter.transport.s3 import verify_remote_datasets

DEFAULT_REPO_KEY = "localhost/_"
KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")


def cli_version() -> str:
    """What we write in ``ml.kitops.modelkit.cli-version`` (kit writes its own version)."""
    return f"kit-jupyter/{__version__}"


def created_annotation() -> str:
    """``org.opencontainers.image.created``: the pack time in UTC, RFC 3339 to the second, as
    the newest kit writes it (Go's ``time.RFC3339``). Manifest digests therefore change on
    every pack, as kit's do; layer and config digests do not (docs/KIT-COMPAT.md)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _save_config(kf: Kitfile, model_format: str, annotations: dict[str, str],
                 store: LocalStore, rep: Reporter) -> tuple[Descriptor, str]:
    """Store the config blob (kit's Kitfile JSON, or model-spec's for ModelPack) unless it is
    there already; its descriptor and the manifest's artifact type. For ModelPack, the Kitfile
    goes into ``annotations``, as kit's SaveModel puts it: the config is model-spec's, so the
    Kitfile (with the layers' digests and diffIds) would be lost without it."""
    if model_format == MODELPACK_FORMAT:
        config_bytes = modelpack_config(kf, [e.entity.diff_id for e in kf.layer_entries()])
        config_type, artifact_type = MODELPACK_CONFIG, MODELPACK_MANIFEST_ARTIFACT
        annotations[ANNOTATION_KITFILE] = kf.to_config_json().decode("utf-8")
    else:
        config_bytes = kf.to_config_json()
        config_type, artifact_type = KIT_CONFIG, KIT_MANIFEST_ARTIFACT
    digest = sha256_digest(config_bytes)
    existed = store.has_blob(digest)
    desc = store.put_bytes(config_bytes, config_type)  # pins it, stored or not
    rep.info(f"Configuration already exists in storage: {digest}" if existed
             else f"Saved configuration: {digest}")
    return desc, artifact_type


@arguments(context_dir=PATH, file=OPT_PATH, tag=OPT_TEXT, compression=TEXT,
           layer_format=TEXT, home=OPT_PATH, concurrency=COUNT)
def pack(context_dir: str | os.PathLike[str], *, file: str | os.PathLike[str] | None = None,
         tag: str | None = None, compression: str = "none", layer_format: str = "tar",
         home: str | os.PathLike[str] | None = None,
         reporter: Reporter | None = None, env: Mapping[str, str] | None = None,
         push: bool = False, plain_http: bool = False, tls_verify: bool | str = True,
         concurrency: int = 5, use_model_pack: bool = False) -> PackResult:
    """Pack a directory into a ModelKit in local storage (``kit pack DIR``).

    The Kitfile is validated first and S3 remote datasets are checked against their
    ``remoteHash`` (a HEAD request) before anything is written.

    Args:
        context_dir: the directory whose files the Kitfile's paths refer to.
        file: the Kitfile (``-f``); may live outside ``context_dir``, ``"-"`` reads stdin;
            default ``Kitfile``, ``kitfile`` or ``.kitfile`` in ``context_dir``.
        tag: ``[registry/]repository[:tag][,tag2...]`` (``-t``); no tag means ``latest``; no
            ``tag`` at all stores an untagged ModelKit.
        compression: ``none`` (byte-identical to kit), ``gzip``, ``gzip-fastest`` or ``zstd``.
        layer_format: ``tar`` (default) or ``raw`` (``--layer-format``): each layer is the
            bytes of the one file its Kitfile path names (a directory is refused).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives kit's messages and progress (see ``make_reporter``).
        env: environment for S3 settings (``S3_API_ENDPOINT`` ...); default ``os.environ``.
        push: then upload it to the registry named in ``tag``, under each of its tags
            (``--push``); ``tag`` must name a registry other than ``localhost``.
        plain_http: ``push`` talks to the registry over HTTP (``--plain-http``).
        tls_verify: ``push`` verifies the registry's TLS certificate; a path is a CA bundle.
        concurrency: layers ``push`` uploads in parallel (``--concurrency``).
        use_model_pack: write a CNCF ModelPack (model-spec) artifact instead of kit's format
            (``--use-model-pack``): ``application/vnd.cncf.model.*`` layer types, a model-spec
            config, the Kitfile in the manifest annotation ``ml.kitops.modelkit.kitfile``.

    Returns:
        PackResult: ``digest``, ``repository``, ``tags``, ``config`` and ``layers``.

    Raises:
        ValidationError: the Kitfile has errors (``err.findings`` lists them).
    """
    rep = reporter if reporter is not None else NullReporter()
    start = len(rep.messages)
    context = Path(context_dir).expanduser().absolute()
    if not context.is_dir():
        raise PackError(f"Failed to use context path {context}: not a directory")

    # 1. Kitfile: decode and validate before anything touches storage.
    kf = _load_kitfile(context, file)

    ensure_valid(kf, reporter=rep)

    # 2. Flags.
    repo, tags = _target(tag, rep)
    if push and (not tags or repo.startswith("localhost/")):
        raise PackError("Invalid arguments: --push requires a --tag that names a registry "
                        "(e.g. registry.example.com/org/model:v1)")
    compression = check_compression_flag(compression or "none")
    layer_format = check_layer_format_flag(layer_format or "tar")
    model_format = _check_model_format(kf, use_model_pack)

    # 3. Remote datasets: verified before any blob is written.
    _verify_remote(kf, rep, env)

    # 4. Layers, config, manifest.
    home_dir = resolve_home(home)
    store = LocalStore(home_dir)
    try:
        check_save_options(model_format, layer_format, compression)
        # every blob found or stored is pinned until the manifest is listed: a remove in
        # another process meanwhile keeps them (LocalStore.pinning)
        with store.pinning():
            layers = _build_layers(kf, context, store, home_dir, compression, rep,
                                   start=_chain_start(repo, tags), layer_format=layer_format,
                                   model_format=model_format)
            annotations = {ANNOTATION_CLI_VERSION: cli_version(),
                           ANNOTATION_CREATED: created_annotation()}
            config_desc, artifact_type = _save_config(kf, model_format, annotations, store,
                                                      rep)
            # ocispec.Manifest as the newest kit's pack writes it (spec §7.1,
            # docs/KIT-COMPAT.md): with the mediaType field
            manifest = Manifest(config=config_desc, layers=tuple(d for d, _ in layers),
                                annotations=annotations, artifact_type=artifact_type,
                                media_type=OCI_MANIFEST)
            existed = store.has_blob(manifest.digest)
            digest = store.add_manifest(repo, manifest, tags)
    except KitError as exc:  # every failure from here on is a failed pack, in kit's words
        raise PackError(f"Failed to pack model kit: {exc}") from None
    if existed:
        rep.info(f"Manifest already exists in storage: {digest}")
    else:
        rep.info(f"Saved manifest to storage: {digest}")
    rep.info(f"Model saved: {digest}")
    for t in tags if push else ():
        # the first push uploads what the registry lacks; the others only add their tag
        push_modelkit(f"{repo}:{t}", home=home, plain_http=plain_http, tls_verify=tls_verify,
                      concurrency=concurrency, reporter=rep)

    return PackResult(digest=digest, repository=repo, tags=tags,
                      config=json.loads(kf.to_config_json()),  # the Kitfile, either format
                      layers=[{**d.to_json(), "path": path} for d, path in layers],
                      messages=list(rep.messages[start:]))


# --------------------------------------------------------------------------------------------
# steps


def _load_kitfile(context: Path, file: str | os.PathLike[str] | None) -> Kitfile:
    """The Kitfile ``-f`` names (``-`` is stdin), else the one kit finds in the context."""
    if file is None:
        text = read_kitfile_text(find_kitfile(context))
    elif str(file) == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise PackError("No input file specified and no data piped")
        data = sys.stdin.buffer.read(MAX_KITFILE_BYTES + 1)
        text = decode_kitfile_bytes(data, "from standard input")
    else:
        text = read_kitfile_text(Path(file).expanduser())
    return load_kitfile(text)


def _target(tag: str | None, rep: Reporter) -> tuple[str, list[str]]:
    if not tag:
        return DEFAULT_REPO_KEY, []

    try:
        ref = parse_reference(tag)
    except ReferenceError_ as exc:
        raise ReferenceError_(f"Invalid arguments: failed to parse reference: {exc}") from None
    if not ref.reference:
        ref, _ = ref.with_default_tag()
        rep.info(default_tag_message("pack", ref))
    if ref.digest:
        raise KitError(f"Invalid arguments: cannot tag a packed ModelKit with a digest ({tag})")
    tags = [ref.reference, *(t for t in ref.extra_tags if t)]
    return ref.repo_key, list(dict.fromkeys(tags))


def _check_model_format(kf: Kitfile, use_model_pack: bool) -> str:
    """``--use-model-pack``, and kit's refusal of mcpServers with it, before anything is
    written (kit refuses them only after the other layers are stored)."""
    if not use_model_pack:
        return KIT_FORMAT
    if kf.mcp_servers:
        raise PackError("Failed to pack model kit: mcpServers are not supported when packing "
                        "in modelpack format")
    return MODELPACK_FORMAT


def _verify_remote(kf: Kitfile, rep: Reporter, env: Mapping[str, str] | None) -> None:
    datasets = kf.remote_datasets()
    if not datasets:
        return
    try:
        verify_remote_datasets(datasets, reporter=rep, env=env)
    except RemoteDatasetError as exc:
        raise RemoteDatasetError(f"Failed to pack model kit: {exc}") from None


def _layer_entries(kf: Kitfile) -> list[tuple[str, Any, str]]:
    """``(base, entry, kind)`` in kit's layer order (spec §7.5), from the Kitfile's own list."""
    return [(LAYER_BASE[e.kind], e.entity, e.kind) for e in kf.layer_entries()]


def check_mcp_bundle(context: Path, path: str) -> None:
    """kit's ValidateMCPB: a regular file holding a ZIP archive with ``manifest.json`` at its
    root (only the central directory is read, not the members). Raises PackError with kit's
    texts, ``path`` as written in the Kitfile."""

    full = context / path
    try:
        st = full.stat()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise PackError(f"failed to read MCP bundle {path}: stat {path}: {reason}") from None

    if not stat_mod.S_ISREG(st.st_mode):
        raise PackError(f"MCP bundle path {path} must be a single .mcpb file")
    try:
        fd, _ = open_regular(full)  # still regular: it may have been replaced by a FIFO
        with os.fdopen(fd, "rb") as fh, zipfile.ZipFile(fh) as zf:
            names = zf.namelist()
    except NotRegularFile:
        raise PackError(f"MCP bundle path {path} must be a single .mcpb file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise PackError(f"MCP bundle {path} is not a valid ZIP archive: zip: not a valid zip "
                        "file") from None
    except OSError as exc:
        raise PackError(f"MCP bundle {path} is not a valid ZIP archive: "
                        f"{(exc.strerror or str(exc)).lower()}") from None
    if "manifest.json" not in names:
        raise PackError(f"MCP bundle {path} does not contain a manifest.json at its root")


def _check_mcp_servers(kf: Kitfile, context: Path) -> None:
    """Every bundle is checked before the first blob is written."""
    for server in kf.mcp_servers:
        try:
            check_mcp_bundle(context, server.path)
        except PackError as exc:
            raise PackError(f"invalid MCP bundle for mcpServer {server.name}: {exc}") from None


def _build_layers(kf: Kitfile, context: Path, store: LocalStore, home: Path, compression: str,
                  rep: Reporter, *, start: str, layer_format: str = "tar",
                  model_format: str = KIT_FORMAT) -> list[tuple[Descriptor, str]]:
    """Each layer's descriptor (with its annotations) and the path it packed; layers are
    built in kit's format and renamed for ModelPack (same bytes, another media type)."""

    _check_mcp_servers(kf, context)
    if layer_format == "raw":  # kit finds a directory only when it gets there; we look first
        for _, entry, _ in _layer_entries(kf):
            raw_layer_file(context, entry.path)
    extra_paths = _parent_layer_paths(kf, home, start)
    ignore = IgnoreRules.load(context, layer_paths=layer_paths_from_kitfile(kf))
    cache = home / "cache" / "pack"
    layers: list[tuple[Descriptor, str]] = []
    entries = list(_layer_entries(kf))
    for index, (base, entry, kind) in enumerate(entries, 1):
        label = positioned(f"{kind} {entry.path}", "layer", index, len(entries))
        annotations = ({ANNOTATION_LAYER_SUBTYPE: LAYER_SUBTYPE_PROMPT} if kind == "prompt"
                       else None)
        if kind == "mcpserver" or layer_format == "raw":
            # spec §8.9: the file's bytes verbatim; an mcpServer's bundle always so, as
            # ...mcpb.v1.raw whatever the flags say
            packed = _pack_raw(context, entry.path, cache, rep, label, base, compression,
                               annotations)
        else:
            packed = pack_layer_to_file(context, entry.path, cache, base=base,
                                        compression=compression, ignore=ignore,
                                        other_layer_paths=extra_paths, reporter=rep,
                                        label=label, annotations=annotations)
        # kit's saveFileToRepo: a blob already in storage is reported and not stored again
        existed = store.has_blob(packed.digest)
        try:
            media_type = in_format(packed.media_type, model_format)
            desc = store.adopt_file(packed.path, packed.digest, packed.size, media_type)
        finally:
            packed.discard()
        entry.digest = packed.digest
        entry.diff_id = packed.diff_id
        layers.append((Descriptor(media_type, desc.digest, desc.size,
                                  annotations=dict(packed.annotations)),
                       packed.annotations.get(ANNOTATION_FILEPATH, entry.path)))
        word = parse_media_type(media_type).user_string  # kit's UserString: weight, doc ...
        rep.info(f"{'Already saved' if existed else 'Saved'} {word} layer: {desc.digest}")
    if not layers:
        rep.warning("ModelKit contains no layers")
    return layers


def _pack_raw(context: Path, path: str, cache: Path, rep: Reporter, label: str, base: str,
              compression: str, annotations: dict[str, str] | None) -> PackedLayer:
    task = rep.task(label, raw_layer_file(context, path)[2].st_size)
    ok = False
    try:
        packed = pack_raw_layer_to_file(context, path, cache, base=base,
                                        compression=compression, task=task,
                                        annotations=annotations)
        ok = True
        return packed
    finally:
        task.finish(ok)


def _chain_start(repo: str, tags: list[str]) -> str:
    """What kit starts the parent chain with: the first tag being packed as kit shows it
    (``""`` for an untagged pack, kit's ``localhost/_``)."""
    return display_repository(f"{repo}:{tags[0]}" if tags else repo)


def _parent_layer_paths(kf: Kitfile, home: Path, start: str) -> list[str]:
    """The paths of the parent ModelKits' layers, which ours leave out: the layer paths of
    kit's merged Kitfile of the chain (``ResolveKitfile``) -- every parent's code, datasets,
    docs, prompts and model parts, and the model path the chain ends in."""
    path = parent_path(kf)
    if not path:
        return []
    resolve = functools.partial(open_and_resolve, home=home)
    try:
        with contextlib.ExitStack() as stack:
            parents = [p.kitfile for p in walk_parents(kf, resolve, stack, start=start,
                                                       cycle=CYCLE_AT_PACK)]
    except KitError as exc:
        raise PackError(f"Failed to resolve referenced modelkit {path}: {exc}") from None
    paths: list[str] = []
    for parent in parents:
        via = parent_path(parent)  # a reference, not a layer
        paths += [p for p in layer_paths_from_kitfile(parent) if not via or p != via]
    return paths
