"""Descriptors, manifests and indexes as typed values; digests; Go's indented JSON.

The bytes a ModelKit's digest depends on (manifest, index files) come from these objects, so the
golden strings here are what kit (Go's ``json.Marshal`` of ``ocispec`` structs) writes; and what
comes in from storage or a registry is refused with one line when it is not a manifest.
"""

from __future__ import annotations

import json
import os

import pytest

from kit_jupyter.errors import KitError
from kit_jupyter.gocompat.godigest import (
    digest_error,
    is_digest,
    is_sha256_digest,
    sha256_digest,
)
from kit_jupyter.gocompat.gojson import marshal
from kit_jupyter.gocompat.goyaml import Struct
from kit_jupyter.oci.layers import pack_raw_layer_to_file
from kit_jupyter.oci.manifest import (
    MAX_SIZE,
    Descriptor,
    Index,
    Manifest,
    ManifestError,
    NotAModelKitError,
    parse_tags,
)
from kit_jupyter.oci.mediatypes import (
    KIT_CONFIG,
    KIT_MANIFEST_ARTIFACT,
    MODELPACK_CONFIG,
    MODELPACK_MANIFEST_ARTIFACT,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
LAYER = "application/vnd.kitops.modelkit.model.v1.tar"

# what kit's pack writes (ocispec.Manifest through json.Marshal): no mediaType field, keys in
# struct order, annotation keys sorted, <>& escaped
KIT_MANIFEST = (
    '{"schemaVersion":2,"artifactType":"application/vnd.kitops.modelkit.manifest.v1+json",'
    '"config":{"mediaType":"application/vnd.kitops.modelkit.config.v1+json","digest":"' + D1
    + '","size":120},"layers":[{"mediaType":"' + LAYER + '","digest":"' + D2 + '","size":3584,'
    '"annotations":{"ml.kitops.modelkit.layer-subtype":"prompt","org.cncf.model.filepath":'
    '"a\\u003cb\\u003e\\u0026c"}}],"annotations":{"ml.kitops.modelkit.cli-version":"1.2.3"}}'
).encode()


def _manifest(**changes: object) -> bytes:
    doc = json.loads(KIT_MANIFEST)
    doc.update(changes)
    return json.dumps(doc).encode()


# -- manifests --------------------------------------------------------------------------------

def test_built_manifest_has_kits_bytes():
    layer = Descriptor(LAYER, D2, 3584, annotations={
        "org.cncf.model.filepath": "a<b>&c", "ml.kitops.modelkit.layer-subtype": "prompt"})
    m = Manifest(Descriptor(KIT_CONFIG, D1, 120), (layer,),
                 {"ml.kitops.modelkit.cli-version": "1.2.3"},
                 artifact_type=KIT_MANIFEST_ARTIFACT)
    assert m.raw == KIT_MANIFEST
    assert m.digest == sha256_digest(KIT_MANIFEST)
    assert m.descriptor == Descriptor("application/vnd.oci.image.manifest.v1+json", m.digest,
                                      len(KIT_MANIFEST))


def test_parsed_manifest_keeps_its_bytes_and_reads_as_attributes():
    odd = json.dumps(json.loads(KIT_MANIFEST), indent=3).encode()  # same content, other bytes
    m = Manifest.parse(odd)
    assert m.raw == odd and m.digest == sha256_digest(odd)
    assert m.config == Descriptor(KIT_CONFIG, D1, 120)
    assert [(x.media_type, x.digest, x.size) for x in m.layers] == [(LAYER, D2, 3584)]
    assert m.layers[0].annotations["org.cncf.model.filepath"] == "a<b>&c"
    assert m.size == 3584 and m.schema_version == 2 and m.media_type == ""
    assert m == Manifest.parse(KIT_MANIFEST)  # equal content, whatever the bytes
    assert marshal(m.to_json()) == KIT_MANIFEST  # re-encoded the Go way


def test_blobs_config_first_each_digest_once():
    layers = [{"mediaType": LAYER, "digest": d, "size": 1} for d in (D2, D3, D2, D1)]
    m = Manifest.parse(_manifest(layers=layers))
    assert [b.digest for b in m.blobs()] == [D1, D2, D3]


@pytest.mark.parametrize("changes,fmt", [
    ({}, "kit"),
    ({"artifactType": None, "config": {"mediaType": KIT_CONFIG, "digest": D1, "size": 1}},
     "kit"),  # ModelKits from 2024 have no artifactType
    ({"artifactType": MODELPACK_MANIFEST_ARTIFACT,
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1,
                 "size": 1}}, "modelpack"),
    ({"artifactType": None, "config": {"mediaType": MODELPACK_CONFIG, "digest": D1, "size": 1}},
     "modelpack"),
])
def test_model_format(changes, fmt):
    m = Manifest.parse(_manifest(**changes))
    assert m.model_format() == fmt and m.is_modelkit


