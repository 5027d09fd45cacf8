"""``list``, ``inspect``, ``info``, ``tag`` and ``remove`` on local storage, with kit's texts.

Each is a plain function returning a result object from :mod:`kit_jupyter.commands.results`;
kit's info lines go to the reporter *and* into ``result.messages`` (``tag`` and ``remove``
print nothing else, so their result's ``text()`` is those lines).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from kit_jupyter._arguments import COUNT, OPT_PATH, OPT_TEXT, TEXT, arguments
from kit_jupyter.commands.results import (
    InfoResult,
    InspectResult,
    ListResult,
    RemoveResult,
    TagResult,
    list_row,
)
from kit_jupyter.commands.sources import (
    BlobSource,
    close_source,
    read_kitfile,
    remote_source,
)
from kit_jupyter.errors import KitError, NotFoundError, ReferenceError_
from kit_jupyter.gocompat.godigest import is_digest
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.kitfile.reference import (
    Reference,
    display_repository,
    parse_reference,
)
from kit_jupyter.oci.manifest import Descriptor, Manifest, NotAModelKitError
from kit_jupyter.oci.mediatypes import ANNOTATION_CLI_VERSION
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter, Reporter
from kit_jupyter.transport.registry import RegistryOptions

PathLike = str | os.PathLike[str] | None


# --------------------------------------------------------------------------------------------
# shared helpers


def kitfile_json(kf: Kitfile) -> dict[str, Any]:
    """The Kitfile as kit's ``inspect`` shows it: its config JSON as values, in field order."""
    value: dict[str, Any] = json.loads(kf.to_config_json(), object_pairs_hook=Struct)
    return value


def _reporter(reporter: Reporter | None) -> Reporter:
    return reporter if reporter is not None else NullReporter()


def single_reference(s: str) -> Reference:
    """inspect/info argument rules: no extra tags, a tag or digest required."""
    ref = parse_reference(s)
    if ref.extra_tags:
        raise ReferenceError_("invalid reference format: extra tags are not supported: "
                              + ", ".join(ref.extra_tags))
    if not ref.reference:
        raise ReferenceError_(f"missing tag or digest from ModelKit reference '{s}'")
    return ref


def _open_for_read(ref: Reference, *, home: PathLike, source: BlobSource | None, remote: bool,
                   registry_options: RegistryOptions, warn: Callable[[str], Any]) -> BlobSource:
    if source is not None:
        return source
    if remote:
        if ref.registry == "localhost":
            raise KitError(f"can not check remote: {ref.display()} does not contain registry")
        return remote_source(ref, home=home, registry_options=registry_options, warn=warn)
    return LocalStore(home)


def _read_modelkit(ref: Reference, *, home: PathLike, source: BlobSource | None, remote: bool,
                   registry_options: RegistryOptions, warn: Callable[[str], Any]
                   ) -> tuple[Manifest, Kitfile | None]:
    """inspect's and info's read: the manifest and the Kitfile, with kit's texts for a
    reference that is missing or is not a ModelKit."""
    src = _open_for_read(ref, home=home, source=source, remote=remote,
                         registry_options=registry_options, warn=warn)
    try:
        try:
            manifest = src.resolve(ref)
        except NotFoundError:
            raise NotFoundError(f"Could not find modelkit {ref.display()}") from None
        return manifest, read_kitfile(src, manifest)
    except NotAModelKitError:
        raise KitError("Error resolving modelkit: reference exists but is not a modelkit") \
            from None
    finally:
        if src is not source:
            close_source(src)


# --------------------------------------------------------------------------------------------
# list


