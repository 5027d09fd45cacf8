"""The newest kit's unpack plan (``generateUnpackPlan``): each Kitfile entry finds its layer by
digest, in kit's order, with kit's lines and texts -- kit's own Go test table first, then
ModelKits built by hand in local storage (layers reordered, a layer too many, one missing,
two entries sharing a digest, Kitfiles with and without digests), through the API, the CLI
and ``%kit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack, unpack_plan
from kit_jupyter.errors import UnpackError
from kit_jupyter.gocompat.godigest import sha256_digest
from kit_jupyter.kitfile.filters import parse_filters
from kit_jupyter.kitfile.model import Kitfile
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter

MT = "application/vnd.kitops.modelkit.{}.v1.tar+gzip"


def fake(name: str) -> str:
    """kit's ``fakeDigest``: a valid digest from a short id."""
    return sha256_digest(name.encode())


def layers(*pairs: tuple[str, str]) -> Manifest:
    cfg = Descriptor("application/vnd.kitops.modelkit.config.v1+json", fake("cfg"), 2)
    return Manifest(cfg, layers=tuple(Descriptor(MT.format(kind) if "/" not in kind else kind,
                                            fake(name), 1) for name, kind in pairs))


def kitfile(config: dict) -> Kitfile:
    return Kitfile.from_config_json(json.dumps({"manifestVersion": "1.0.0", **config}))


def info(name: str) -> dict:
    return {"digest": fake(name)}


# -- kit's pkg/lib/unpack plan tests, translated -------------------------------------------------

ALL = {"model": {"name": "m", "path": "m", **info("model"),
                 "parts": [{"name": "p", "path": "p", **info("part")}]},
       "datasets": [{"name": "train", "path": "data/train", **info("ds1")},
                    {"name": "val", "path": "data/val", **info("ds2")}],
       "code": [{"path": "src", **info("code")}], "docs": [{"path": "docs", **info("docs")}],
       "prompts": [{"name": "sys", "path": "prompts/sys.txt", **info("prompt")}]}
ALL_LAYERS = layers(("model", "model"), ("part", "modelpart"), ("ds1", "dataset"),
                    ("ds2", "dataset"), ("code", "code"), ("docs", "docs"), ("prompt", "code"))


@pytest.mark.parametrize("filters, want", [
    ([], ["Unpacking model m to m", "Unpacking modelpart p to p",
          "Unpacking dataset train to data/train", "Unpacking dataset val to data/val",
          "Unpacking code to src", "Unpacking docs to docs",
          "Unpacking prompt sys to prompts/sys.txt"]),
    (["datasets"], ["Unpacking dataset train to data/train",
                    "Unpacking dataset val to data/val"]),
    (["model,code"], ["Unpacking model m to m", "Unpacking modelpart p to p",
                      "Unpacking code to src"]),
    (["model:p"], ["Unpacking modelpart p to p"]),
])
def test_kits_plan_table(filters, want):
    """``TestGenerateUnpackPlan_AllLayerTypesOrder`` and the filter cases: kit's order is
    model, parts, datasets, code, docs, prompts (datasets before code), and the steps name
    the layers whose digests the entries record."""
    steps = unpack_plan(ALL_LAYERS, kitfile(ALL), parse_filters(filters) if filters else [])
    assert [s.message for s in steps] == want
    by_message = {s.message: s.descriptor.digest for s in steps}
    assert by_message.get("Unpacking code to src", fake("code")) == fake("code")


@given(st.permutations(ALL_LAYERS.layers), st.lists(st.sampled_from(ALL_LAYERS.layers)))
def test_plan_ignores_the_manifests_order_and_extra_layers(order, extra):
    """Whatever the layers' order, and whatever copies of them the manifest adds, every entry
    gets the layer its digest names, in kit's order."""
    want = [(s.message, s.descriptor) for s in unpack_plan(ALL_LAYERS, kitfile(ALL))]
    shuffled = Manifest(ALL_LAYERS.config, layers=(*order, *extra))
    assert [(s.message, s.descriptor) for s in unpack_plan(shuffled, kitfile(ALL))] == want


