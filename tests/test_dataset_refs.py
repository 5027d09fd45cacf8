"""Datasets whose ``remotePath`` is a ModelKit reference (spec §12.6, the newest kit's
``handleRemoteData``/``unpackRemote``), end to end: pack skips them, ``unpack
--include-remote`` unpacks the referenced ModelKit's datasets beneath the dataset's path --
from local storage or streamed from the real docker-registry, with the filters, kit's cycle
and "not found" texts, per-layer progress and the result row -- through the Python API, the
CLI and ``%kit``; the referenced ModelKit's own S3 datasets come from moto."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.chain import MAX_PARENTS
from kit_jupyter.commands.local import remove
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.remote import push
from kit_jupyter.commands.unpack import WARN_NOT_INCLUDED, unpack
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.filters import FILTER_TYPES, Filter, matches, parse_filters, restrict
from kit_jupyter.oci.mediatypes import parse_media_type
from kit_jupyter.reporting import NullReporter

# the ModelKit that holds the data: two datasets and a model (which must not come along)
DATA_KITFILE = """manifestVersion: 1.0.0
package:
  name: data
model:
  path: weights.bin
datasets:
  - name: train
    path: train
  - name: test
    path: test.csv
"""


def make_context(root: Path, kitfile: str, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Kitfile").write_text(kitfile)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def pack_data(tmp_path: Path, tag: str = "acme/data:v1") -> str:
    ctx = make_context(tmp_path / "data-ctx", DATA_KITFILE, {
        "weights.bin": b"w" * 100, "train/a.csv": b"a,b\n1,2\n", "train/sub/b.csv": b"x\n",
        "test.csv": b"t\n"})
    return pack(ctx, tag=tag).digest


def top_kitfile(remote: str, *, extra: str = "") -> str:
    return f"""manifestVersion: 1.0.0
package:
  name: top
code:
  - path: src
