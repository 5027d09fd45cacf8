"""ModelPack (CNCF model-spec) artifacts: ``pack --use-model-pack``, reading them back through
unpack / inspect / info / list / push / pull, and the Kitfile kit generates for a ModelPack
that has none (kit's ``pkg/artifact/testdata/kitfile-generation`` fixtures, then a hand-built
artifact as modctl makes them). End to end through the CLI, ``%kit`` and a real registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.pack import pack
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.model import Kitfile, load_kitfile
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.mediatypes import (
    MODELPACK_FORMAT,
    MediaTypeError,
    check_save_options,
    in_format,
)
from kit_jupyter.oci.modelpack import (
    ModelPackError,
    collect_licenses,
    generate_kitfile,
    go_time_now,
    modelpack_config,
    parse_modelpack_config,
)
from kit_jupyter.oci.store import LocalStore

FIXTURES = Path(__file__).parent / "data" / "kit" / "modelpack-kitfile-generation"
CASES = sorted(FIXTURES.glob("*.yaml"))

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: mp
  version: 1.2.0
  description: a <ModelPack> & more
  license: MIT
  authors: [Ann, Bo]
model:
  path: model.bin
  format: onnx
  license: Apache-2.0
  parts:
    - path: cfg.json
      license: MIT
code:
  - path: src
datasets:
  - name: train
    path: data
    license: CC-BY-4.0
docs:
  - path: README.md
prompts:
  - path: prompt.md
"""


def context(root: Path, kitfile: str = KITFILE) -> Path:
    ctx = root / "ctx"
    for d in ("src", "data"):
        (ctx / d).mkdir(parents=True, exist_ok=True)
    (ctx / "Kitfile").write_text(kitfile)
    (ctx / "model.bin").write_bytes(b"\x00weights" * 4000)
    (ctx / "cfg.json").write_text('{"layers": 2}\n')
    (ctx / "src" / "train.py").write_text("print('hi')\n")
    (ctx / "data" / "a.csv").write_text("x,y\n1,2\n")
    (ctx / "README.md").write_text("# mp\n")
    (ctx / "prompt.md").write_text("You are a model.\n")
    return ctx