def test_not_a_modelkit_has_kits_text():
    image = {"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1"
                                                          "+json", "digest": D1, "size": 2},
             "layers": []}
    m = Manifest.parse(json.dumps(image).encode())
    assert not m.is_modelkit
    with pytest.raises(NotAModelKitError) as info:
        m.model_format()
    assert str(info.value) == ("manifest is not a Model manifest: artifactType is , config "
                               "mediaType is application/vnd.oci.image.config.v1+json")
    # an index parses as a manifest with no config: not a ModelKit either, as in kit
    index = Manifest.parse(b'{"schemaVersion":2,"manifests":[]}')
    assert index.blobs() == [] and not index.is_modelkit


@pytest.mark.parametrize("data,problem", [
    (b"\xff\xfe", "manifest is not valid JSON"),
    (b"{", "manifest is not valid JSON"),
    (b"[1]", "manifest is not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "manifest is not valid JSON"),
    (_manifest(layers={}), "layers is an object, not an array"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": "10"}]),
     "layers[0].size is a string, not an integer"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": 1.5}]),
     "layers[0].size is a number, not an integer"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": True}]),
     "layers[0].size is a boolean, not an integer"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": -1}]),
     "layers[0].size is out of range (-1)"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": MAX_SIZE + 1}]),
     f"layers[0].size is out of range ({MAX_SIZE + 1})"),
    (_manifest(layers=[{"mediaType": LAYER, "digest": "sha256:xyz", "size": 1}]),
     "layers[0].digest 'sha256:xyz': invalid checksum digest length"),
    (_manifest(layers=["x"]), "layers[0] is a string, not an object"),
    (_manifest(config=None, layers=[{"mediaType": 7, "digest": D2, "size": 1}]),
     "layers[0].mediaType is a number, not a string"),
    (_manifest(annotations={"a": 1}), "annotations['a'] is a number, not a string"),
    (_manifest(annotations=[]), "annotations is an array, not an object"),
    (_manifest(artifactType=5), "artifactType is a number, not a string"),
    (_manifest(schemaVersion="2"), "schemaVersion is a string, not an integer"),
    (_manifest(config={"mediaType": KIT_CONFIG, "digest": "", "size": 1}),
     "config.digest '': invalid checksum digest format"),
])
def test_what_is_not_a_manifest_is_one_line(data, problem):
    with pytest.raises(ManifestError) as info:
        Manifest.parse(data, "manifest")
    message = str(info.value)
    assert isinstance(info.value, KitError)
    assert problem in message and "\n" not in message and message.startswith("manifest")


def test_huge_but_valid_sizes_are_kept():
    """A size Go's int64 holds is a size (the blob may simply be absent): kept exactly."""
    big = _manifest(layers=[{"mediaType": LAYER, "digest": D2, "size": 1 << 62}])
    assert Manifest.parse(big).size == 1 << 62


# -- descriptors and index files ---------------------------------------------------------------

def test_descriptor_field_order_and_unknown_fields():
    d = Descriptor.from_json({"future": {"b": 1, "a": 2}, "size": 0, "artifactType": "t",
                              "annotations": {"b": "2", "a": "1"}, "urls": ["u"],
                              "digest": D1, "mediaType": "m", "data": "e30="})
    assert marshal(d.to_json()) == (
        b'{"mediaType":"m","digest":"' + D1.encode() + b'","size":0,"urls":["u"],'
        b'"annotations":{"a":"1","b":"2"},"data":"e30=","artifactType":"t",'
        b'"future":{"a":2,"b":1}}')
    assert d.plain() == Descriptor("m", D1, 0)


def test_index_and_tags_files():
    repo = Index((Descriptor("application/vnd.oci.image.manifest.v1+json", D1, 7),))
    assert repo.to_bytes() == (b'{"schemaVersion":2,"manifests":[{"mediaType":'
                               b'"application/vnd.oci.image.manifest.v1+json","digest":"'
                               + D1.encode() + b'","size":7}]}')
    assert Index.parse(repo.to_bytes()) == repo
    tags = parse_tags(b'{"v1":{"mediaType":"m","digest":"' + D1.encode() + b'","size":7}}')
    assert tags == {"v1": Descriptor("m", D1, 7)}
    with pytest.raises(ManifestError, match=r"^tags index is invalid: \['v1'\]\.size is a "
                                            r"string, not an integer$"):
        parse_tags(b'{"v1":{"mediaType":"m","digest":"' + D1.encode() + b'","size":"7"}}')


# -- digests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value,error", [
    (D1, None),
    ("sha512:" + "a" * 128, None),
    ("sha256:" + "A" * 64, "invalid checksum digest format"),
    ("sha256:abc", "invalid checksum digest length"),
    ("md5:" + "a" * 32, "unsupported digest algorithm"),
    ("sha256", "invalid checksum digest format"),
    (":abc", "invalid checksum digest format"),
    ("sha256:", "invalid checksum digest format"),
])
def test_go_digest_validation(value, error):
    assert digest_error(value) == error
    assert is_digest(value) is (error is None)