@arguments(home=OPT_PATH)
def list_modelkits(*, home: PathLike = None, reporter: Reporter | None = None) -> ListResult:
    """The ModelKits in local storage (``kit list``).

    A stored manifest that cannot be read is skipped with a warning, never the whole list.

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
        shown = display_repository(repo) or "<none>"
        infos = []
        for desc in store.manifests(repo):
            try:
                manifest = store.read_manifest(desc)
                kitfile = read_kitfile(store, manifest)
            except NotAModelKitError:
                continue
            except KitError as exc:
                rep.warning(f"Skipping {shown}@{desc.digest}: {exc}")
                continue
            infos.append(list_row(shown, desc.digest, store.tags_for(repo, desc.digest),
                                  kitfile, manifest))
        infos.sort(key=lambda m: (m["repo"], m["digest"]))
        models.extend(infos)
    return ListResult(models=models, messages=list(rep.messages))


# --------------------------------------------------------------------------------------------
# inspect


@arguments(ref=TEXT, home=OPT_PATH, concurrency=COUNT)
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
    rep = _reporter(reporter)
    manifest, kf = _read_modelkit(parsed, home=home, source=source, remote=remote,
                                  registry_options=RegistryOptions(
                                      plain_http=plain_http, tls_verify=tls_verify,
                                      concurrency=concurrency, home=home), warn=rep.warning)
    version = manifest.annotations.get(ANNOTATION_CLI_VERSION) or "unknown"
    return InspectResult(digest=manifest.digest, cli_version=version,
                         kitfile=None if kf is None else kitfile_json(kf), manifest=manifest,
                         messages=list(rep.messages), shown=reporter is not None)


# --------------------------------------------------------------------------------------------
# info


@arguments(ref=TEXT, home=OPT_PATH, filter=OPT_TEXT, concurrency=COUNT)
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
    rep = _reporter(reporter)
    _, kf = _read_modelkit(parsed, home=home, source=source, remote=remote,
                           registry_options=RegistryOptions(
                               plain_http=plain_http, tls_verify=tls_verify,
                               concurrency=concurrency, home=home), warn=rep.warning)
    if kf is None:
        raise KitError("Error resolving modelkit: artifact does not contain a Kitfile")
    text = kf.to_yaml()
    if filter:
        text = filter_yaml(text, filter)
    return InfoResult(reference=parsed.display(), yaml=text,
                      kitfile=_strip_layer_info(kitfile_json(kf)),
                      messages=list(rep.messages), shown=reporter is not None)


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


@arguments(source=TEXT, target=TEXT, home=OPT_PATH)
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
        desc = store.resolve_descriptor(src.repo_key, src.reference)
        if desc is None:
            raise NotFoundError(f"Failed to tag modelkit: model {src} not found")
        if dst.digest:
            if dst.digest != desc.digest:
                raise KitError(f"Failed to tag modelkit: failed to tag model: digest "
                               f"{dst.reference} does not match {desc.digest}")
            store.add_manifest(dst.repo_key, store.read_manifest(desc), ())
        else:
            store.tag(dst.repo_key, dst.reference, desc)
    rep.info(f"Modelkit {src} tagged as {dst}")
    return TagResult(source=str(src), target=str(dst), digest=desc.digest,
                     messages=[("info", f"Modelkit {src} tagged as {dst}")])


def _tag_ref(s: str, which: str) -> Reference:
    return _ref_with_tag(s, f"{which} ModelKit reference requires a tag or digest ({s}:<tag>)")


def _ref_with_tag(s: str, missing: str) -> Reference:
    """tag/remove argument rules, in kit's words: parse errors and a missing tag are both
    "Invalid arguments"."""
    try:
        ref = parse_reference(s)
    except ReferenceError_ as exc:
        raise ReferenceError_(f"Invalid arguments: failed to parse reference: {exc}") from None
    if not ref.reference:
        raise ReferenceError_(f"Invalid arguments: {missing}")
    return ref


# --------------------------------------------------------------------------------------------
# remove


@arguments(ref=OPT_TEXT, home=OPT_PATH)
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
            raise NotFoundError(f"failed to remove: model {parsed.display()} not found")
        rep.info(f"Removed {parsed.display()} (digest {desc.digest})")
        for extra in parsed.extra_tags:
            shown = display_repository(_with_reference(parsed, extra))
            desc = _remove_ref(store, parsed, extra, force, removed)
            if desc is None:
                rep.warning(f"Failed to remove tag {extra}: model {shown} not found")
            else:
                rep.info(f"Removed {shown} (digest {desc.digest})")
    return RemoveResult(removed=removed, messages=list(rep.messages[start:]))


def _with_reference(ref: Reference, reference: str) -> str:
    sep = "@" if is_digest(reference) else ":"
    return f"{ref.registry}/{ref.repository}{sep}{reference}"


def _remove_ref(store: LocalStore, ref: Reference, reference: str, force: bool,
                removed: list[dict[str, Any]]) -> Descriptor | None:
    repo = ref.repo_key
    desc = store.resolve_descriptor(repo, reference)
    if desc is None:
        return None
    full = _with_reference(ref, reference)
    if is_digest(reference) or force or len(store.tags_for(repo, desc.digest)) <= 1:
        store.remove_manifest(repo, desc)
        removed.append({"reference": full, "digest": desc.digest, "action": "removed"})
    else:
        store.untag(repo, reference)
        removed.append({"reference": full, "digest": desc.digest, "action": "untagged"})
    return desc


def _remove_untagged(store: LocalStore, rep: Reporter, removed: list[dict[str, Any]]) -> None:
    for repo in store.repositories():
        shown = display_repository(repo)
        for desc in store.manifests(repo):
            if store.tags_for(repo, desc.digest):
                continue
            store.remove_manifest(repo, desc)
            removed.append({"reference": f"{repo}@{desc.digest}", "digest": desc.digest,
                            "action": "removed"})
            rep.info(f"Removed {shown}@{desc.digest}")


def _remove_everything(store: LocalStore, rep: Reporter, removed: list[dict[str, Any]]) -> None:
    for repo in store.repositories():
        shown = display_repository(repo)
        seen: set[str] = set()
        for desc in store.manifests(repo):
            if desc.digest in seen:
                continue
            for t in store.tags_for(repo, desc.digest):
                store.untag(repo, t)
                rep.info(f"Untagged {shown}:{t}")
            store.remove_manifest(repo, desc)
            seen.add(desc.digest)
            removed.append({"reference": f"{repo}@{desc.digest}", "digest": desc.digest,
                            "action": "removed"})
            rep.info(f"Removed {shown}@{desc.digest}")
