"""Descriptors, manifests and indexes as typed values (OCI image-spec; spec §7.1, §9).

Bytes that claim to be a manifest come from storage, from a registry, or from a user who made
them by hand; they are parsed here, once, where they enter, and anything that is not a manifest
(not JSON, wrong types, a size no int64 holds, a malformed digest) is refused with one line
(:class:`ManifestError`). Past that point the code reads attributes, not dict keys.

What we write (pack's manifest, the storage index files) is produced from these objects in the
field order of Go's ``ocispec`` structs through :func:`~kit_jupyter.gocompat.gojson.marshal`, so
the bytes are those kit writes. A manifest read from anywhere keeps its exact bytes (``raw``):
its digest is the digest of those bytes, never of a re-encoding.

"Is this a ModelKit" lives here too (:meth:`Manifest.model_format`), with kit's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kit_jupyter.errors import KitError
from kit_jupyter.gocompat.godigest import digest_error, sha256_digest
from kit_jupyter.gocompat.gojson import json_kind, marshal, unmarshal
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.oci.mediatypes import (
    KIT_CONFIG,
    KIT_FORMAT,
    KIT_MANIFEST_ARTIFACT,
    MODELPACK_CONFIG,
    MODELPACK_FORMAT,
    MODELPACK_MANIFEST_ARTIFACT,
    OCI_INDEX,
    OCI_MANIFEST,
)

#: Go's int64: a larger size cannot come from kit, and Python would accept it silently.
MAX_SIZE = (1 << 63) - 1

_DESCRIPTOR_KEYS = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform",
                    "artifactType")
_MANIFEST_KEYS = ("schemaVersion", "mediaType", "artifactType", "config", "layers", "subject",
                  "annotations")
_INDEX_KEYS = ("schemaVersion", "mediaType", "artifactType", "manifests", "subject",
               "annotations")


class ManifestError(KitError):
    """Bytes that should be a manifest, descriptor or index and are not (one line)."""


class NotAModelKitError(ManifestError):
    """A well-formed OCI manifest that is neither a Kit nor a ModelPack ModelKit."""


# --------------------------------------------------------------------------------------------
# reading JSON values with Go's types


class _Reader:
    """Checks JSON values against the Go types kit unmarshals them into, naming the field."""

    def __init__(self, what: str):
        self.what = what

    def fail(self, where: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.what} is invalid: {where} {problem}")

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"is {_kind(value)}, not an object")
        # json.loads makes only string keys; a caller's dict may hold others (a Go map cannot)
        if not all(isinstance(k, str) for k in value):
            raise self.fail(where, "has a key that is not a string")
        return value

    def str_(self, value: object, where: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(where, f"is {_kind(value)}, not a string")
        return value

    def int_(self, value: object, where: str, *, low: int = 0) -> int:
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(where, f"is {_kind(value)}, not an integer")
        if not low <= value <= MAX_SIZE:
            raise self.fail(where, f"is out of range ({value})")
        return value

    def strings(self, value: object, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(where, f"is {_kind(value)}, not an array")
        return tuple(self.str_(v, f"{where}[{i}]") for i, v in enumerate(value))

    def string_map(self, value: object, where: str) -> dict[str, str]:
        if value is None:
            return {}
        return {k: self.str_(v, f"{where}[{_quote(k)}]")
                for k, v in self.obj(value, where).items()}

    def common(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The fields manifests and indexes share, as keyword arguments."""
        subject = obj.get("subject")
        return {
            "media_type": self.str_(obj.get("mediaType"), "mediaType"),
            "artifact_type": self.str_(obj.get("artifactType"), "artifactType"),
            "annotations": self.string_map(obj.get("annotations"), "annotations"),
            "subject": None if subject is None else Descriptor.from_json(subject, "subject", self),
            "schema_version": self.int_(obj.get("schemaVersion"), "schemaVersion"),
        }

    def descriptors(self, value: object, where: str) -> tuple[Descriptor, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(where, f"is {_kind(value)}, not an array")
        return tuple(Descriptor.from_json(v, f"{where}[{i}]", self) for i, v in enumerate(value))


def _quote(text: str) -> str:
    """A registry's string in an error: quoted (so it stays on one line) and cut short (a
    megabyte digest or key would not be one clear line)."""
    return repr(text if len(text) <= 100 else text[:100] + "…")


def _kind(value: object) -> str:
    kind = json_kind(value)
    return {"null": "null", "bool": "a boolean", "array": "an array",
            "object": "an object"}.get(kind, f"a {kind}")


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = unmarshal(data)   # refuses NaN, Infinity and 1e400, as Go does
    except ValueError as exc:  # UnicodeDecodeError, and nesting too deep, among them
        raise ManifestError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return value


def _extra(obj: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in known}


# --------------------------------------------------------------------------------------------
# descriptor


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest, index or tags file says about one blob.

    ``extra`` keeps fields a newer spec may add, so rewriting an index file kit wrote loses
    nothing."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    urls: tuple[str, ...] = ()
    data: str = ""  # base64, as Go writes a []byte
    platform: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: object, where: str = "descriptor",
                  reader: _Reader | None = None) -> Descriptor:
        r = reader or _Reader("descriptor")
        obj = r.obj(value, where)
        digest = r.str_(obj.get("digest"), f"{where}.digest")
        problem = digest_error(digest)
        if problem:
            raise r.fail(f"{where}.digest", f"{_quote(digest)}: {problem}")
        platform = obj.get("platform")
        return cls(
            media_type=r.str_(obj.get("mediaType"), f"{where}.mediaType"),
            digest=digest,
            size=r.int_(obj.get("size"), f"{where}.size"),
            annotations=r.string_map(obj.get("annotations"), f"{where}.annotations"),
            artifact_type=r.str_(obj.get("artifactType"), f"{where}.artifactType"),
            urls=r.strings(obj.get("urls"), f"{where}.urls"),
            data=r.str_(obj.get("data"), f"{where}.data"),
            platform=None if platform is None else r.obj(platform, f"{where}.platform"),
            extra=_extra(obj, _DESCRIPTOR_KEYS),
        )

    @classmethod
    def of_manifest(cls, raw: bytes) -> Descriptor:
        """The descriptor of manifest bytes, as kit records it in ``index.json`` and tags."""
        return cls(OCI_MANIFEST, sha256_digest(raw), len(raw))

    def plain(self) -> Descriptor:
        """Only media type, digest and size: what a tag or an index entry records."""
        return Descriptor(self.media_type or OCI_MANIFEST, self.digest, self.size)

    def to_json(self) -> Struct:
        """Go's ``ocispec.Descriptor`` field order; empty optional fields left out."""
        out = Struct(mediaType=self.media_type, digest=self.digest, size=self.size)
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)  # a Go map: written sorted
        if self.data:
            out["data"] = self.data
        if self.platform is not None:  # a pointer in Go: omitempty leaves out nil, not {}
            out["platform"] = dict(self.platform)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------------------------