def test_storage_holds_sha256_digests_only():
    assert is_sha256_digest(D1)
    assert not is_sha256_digest("sha512:" + "a" * 128)  # valid, but nothing we can verify
    assert not is_sha256_digest("sha256:" + "A" * 64) and not is_sha256_digest(None)
    assert sha256_digest(b"") == ("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495"
                                  "991b7852b855")


# -- Go's MarshalIndent -----------------------------------------------------------------------

def test_marshal_indent_is_gos():
    value = Struct(repo="r<", tags=None, empty=[], obj={}, n=[1, {"b": 2.5, "a": "é"}])
    assert marshal(value, indent="  ").decode() == (
        '{\n  "repo": "r\\u003c",\n  "tags": null,\n  "empty": [],\n  "obj": {},\n  "n": [\n'
        '    1,\n    {\n      "a": "é",\n      "b": 2.5\n    }\n  ]\n}')
    assert marshal([], indent="  ") == b"[]"
    assert json.loads(marshal(value, indent="\t")) == json.loads(marshal(value))


def test_raw_layer_file_metadata_is_gos_json(tmp_path):
    """model-spec's FileMetadata as Go marshals it: raw UTF-8, ``<>&`` escaped, struct order;
    ``typeflag`` as the newest kit fills it, from ``tar.FileInfoHeader`` ('0' = 48)."""
    (tmp_path / "ctx").mkdir()
    path = tmp_path / "ctx" / "données<&>.mcpb"
    path.write_bytes(b"PK")
    os.utime(path, ns=(0, 1_700_000_000_500_000_000))
    packed = pack_raw_layer_to_file(tmp_path / "ctx", "données<&>.mcpb", tmp_path / "tmp")
    try:
        meta = packed.annotations["org.cncf.model.file.metadata+json"]
    finally:
        packed.discard()
    mode = path.stat().st_mode & 0o777
    assert meta == ('{"name":"données\\u003c\\u0026\\u003e.mcpb","mode":' + str(mode)
                    + ',"uid":0,"gid":0,"size":2,"mtime":"2023-11-14T22:13:20.5Z",'
                      '"typeflag":48}')
