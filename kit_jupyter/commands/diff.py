"""``kit diff REF1 REF2``: which layers, config and annotations two ModelKits share.

kit's semantics (``pkg/cmd/diff``): each reference is read from local storage (``local://``),
from its registry (``remote://``) or, without a prefix, locally if it is there and else from the
registry -- so local, remote and mixed comparisons all work. Only the two manifests are read
(each verified against its digest); no layer is downloaded. Equal manifest digests mean
"identical"; otherwise the config digests and the manifest annotations are compared, and layers
are matched by digest -- and, since kit 1.10 records each raw layer's file path, by that path
too, so two identical files at different paths are different layers (ModelKits packed before
have no path annotation and match on the digest alone).

The result is data (:class:`DiffResult`): kit's text in a terminal, an HTML table in a
notebook, and JSON whose ``SameConfig`` … ``UniqueLayersB`` keys are kit's ``DiffResult``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter._arguments import COUNT, OPT_PATH, TEXT, arguments
from kit_jupyter.commands.render import Cell, html_table
from kit_jupyter.commands.results import Result
from kit_jupyter.commands.sources import BlobSource, close_source, open_source, remote_source
from kit_jupyter.errors import KitError, NotFoundError, ReferenceError_
from kit_jupyter.gocompat.gopath import go_clean
from kit_jupyter.kitfile.reference import Reference, parse_reference
from kit_jupyter.oci.manifest import NotAModelKitError
from kit_jupyter.oci.mediatypes import ANNOTATION_FILEPATH, format_for_user
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter, Reporter, format_bytes
from kit_jupyter.transport.registry import RegistryOptions

LOCAL_PREFIX = "local://"
REMOTE_PREFIX = "remote://"
_RULE = "---------------------------------------"


# -- comparison (kit's CompareManifests) -----------------------------------------------------

@dataclass
class ManifestComparison:
    same_config: bool
    annotations_match: bool
    shared_layers: list[dict[str, Any]]
    unique_layers_a: list[dict[str, Any]]
    unique_layers_b: list[dict[str, Any]]


def _layer_path(layer: dict[str, Any]) -> str:
    return (layer.get("annotations") or {}).get(ANNOTATION_FILEPATH) or ""


def _same_layer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    pa, pb = _layer_path(a), _layer_path(b)
    # layers packed before kit 1.10 carry no path: the digest alone decides
    return not pa or not pb or go_clean(pa) == go_clean(pb)


def compare_manifests(a: dict[str, Any], b: dict[str, Any]) -> ManifestComparison:
    """kit's ``CompareManifests``: shared layers are B's descriptors that have a match left in
    A (each A layer matches once); every list is ordered by media type, ties keeping order."""
    same_config = (a.get("config") or {}).get("digest") == (b.get("config") or {}).get("digest")
    annotations_match = (a.get("annotations") or {}) == (b.get("annotations") or {})
    unmatched: dict[str, list[dict[str, Any]]] = {}
    for layer in a.get("layers") or []:
        unmatched.setdefault(layer.get("digest", ""), []).append(layer)
    shared: list[dict[str, Any]] = []
    only_b: list[dict[str, Any]] = []
    for layer in b.get("layers") or []:
        candidates = unmatched.get(layer.get("digest", ""), [])
        i = next((i for i, c in enumerate(candidates) if _same_layer(c, layer)), -1)
        if i >= 0:
            shared.append(layer)
            del candidates[i]
        else:
            only_b.append(layer)
    only_a = [layer for group in unmatched.values() for layer in group]

    def by_type(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(layers, key=lambda x: x.get("mediaType", ""))

    return ManifestComparison(same_config, annotations_match, by_type(shared), by_type(only_a),
                              by_type(only_b))


# -- the result ---------------------------------------------------------------------------------

@dataclass
class Side:
    """One of the two ModelKits: the reference as kit prints it and its manifest."""

    reference: str
    digest: str
    manifest: dict[str, Any]

    @property
    def config_digest(self) -> str:
        return (self.manifest.get("config") or {}).get("digest", "")

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.manifest.get("annotations") or {})


def _short(digest: str) -> str:
    return digest[:17]  # kit prints "sha256:" and ten hex digits


# translucent tints read on light and dark themes alike
_TINT = {"both": "", "ModelKit1": "background:rgba(214,39,40,.14)",
         "ModelKit2": "background:rgba(44,160,44,.16)"}


def _mono(value: str, style: str = "", title: str | None = None) -> Cell:
    return Cell(value, mono=True, style=style, title=title)


@dataclass(repr=False)
class DiffResult(Result):
    modelkit1: Side
    modelkit2: Side
    comparison: ManifestComparison
    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.modelkit1.digest == self.modelkit2.digest

    @property
    def same_config(self) -> bool:
        return self.comparison.same_config

    @property
    def annotations_match(self) -> bool:
        return self.comparison.annotations_match

    @property
    def shared_layers(self) -> list[dict[str, Any]]:
        return self.comparison.shared_layers

    @property
    def unique_layers_1(self) -> list[dict[str, Any]]:
        return self.comparison.unique_layers_a

    @property
    def unique_layers_2(self) -> list[dict[str, Any]]:
        return self.comparison.unique_layers_b

    def annotation_changes(self) -> list[tuple[str, str | None, str | None]]:
        """(key, value in ModelKit1, value in ModelKit2) for every key that differs."""
        a, b = self.modelkit1.annotations, self.modelkit2.annotations
        return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]

    @property
    def data(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {"reference": s.reference, "digest": s.digest,
                    "configDigest": s.config_digest, "annotations": s.annotations}

        c = self.comparison
        return {"ModelKit1": side(self.modelkit1), "ModelKit2": side(self.modelkit2),
                "Identical": self.identical, "SameConfig": c.same_config,
                "AnnotationsMatch": c.annotations_match,
                "SharedLayers": [dict(x) for x in c.shared_layers],
                "UniqueLayersA": [dict(x) for x in c.unique_layers_a],
                "UniqueLayersB": [dict(x) for x in c.unique_layers_b]}

    def to_json(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=2)

    # kit's text, line for line (its logger capitalises the first letter of every line)
    def text(self) -> str:
        if self.identical:
            return "ModelKits are identical\n"
        a, b = self.modelkit1, self.modelkit2
        out = ["Comparing:", f"  ModelKit1: {a.reference}", f"  ModelKit2: {b.reference}", "",
               "Configurations:", _RULE]
        if self.same_config:
            out += [f"  Configs are identical (Digest: {_short(a.config_digest)})", ""]
        else:
            out += ["Configs differ:", f"  ModelKit1 Config Digest: {_short(a.config_digest)}",
                    f"  ModelKit2 Config Digest: {_short(b.config_digest)}", ""]
        out += ["Annotations:", _RULE]
        out += ["  Annotations are identical ", ""] if self.annotations_match else \
            ["  Annotations does not match", ""]
        for title, layers in (("Shared Layers", self.shared_layers),
                              (f"Unique Layers to ModelKit1 ({a.reference})",
                               self.unique_layers_1),
                              (f"Unique Layers to ModelKit2 ({b.reference})",
                               self.unique_layers_2)):
            out += [title, _RULE]
            if layers:
                out.append("Type    | Digest             | Size")
                for layer in layers:
                    row = (f"{format_for_user(layer.get('mediaType', '')):<7} | "
                           f"{_short(layer.get('digest', '')):<18} | "
                           f"{format_bytes(int(layer.get('size') or 0))}")
                    out.append(row[:1].upper() + row[1:])
            else:
                out.append("<none>")
            out.append("")
        return "\n".join(out) + "\n"

    def summary(self) -> str:
        if self.identical:
            return "ModelKits are identical"
        return (f"{self.modelkit1.reference} vs {self.modelkit2.reference}: "
                f"{len(self.shared_layers)} shared layer(s), {len(self.unique_layers_1)} only in "
                f"ModelKit1, {len(self.unique_layers_2)} only in ModelKit2; config "
                f"{'identical' if self.same_config else 'differs'}, annotations "
                f"{'identical' if self.annotations_match else 'differ'}")

    def _html_body(self) -> str:
        a, b = self.modelkit1, self.modelkit2
        status = "are identical" if self.identical else "differ"
        head = html_table(["", "ModelKit1", "ModelKit2"], [
            [_mono("reference"), _mono(a.reference), _mono(b.reference)],
            [_mono("manifest"), _mono(_short(a.digest), title=a.digest),
             _mono(_short(b.digest), title=b.digest)],
            [_mono("config"), _mono(_short(a.config_digest), title=a.config_digest),
             _mono(_short(b.config_digest) + ("  (same)" if self.same_config else ""),
                   title=b.config_digest)],
        ], caption=f"ModelKits {status}")
        rows = []
        for where, layers in (("both", self.shared_layers), ("ModelKit1", self.unique_layers_1),
                              ("ModelKit2", self.unique_layers_2)):
            tint = _TINT[where]
            for layer in layers:
                digest = layer.get("digest", "")
                rows.append([_mono(where, tint),
                             _mono(format_for_user(layer.get("mediaType", "")), tint),
                             _mono(_layer_path(layer), tint),
                             _mono(_short(digest), tint, title=digest),
                             _mono(format_bytes(int(layer.get("size") or 0)), tint)])
        table = html_table(["in", "type", "path", "digest", "size"], rows, caption="Layers")
        notes = ""
        changes = self.annotation_changes()
        if changes:
            notes = html_table(["annotation", "ModelKit1", "ModelKit2"], [
                [_mono(k), _mono("(absent)" if v1 is None else v1),
                 _mono("(absent)" if v2 is None else v2)] for k, v1, v2 in changes],
                caption="Annotations that differ")
        return head + table + notes


# -- reading the manifests ----------------------------------------------------------------------

PathLike = str | os.PathLike[str] | None


def _parse(arg: str, which: str) -> Reference:
    bare = arg
    for prefix in (REMOTE_PREFIX, LOCAL_PREFIX):
        bare = bare.removeprefix(prefix)
    try:
        return parse_reference(bare)
    except ReferenceError_ as exc:
        raise KitError(f"Invalid arguments: failed to parse reference for {which}: {exc}") \
            from None


def _read(arg: str, ref: Reference, *, home: PathLike,
          registry_options: RegistryOptions) -> Side:
    not_found = (f"reference {ref.reference or 'latest'} not found in repository: "
                 f"{ref.repo_key}: not found")
    source: BlobSource | LocalStore
    if arg.startswith(REMOTE_PREFIX):
        source = remote_source(ref, home=home, registry_options=registry_options)
    elif arg.startswith(LOCAL_PREFIX):
        source = LocalStore(home)
    else:
        try:
            source = open_source(ref, home=home, registry_options=registry_options)
        except NotFoundError:
            raise NotFoundError(not_found) from None
    try:
        manifest = source.resolve(ref)
    except NotFoundError:
        raise NotFoundError(not_found) from None
    finally:
        close_source(source)
    try:
        manifest.model_format()
    except NotAModelKitError:
        raise KitError("reference exists but is not a modelkit") from None
    return Side(reference=str(ref), digest=manifest.digest, manifest=json.loads(manifest.raw))


@arguments(ref1=TEXT, ref2=TEXT, home=OPT_PATH, concurrency=COUNT)
def diff(ref1: str, ref2: str, *, home: PathLike = None, reporter: Reporter | None = None,
         plain_http: bool = False, tls_verify: bool | str = True,
         concurrency: int = 5) -> DiffResult:
    """Compare two ModelKits: config, annotations and layers (``kit diff REF1 REF2``).

    Args:
        ref1: the first reference; ``local://`` reads local storage only, ``remote://`` its
            registry only; without either, local storage is tried first.
        ref2: the second reference, the same way.
        home: storage root and credentials (``--config``); default ``$KITOPS_HOME``.
        reporter: receives kit's messages.
        plain_http: talk to the registry over HTTP (``--plain-http``).
        tls_verify: verify the registry's TLS certificate; a path is a CA bundle.
        concurrency: parallel registry transfers (``--concurrency``).

    Returns:
        DiffResult: ``identical``, ``same_config``, ``annotations_match``, ``shared_layers``
        and the two sides; ``text()`` is kit's report.
    """
    registry_options = RegistryOptions(plain_http=plain_http, tls_verify=tls_verify,
                                       concurrency=concurrency, home=home)
    rep = reporter if reporter is not None else NullReporter()
    refs = [(ref1, _parse(ref1, "ref1")), (ref2, _parse(ref2, "ref2"))]
    # kit reads both manifests at once; a registry round trip each, so this halves the wait
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_read, arg, ref, home=home, registry_options=registry_options)
                   for arg, ref in refs]
    sides = []
    for n, fut in enumerate(futures, start=1):
        try:
            sides.append(fut.result())
        except KitError as exc:
            raise type(exc)(f"Failed to get manifest for ModelKit{n}: {exc}") from None
    a, b = sides
    return DiffResult(a, b, compare_manifests(a.manifest, b.manifest), list(rep.messages))