def test_kits_plan_edges():
    """kit's empty-Kitfile, skipped-reference and error cases."""
    assert unpack_plan(Manifest(ALL_LAYERS.config), kitfile({})) == []
    ref_model = kitfile({"model": {"name": "llama", "path": "registry.io/myorg/model:v1"},
                         "code": [{"path": "src", **info("code")}],
                         "datasets": [{"name": "s3", "path": "s3data",
                                       "remotePath": "s3://bucket/key", "remoteHash": "abc"},
                                      {"name": "ref", "path": "refdata",
                                       "remotePath": "registry.io/myorg/dataset:v1"}]})
    assert [s.message for s in unpack_plan(layers(("code", "code")), ref_model)] == [
        "Unpacking code to src"]
    model = kitfile({"model": {"name": "llama", "path": "model.bin", **info("model")}})
    with pytest.raises(UnpackError, match=f"^failed to plan unpack: digest {fake('model')} "
                                          "not found in manifest$"):
        unpack_plan(layers(), model)
    with pytest.raises(UnpackError, match="^failed to plan unpack: unrecognized media type "
                                          "application/octet-stream$"):
        unpack_plan(layers(("model", "application/octet-stream")), model)


@pytest.mark.parametrize("config, line", [
    ({"model": {"path": "w.bin", **info("w")}}, "Unpacking model to w.bin"),
    ({"model": {"name": "n", "path": "w.bin", **info("w")}}, "Unpacking model n to w.bin"),
    ({"model": {"parts": [{"path": "t.json", **info("w")}]}}, "Unpacking modelpart to t.json"),
    ({"datasets": [{"path": "d", **info("w")}]}, "Unpacking dataset to d"),
    ({"code": [{"path": "src", "description": "x", **info("w")}]}, "Unpacking code to src"),
    ({"docs": [{"path": "README.md", **info("w")}]}, "Unpacking docs to README.md"),
    ({"prompts": [{"path": "p.md", **info("w")}]}, "Unpacking prompt to p.md"),
    ({"prompts": [{"name": "sys", "path": "p.md", **info("w")}]}, "Unpacking prompt sys to p.md"),
    ({"mcpServers": [{"path": "s.mcpb", **info("w")}]}, "Unpacking MCP server to s.mcpb"),
    ({"mcpServers": [{"name": "fs", "path": "s.mcpb", **info("w")}]},
     "Unpacking MCP server fs to s.mcpb"),
])
def test_every_kind_with_and_without_a_name(config, line):
    """kit's ``messageFor``: no double space for a nameless entry; code and docs unnamed."""
    (step,) = unpack_plan(layers(("w", "code")), kitfile(config))
    assert step.message == line


@pytest.mark.parametrize("config, text", [
    ({"model": {"path": "w.bin", **info("w")}, "code": [{"path": "src"}]},
     "invalid digests in layerinfo in Kitfile"),
    ({"model": {"path": "w.bin", "digest": fake("w"), "diffId": fake("d")},
      "code": [{"path": "src", **info("c")}]}, "invalid diffIDs in layerinfo in Kitfile"),
])
def test_mixed_layer_info_is_kits_error(config, text):
    with pytest.raises(ValueError, match=f"^{text}$"):
        kitfile(config).has_layer_info()


def test_layer_info_check_skips_what_makes_no_layer():
    kf = kitfile({"model": {"path": "registry.io/org/base:v1"},
                  "datasets": [{"path": "d", "remotePath": "s3://b/k"}],
                  "mcpServers": [{"path": "s.mcpb"}],
                  "code": [{"path": "src", **info("c")}]})
    assert kf.has_layer_info() == (True, False)
    assert kitfile({}).has_layer_info() == (True, True)
    assert kitfile({"code": [{"path": "src"}]}).has_layer_info() == (False, False)


# -- hand-built ModelKits in local storage ------------------------------------------------------

KITFILE = """\
manifestVersion: 1.0.0
model:
  path: weights.bin
  parts:
    - name: tok
      path: tok.json
datasets:
  - path: data
code:
  - path: src
docs:
  - path: README.md
"""
FILES = {"weights.bin": b"w" * 100, "tok.json": b"{}", "data/a.csv": b"1,2",
         "src/train.py": b"print()", "README.md": b"# hi"}