datasets:
  - name: train
    path: data/ref
    remotePath: {remote}
  - name: local
    path: local
{extra}"""


def pack_top(tmp_path: Path, remote: str, tag: str = "acme/top:v1", **kw: str) -> str:
    ctx = make_context(tmp_path / f"top-ctx-{tag.replace('/', '_')}", top_kitfile(remote, **kw),
                       {"src/main.py": b"print()\n", "local/l.txt": b"l\n"})
    return pack(ctx, tag=tag).digest


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def kit(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------------------------
# pack and the filters rule


def test_pack_skips_modelkit_reference_datasets(kitops_home, tmp_path):
    """Nothing is packed (or looked up) for the dataset: the referenced ModelKit need not
    exist, and the layers are the code and the local dataset only."""
    ctx = make_context(tmp_path / "ctx", top_kitfile("acme/nowhere:v9"),
                       {"src/main.py": b"x\n", "local/l.txt": b"l\n"})
    res = pack(ctx, tag="acme/top:v1")
    assert [(parse_media_type(x["mediaType"]).base, x["path"]) for x in res.layers] == [
        ("code", "src"), ("dataset", "local")]
    assert res.config["datasets"][0] == {"name": "train", "path": "data/ref",
                                         "remotePath": "acme/nowhere:v9"}


@pytest.mark.parametrize(("given", "expected"), [
    ([], [(("datasets",), ())]),
    (["datasets:train"], [(("datasets",), ("train",))]),
    (["model,datasets:x,y", "code"], [(("datasets",), ("x", "y"))]),
    (["model"], None),
])
def test_restrict_keeps_ids_and_drops_other_types(given, expected):
    """kit's ``unpackRemote``: the referenced ModelKit is filtered by the filters that name
    the type, with only that type left and the ids kept; none naming it: nothing."""
    got = restrict(parse_filters(given), "datasets")
    assert (None if got is None else [(f.types, f.ids) for f in got]) == expected


_IDS = st.sampled_from(["train", "test", "data/ref", "x", ""])
_FILTERS = st.lists(st.builds(
    Filter, st.lists(st.sampled_from(sorted(FILTER_TYPES)), min_size=1, max_size=3,
                     unique=True).map(tuple),
    st.lists(_IDS, max_size=3).map(tuple)), max_size=4)


@given(_FILTERS, st.sampled_from(sorted(FILTER_TYPES)), _IDS, _IDS,
       st.sampled_from(["dataset", "model", "modelpart", "code", "docs", "prompt", "kitfile",
                        "mcpserver"]))
def test_restrict_selects_the_same_entries_of_its_type_and_nothing_else(filters, word, name,
                                                                        path, kind):
    """For any filters: the restricted ones select an entry of the type exactly when the
    given ones do (none given: all of it), and never an entry of another type."""
    got = restrict(filters, word)
    own = kind in FILTER_TYPES[word]
    if got is None:
        assert filters and not any(word in f.types for f in filters)
        return
    if not own:
        assert not matches(got, kind, name, path)
    elif filters:
        assert matches(got, kind, name, path) == any(
            f.matches(kind, name, path) for f in filters if word in f.types)
    else:
        assert matches(got, kind, name, path)


# --------------------------------------------------------------------------------------------
# unpack from local storage


def test_without_include_remote_warns_and_unpacks_nothing_of_it(kitops_home, tmp_path):
    pack_data(tmp_path)
    pack_top(tmp_path, "acme/data:v1")
    rep = NullReporter()
    res = unpack("acme/top:v1", dir=tmp_path / "out", reporter=rep)
    assert ("warning", WARN_NOT_INCLUDED) in rep.messages
    assert [(r.path, r.status) for r in res.remote] == [("data/ref", "not-included")]
    assert files_under(tmp_path / "out") == ["Kitfile", "local/l.txt", "src/main.py"]


def test_include_remote_unpacks_the_referenced_datasets_beneath_the_path(kitops_home,
                                                                          tmp_path):
    data_digest = pack_data(tmp_path)
    pack_top(tmp_path, "acme/data:v1")
    rep = NullReporter()
    res = unpack("acme/top:v1", dir=tmp_path / "out", include_remote=True, reporter=rep)
    out = tmp_path / "out"
    # the referenced ModelKit's datasets only: no model, no Kitfile of its own
    assert files_under(out) == ["Kitfile", "data/ref/test.csv", "data/ref/train/a.csv",
                                "data/ref/train/sub/b.csv", "local/l.txt", "src/main.py"]
    assert (out / "data/ref/train/a.csv").read_bytes() == b"a,b\n1,2\n"
    said = [m for _, m in rep.messages]
    assert said.index("Unpacking referenced dataset ModelKit localhost/acme/data:v1 to "
                      "data/ref") < said.index("Unpacking dataset train to train")
    assert "Unpacking model  to weights.bin" not in said
    assert not any(level == "warning" for level, _ in rep.messages)
    [row] = res.remote
    assert (row.path, row.remote_path, row.status) == ("data/ref", "acme/data:v1", "unpacked")
    assert row.size > 0 and row.verification == f"ModelKit {data_digest}"
    # the layers it brought are listed where they went, each with a progress task
    assert [x["path"] for x in res.layers] == ["local", "src", "data/ref/train",
                                               "data/ref/test.csv"]  # kit's plan order
    labels = [t.label for t in rep.tasks]
    assert any("data/ref/train" in label for label in labels) and all(t.ok for t in rep.tasks)
    html = res._repr_html_()
    assert "unpacked (ModelKit)" in html and "data/ref" in html
    # again with -i: everything is there, nothing is written, nothing fails
    again = unpack("acme/top:v1", dir=out, include_remote=True, ignore_existing=True)
    assert [r.status for r in again.remote] == ["unpacked"]


def test_a_filter_selects_one_dataset_and_keeps_its_ids_inside(kitops_home, tmp_path):
    """``--filter datasets:train``: the top ModelKit's ``train`` dataset (the reference) and,
    inside the referenced ModelKit, only its dataset named ``train`` (kit keeps the ids);
    the local dataset, the code and the Kitfile stay out."""
    pack_data(tmp_path)
    pack_top(tmp_path, "acme/data:v1")
    res = unpack("acme/top:v1", dir=tmp_path / "out", include_remote=True,
                 filters=["datasets:train"])
    assert files_under(tmp_path / "out") == ["data/ref/train/a.csv", "data/ref/train/sub/b.csv"]
    assert res.kitfile_path is None and [r.status for r in res.remote] == ["unpacked"]
    # a filter that leaves the dataset out: no warning, no row, nothing of it
    rep = NullReporter()
    res = unpack("acme/top:v1", dir=tmp_path / "out2", include_remote=True,
                 filters=["datasets:local"], reporter=rep)
    assert files_under(tmp_path / "out2") == ["local/l.txt"] and res.remote == []
    assert not any("referenced dataset" in m for _, m in rep.messages)


def test_reference_loop_between_two_modelkits(kitops_home, tmp_path, capsys):
    """a's dataset names b, b's names a: kit's text (the chain starts without the ModelKit
    being unpacked, references in registry/repository:tag form), one line, exit 1, and the
    target that did not exist before is gone again."""
    loop = "manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: d\n" \
           "    remotePath: {ref}\n  - name: own\n    path: own\n"
    for name, other in (("a", "loop/b:v1"), ("b", "loop/a:v1")):
        ctx = make_context(tmp_path / name, loop.format(ref=other), {"own/x.txt": name.encode()})
        pack(ctx, tag=f"loop/{name}:v1")
    target = tmp_path / "out" / "deep"
    code, out, err = kit(capsys, "unpack", "loop/a:v1", "-d", str(target), "--include-remote")
    assert code == 1
    assert err == ("[ERROR] Found cycle in modelkit references: "
                   "[localhost/loop/b:v1=>localhost/loop/a:v1=>localhost/loop/b:v1]\n")
    assert "Unpacking referenced dataset ModelKit localhost/loop/b:v1 to d\n" in out
    assert not (tmp_path / "out").exists()


def test_absent_referenced_modelkit(kitops_home, tmp_path, capsys):
    pack_top(tmp_path, "acme/missing:v1")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, out, err = kit(capsys, "unpack", "acme/top:v1", "-d", str(target), "--include-remote")
    assert code == 1
    assert err.startswith("[ERROR] Failed to find reference acme/missing:v1: not found")
    assert err.count("\n") == 1
    assert files_under(target) == ["keep.txt"]  # nothing of the unpack is left


def test_a_dataset_path_that_leaves_the_target(kitops_home, tmp_path):
    """kit checks the dataset path before it reads the ModelKit (``VerifySubpath``); a
    hand-made config is the only way to get one past validation."""
    pack_data(tmp_path)
    ctx = make_context(tmp_path / "ctx", top_kitfile("acme/data:v1"),
                       {"src/main.py": b"x\n", "local/l.txt": b"l\n"})
    pack(ctx, tag="acme/top:v1")
    from kit_jupyter.commands.chain import walk_dataset_modelkits
    from kit_jupyter.kitfile.model import Kitfile

    kf = Kitfile.from_config_json(b'{"manifestVersion":"1.0.0","datasets":[{"name":"x",'
                                  b'"path":"../up","remotePath":"acme/data:v1"}]}')
    seen: list[str] = []

    def check(path: str, base: str) -> None:
        seen.append(path)
        raise KitError(f"error resolving dataset path {path}: no")

    with pytest.raises(KitError, match=r"^error resolving dataset path \.\./up"):
        list(walk_dataset_modelkits(kf, [], lambda ref: pytest.fail("read"),
                                    __import__("contextlib").ExitStack(), check_path=check))
    assert seen == ["../up"]


def test_depth_limit_has_kits_text(kitops_home, tmp_path):
    """A chain of MAX_PARENTS + 1 dataset references: kit's ``reached maximum number of model
    references``."""
    chain = "manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: d\n    remotePath: {ref}\n"
    n = MAX_PARENTS + 2
    for i in range(n):
        ctx = make_context(tmp_path / f"c{i}", chain.format(ref=f"deep/m{i + 1}:v1"), {})
        pack(ctx, tag=f"deep/m{i}:v1")
    with pytest.raises(KitError, match=r"^reached maximum number of model references: "
                                       r"\[localhost/deep/m1:v1=>.*=>localhost/deep/m11:v1\]$"):
        unpack("deep/m0:v1", dir=tmp_path / "out", include_remote=True)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# from the registry, through %kit, with S3 inside


def test_from_the_registry_when_not_local(kitops_home, registry, tmp_path):
    """The referenced ModelKit is only in the registry: it is streamed from there (nothing
    is saved locally), like kit's ``getStoreForRef``; each layer reports progress."""
    remote_ref = f"{registry.host}/acme/refdata:v1"
    pack_data(tmp_path, tag=remote_ref)
    push(remote_ref, plain_http=True)
    remove(remote_ref, force=True)
    pack_top(tmp_path, remote_ref)
    rep = NullReporter()
    res = unpack("acme/top:v1", dir=tmp_path / "out", include_remote=True, plain_http=True,
                 reporter=rep)
    assert files_under(tmp_path / "out" / "data/ref") == ["test.csv", "train/a.csv",
                                                          "train/sub/b.csv"]
    assert ("info", f"Unpacking referenced dataset ModelKit {remote_ref} to data/ref") \
        in rep.messages
    assert [r.status for r in res.remote] == ["unpacked"]
    unpack_tasks = [t for t in rep.tasks if t.label.startswith("unpack data/ref")]
    assert len(unpack_tasks) == 2 and all(t.ok and t.done == t.total for t in unpack_tasks)
    from kit_jupyter.oci.store import LocalStore

    assert LocalStore().resolve_descriptor(f"{registry.host}/acme/refdata", "v1") is None