def kit(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def stored(home: Path, repo: str, tag: str) -> Manifest:
    store = LocalStore(home)
    desc = store.resolve_descriptor(repo, tag)
    assert desc is not None
    return store.read_manifest(desc)


def blob(home: Path, digest: str) -> bytes:
    return LocalStore(home).blob_path(digest).read_bytes()


# --------------------------------------------------------------------------------------------
# kit's fixtures: GenerateKitfileForModelPack


def _valid_digests(text: str) -> str:
    """kit's fixtures use placeholder digests (``sha256:aaa``) that Go's ``ocispec`` accepts
    as plain strings; our manifest parser refuses malformed digests where they enter, so each
    placeholder becomes the sha256 of its own text, the same in manifest, config and Kitfile."""
    def valid(m: re.Match[str]) -> str:
        if len(m.group(1)) == 64:
            return m.group(0)
        return "sha256:" + hashlib.sha256(m.group(0).encode()).hexdigest()
    return re.sub(r"sha256:([0-9a-z]+)", valid, text)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_kit_kitfile_generation_fixtures(case):
    tc = yaml.safe_load(case.read_text())
    manifest = Manifest.parse(_valid_digests(tc["manifestJson"]).encode())
    config = (parse_modelpack_config(_valid_digests(tc["configJson"]).encode())
              if tc.get("configJson") else None)
    if tc.get("errRegexp"):
        with pytest.raises(KitError) as err:
            generate_kitfile(manifest, config)
        assert re.search(tc["errRegexp"], str(err.value)), str(err.value)
        return
    expected = Kitfile.from_config_json(_valid_digests(tc["kitfileJson"]))
    got = generate_kitfile(manifest, config)
    assert got.to_config_json() == expected.to_config_json()
    # kit compares Go structs; Go's json.Marshal always writes the (empty) package struct
    written = json.loads(got.to_config_json())
    assert written.pop("package") == {}
    assert written == json.loads(_valid_digests(tc["kitfileJson"]))


def test_fixture_set_is_complete():
    # kit's folder at c0c7167 / 152f045: four error cases and three Kitfiles
    assert len(CASES) == 7
    assert sum("errRegexp" in c.read_text() for c in CASES) == 4


def test_generation_refuses_kit_format_and_non_layer_types():
    kit_manifest = Manifest(config=Descriptor("application/vnd.kitops.modelkit.config.v1+json",
                                              "sha256:" + "1" * 64, 2),
                            artifact_type="application/vnd.kitops.modelkit.manifest.v1+json")
    with pytest.raises(ModelPackError, match="^not a modelpack artifact$"):
        generate_kitfile(kit_manifest)
    odd = Manifest(config=Descriptor("application/vnd.cncf.model.config.v1+json",
                                     "sha256:" + "1" * 64, 2),
                   layers=(Descriptor("application/vnd.cncf.model.config.v1+json",
                                      "sha256:" + "2" * 64, 2,
                                      annotations={"org.cncf.model.filepath": "x"}),))
    with pytest.raises(ModelPackError, match="^unknown layer type: application/vnd.cncf"):
        generate_kitfile(odd)


@pytest.mark.parametrize("data, message", [
    (b"[1]", "invalid ModelPack config: not a JSON object"),
    (b"{", "invalid ModelPack config: "),
    (b'{"modelfs": 3}', "invalid ModelPack config: modelfs is not an object"),
    (b'{"modelfs": {"diffIds": [1]}}', "invalid ModelPack config: modelfs.diffIds is not"),
])
def test_bad_modelpack_configs_are_one_line(data, message):
    with pytest.raises(ModelPackError) as err:
        parse_modelpack_config(data)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_config_without_modelfs_has_no_diff_ids():
    assert parse_modelpack_config(b"{}").diff_ids is None
    assert parse_modelpack_config(b'{"modelfs": {"type": "layers", "diffIds": null}}'
                                  ).diff_ids is None


# --------------------------------------------------------------------------------------------
# media types and the config blob


@pytest.mark.parametrize("kit_type, modelpack", [
    ("application/vnd.kitops.modelkit.model.v1.tar", "application/vnd.cncf.model.weight.v1.tar"),
    ("application/vnd.kitops.modelkit.modelpart.v1.tar+gzip",
     "application/vnd.cncf.model.weight.config.v1.tar+gzip"),
    ("application/vnd.kitops.modelkit.dataset.v1.tar+zstd",
     "application/vnd.cncf.model.dataset.v1.tar+zstd"),
    ("application/vnd.kitops.modelkit.code.v1.raw", "application/vnd.cncf.model.code.v1.raw"),
    ("application/vnd.kitops.modelkit.docs.v1.tar", "application/vnd.cncf.model.doc.v1.tar"),
])
def test_in_format_renames_every_layer_type(kit_type, modelpack):
    assert in_format(kit_type, MODELPACK_FORMAT) == modelpack
    assert in_format(modelpack, "kit") == kit_type
    assert in_format(modelpack, MODELPACK_FORMAT) == modelpack


def test_modelpack_refusals_in_media_types():
    with pytest.raises(MediaTypeError, match="invalid base type mcpb for the modelpack"):
        in_format("application/vnd.kitops.modelkit.mcpb.v1.raw", MODELPACK_FORMAT)
    with pytest.raises(MediaTypeError,
                       match="^compression for raw layers is not supported for ModelPack$"):
        in_format("application/vnd.kitops.modelkit.code.v1.raw+gzip", MODELPACK_FORMAT)
    with pytest.raises(MediaTypeError, match="compression for raw layers"):
        check_save_options(MODELPACK_FORMAT, "raw", "zstd")
    check_save_options(MODELPACK_FORMAT, "tar", "zstd")
    check_save_options("kit", "raw", "gzip")


def test_collect_licenses_as_kit():
    kf = load_kitfile(KITFILE)
    # package, model, parts, datasets, code; sorted by bytes, each once
    assert collect_licenses(kf) == ["Apache-2.0", "CC-BY-4.0", "MIT"]
    assert collect_licenses(load_kitfile("manifestVersion: 1.0.0\n")) == []


def test_modelpack_config_bytes():
    kf = load_kitfile(KITFILE)
    data = modelpack_config(kf, ["sha256:" + "a" * 64, "sha256:" + "b" * 64],
                            created_at="2026-01-02T03:04:05.5Z")
    assert data == (
        '{"descriptor":{"createdAt":"2026-01-02T03:04:05.5Z","authors":["Ann","Bo"],'
        '"name":"mp","version":"1.2.0","licenses":["Apache-2.0","CC-BY-4.0","MIT"],'
        '"title":"mp","description":"a \\u003cModelPack\\u003e \\u0026 more"},'
        '"modelfs":{"type":"layers","diffIds":["sha256:' + "a" * 64 + '","sha256:' + "b" * 64
        + '"]},"config":{"format":"onnx"}}').encode()
    empty = modelpack_config(load_kitfile("manifestVersion: 1.0.0\n"), [], created_at="T")
    assert empty == b'{"descriptor":{"createdAt":"T"},"modelfs":{"type":"layers",' \
                    b'"diffIds":[]},"config":{}}'


def test_go_time_now_is_rfc3339_nano():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)",
                        go_time_now())