# manifest


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest. Built in code, ``raw`` is filled with Go's bytes for it; parsed
    (:meth:`parse`), ``raw`` is the exact bytes read, and ``digest`` always hashes ``raw``."""

    config: Descriptor
    layers: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    media_type: str = ""  # the JSON field; kit's manifests have none
    subject: Descriptor | None = None
    schema_version: int = 2
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", marshal(self.to_json()))

    @classmethod
    def parse(cls, data: bytes, what: str = "manifest") -> Manifest:
        """Manifest bytes from storage or a registry; :class:`ManifestError` (one line) for
        anything kit's ``json.Unmarshal`` into ``ocispec.Manifest`` would refuse, and for
        sizes and digests that cannot be right. A missing config is the zero descriptor (an
        index, say): :meth:`model_format` then says it is not a ModelKit, as kit does."""
        r = _Reader(what)
        obj = _load(data, what)
        config = obj.get("config")
        return cls(config=(Descriptor("", "", 0) if config is None
                           else Descriptor.from_json(config, "config", r)),
                   layers=r.descriptors(obj.get("layers"), "layers"), raw=bytes(data),
                   **r.common(obj))

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.of_manifest(self.raw)

    @property
    def size(self) -> int:
        """Sum of the layer sizes (what ``kit list`` shows)."""
        return sum(layer.size for layer in self.layers)

    def blobs(self) -> list[Descriptor]:
        """Config first, then layers, each digest once: the order a push uploads and a pull
        downloads them."""
        seen: set[str] = set()
        out = []
        for d in (self.config, *self.layers):
            if d.digest and d.digest not in seen:
                seen.add(d.digest)
                out.append(d)
        return out

    def model_format(self) -> str:
        """``kit`` or ``modelpack`` (spec §7.1); ModelKits from 2024 lack ``artifactType`` and
        are recognised by their config media type. Otherwise kit's not-a-ModelKit error."""
        config_type = self.config.media_type
        if self.artifact_type == KIT_MANIFEST_ARTIFACT or config_type == KIT_CONFIG:
            return KIT_FORMAT
        if self.artifact_type == MODELPACK_MANIFEST_ARTIFACT or config_type == MODELPACK_CONFIG:
            return MODELPACK_FORMAT
        raise NotAModelKitError(f"manifest is not a Model manifest: artifactType is "
                                f"{self.artifact_type}, config mediaType is {config_type}")

    @property
    def is_modelkit(self) -> bool:
        try:
            self.model_format()
        except NotAModelKitError:
            return False
        return True

    def to_json(self) -> Struct:
        """Go's ``ocispec.Manifest`` field order. ``layers`` is always an array (``[]`` for
        none: what pack has always written)."""
        return _struct(self, config=self.config.to_json(),
                       layers=[d.to_json() for d in self.layers])