def test_magics_unpack_include_remote(ip, kitops_home, tmp_path):
    pack_data(tmp_path)
    pack_top(tmp_path, "acme/data:v1")
    ip.user_ns["out_dir"] = str(tmp_path / "out")
    res = ip.run_line_magic("kit", "unpack acme/top:v1 -d $out_dir --include-remote "
                                   "--filter datasets")
    assert files_under(tmp_path / "out") == ["data/ref/test.csv", "data/ref/train/a.csv",
                                             "data/ref/train/sub/b.csv", "local/l.txt"]
    assert [(r.path, r.status) for r in res.remote] == [("data/ref", "unpacked")]
    pack_top(tmp_path, "acme/gone:v1", tag="acme/top2:v1")
    ip.user_ns["out2"] = str(tmp_path / "out2")
    with pytest.raises(UsageError, match="failed to find reference acme/gone:v1: not found"):
        ip.run_line_magic("kit", "unpack acme/top2:v1 -d $out2 --include-remote")
    assert not (tmp_path / "out2").exists()


def test_s3_dataset_inside_the_referenced_modelkit(kitops_home, s3, tmp_path, monkeypatch):
    """The referenced ModelKit's own S3 dataset is downloaded too (kit recurses with
    ``--include-remote`` still on), beneath the dataset path, verified against its ETag."""
    bucket = s3.bucket("refdata")
    etag = s3.put(bucket, "big/blob.bin", b"s3 bytes\n" * 50)["etag"]
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    kitfile = DATA_KITFILE + (f"  - name: train\n    path: remote.bin\n"
                              f"    remotePath: s3://{bucket}/big/blob.bin\n"
                              f"    remoteHash: {etag}\n")
    ctx = make_context(tmp_path / "data-ctx", kitfile, {
        "weights.bin": b"w", "train/a.csv": b"a\n", "test.csv": b"t\n"})
    pack(ctx, tag="acme/data:v1")
    pack_top(tmp_path, "acme/data:v1")
    res = unpack("acme/top:v1", dir=tmp_path / "out", include_remote=True,
                 filters=["datasets:train"])
    out = tmp_path / "out"
    assert files_under(out) == ["data/ref/remote.bin", "data/ref/train/a.csv"]
    assert (out / "data/ref/remote.bin").read_bytes() == b"s3 bytes\n" * 50
    assert [(r.path, r.status) for r in res.remote] == [("data/ref", "unpacked"),
                                                         ("data/ref/remote.bin", "downloaded")]