# --------------------------------------------------------------------------------------------
# pack --use-model-pack


def test_pack_use_model_pack_writes_a_modelpack(home, tmp_path, capsys):
    ctx = context(tmp_path)
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "mp:v1", "--use-model-pack")
    assert code == 0, err
    m = stored(home, "localhost/mp", "v1")
    doc = json.loads(m.raw)
    assert list(doc) == ["schemaVersion", "mediaType", "artifactType", "config", "layers",
                         "annotations"]
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert [(d["mediaType"], d["annotations"]) for d in doc["layers"]] == [
        ("application/vnd.cncf.model.weight.v1.tar", {"org.cncf.model.filepath": "model.bin"}),
        ("application/vnd.cncf.model.weight.config.v1.tar",
         {"org.cncf.model.filepath": "cfg.json"}),
        ("application/vnd.cncf.model.code.v1.tar", {"org.cncf.model.filepath": "src"}),
        ("application/vnd.cncf.model.dataset.v1.tar", {"org.cncf.model.filepath": "data"}),
        ("application/vnd.cncf.model.doc.v1.tar", {"org.cncf.model.filepath": "README.md"}),
        ("application/vnd.cncf.model.code.v1.tar",
         {"ml.kitops.modelkit.layer-subtype": "prompt",
          "org.cncf.model.filepath": "prompt.md"}),
    ]
    # the whole Kitfile, with each layer's digest and diffId, in the manifest annotation
    annotated = Kitfile.from_config_json(doc["annotations"]["ml.kitops.modelkit.kitfile"])
    entries = annotated.layer_entries()
    assert [e.entity.digest for e in entries] == [d["digest"] for d in doc["layers"]]
    config = json.loads(blob(home, doc["config"]["digest"]))
    assert config["modelfs"] == {"type": "layers",
                                 "diffIds": [e.entity.diff_id for e in entries]}
    # uncompressed: a diffId is the layer's digest (kit's diffId fix; #1085 hashed a string)
    assert config["modelfs"]["diffIds"] == [d["digest"] for d in doc["layers"]]
    assert config["descriptor"]["name"] == config["descriptor"]["title"] == "mp"
    assert config["descriptor"]["licenses"] == ["Apache-2.0", "CC-BY-4.0", "MIT"]
    assert config["config"] == {"format": "onnx"}
    assert "Saved weight layer: " in out and "Saved weight.config layer: " in out
    assert "Saved doc layer: " in out
    # the layers are the bytes of a kit-format pack of the same directory
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "kitformat:v1")
    assert code == 0, err
    kit_doc = json.loads(stored(home, "localhost/kitformat", "v1").raw)
    assert [d["digest"] for d in kit_doc["layers"]] == [d["digest"] for d in doc["layers"]]
    assert "Already saved model layer" in out
    assert kit_doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_gzip_modelpack_diff_ids_hash_the_uncompressed_tar(home, tmp_path):
    res = pack(context(tmp_path), tag="gz:v1", compression="gzip", use_model_pack=True)
    doc = json.loads(stored(home, "localhost/gz", "v1").raw)
    assert {d["mediaType"].rsplit(".", 1)[1] for d in doc["layers"]} == {"tar+gzip"}
    assert res.config["package"]["name"] == "mp"  # the Kitfile, as for a Kit-format pack
    diff_ids = json.loads(blob(home, doc["config"]["digest"]))["modelfs"]["diffIds"]
    for layer, diff_id in zip(doc["layers"], diff_ids, strict=True):
        raw = gzip.decompress(blob(home, layer["digest"]))
        assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() != layer["digest"]