@pytest.fixture
def built(kitops_home, tmp_path):
    ctx = tmp_path / "ctx"
    for name, data in FILES.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_bytes(data)
    (ctx / "Kitfile").write_text(KITFILE)
    pack(ctx, tag="plan:v1")
    return ctx


def restore(mutate, tag: str, source: str = "v1") -> str:
    """plan:<source> stored again as plan:<tag> with its manifest and config changed."""
    store = LocalStore()
    stored = store.read_manifest(store.resolve_descriptor("localhost/plan", source))
    manifest, config = mutate(json.loads(stored.raw), json.loads(store.read_blob(stored.config)))
    manifest["config"] = store.put_bytes(json.dumps(config).encode(),
                                         manifest["config"]["mediaType"]).to_json()
    store.add_manifest("localhost/plan", Manifest.parse(json.dumps(manifest).encode()), [tag])
    return f"plan:{tag}"


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != "Kitfile"}


PLAN_LINES = ["Unpacking model to weights.bin", "Unpacking modelpart tok to tok.json",
              "Unpacking dataset to data", "Unpacking code to src",
              "Unpacking docs to README.md"]


def unpacking(rep: NullReporter) -> list[str]:
    return [m for _, m in rep.messages if m.startswith("Unpacking ") and " to /" not in m
            and not m.startswith("Unpacking config")]


def test_reordered_layers_unpack_by_digest(built, tmp_path):
    """Layers in reverse order (and so in no order a position could match): every file lands
    where its entry says, in kit's order."""
    def reverse(manifest, config):
        manifest["layers"].reverse()
        return manifest, config

    rep = NullReporter()
    res = unpack(restore(reverse, "reversed"), dir=tmp_path / "out", reporter=rep)
    assert files(tmp_path / "out") == FILES
    assert unpacking(rep) == PLAN_LINES
    assert [x["type"] for x in res.layers] == ["model", "modelpart", "dataset", "code", "docs"]


def test_a_layer_too_many_is_not_unpacked(built, tmp_path):
    """An extra layer (a second copy of the code layer's type holding another file) that no
    entry names: kit leaves it out without a word."""
    store = LocalStore()
    stored = json.loads(store.read_manifest(store.resolve_descriptor("localhost/plan",
                                                                     "v1")).raw)
    other = tmp_path / "other"
    (other / "extra").mkdir(parents=True)
    (other / "extra" / "x.py").write_text("x")
    (other / "Kitfile").write_text("manifestVersion: 1.0.0\ncode:\n  - path: extra\n")
    pack(other, tag="other:v1")
    extra = json.loads(store.read_manifest(store.resolve_descriptor("localhost/other",
                                                                    "v1")).raw)["layers"][0]

    def add(manifest, config):
        manifest["layers"].insert(0, extra)
        return manifest, config

    rep = NullReporter()
    res = unpack(restore(add, "extra"), dir=tmp_path / "out", reporter=rep)
    assert files(tmp_path / "out") == FILES and extra["digest"] not in str(res.layers)
    assert unpacking(rep) == PLAN_LINES and stored["layers"] != []


def test_a_missing_layer_fails_before_anything_is_written(built, tmp_path, capsys, ip):
    store = LocalStore()
    docs = json.loads(store.read_manifest(store.resolve_descriptor("localhost/plan",
                                                                   "v1")).raw)["layers"][-1]

    def drop(manifest, config):
        manifest["layers"] = [x for x in manifest["layers"] if x["digest"] != docs["digest"]]
        return manifest, config

    ref = restore(drop, "missing")
    text = f"failed to plan unpack: digest {docs['digest']} not found in manifest"
    with pytest.raises(UnpackError, match=f"^{text}$"):
        unpack(ref, dir=tmp_path / "api")
    out = tmp_path / "cli"
    assert main(["unpack", ref, "-d", str(out), "--progress", "none"]) == 1
    shown = text[:1].upper() + text[1:]  # the CLI's capital
    assert capsys.readouterr().err.strip().splitlines() == [f"[ERROR] {shown}"]
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"unpack {ref} -d {tmp_path / 'magic'} --progress none")
    assert str(info.value) == text
    for target in ("api", "cli", "magic"):
        assert not (tmp_path / target).exists()
    # a filter that leaves the docs out plans without them, as kit's does
    res = unpack(ref, dir=tmp_path / "code-only", filters=["code"])
    assert [x["type"] for x in res.layers] == ["code"]