def test_cli_unpack_include_remote(kitops_home, tmp_path, capsys):
    """The terminal: kit's lines in kit's order (the referenced ModelKit before the layers of
    the one naming it), exit 0; without the flag kit's warning on stderr."""
    pack_data(tmp_path)
    pack_top(tmp_path, "acme/data:v1")
    code, out, err = kit(capsys, "unpack", "acme/top:v1", "-d", str(tmp_path / "a"))
    assert code == 0 and err == f"[WARN ] {WARN_NOT_INCLUDED}\n"
    code, out, err = kit(capsys, "unpack", "acme/top:v1", "-d", str(tmp_path / "b"),
                         "--include-remote")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines.index("Unpacking referenced dataset ModelKit localhost/acme/data:v1 to "
                       "data/ref") < lines.index("Unpacking code to src")
    assert "Unpacking dataset train to train" in lines and "Unpacking dataset test to test.csv" \
        in lines
    assert (tmp_path / "b" / "data/ref/test.csv").read_bytes() == b"t\n"


def test_a_tree_of_references_is_bounded(kitops_home, tmp_path, monkeypatch):
    """Each level names the next from two datasets: 2 + 4 + 8 + … reads without a bound on
    the tree (kit has none). A small bound here stands for the real one; the unpack ends in
    one line and leaves nothing."""
    from kit_jupyter.commands import chain as chain_mod

    monkeypatch.setattr(chain_mod, "MAX_DATASET_MODELKITS", 6)
    two = ("manifestVersion: 1.0.0\ndatasets:\n  - name: l\n    path: l\n    remotePath: {ref}\n"
           "  - name: r\n    path: r\n    remotePath: {ref}\n  - name: own\n    path: own\n")
    for i in range(4):
        ctx = make_context(tmp_path / f"t{i}", two.format(ref=f"tree/t{i + 1}:v1"),
                           {"own/x.txt": b"x"})
        pack(ctx, tag=f"tree/t{i}:v1")
    make_context(tmp_path / "t4", "manifestVersion: 1.0.0\ndatasets:\n  - path: own\n",
                 {"own/x.txt": b"x"})
    pack(tmp_path / "t4", tag="tree/t4:v1")
    res = unpack("tree/t2:v1", dir=tmp_path / "small", include_remote=True)  # 2 + 4 reads
    assert [r.status for r in res.remote] == ["unpacked", "unpacked"]
    assert (tmp_path / "small/r/l/own/x.txt").read_bytes() == b"x"
    with pytest.raises(KitError, match=r"^too many ModelKit references in datasets: more "
                                       r"than 6$"):
        unpack("tree/t0:v1", dir=tmp_path / "big", include_remote=True)
    assert not (tmp_path / "big").exists()