def test_mcp_servers_are_refused_before_anything_is_written(home, tmp_path, capsys):
    ctx = context(tmp_path, KITFILE + "mcpServers:\n  - name: s\n    path: s.mcpb\n")
    code, out, err = kit(capsys, "pack", str(ctx), "--use-model-pack")
    assert code == 1 and out == ""
    assert err == ("[ERROR] Failed to pack model kit: mcpServers are not supported when "
                   "packing in modelpack format\n")
    assert not (home / "storage" / "blobs").exists() or not any(
        (home / "storage" / "blobs").rglob("*"))


def test_modelpack_through_the_magics(ip, home, tmp_path):
    ctx = context(tmp_path)
    ip.user_ns.update(ctx_dir=str(ctx), out_dir=str(tmp_path / "out"))
    packed = ip.run_line_magic("kit", "pack $ctx_dir -t magic:v1 --use-model-pack")
    assert packed.config["model"]["diffId"] == packed.layers[0]["digest"]
    unpacked = ip.run_line_magic("kit", "unpack magic:v1 -d $out_dir")
    assert (tmp_path / "out" / "model.bin").read_bytes() == (ctx / "model.bin").read_bytes()
    assert (tmp_path / "out" / "prompt.md").read_text() == "You are a model.\n"
    assert {x["type"] for x in unpacked.layers} == {"model", "modelpart", "code", "dataset",
                                                     "docs", "prompt"}
    # the Kitfile written is the packed one (from the annotation), not a generated one
    assert load_kitfile((tmp_path / "out" / "Kitfile").read_text()).package.name == "mp"
    inspected = ip.run_line_magic("kit", "inspect magic:v1")
    assert inspected.manifest.artifact_type == "application/vnd.cncf.model.manifest.v1+json"
    assert inspected.kitfile["package"]["name"] == "mp"
    info = ip.run_line_magic("kit", "info magic:v1 -f .model.format")
    assert info.yaml.strip() == "onnx"
    with pytest.raises(UsageError, match="mcpServers are not supported"):
        (ctx / "Kitfile").write_text(KITFILE + "mcpServers:\n  - name: s\n    path: s.mcpb\n")
        ip.run_line_magic("kit", "pack $ctx_dir --use-model-pack")


def test_modelpack_push_pull_through_the_registry(registry, home, tmp_path, capsys,
                                                    monkeypatch):
    ctx = context(tmp_path)
    ref = f"{registry.host}/acme/modelpack:v1"
    code, out, err = kit(capsys, "pack", str(ctx), "-t", ref, "--use-model-pack", "--push",
                         "--plain-http")
    assert code == 0, err
    pushed = stored(home, f"{registry.host}/acme/modelpack", "v1")
    # a fresh machine: pull, then list, inspect and unpack from local storage
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "other"))
    code, out, err = kit(capsys, "inspect", "-r", ref, "--plain-http")
    assert code == 0, err
    assert json.loads(out)["kitfile"]["package"]["name"] == "mp"
    code, out, err = kit(capsys, "pull", ref, "--plain-http")
    assert code == 0, err
    pulled = stored(tmp_path / "other", f"{registry.host}/acme/modelpack", "v1")
    assert pulled.raw == pushed.raw
    code, out, err = kit(capsys, "list")
    assert code == 0 and "mp" in out and "acme/modelpack" in out
    code, out, err = kit(capsys, "unpack", ref, "-d", str(tmp_path / "out"))
    assert code == 0, err
    assert (tmp_path / "out" / "data" / "a.csv").read_text() == "x,y\n1,2\n"
    code, out, err = kit(capsys, "diff", ref, f"{registry.host}/acme/modelpack:v1")
    assert code == 0, err