def test_two_entries_sharing_a_tar_layer(built, tmp_path, capsys):
    """Two docs entries recording one layer's digest: kit's plan has a step for each (two
    lines); the layer's files are written once, whatever the flags."""
    def share(manifest, config):
        config["docs"].append(dict(config["docs"][0]))
        return manifest, config

    ref = restore(share, "shared")
    out = tmp_path / "out"
    assert main(["unpack", ref, "-d", str(out), "--progress", "none"]) == 0
    said = capsys.readouterr()
    assert said.out.count("Unpacking docs to README.md") + \
        said.err.count("Unpacking docs to README.md") == 2
    assert files(out) == FILES


def test_two_identical_files_as_raw_layers(kitops_home, tmp_path, ip):
    """Two identical files packed as raw layers share a digest; each entry takes the layer
    whose file path is its own, so both files are written (kit writes the last one twice)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.bin").write_bytes(b"same")
    (ctx / "b.bin").write_bytes(b"same")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: a.bin\n"
                                 "  parts:\n    - path: b.bin\n")
    ip.run_line_magic("kit", f"pack {ctx} -t twins:v1 --layer-format raw --progress none")
    store = LocalStore()
    manifest = json.loads(store.read_manifest(store.resolve_descriptor("localhost/twins",
                                                                       "v1")).raw)
    assert len({x["digest"] for x in manifest["layers"]}) == 1
    res = ip.run_line_magic("kit", f"unpack twins:v1 -d {tmp_path / 'out'} --progress none")
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"same"
    assert (tmp_path / "out" / "b.bin").read_bytes() == b"same"
    assert [x["path"] for x in res.layers] == ["a.bin", "b.bin"]


def test_kitfile_without_digests_unpacks_by_position(built, tmp_path):
    """A config without layer info (kit before 1.0): kit's legacy unpack, by position within
    each type, with its older lines."""
    def strip(manifest, config):
        for entry in [config["model"], *config["model"]["parts"], *config["datasets"],
                      *config["code"], *config["docs"]]:
            entry.pop("digest", None)
            entry.pop("diffId", None)
        return manifest, config

    rep = NullReporter()
    unpack(restore(strip, "legacy"), dir=tmp_path / "out", reporter=rep)
    assert files(tmp_path / "out") == FILES
    assert "Unpacking model  to weights.bin" in unpacking(rep)  # kit's legacy text, as is


def test_legacy_layer_without_an_entry(built, tmp_path):
    """kit's legacy loop indexes past its list (a panic); ours is one line, nothing written."""
    def strip_and_add(manifest, config):
        for entry in [config["model"], *config["model"]["parts"], *config["datasets"],
                      *config["code"], *config["docs"]]:
            entry.pop("digest", None)
            entry.pop("diffId", None)
        code = next(x for x in manifest["layers"] if ".code." in x["mediaType"])
        manifest["layers"].append(code)
        return manifest, config

    ref = restore(strip_and_add, "legacy-extra")
    with pytest.raises(UnpackError, match=r"^failed to unpack: no Kitfile entry for code layer "
                                          r"sha256:[0-9a-f]{64}$"):
        unpack(ref, dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_mixed_digests_through_cli(built, tmp_path, capsys):
    def mixed(manifest, config):
        config["docs"][0].pop("digest")
        return manifest, config

    ref = restore(mixed, "mixed")
    assert main(["unpack", ref, "-d", str(tmp_path / "out"), "--progress", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "[ERROR] Invalid digests in layerinfo in Kitfile"
    assert not (tmp_path / "out").exists()