def test_a_modelpack_without_kitfile_as_the_referenced_modelkit(kitops_home, tmp_path):
    """The newest kit's ``unpackRecursive`` warns and generates a Kitfile for a ModelPack that
    has none; a generated Kitfile has no datasets, so nothing of it is unpacked, and no
    error."""
    from tests.test_modelpack import hand_built

    hand_built(kitops_home)
    pack_top(tmp_path, "hand:v1")
    rep = NullReporter()
    res = unpack("acme/top:v1", dir=tmp_path / "out", include_remote=True, reporter=rep)
    assert ("warning", "Artifact does not include Kitfile: functionality may be impacted") \
        in rep.messages
    assert [(r.path, r.status, r.size) for r in res.remote] == [("data/ref", "unpacked", 0)]
    assert files_under(tmp_path / "out") == ["Kitfile", "local/l.txt", "src/main.py"]


def test_registry_only_loop_and_filter_through_the_cli(kitops_home, registry, tmp_path,
                                                        capsys):
    """Both ModelKits only in the registry (local copies removed): a filter that selects one
    dataset follows its reference across the registry, and the loop is found there too."""
    a, b = f"{registry.host}/loop/a:v1", f"{registry.host}/loop/b:v1"
    kitfile = ("manifestVersion: 1.0.0\ndatasets:\n  - name: d\n    path: d\n"
               "    remotePath: {ref}\n  - name: own\n    path: own\n")
    for ref, other in ((a, b), (b, a)):
        name = ref.rsplit("/", 1)[1][0]
        ctx = make_context(tmp_path / name, kitfile.format(ref=other),
                           {"own/x.txt": name.encode()})
        pack(ctx, tag=ref)
        push(ref, plain_http=True)
        remove(ref, force=True)
    # datasets:own selects only the local dataset: the reference is not followed at all
    code, out, err = kit(capsys, "unpack", a, "-d", str(tmp_path / "own"), "--include-remote",
                         "--plain-http", "--filter", "datasets:own")
    assert code == 0, err
    assert files_under(tmp_path / "own") == ["own/x.txt"] and "referenced dataset" not in out
    # everything: a -> b -> a is a loop
    code, out, err = kit(capsys, "unpack", a, "-d", str(tmp_path / "all"), "--include-remote",
                         "--plain-http")
    assert code == 1
    assert err == f"[ERROR] Found cycle in modelkit references: [{b}=>{a}=>{b}]\n"
    assert not (tmp_path / "all").exists()


def test_hostile_member_cannot_leave_the_dataset_directory(kitops_home, tmp_path):
    """A hand-made referenced ModelKit whose dataset layer holds ``../escape.txt``: kit keeps
    members inside the directory it unpacks them to (``VerifySubpath`` there), so do we -- the
    file would land in the target, next to the user's own files. One line; nothing written."""
    import io
    import json
    import tarfile

    from kit_jupyter.oci.manifest import Manifest
    from kit_jupyter.oci.mediatypes import KIT_CONFIG, KIT_MANIFEST_ARTIFACT
    from kit_jupyter.oci.store import LocalStore

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    store = LocalStore()
    layer = store.put_bytes(buf.getvalue(), "application/vnd.kitops.modelkit.dataset.v1.tar")
    config = {"manifestVersion": "1.0.0", "datasets": [
        {"name": "x", "path": "x", "digest": layer.digest, "diffId": layer.digest}]}
    cfg = store.put_bytes(json.dumps(config).encode(), KIT_CONFIG)
    store.add_manifest("localhost/evil/data", Manifest(cfg, layers=(layer,),
                                                       artifact_type=KIT_MANIFEST_ARTIFACT),
                       ["v1"])
    pack_top(tmp_path, "evil/data:v1")
    target = tmp_path / "out"
    with pytest.raises(KitError, match=r"^failed to unpack: illegal file path: \.\./escape\.txt: "
                                       r"layer paths must stay within context directory$"):
        unpack("acme/top:v1", dir=target, include_remote=True)
    assert not target.exists()