# --------------------------------------------------------------------------------------------
# a ModelPack without a Kitfile (as modctl makes them)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def hand_built(home: Path, *, annotate: bool = True) -> str:
    """A ModelPack in local storage with no Kitfile: raw weight layers (two of them), a
    weight-config tar, a gzip'd code tar and a doc tar, a model-spec config with diffIds."""
    store = LocalStore(home)
    layers: list[tuple[str, bytes, bytes, str]] = []  # media type, stored, uncompressed, path
    for name, data in (("model-1.safetensors", b"W1" * 500), ("model-2.safetensors", b"W2")):
        layers.append(("application/vnd.cncf.model.weight.v1.raw", data, data, name))
    cfg = _tar({"config.json": b'{"a": 1}'})
    layers.insert(1, ("application/vnd.cncf.model.weight.config.v1.tar", cfg, cfg,
                      "config.json"))
    code = _tar({"src/run.py": b"print(1)\n"})
    layers.append(("application/vnd.cncf.model.code.v1.tar+gzip", gzip.compress(code), code,
                   "src"))
    doc = _tar({"README.md": b"# hand made\n"})
    layers.append(("application/vnd.cncf.model.doc.v1.tar", doc, doc, "README.md"))
    descs = []
    for media_type, data, _, path in layers:
        d = store.put_bytes(data, media_type)
        notes = {"org.cncf.model.filepath": path} if annotate else {}
        descs.append(Descriptor(media_type, d.digest, d.size, annotations=notes))
    config = json.dumps({"descriptor": {"name": "hand"}, "modelfs": {
        "type": "layers",
        "diffIds": ["sha256:" + hashlib.sha256(raw).hexdigest() for _, _, raw, _ in layers]},
        "config": {}}).encode()
    config_desc = store.put_bytes(config, "application/vnd.cncf.model.config.v1+json")
    manifest = Manifest(config=config_desc, layers=tuple(descs),
                        artifact_type="application/vnd.cncf.model.manifest.v1+json",
                        media_type="application/vnd.oci.image.manifest.v1+json")
    return store.add_manifest("localhost/hand", manifest, ["v1"])


def test_modelpack_without_kitfile_unpacks_with_a_generated_kitfile(home, tmp_path, capsys):
    digest = hand_built(home)
    out_dir = tmp_path / "out"
    code, out, err = kit(capsys, "unpack", "hand:v1", "-d", str(out_dir))
    assert code == 0, err
    assert "Artifact does not include Kitfile: functionality may be impacted" in err
    assert (out_dir / "model-1.safetensors").read_bytes() == b"W1" * 500
    assert (out_dir / "model-2.safetensors").read_bytes() == b"W2"
    assert (out_dir / "config.json").read_bytes() == b'{"a": 1}'
    assert (out_dir / "src" / "run.py").read_text() == "print(1)\n"
    assert (out_dir / "README.md").read_text() == "# hand made\n"
    assert not (out_dir / "Kitfile").exists()  # kit writes no generated Kitfile
    # the newest kit's generateUnpackPlan texts: nameless entries, "modelpart"
    assert "Unpacking model to model-1.safetensors\n" in out
    assert "Unpacking modelpart to model-2.safetensors\n" in out
    # filters work on the generated Kitfile's entries
    code, out, err = kit(capsys, "unpack", "hand:v1", "-d", str(tmp_path / "docs"),
                         "--filter", "docs")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["README.md"]
    # inspect shows no Kitfile, info says there is none, list shows the artifact
    code, out, err = kit(capsys, "inspect", "hand:v1")
    assert code == 0, err
    assert "kitfile" not in json.loads(out) and json.loads(out)["digest"] == digest
    code, out, err = kit(capsys, "info", "hand:v1")
    assert code == 1
    assert err == "[ERROR] Error resolving modelkit: artifact does not contain a Kitfile\n"
    code, out, err = kit(capsys, "list")
    assert code == 0 and "hand" in out and digest in out


def test_modelpack_without_kitfile_in_the_magics(ip, home, tmp_path):
    hand_built(home)
    ip.user_ns["out_dir"] = str(tmp_path / "m")
    ip.run_line_magic("kit", "unpack hand:v1 -d $out_dir")
    assert not (tmp_path / "m" / "Kitfile").exists()
    assert (tmp_path / "m" / "model-2.safetensors").read_bytes() == b"W2"


def test_modelpack_without_filepath_annotations_is_refused(home, tmp_path, capsys):
    hand_built(home, annotate=False)
    code, out, err = kit(capsys, "unpack", "hand:v1", "-d", str(tmp_path / "out"))
    assert code == 1
    assert err.endswith("[ERROR] Could not process manifest: unknown file path for layer: no "
                        "org.cncf.model.filepath annotation\n")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_modelpack_without_filepath_annotations_through_the_magics(ip, home, tmp_path):
    hand_built(home, annotate=False)
    with pytest.raises(UsageError, match="unknown file path for layer"):
        ip.run_line_magic("kit", f"unpack hand:v1 -d {tmp_path / 'o'}")


