"""ModelPack (CNCF model-spec) artifacts: the config blob ``pack --use-model-pack`` writes, and
the minimal Kitfile kit generates for a ModelPack that carries none (spec §7.2, §7.5).

A ModelPack's config is a model-spec ``Model``, not a Kitfile, so the Kitfile travels in the
manifest annotation ``ml.kitops.modelkit.kitfile``. Artifacts made by other tools (modctl, say)
have no such annotation: kit then builds a Kitfile from the layers' ``org.cncf.model.filepath``
annotations and the config's ``modelfs.diffIds``, enough to unpack the artifact, and so do we
(:func:`generate_kitfile`, run against kit's own ``pkg/artifact/testdata/kitfile-generation``
fixtures). Both directions live here so the two stay each other's inverse.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kit_jupyter.errors import KitError
from kit_jupyter.gocompat.gojson import marshal, unmarshal
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.kitfile.model import Code, DataSet, Docs, Kitfile, Model, ModelPart
from kit_jupyter.oci.manifest import Manifest, NotAModelKitError
from kit_jupyter.oci.mediatypes import (
    ANNOTATION_FILEPATH,
    MODELPACK_FORMAT,
    parse_media_type,
)


class ModelPackError(KitError):
    """A ModelPack artifact kit could not turn into a Kitfile (kit's texts, one line)."""


# --------------------------------------------------------------------------------------------
# writing: the model-spec config of a Kitfile


def collect_licenses(kf: Kitfile) -> list[str]:
    """kit's ``collectLicenses``: the non-empty licenses of the package, the model, its parts,
    the datasets and the code (not docs or prompts, which have none), sorted, each once."""
    found = [kf.package.license if kf.package else ""]
    if kf.model is not None:
        found += [kf.model.license, *(p.license for p in kf.model.parts)]
    found += [d.license for d in kf.datasets] + [c.license for c in kf.code]
    return sorted({x for x in found if x}, key=lambda s: s.encode("utf-8"))


def go_time_now() -> str:
    """``time.Now()`` as Go's ``json.Marshal`` writes it (RFC 3339 with nanoseconds, trailing
    zeros trimmed, the local offset, ``Z`` for UTC): the ``createdAt`` kit writes."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    local = time.localtime(secs)
    offset = local.tm_gmtoff or 0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    if offset == 0:
        return stamp + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{stamp}{sign}{hours:02d}:{minutes:02d}"


def modelpack_config(kf: Kitfile, diff_ids: list[str], *, created_at: str | None = None
                     ) -> bytes:
    """kit's ``ToModelPackConfig`` through ``json.Marshal``: model-spec's ``Model`` with
    ``descriptor`` (createdAt = now, authors, name, version, licenses, title = name,
    description), ``modelfs`` (``layers``, one diffId per layer in layer order: the sha256 of
    the uncompressed layer, as kit writes it since its diffId fix) and ``config`` (format).
    Empty descriptor fields are left out (``omitempty``); ``createdAt`` makes the bytes differ
    on every pack, as kit's do."""
    pkg = kf.package
    descriptor = Struct(createdAt=created_at or go_time_now())
    authors = list(pkg.authors) if pkg else []
    if authors:
        descriptor["authors"] = authors
    name = pkg.name if pkg else ""
    if name:
        descriptor["name"] = name
    if pkg and pkg.version:
        descriptor["version"] = pkg.version
    licenses = collect_licenses(kf)
    if licenses:
        descriptor["licenses"] = licenses
    if name:
        descriptor["title"] = name
    if pkg and pkg.description:
        descriptor["description"] = pkg.description
    config = Struct()
    if kf.model is not None and kf.model.format:
        config["format"] = kf.model.format
    return marshal(Struct(descriptor=descriptor,
                          modelfs=Struct(type="layers", diffIds=list(diff_ids)),
                          config=config))


# --------------------------------------------------------------------------------------------
# reading: the config's diffIds, and the Kitfile kit generates


@dataclass(frozen=True)
class ModelPackConfig:
    """What kit uses of a model-spec config: ``modelfs.diffIds`` (``None`` when absent)."""

    diff_ids: tuple[str, ...] | None


def parse_modelpack_config(data: bytes) -> ModelPackConfig:
    """A model-spec config blob, with the types Go's ``json.Unmarshal`` insists on for the
    fields kit reads; one line (ModelPackError) for anything else."""
    try:
        doc = unmarshal(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelPackError(f"invalid ModelPack config: {exc}") from None
    if not isinstance(doc, dict):
        raise ModelPackError("invalid ModelPack config: not a JSON object")
    modelfs = doc.get("modelfs")
    if modelfs is None:
        return ModelPackConfig(None)
    if not isinstance(modelfs, dict):
        raise ModelPackError("invalid ModelPack config: modelfs is not an object")
    ids = modelfs.get("diffIds")
    if ids is None:
        return ModelPackConfig(None)
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise ModelPackError("invalid ModelPack config: modelfs.diffIds is not a list of "
                             "strings")
    return ModelPackConfig(tuple(ids))


def generate_kitfile(manifest: Manifest, config: ModelPackConfig | None = None) -> Kitfile:
    """kit's ``GenerateKitfileForModelPack``: a Kitfile with one entry per layer, its path from
    the layer's ``org.cncf.model.filepath``, its digest from the descriptor and its diffId
    from ``config`` (when given). The first weight layer is the model; more weight layers, and
    weight-config layers, are model parts, in manifest order (ModelPack allows several weight
    layers, a Kitfile one model). Raises ModelPackError with kit's texts."""
    try:
        is_modelpack = manifest.model_format() == MODELPACK_FORMAT
    except NotAModelKitError:
        is_modelpack = False
    if not is_modelpack:
        raise ModelPackError("not a modelpack artifact")
    diff_ids = config.diff_ids if config is not None else None
    if config is not None and len(diff_ids or ()) != len(manifest.layers):
        raise ModelPackError("invalid ModelPack config: number of layers does not match "
                             "DiffIDs")
    model = Model()
    kf = Kitfile(manifest_version="1.0.0", model=model)
    for index, desc in enumerate(manifest.layers):
        path = desc.annotations.get(ANNOTATION_FILEPATH, "")
        if not path:
            raise ModelPackError(f"unknown file path for layer: no {ANNOTATION_FILEPATH} "
                                 "annotation")
        media_type = parse_media_type(desc.media_type)  # kit's "failed to parse media type"
        info: dict[str, Any] = {"digest": desc.digest,
                                "diff_id": diff_ids[index] if diff_ids else ""}
        base = media_type.base
        if base == "model" and not model.path:
            model.path = path
            model.digest, model.diff_id = info["digest"], info["diff_id"]
        elif base in ("model", "modelpart"):
            model.parts.append(ModelPart(path=path, **info))
        elif base == "code":
            kf.code.append(Code(path=path, **info))
        elif base == "dataset":
            kf.datasets.append(DataSet(path=path, **info))
        elif base == "docs":
            kf.docs.append(Docs(path=path, **info))
        else:
            raise ModelPackError(f"unknown layer type: {desc.media_type}")
    return kf


__all__ = ["ModelPackConfig", "ModelPackError", "collect_licenses", "generate_kitfile",
           "go_time_now", "modelpack_config", "parse_modelpack_config"]
