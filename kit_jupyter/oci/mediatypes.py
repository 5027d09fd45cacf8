"""Media types, artifact types and annotation keys of ModelKits (spec §7.1-§7.4).

The one home of these strings and of the media-type grammar; "is this manifest a ModelKit" is
:meth:`kit_jupyter.oci.manifest.Manifest.model_format`.

Layers are built in kit's format; ``pack --use-model-pack`` renames their types with
:func:`in_format`, and unpack/inspect parse both. The grammar mirrors kit's own parser (Go
regexps, so ``\\w`` is ASCII-only), because a media type kit cannot parse is one kit_jupyter
must not write either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kit_jupyter.errors import KitError

# --- manifests, indexes, configs -------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
KIT_MANIFEST_ARTIFACT = "application/vnd.kitops.modelkit.manifest.v1+json"
MODELPACK_MANIFEST_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
KIT_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"

# --- annotations ---------------------------------------------------------------------------
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"
ANNOTATION_LAYER_SUBTYPE = "ml.kitops.modelkit.layer-subtype"
LAYER_SUBTYPE_PROMPT = "prompt"
ANNOTATION_CLI_VERSION = "ml.kitops.modelkit.cli-version"
ANNOTATION_KITFILE = "ml.kitops.modelkit.kitfile"
ANNOTATION_CREATED = "org.opencontainers.image.created"

# --- layer grammar -------------------------------------------------------------------------
KIT_FORMAT = "kit"
MODELPACK_FORMAT = "modelpack"

#: kit base names, in the vocabulary the rest of kit_jupyter uses ("what kind of layer").
BASES = ("config", "model", "modelpart", "dataset", "code", "docs", "mcpb")
_MODELPACK_BASE = {"config": "config", "model": "weight", "modelpart": "weight.config",
                   "dataset": "dataset", "code": "code", "docs": "doc"}
_MODELPACK_BASE_REV = {v: k for k, v in _MODELPACK_BASE.items()}

#: Kind of Kitfile layer entry (``Kitfile.layer_entries()``) -> kit base; prompts are code
#: layers with a subtype annotation.
LAYER_BASE = {"model": "model", "modelpart": "modelpart", "code": "code", "dataset": "dataset",
              "docs": "docs", "prompt": "code", "mcpserver": "mcpb"}

COMPRESSIONS = ("none", "gzip", "gzip-fastest", "zstd")
FORMATS = ("tar", "raw")

_KIT_RE = re.compile(r"^application/vnd\.kitops\.modelkit\.(\w+)\.v1\.(\w+)(?:\+(\w+))?$", re.ASCII)
_MODELPACK_RE = re.compile(
    r"^application/vnd\.cncf\.model\.(\w+(?:\.\w+)?)\.v1\.(\w+)(?:\+(\w+))?$", re.ASCII)


class MediaTypeError(KitError, ValueError):
    """A media type, compression or layer format string kit would not accept."""


def parse_compression(value: str) -> str:
    """kit's compression tokens; ``""`` means none (as in a media type without a suffix)."""
    if value in ("", "none"):
        return "none"
    if value in ("gzip", "gzip-fastest", "zstd"):
        return value
    raise MediaTypeError(f"invalid compression {value}")


def check_compression_flag(value: str) -> str:
    """Validate ``--compression`` with kit's flag message."""
    if value not in COMPRESSIONS:
        raise MediaTypeError("invalid compression type: must be one of 'none', 'gzip', "
                             "'gzip-fastest', or 'zstd'")
    return value


def check_layer_format_flag(value: str) -> str:
    if value not in FORMATS:
        raise MediaTypeError("invalid layer format: must be either 'tar' or 'raw'")
    return value


def check_save_options(model_format: str, layer_format: str, compression: str) -> None:
    """kit's ``SaveModelOptions.Validate``: model-spec has no compressed raw layers."""
    if model_format == MODELPACK_FORMAT and layer_format == "raw" and compression != "none":
        raise MediaTypeError("compression for raw layers is not supported for ModelPack")