def test_modelpack_raw_and_zstd_layers(home, tmp_path, capsys):
    kitfile = "manifestVersion: 1.0.0\nmodel:\n  path: model.bin\ndocs:\n  - path: README.md\n"
    ctx = context(tmp_path, kitfile)
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "raw:v1", "--use-model-pack",
                         "--layer-format", "raw")
    assert code == 0, err
    doc = json.loads(stored(home, "localhost/raw", "v1").raw)
    assert [d["mediaType"] for d in doc["layers"]] == [
        "application/vnd.cncf.model.weight.v1.raw", "application/vnd.cncf.model.doc.v1.raw"]
    assert blob(home, doc["layers"][0]["digest"]) == (ctx / "model.bin").read_bytes()
    assert "org.cncf.model.file.metadata+json" in doc["layers"][0]["annotations"]
    code, out, err = kit(capsys, "pack", str(ctx), "--use-model-pack", "--layer-format", "raw",
                         "--compression", "zstd")
    assert code == 1
    assert err == ("[ERROR] Failed to pack model kit: compression for raw layers is not "
                   "supported for ModelPack\n")
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "zst:v1", "--use-model-pack",
                         "--compression", "zstd")
    assert code == 0, err
    doc = json.loads(stored(home, "localhost/zst", "v1").raw)
    assert [d["mediaType"] for d in doc["layers"]] == [
        "application/vnd.cncf.model.weight.v1.tar+zstd",
        "application/vnd.cncf.model.doc.v1.tar+zstd"]
    for ref in ("raw:v1", "zst:v1"):
        out_dir = tmp_path / ref.replace(":", "-")
        code, out, err = kit(capsys, "unpack", ref, "-d", str(out_dir))
        assert code == 0, err
        assert (out_dir / "model.bin").read_bytes() == (ctx / "model.bin").read_bytes()
        assert (out_dir / "README.md").read_text() == "# mp\n"


def test_modelpack_without_kitfile_from_the_registry(registry, home, tmp_path, capsys,
                                                     monkeypatch):
    """A Kitfile-less ModelPack pushed to the real registry: unpack streams it from there
    (the config read and verified remotely for its diffIds), pull stores it, list shows it."""
    digest = hand_built(home)
    ref = f"{registry.host}/acme/handmade:v1"
    code, out, err = kit(capsys, "push", "hand:v1", ref, "--plain-http")
    assert code == 0, err
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "fresh"))
    code, out, err = kit(capsys, "unpack", ref, "-d", str(tmp_path / "out"), "--plain-http")
    assert code == 0, err
    assert "Artifact does not include Kitfile" in err
    assert (tmp_path / "out" / "model-1.safetensors").read_bytes() == b"W1" * 500
    assert (tmp_path / "out" / "src" / "run.py").read_text() == "print(1)\n"
    assert not (tmp_path / "out" / "Kitfile").exists()
    code, out, err = kit(capsys, "pull", ref, "--plain-http")
    assert code == 0, err
    assert f"Pulled {digest}" in out
    code, out, err = kit(capsys, "list")
    assert code == 0 and "acme/handmade" in out and "<none>" in out


# --------------------------------------------------------------------------------------------
# hostile input, property-based

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["modelfs", "diffIds", "type", "descriptor", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_config_parses_or_is_one_line(value):
    try:
        config = parse_modelpack_config(json.dumps(value).encode())
    except ModelPackError as err:
        assert "\n" not in str(err)
    else:
        assert config.diff_ids is None or all(isinstance(d, str) for d in config.diff_ids)


_BASES = ["weight", "weight.config", "dataset", "code", "doc", "config", "bogus"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_BASES),
                          st.sampled_from(["tar", "tar+gzip", "tar+zstd", "raw", "raw+gzip"]),
                          st.text(min_size=0, max_size=6)), max_size=6),
       st.booleans())
def test_generated_kitfile_names_every_layer_or_refuses(layers, with_config):
    descs = tuple(
        Descriptor(f"application/vnd.cncf.model.{base}.v1.{fmt}",
                   "sha256:" + hashlib.sha256(bytes([i])).hexdigest(), i,
                   annotations={"org.cncf.model.filepath": path} if path else {})
        for i, (base, fmt, path) in enumerate(layers))
    manifest = Manifest(config=Descriptor("application/vnd.cncf.model.config.v1+json",
                                          "sha256:" + "0" * 64, 2), layers=descs)
    diff_ids = tuple("sha256:" + hashlib.sha256(d.digest.encode()).hexdigest() for d in descs)
    config = parse_modelpack_config(json.dumps({"modelfs": {"diffIds": list(diff_ids)}})
                                    .encode()) if with_config else None
    try:
        kf = generate_kitfile(manifest, config)
    except KitError as err:
        assert "\n" not in str(err)
        return
    # every layer became exactly one entry, with its path, digest and diffId, nothing else
    entries = kf.layer_entries()
    got = sorted((e.entity.digest, e.path, e.entity.diff_id) for e in entries)
    want = sorted((d.digest, d.annotations["org.cncf.model.filepath"],
                   diff_ids[i] if with_config else "") for i, d in enumerate(descs))
    assert got == want


