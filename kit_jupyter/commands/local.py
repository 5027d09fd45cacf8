"""``list``, ``inspect``, ``info``, ``tag`` and ``remove`` on local storage, with kit's texts.

Each is a plain function returning a result object from :mod:`kit_jupyter.commands.results`;
kit's info lines go to the reporter *and* into ``result.messages`` (``tag`` and ``remove``
print nothing else, so their result's ``text()`` is those lines).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from kit_jupyter.commands.results import (
    InfoResult,
    InspectResult,
    ListResult,
    RemoveResult,
    TagResult,
)
from kit_jupyter.commands.sources import (
    BlobSource,
    display,
    open_source,
    read_small,
    remote_source,
    repo_key,
    resolve_in,
)
from kit_jupyter.errors import KitError, NotFoundError, ReferenceError_, StorageError
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import is_modelkit_reference, parse_reference
from kit_jupyter.oci.store import LocalStore, is_digest
from kit_jupyter.reporting import NullReporter, Reporter
from kit_jupyter.transport.registry import RegistryOptions

KIT_MANIFEST_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
KIT_CONFIG_TYPE = "application/vnd.kitops.modelkit.config.v1+json"
MODELPACK_MANIFEST_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
CLI_VERSION_ANNOTATION = "ml.kitops.modelkit.cli-version"
KITFILE_ANNOTATION = "ml.kitops.modelkit.kitfile"

PathLike = str | os.PathLike[str] | None


class NotAModelKit(KitError):
    pass


# --------------------------------------------------------------------------------------------
# shared helpers


def format_bytes(n: int) -> str:
    """kit's ``output.FormatBytes``: binary units, one decimal rounded *down*."""
    if n == 0:
        return "0 B"
    if n < 1024:
        return f"{n} B"
    size = n / 1024.0
    for suffix in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            return f"{math.floor(size * 10) / 10:.1f} {suffix}"
        size /= 1024.0
    return f"{size:.1f} PiB"


def parse_ref(s: str) -> Any:

    return parse_reference(s)


def model_format(manifest: dict[str, Any]) -> str:
    """``kit`` or ``modelpack``; otherwise kit's not-a-ModelKit error (spec §7.1)."""
    artifact = manifest.get("artifactType") or ""
    config_type = (manifest.get("config") or {}).get("mediaType") or ""
    if artifact == KIT_MANIFEST_TYPE or config_type == KIT_CONFIG_TYPE:
        return "kit"
    if artifact == MODELPACK_MANIFEST_TYPE or config_type == MODELPACK_CONFIG_TYPE:
        return "modelpack"
    raise NotAModelKit(f"manifest is not a Model manifest: artifactType is {artifact}, config "
                       f"mediaType is {config_type}")


def parse_manifest(data: bytes, digest: str) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"manifest {digest} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise StorageError(f"manifest {digest} is not a JSON object")
    return manifest


def config_bytes(source: BlobSource, manifest: dict[str, Any]) -> bytes | None:
    """The Kitfile JSON of a ModelKit: the config blob (Kit format) or the manifest annotation
    (ModelPack format); ``None`` for a ModelPack without a Kitfile."""
    if model_format(manifest) == "kit":
        return read_small(source, manifest["config"])
    annotated = (manifest.get("annotations") or {}).get(KITFILE_ANNOTATION)
    return annotated.encode("utf-8") if annotated else None