@dataclass(frozen=True)
class MediaType:
    """A parsed layer or config media type.

    ``base`` always uses kit's vocabulary (``model``, not ModelPack's ``weight``) so callers can
    match layers to Kitfile entries without caring which format the artifact is in.
    ``compression`` keeps ``gzip-fastest`` when built for writing; parsing can only ever yield
    ``gzip`` because the string does not record the level.
    """

    base: str
    format: str = "tar"
    compression: str = "none"
    model_format: str = KIT_FORMAT

    @property
    def is_config(self) -> bool:
        return self.base == "config"

    @property
    def compressed(self) -> bool:
        return self.compression != "none"

    @property
    def user_string(self) -> str:
        """The word kit uses in messages (``No files detected in <this> layer ...``)."""
        if self.model_format == MODELPACK_FORMAT:
            return _MODELPACK_BASE.get(self.base, "invalid mediatype")
        return self.base

    def __str__(self) -> str:
        if self.model_format == MODELPACK_FORMAT:
            if self.is_config:
                return MODELPACK_CONFIG
            base = _MODELPACK_BASE[self.base]
            if self.format == "raw":
                return f"application/vnd.cncf.model.{base}.v1.raw"
            suffix = {"none": "", "gzip": "+gzip", "gzip-fastest": "+gzip",
                      "zstd": "+zstd"}[self.compression]
            return f"application/vnd.cncf.model.{base}.v1.tar{suffix}"
        if self.is_config:
            return KIT_CONFIG
        suffix = {"none": "", "gzip": "+gzip", "gzip-fastest": "+gzip",
                  "zstd": "+zstd"}[self.compression]
        return f"application/vnd.kitops.modelkit.{self.base}.v1.{self.format}{suffix}"


def layer_media_type(base: str, compression: str = "none", layer_format: str = "tar") -> str:
    """The kit-format media type string for a layer we write.

    mcpServers are always ``…mcpb.v1.raw`` whatever was asked (spec §7.3).
    """
    if base not in BASES or base == "config":
        raise MediaTypeError(f"invalid base type {base}")
    compression = parse_compression(compression)
    check_layer_format_flag(layer_format)
    if base == "mcpb":
        return "application/vnd.kitops.modelkit.mcpb.v1.raw"
    return str(MediaType(base, layer_format, compression, KIT_FORMAT))


def in_format(media_type: str, model_format: str) -> str:
    """The same layer media type in ``model_format``'s vocabulary (``…modelkit.model.v1.tar``
    -> ``…cncf.model.weight.v1.tar``): pack builds kit-format layers and a ModelPack pack
    renames their type, so every layer format and compression the writer knows exists in
    both formats. mcpServers have no ModelPack type (kit refuses them before packing)."""
    mt = parse_media_type(media_type)
    if mt.model_format == model_format:
        return media_type
    if model_format == MODELPACK_FORMAT and mt.base not in _MODELPACK_BASE:
        raise MediaTypeError(f"invalid base type {mt.base} for the modelpack format")
    check_save_options(model_format, mt.format, mt.compression)
    return str(MediaType(mt.base, mt.format, mt.compression, model_format))


def parse_media_type(value: str) -> MediaType:
    """Parse a config or layer media type of either format; kit's error texts."""
    if value == KIT_CONFIG:
        return MediaType("config", "", "none", KIT_FORMAT)
    if value == MODELPACK_CONFIG:
        return MediaType("config", "", "none", MODELPACK_FORMAT)
    m = _KIT_RE.match(value)
    if m:
        base, fmt, comp = m.group(1), m.group(2), m.group(3) or ""
        if base not in BASES:
            raise MediaTypeError(f"failed to parse media type: invalid base type {base}")
        return MediaType(base, _parse_format(fmt), _parse_comp(comp), KIT_FORMAT)
    m = _MODELPACK_RE.match(value)
    if m:
        base, fmt, comp = m.group(1), m.group(2), m.group(3) or ""
        kit_base = _MODELPACK_BASE_REV.get(base)
        if kit_base is None:
            raise MediaTypeError(f"failed to parse media type: invalid base type {base}")
        mt = MediaType(kit_base, _parse_format(fmt), _parse_comp(comp), MODELPACK_FORMAT)
        if mt.format == "raw" and mt.compression != "none":
            raise MediaTypeError("invalid mediatype: model-spec does not support compression "
                                 "for raw layers")
        return mt
    raise MediaTypeError(f"unrecognized media type {value}")


def _parse_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise MediaTypeError(f"failed to parse media type: invalid format {fmt}")
    return fmt


def _parse_comp(comp: str) -> str:
    try:
        return parse_compression(comp)
    except MediaTypeError as err:
        raise MediaTypeError(f"failed to parse media type: {err}") from None


def format_for_user(media_type: str) -> str:
    """kit's short form of a media type for tables (``manifest``, ``dataset`` ...)."""
    if media_type == OCI_MANIFEST:
        return "manifest"
    try:
        return parse_media_type(media_type).user_string
    except MediaTypeError:
        return "(invalid media type)"
