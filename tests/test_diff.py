"""``diff``: kit's compare-manifest fixtures, kit's text, and local / remote / mixed references
against real local storage and a real docker-registry, through the API, the CLI and ``%kit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kit_jupyter.commands.diff import DiffResult, Side, compare_manifests, diff
from kit_jupyter.commands.remote import push
from kit_jupyter.errors import KitError, NotFoundError
from tests.test_registry import make_modelkit

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "data" / "kit" / "compare-manifest"
FILEPATH = "org.cncf.model.filepath"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def layer_keys(layers: list[dict]) -> Counter:
    """What kit's test compares (digests, as a multiset), plus the file path where the expected
    descriptor names one (the duplicate-layer cases)."""
    return Counter((x["digest"], (x.get("annotations") or {}).get(FILEPATH)) for x in layers)


CASES = [  # (ModelKit1, ModelKit2, expected DiffResult)
    ("manifestA.json", "manifestB.json", "different-config.json"),
    ("manifestA.json", "manifestC.json", "different-layer.json"),
    ("manifestA.json", "manifestD.json", "annotation-mismatch.json"),
    ("manifestA.json", "manifestE.json", "mixed-diff.json"),
    ("manifestF.json", "manifestF.json", "duplicate-layer-both.json"),
    ("manifestF.json", "manifestA.json", "duplicate-layer.json"),
    ("manifestF.json", "manifestG.json", "duplicate-layer-moved.json"),
]


@pytest.mark.parametrize("a,b,expected", CASES, ids=[c[2].removesuffix(".json") for c in CASES])
def test_kit_compare_manifest_fixture(a, b, expected):
    want = load(expected)
    got = compare_manifests(load(a), load(b))
    assert got.same_config == want["SameConfig"]
    assert got.annotations_match == want["AnnotationsMatch"]
    assert layer_keys(got.shared_layers) == layer_keys(want["SharedLayers"])
    assert layer_keys(got.unique_layers_a) == layer_keys(want["UniqueLayersA"])
    assert layer_keys(got.unique_layers_b) == layer_keys(want["UniqueLayersB"])


def test_every_fixture_is_used():
    used = {n for case in CASES for n in case}
    assert used == {p.name for p in FIXTURES.glob("*.json")}


def test_layers_without_path_match_on_digest_and_lists_sort_by_media_type():
    a = {"config": {"digest": "c"}, "layers": [
        {"mediaType": "z", "digest": "d1", "annotations": {FILEPATH: "./x/y.py"}},
        {"mediaType": "a", "digest": "d2"}]}
    b = {"config": {"digest": "c"}, "layers": [
        {"mediaType": "z", "digest": "d1", "annotations": {FILEPATH: "x/y.py"}},  # Clean()ed
        {"mediaType": "a", "digest": "d2", "annotations": {FILEPATH: "new/path"}}]}
    got = compare_manifests(a, b)
    assert [x["mediaType"] for x in got.shared_layers] == ["a", "z"]
    assert got.unique_layers_a == [] and got.unique_layers_b == []


def test_kit_text_line_for_line():
    a, e = load("manifestA.json"), load("manifestE.json")
    res = DiffResult(Side("localhost/churn:v1", "sha256:aaa", a),
                     Side("registry.example.com/acme/churn:v2", "sha256:eee", e),
                     compare_manifests(a, e))
    assert res.text() == """\
Comparing:
  ModelKit1: localhost/churn:v1
  ModelKit2: registry.example.com/acme/churn:v2

Configurations:
---------------------------------------
Configs differ:
  ModelKit1 Config Digest: sha256:configA
  ModelKit2 Config Digest: sha256:configE

Annotations:
---------------------------------------
  Annotations does not match

Shared Layers
---------------------------------------
Type    | Digest             | Size
Model   | sha256:layer1      | 117.7 MiB

Unique Layers to ModelKit1 (localhost/churn:v1)
---------------------------------------
Type    | Digest             | Size
Code    | sha256:layer2      | 22.9 KiB

Unique Layers to ModelKit2 (registry.example.com/acme/churn:v2)
---------------------------------------
Type    | Digest             | Size
Code    | sha256:layerE      | 22.9 KiB