def _config_dict(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StorageError(f"failed to parse config: {exc}") from None
    return value if isinstance(value, dict) else None


def _reporter(reporter: Reporter | None) -> Reporter:
    return reporter if reporter is not None else NullReporter()


def single_reference(s: str) -> Any:
    """inspect/info argument rules: no extra tags, a tag or digest required."""
    ref = parse_ref(s)
    if ref.extra_tags:
        raise ReferenceError_("invalid reference format: extra tags are not supported: "
                              + ", ".join(ref.extra_tags))
    if not ref.reference:
        raise ReferenceError_(f"missing tag or digest from ModelKit reference '{s}'")
    return ref


def _open_for_read(ref: Any, *, home: PathLike, source: BlobSource | None, remote: bool,
                   registry_options: RegistryOptions) -> BlobSource:
    if source is not None:
        return source
    if remote:
        if ref.registry == "localhost":
            raise KitError(f"can not check remote: {display(ref)} does not contain registry")

        return remote_source(ref, home=home, registry_options=registry_options)
    return LocalStore(home)


def _close_if_opened(src: Any, given: Any) -> None:
    if src is not given and not isinstance(src, LocalStore):
        close = getattr(src, "close", None)
        if close is not None:
            close()


def _resolve_for_read(source: BlobSource, ref: Any) -> tuple[bytes, str, dict[str, Any]]:
    try:
        data, digest = source.resolve(ref)
    except NotFoundError:
        raise NotFoundError(f"Could not find modelkit {display(ref)}") from None
    return data, digest, parse_manifest(data, digest)


# --------------------------------------------------------------------------------------------
# list


def list_modelkits(*, home: PathLike = None, reporter: Reporter | None = None) -> ListResult:
    """The ModelKits in local storage (``kit list``).

    Args:
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives warnings about unreadable entries.

    Returns:
        ListResult: ``models``, one per stored manifest in kit's ``--format json`` shape;
        ``text()`` is kit's table, ``len()`` the number of ModelKits.
    """
    rep = _reporter(reporter)
    store = LocalStore(home)
    models: list[dict[str, Any]] = []
    for repo in store.repositories():
        shown = display(repo) or "<none>"
        infos = []
        for desc in store.manifests(repo):
            try:
                _, manifest = store.read_manifest(desc)
                model_format(manifest)
                config = _config_dict(config_bytes(store, manifest))
            except NotAModelKit:
                continue
            except (NotFoundError, StorageError) as exc:
                rep.warning(f"Skipping {shown}@{desc.get('digest')}: {exc}")
                continue
            package = (config or {}).get("package") or {}
            authors = package.get("authors") or []
            tags = store.tags_for(repo, desc["digest"])
            infos.append({
                "repo": shown,
                "digest": desc["digest"],
                "tags": tags or None,  # Go marshals a nil slice as null
                "modelName": package.get("name") or "<none>",
                "size": format_bytes(sum(int(x.get("size") or 0)
                                         for x in manifest.get("layers") or [])),
                "author": authors[0] if authors else "<none>",
            })
        infos.sort(key=lambda m: (m["repo"], m["digest"]))
        models.extend(infos)
    return ListResult(models=models, messages=list(rep.messages))


list_local = list_modelkits  # name used in docs/ARCHITECTURE.md


# --------------------------------------------------------------------------------------------
# inspect


def inspect(ref: str, *, home: PathLike = None, source: BlobSource | None = None,
            remote: bool = False, reporter: Reporter | None = None,
            plain_http: bool = False, tls_verify: bool | str = True,
            concurrency: int = 5) -> InspectResult:
    """A ModelKit's manifest and Kitfile, as ``kit inspect REF`` prints them.

    Args:
        ref: ``[registry/]repository:tag`` or ``...@digest`` (a tag or digest is required).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        source: read from this source instead of local storage or the registry.
        remote: read from the registry instead of local storage (``-r``; see also
            ``inspect_remote``).
        reporter: receives kit's messages.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: parallel registry transfers (``--concurrency``).

    Returns:
        InspectResult: ``digest``, ``cli_version``, ``kitfile`` (the config as a dict) and
        ``manifest``; ``to_json()`` is kit's JSON.
    """
    parsed = single_reference(ref)
    src = _open_for_read(parsed, home=home, source=source, remote=remote,
                         registry_options=RegistryOptions(plain_http=plain_http,
                                                          tls_verify=tls_verify,
                                                          concurrency=concurrency, home=home))
    try:
        _, digest, manifest = _resolve_for_read(src, parsed)
        model_format(manifest)
        kitfile = _config_dict(config_bytes(src, manifest))
    except NotAModelKit:
        raise KitError("Error resolving modelkit: reference exists but is not a modelkit") \
            from None
    finally:
        _close_if_opened(src, source)
    version = (manifest.get("annotations") or {}).get(CLI_VERSION_ANNOTATION) or "unknown"
    return InspectResult(digest=digest, cli_version=version, kitfile=kitfile,
                         manifest=manifest, messages=list(_reporter(reporter).messages))


# --------------------------------------------------------------------------------------------
# info


def info(ref: str, *, home: PathLike = None, filter: str | None = None,  # noqa: A002
         remote: bool = False, source: BlobSource | None = None,
         reporter: Reporter | None = None, plain_http: bool = False,
         tls_verify: bool | str = True, concurrency: int = 5) -> InfoResult:
    """A ModelKit's Kitfile as YAML, or one node of it (``kit info REF [-f FILTER]``).

    Args:
        ref: ``[registry/]repository:tag`` or ``...@digest`` (a tag or digest is required).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        filter: a dot path into the Kitfile, e.g. ``".model.path"`` (``-f``).
        remote: read from the registry instead of local storage (``-r``).
        source: read from this source instead of local storage or the registry.
        reporter: receives kit's messages.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: parallel registry transfers (``--concurrency``).

    Returns:
        InfoResult: ``yaml`` (the text kit prints) and ``kitfile`` (the same as a dict).
    """
    parsed = single_reference(ref)
    src = _open_for_read(parsed, home=home, source=source, remote=remote,
                         registry_options=RegistryOptions(plain_http=plain_http,
                                                          tls_verify=tls_verify,
                                                          concurrency=concurrency, home=home))
    try:
        _, _, manifest = _resolve_for_read(src, parsed)
        model_format(manifest)
        data = config_bytes(src, manifest)
    except NotAModelKit:
        raise KitError("Error resolving modelkit: reference exists but is not a modelkit") \
            from None
    finally:
        _close_if_opened(src, source)
    if data is None:
        raise KitError("Error resolving modelkit: artifact does not contain a Kitfile")

    kf = Kitfile.from_config_json(data)
    text = kf.to_yaml()
    config = _config_dict(data)
    if filter:
        text = filter_yaml(text, filter)
    return InfoResult(reference=display(parsed), yaml=text, kitfile=_strip_layer_info(config),
                      messages=list(_reporter(reporter).messages))


def _strip_layer_info(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_layer_info(v) for k, v in value.items() if k not in ("digest", "diffId")}
    if isinstance(value, list):
        return [_strip_layer_info(v) for v in value]
    return value


# Go struct field names per YAML key, for kit's reflect-based --filter. kit title-cases each
# filter segment and looks the result up as a Go field, so `.datasets` (field DataSets) and
# `.mcpServers` (MCPServers) are not found -- the same happens here.
_GO_FIELDS = {"datasets": "DataSets", "mcpServers": "MCPServers", "diffId": "DiffId"}
_STRUCT_KEYS = {
    "": ["manifestVersion", "package", "model", "code", "datasets", "docs", "prompts",
         "mcpServers"],
    "package": ["name", "version", "description", "license", "authors"],
    "model": ["name", "path", "license", "framework", "format", "version", "description",
              "parts", "parameters"],
}
_ZERO = {"manifestVersion": '""', "package": "{}", "model": "null", "code": "[]",
         "datasets": "[]", "docs": "[]", "prompts": "[]", "mcpServers": "[]", "authors": "[]",
         "parts": "[]", "parameters": "null"}


def filter_yaml(text: str, flt: str) -> str:
    """kit's ``info --filter``: a dot path of Kitfile fields; the node is printed as YAML."""

    if "[" in flt:
        raise KitError("invalid filter: array access using '[]' is not currently supported")
    if not re.fullmatch(r"\.?[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*", flt):
        raise KitError(f"invalid filter: invalid filter: {flt}")
    parts = flt.removeprefix(".").split(".")
    block = text.splitlines()
    struct = ""
    for i, part in enumerate(parts):
        wanted = part[:1].upper() + part[1:]
        keys = _STRUCT_KEYS.get(struct)
        key = None
        if keys is not None:
            for k in keys:
                if _GO_FIELDS.get(k, k[:1].upper() + k[1:]) == wanted:
                    key = k
                    break
        if key is None:
            raise KitError("error filtering output: cannot find required node")
        found = _find_key(block, key)
        last = i == len(parts) - 1
        if found is None:
            if not last:
                raise KitError("error filtering output: cannot find required node")
            return _ZERO.get(key, '""') + "\n"
        inline, body = found
        if last:
            if inline:
                if inline.startswith("["):
                    import yaml

                    items = yaml.safe_load(inline) or []
                    return "".join(f"- {_quote_item(x)}\n" for x in items)
                return inline + "\n"
            return "\n".join(_dedent(body)) + "\n"
        if inline or key not in _STRUCT_KEYS:
            raise KitError("error filtering output: cannot find required node")
        block = _dedent(body)
        struct = key
    return "\n".join(block) + "\n"  # pragma: no cover - loop always returns


def _quote_item(value: Any) -> str:
    return str(value)


def _find_key(lines: list[str], key: str) -> tuple[str, list[str]] | None:
    prefix = f"{key}:"
    for idx, line in enumerate(lines):
        if line.startswith(prefix) and (len(line) == len(prefix) or line[len(prefix)] == " "):
            inline = line[len(prefix):].strip()
            body = []
            for nxt in lines[idx + 1:]:
                if nxt.startswith(" ") or nxt == "":
                    body.append(nxt)
                else:
                    break
            return inline, body
    return None


def _dedent(lines: list[str]) -> list[str]:
    out = [ln[2:] if ln.startswith("  ") else ln for ln in lines]
    while out and not out[-1]:
        out.pop()
    return out


# --------------------------------------------------------------------------------------------
# tag


def tag(source: str, target: str, *, home: PathLike = None,
        reporter: Reporter | None = None) -> TagResult:
    """Give a local ModelKit another tag (``kit tag SOURCE TARGET``).

    In another repository the manifest is added to that repository too (blobs are shared).

    Args:
        source: the existing ``[registry/]repository:tag`` (or ``@digest``).
        target: the new ``[registry/]repository:tag``.
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives kit's message.

    Returns:
        TagResult: ``source``, ``target`` and ``digest``.
    """
    rep = _reporter(reporter)
    src = _tag_ref(source, "source")
    dst = _tag_ref(target, "target")
    store = LocalStore(home)
    with store.locked():
        desc = store.resolve_descriptor(repo_key(src), src.reference)
        if desc is None:
            raise NotFoundError(f"Failed to tag modelkit: model {src} not found")
        if is_digest(dst.reference):
            if dst.reference != desc["digest"]:
                raise KitError(f"Failed to tag modelkit: failed to tag model: digest "
                               f"{dst.reference} does not match {desc['digest']}")
            data, _ = store.read_manifest(desc)
            store.add_manifest(repo_key(dst), data, ())
        else:
            store.tag(repo_key(dst), dst.reference, desc)
    rep.info(f"Modelkit {src} tagged as {dst}")
    return TagResult(source=str(src), target=str(dst), digest=desc["digest"],
                     messages=[("info", f"Modelkit {src} tagged as {dst}")])


def _tag_ref(s: str, which: str) -> Any:
    return _ref_with_tag(s, f"{which} ModelKit reference requires a tag or digest ({s}:<tag>)")


def _ref_with_tag(s: str, missing: str) -> Any:
    """tag/remove argument rules, in kit's words: parse errors and a missing tag are both
    "Invalid arguments"."""
    try:
        ref = parse_ref(s)
    except ReferenceError_ as exc:
        raise ReferenceError_(f"Invalid arguments: failed to parse reference: {exc}") from None
    if not ref.reference:
        raise ReferenceError_(f"Invalid arguments: {missing}")
    return ref


# --------------------------------------------------------------------------------------------
# remove


def remove(ref: str | None = None, *, force: bool = False, all: bool = False,  # noqa: A002
           home: PathLike = None, reporter: Reporter | None = None) -> RemoveResult:
    """Remove a ModelKit or a tag from local storage (``kit remove REF``).

    A digest removes the manifest and all its tags; a tag only untags while other tags remain,
    unless ``force``.

    Args:
        ref: ``[registry/]repository:tag[,tag2...]`` or ``...@digest``; omit with ``all``.
        force: remove the manifest even when other tags point to it (``-f``).
        all: remove every untagged ModelKit, with ``force`` every ModelKit (``-a``).
        home: storage root (``--config``); default ``$KITOPS_HOME``, else the OS default.
        reporter: receives kit's messages.

    Returns:
        RemoveResult: ``removed``, one entry per removed or untagged reference.
    """
    rep = _reporter(reporter)
    start = len(rep.messages)
    store = LocalStore(home)
    removed: list[dict[str, Any]] = []
    if all:
        if ref:
            raise KitError("Invalid arguments: modelkit should not be specified when --all "
                           "flag is used")
        with store.locked():
            if force:
                _remove_everything(store, rep, removed)
            else:
                _remove_untagged(store, rep, removed)
        return RemoveResult(removed=removed, messages=list(rep.messages[start:]))
    if not ref:
        raise KitError("modelkit is required for remove unless --all is specified")
    parsed = _ref_with_tag(ref, f"tag or digest is required when removing ({ref}:<tag>)")
    with store.locked():
        desc = _remove_ref(store, parsed, parsed.reference, force, removed)
        if desc is None:
            raise NotFoundError(f"failed to remove: model {display(parsed)} not found")
        rep.info(f"Removed {display(parsed)} (digest {desc['digest']})")
        for extra in parsed.extra_tags:
            shown = display(_with_reference(parsed, extra))
            desc = _remove_ref(store, parsed, extra, force, removed)
            if desc is None:
                rep.warning(f"Failed to remove tag {extra}: model {shown} not found")
            else:
                rep.info(f"Removed {shown} (digest {desc['digest']})")
    return RemoveResult(removed=removed, messages=list(rep.messages[start:]))


def _with_reference(ref: Any, reference: str) -> str:
    sep = "@" if is_digest(reference) else ":"
    return f"{ref.registry}/{ref.repository}{sep}{reference}"


def _remove_ref(store: LocalStore, ref: Any, reference: str, force: bool,
                removed: list[dict[str, Any]]) -> dict[str, Any] | None:
    repo = repo_key(ref)
    desc = store.resolve_descriptor(repo, reference)
    if desc is None:
        return None
    full = _with_reference(ref, reference)
    if is_digest(reference) or force or len(store.tags_for(repo, desc["digest"])) <= 1:
        store.remove_manifest(repo, desc)
        removed.append({"reference": full, "digest": desc["digest"], "action": "removed"})
    else:
        store.untag(repo, reference)
        removed.append({"reference": full, "digest": desc["digest"], "action": "untagged"})
    return desc


def _remove_untagged(store: LocalStore, rep: Reporter, removed: list[dict[str, Any]]) -> None:
    for repo in store.repositories():
        shown = display(repo)
        for desc in store.manifests(repo):
            if store.tags_for(repo, desc["digest"]):
                continue
            store.remove_manifest(repo, desc)
            removed.append({"reference": f"{repo}@{desc['digest']}", "digest": desc["digest"],
                            "action": "removed"})
            rep.info(f"Removed {shown}@{desc['digest']}")


def _remove_everything(store: LocalStore, rep: Reporter, removed: list[dict[str, Any]]) -> None:
    for repo in store.repositories():
        shown = display(repo)
        seen: set[str] = set()
        for desc in store.manifests(repo):
            if desc["digest"] in seen:
                continue
            for t in store.tags_for(repo, desc["digest"]):
                store.untag(repo, t)
                rep.info(f"Untagged {shown}:{t}")
            store.remove_manifest(repo, desc)
            seen.add(desc["digest"])
            removed.append({"reference": f"{repo}@{desc['digest']}", "digest": desc["digest"],
                            "action": "removed"})
            rep.info(f"Removed {shown}@{desc['digest']}")


# --------------------------------------------------------------------------------------------
# parent ModelKits (model.path is a reference)


def _resolve_parent_kitfile(path: str, home: PathLike, max_chain: int = 10) -> Any:
    """The Kitfile a ``model.path`` reference points at, following chains of references
    (local storage first, then the registry) with kit's limit and cycle messages."""

    visited: list[str] = []
    current = path
    while True:
        if current in visited:
            idx = visited.index(current)
            raise KitError("Found cycle in modelkit references: "
                           f"[{'=>'.join([*visited[idx:], current])}]")
        if len(visited) >= max_chain:
            raise KitError(f"reached maximum number of model references: [{', '.join(visited)}]")
        visited.append(current)
        ref = parse_ref(current)
        if not ref.reference:
            ref, _ = ref.with_default_tag()
        src = open_source(ref, home=home)
        try:
            data, digest = resolve_in(src, ref)
            manifest = parse_manifest(data, digest)
            raw = config_bytes(src, manifest)
        finally:
            _close_if_opened(src, None)
        if raw is None:
            raise KitError("artifact does not contain a Kitfile")
        kf = Kitfile.from_config_json(raw)
        model = getattr(kf, "model", None)
        nxt = getattr(model, "path", "") if model is not None else ""
        if not nxt or not is_modelkit_reference(nxt):
            return kf
        current = nxt