# --------------------------------------------------------------------------------------------
# index (storage's index.json and the per-repository index files)


@dataclass(frozen=True)
class Index:
    """An OCI image index as storage keeps them: ``index.json`` (with ``mediaType``) and
    ``<repo>-index.json`` (without, as kit writes it)."""

    manifests: tuple[Descriptor, ...] = ()
    media_type: str = ""
    artifact_type: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    schema_version: int = 2
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, what: str = "index") -> Index:
        r = _Reader(what)
        obj = _load(data, what)
        return cls(manifests=r.descriptors(obj.get("manifests"), "manifests"),
                   extra=_extra(obj, _INDEX_KEYS), **r.common(obj))

    def with_manifests(self, manifests: list[Descriptor] | tuple[Descriptor, ...]) -> Index:
        return Index(tuple(manifests), self.media_type, self.artifact_type, self.annotations,
                     self.subject, self.schema_version, self.extra)

    def to_json(self) -> Struct:
        out = _struct(self, manifests=[d.to_json() for d in self.manifests])
        out.update(self.extra)
        return out

    def to_bytes(self) -> bytes:
        return marshal(self.to_json())


def _struct(doc: Manifest | Index, **body: object) -> Struct:
    """Go's field order of ``ocispec.Manifest`` and ``ocispec.Index``: schemaVersion,
    mediaType, artifactType, the body (config and layers, or manifests), subject,
    annotations; empty optional fields left out."""
    out = Struct(schemaVersion=doc.schema_version)
    if doc.media_type:
        out["mediaType"] = doc.media_type
    if doc.artifact_type:
        out["artifactType"] = doc.artifact_type
    out.update(body)
    if doc.subject is not None:
        out["subject"] = doc.subject.to_json()
    if doc.annotations:
        out["annotations"] = dict(doc.annotations)  # a Go map: written sorted
    return out


def parse_tags(data: bytes, what: str = "tags index") -> dict[str, Descriptor]:
    """A ``<repo>-tags.json`` file (a Go ``map[string]ocispec.Descriptor``): tag -> manifest
    descriptor."""
    r = _Reader(what)
    return {tag: Descriptor.from_json(d, f"[{_quote(tag)}]", r)
            for tag, d in _load(data, what).items()}


def empty_top_index() -> Index:
    """storage/index.json before anything is stored (oras writes ``"manifests":[]``)."""
    return Index(media_type=OCI_INDEX)