"""
    assert res.annotation_changes() == [
        ("ml.kitops.modelkit.cli-version", "0.2.5-29dbdc4", "different_value")]
    same = DiffResult(Side("x", "sha256:aaa", a), Side("y", "sha256:aaa", a),
                      compare_manifests(a, a))
    assert same.identical and same.text() == "ModelKits are identical\n"


# -- real storage and a real registry -----------------------------------------------------------

@pytest.fixture
def two(tmp_path):
    """churn:v1 and churn:v2 in one local storage: same model, dataset and docs, other code."""
    home = tmp_path / "home"
    v1 = make_modelkit(home, tag="v1", seed="a")
    ctx = tmp_path / "ctx-v2"
    (ctx / "src").mkdir(parents=True)
    (ctx / "data").mkdir()
    (ctx / "model.bin").write_bytes(b"a" * 300_000)
    (ctx / "src" / "train.py").write_text("print('b')\n")
    (ctx / "data" / "events.csv").write_text("a,b\n1,a\n")
    (ctx / "README.md").write_text("# a\n")
    (ctx / "Kitfile").write_text(
        (tmp_path / "ctx-localhost_churn-v1-a" / "Kitfile").read_text())
    from kit_jupyter.commands.pack import pack

    v2 = pack(ctx, tag="churn:v2", home=home)
    return home, v1, v2


def test_local_diff(two):
    home, v1, v2 = two
    res = diff("churn:v1", "churn:v2", home=home)
    assert not res.identical and not res.same_config  # the config holds the code layer digest
    # the same cli-version; the pack times (org.opencontainers.image.created) may differ
    assert {c[0] for c in res.annotation_changes()} <= {"org.opencontainers.image.created"}
    kinds = lambda layers: sorted(x["mediaType"].split(".")[3] for x in layers)  # noqa: E731
    assert kinds(res.shared_layers) == ["dataset", "docs", "model"]
    assert kinds(res.unique_layers_1) == ["code"] and kinds(res.unique_layers_2) == ["code"]
    assert res.modelkit1.digest == v1["digest"] and res.modelkit2.digest == v2.digest
    assert res.modelkit1.reference == "localhost/churn:v1"
    data = json.loads(res.to_json())
    assert [x["digest"] for x in data["UniqueLayersA"]] == [x["digest"] for x in
                                                            res.unique_layers_1]
    same = diff("local://churn:v1", "churn@" + v1["digest"], home=home)
    assert same.identical and same.text() == "ModelKits are identical\n"


def test_html_is_a_self_contained_table(two):
    home, _, _ = two
    page = diff("churn:v1", "churn:v2", home=home)._repr_html_()
    # inline styles only (survives sanitising renderers), through render.html_table
    assert "<style" not in page and '<table class="kit-result" style=' in page
    assert page.count("<tr>") >= 1 + 3 + 1 + 5  # header table, 3 shared + 2 unique layers
    assert "rgba(214,39,40,.14)" in page and 'title="sha256:' in page
    assert "ModelKits differ" in page and "localhost/churn:v2" in page


def test_errors_name_the_modelkit(two):
    home, _, _ = two
    with pytest.raises(NotFoundError) as info:
        diff("churn:v9", "churn:v1", home=home)
    assert str(info.value) == ("Failed to get manifest for ModelKit1: reference v9 not found in "
                               "repository: localhost/churn: not found")
    with pytest.raises(KitError, match=r"^Invalid arguments: failed to parse reference for "
                                       r"ref2: repository \(Churn\) name must be lowercase$"):
        diff("churn:v1", "Churn:v1", home=home)


@pytest.mark.registry
def test_remote_and_mixed(two, registry):
    home, v1, _ = two
    remote = f"{registry.host}/acme/churn"
    push("churn:v1", f"{remote}:v1", home=home, plain_http=True)
    mark = registry.mark()
    same = diff("local://churn:v1", f"remote://{remote}:v1", home=home, plain_http=True)
    assert same.identical
    mixed = diff(f"remote://{remote}:v1", "local://churn:v2", home=home, plain_http=True)
    assert not mixed.identical and len(mixed.shared_layers) == 3
    assert mixed.modelkit1.reference == f"{remote}:v1"
    # unprefixed: not in local storage under that name, so read from the registry
    fallback = diff(f"{remote}:v1", "churn:v1", home=home, plain_http=True)
    assert fallback.identical
    # only manifests were read: no blob was downloaded for a diff
    reqs = registry.requests(mark)
    assert not [path for method, path, _ in reqs if "/blobs/" in path]
    assert [m for m, path, _ in reqs if "/manifests/" in path]
    # local:// never goes to the registry, remote:// never to local storage
    with pytest.raises(NotFoundError, match="^Failed to get manifest for ModelKit2: reference "
                                            "v1 not found in repository"):
        diff("churn:v1", f"local://{remote}:v1", home=home)
    with pytest.raises(NotFoundError, match="^Failed to get manifest for ModelKit1: "):
        diff(f"remote://{remote}:v2", "churn:v1", home=home, plain_http=True)


@pytest.mark.registry
def test_cli_and_magic(two, registry, ip):
    home, _, _ = two
    remote = f"{registry.host}/acme/cli"
    push("churn:v2", f"{remote}:v2", home=home, plain_http=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "kit_jupyter", "diff", "churn:v1",
                           f"remote://{remote}:v2", "--config", str(home), "--plain-http"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Comparing:\n  ModelKit1: localhost/churn:v1\n"
                                  f"  ModelKit2: {remote}:v2\n")
    assert "Unique Layers to ModelKit1 (localhost/churn:v1)\n" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "kit_jupyter", "diff", "churn:v1", "churn:v2",
                           "--config", str(home), "--format", "json"],
                          capture_output=True, text=True, timeout=120, env=env)
    data = json.loads(proc.stdout)
    assert data["SameConfig"] is False and len(data["SharedLayers"]) == 3
    proc = subprocess.run([sys.executable, "-m", "kit_jupyter", "diff", "churn:v1", "nope:v1",
                           "--config", str(home)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 1
    assert proc.stderr == ("[ERROR] Failed to get manifest for ModelKit2: reference v1 not found "
                           "in repository: localhost/nope: not found\n")

    ip.user_ns["other"] = f"remote://{remote}:v2"
    d = ip.run_line_magic("kit", f"diff churn:v1 $other --config {home} --plain-http")
    assert isinstance(d, DiffResult) and len(d.unique_layers_2) == 1
    assert '<table class="kit-result" style=' in d._repr_html_()
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="^Failed to get manifest for ModelKit1"):
        ip.run_line_magic("kit", f"diff churn:v7 churn:v1 --config {home}")