def test_referenced_modelpack_without_kitfile_is_unpacked_like_kit(home, tmp_path, capsys):
    """kit's unpackRecursive generates the Kitfile for referenced ModelKits too: a parent
    (``model.path``) that is a Kitfile-less ModelPack gives its model; pack, like kit's
    ResolveKitfile, still needs the parent's Kitfile."""
    hand_built(home)
    ctx = tmp_path / "child"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "app.py").write_text("run()\n")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: hand:v1\n"
                                 "code:\n  - path: src\n")
    code, out, err = kit(capsys, "pack", str(ctx), "-t", "child:v1")
    assert code == 1 and "Failed to resolve referenced modelkit hand:v1" in err
    assert "artifact does not contain a Kitfile" in err
    # a child packed while the parent had a Kitfile, unpacked once the parent has none
    parent_ctx = context(tmp_path / "p", "manifestVersion: 1.0.0\nmodel:\n  path: model.bin\n")
    assert kit(capsys, "pack", str(parent_ctx), "-t", "hand:v1")[0] == 0
    assert kit(capsys, "pack", str(ctx), "-t", "child:v1")[0] == 0
    hand_built(home)  # hand:v1 now names the Kitfile-less ModelPack again
    code, out, err = kit(capsys, "unpack", "child:v1", "-d", str(tmp_path / "out"))
    assert code == 0, err
    assert "Artifact does not include Kitfile: functionality may be impacted" in err
    assert (tmp_path / "out" / "model-1.safetensors").read_bytes() == b"W1" * 500
    assert (tmp_path / "out" / "src" / "app.py").read_text() == "run()\n"


@pytest.mark.parametrize("path, message", [
    ("../evil.bin", "layer paths must stay within context directory"),
    ("/tmp/abs-evil.bin", "absolute paths are not supported"),
    ("a/../../b.bin", "layer paths must stay within context directory"),
])
def test_hostile_filepath_annotations_write_nothing(home, tmp_path, capsys, path, message):
    """A generated Kitfile takes its paths from annotations anyone can write: a raw layer
    whose path leaves the target is refused in one line and nothing is written anywhere."""
    store = LocalStore(home)
    d = store.put_bytes(b"evil", "application/vnd.cncf.model.weight.v1.raw")
    config = store.put_bytes(json.dumps({"modelfs": {"type": "layers", "diffIds": [d.digest]}})
                             .encode(), "application/vnd.cncf.model.config.v1+json")
    store.add_manifest("localhost/evil", Manifest(
        config=config, artifact_type="application/vnd.cncf.model.manifest.v1+json",
        layers=(Descriptor(d.media_type, d.digest, d.size,
                           annotations={"org.cncf.model.filepath": path}),)), ["v1"])
    before = sorted(p for p in tmp_path.rglob("*") if home not in p.parents)
    code, out, err = kit(capsys, "unpack", "evil:v1", "-d", str(tmp_path / "out" / "in"))
    assert code == 1 and message in err and err.count("[ERROR]") == 1
    after = sorted(p for p in tmp_path.rglob("*") if home not in p.parents)
    assert [p for p in after if p not in before and p.is_file()] == []
    assert not Path("/tmp/abs-evil.bin").exists()


_LICENSES = json.loads((Path(__file__).parent / "data" / "kit" / "go-tables" / "licenses.json")
                       .read_text())["cases"]


@pytest.mark.parametrize("case", _LICENSES, ids=lambda c: c["desc"])
def test_go_table_collect_licenses(case):
    """kit's TestCollectLicenses: nil there is an empty list here, and no ``licenses`` key in
    the config (Go's omitempty)."""
    kf = load_kitfile(case["kitfile"])
    assert collect_licenses(kf) == (case["licenses"] or [])
    descriptor = json.loads(modelpack_config(kf, [], created_at="T"))["descriptor"]
    assert descriptor.get("licenses") == case["licenses"]
