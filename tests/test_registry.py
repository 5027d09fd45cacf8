"""push / pull / remote list / remote inspect / remote unpack against a real docker-registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from kit_jupyter.commands.remote import PushResult, inspect_remote, list_remote, pull, push
from kit_jupyter.errors import NotFoundError, ReferenceError_, RegistryError
from kit_jupyter.oci.manifest import Descriptor, Manifest
from kit_jupyter.oci.store import LocalStore
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport.registry import RegistryClient, RemoteSource

pytestmark = pytest.mark.registry

KIT_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KIT_ARTIFACT = "application/vnd.kitops.modelkit.manifest.v1+json"


def make_modelkit(home: Path, repo_key: str = "localhost/churn", tag: str = "v1",
                  *, seed: str = "a") -> dict:
    """A small ModelKit (model, code, dataset, docs) packed with ``commands.pack.pack`` into
    ``home``; returns its digest, manifest (parsed and raw bytes) and config."""
    from kit_jupyter.commands.pack import pack

    ctx = home.parent / f"ctx-{repo_key.replace('/', '_').replace(':', '_')}-{tag}-{seed}"
    (ctx / "src").mkdir(parents=True, exist_ok=True)
    (ctx / "data").mkdir(exist_ok=True)
    (ctx / "model.bin").write_bytes(seed.encode() * 300_000)  # ~300 KB, several chunks
    (ctx / "src" / "train.py").write_text(f"print('{seed}')\n")
    (ctx / "data" / "events.csv").write_text(f"a,b\n1,{seed}\n")
    (ctx / "README.md").write_text(f"# {seed}\n")
    (ctx / "Kitfile").write_text(
        "manifestVersion: 1.0.0\n"
        f"package:\n  name: churn-{seed}\n  authors: [Alice]\n"
        "model:\n  name: churn\n  path: model.bin\n"
        "code:\n  - path: src\n"
        "datasets:\n  - name: events\n    path: data\n"
        "docs:\n  - path: README.md\n")
    registry, _, repository = repo_key.partition("/")
    ref = f"{repository}:{tag}" if registry == "localhost" else f"{repo_key}:{tag}"
    res = pack(ctx, tag=ref, home=home)
    store = LocalStore(home)
    stored = store.read_manifest(store.resolve_descriptor(repo_key, tag))
    assert stored.digest == res.digest
    config = json.loads(store.read_blob(stored.config))
    return {"digest": res.digest, "manifest": json.loads(stored.raw), "bytes": stored.raw,
            "config": config}


def _storage_files(home: Path) -> dict[str, bytes]:
    root = home / "storage"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "ingest" not in p.parts and p.name != ".lock"}


def _blob_gets(reqs: list[tuple[str, str, int]]) -> list[str]:
    return [path.rsplit("/", 1)[-1] for m, path, _ in reqs if m == "GET" and "/blobs/" in path]


def test_push_then_pull_is_bit_for_bit(registry, tmp_path):
    src_home, dst_home = tmp_path / "src", tmp_path / "dst"
    kit = make_modelkit(src_home, "localhost/churn", "v1")
    rep = NullReporter()
    res = push("churn:v1", f"{registry.host}/acme/roundtrip:v1", home=src_home, plain_http=True,
               reporter=rep)
    assert res.digest == kit["digest"]
    assert len(res.uploaded) == 5 and not res.skipped
    assert ("info", f"Pushing localhost/churn:v1 to {registry.host}/acme/roundtrip:v1") \
        in rep.messages
    assert ("info", f"Pushed {kit['digest']}") in rep.messages
    assert all(t.ok for t in rep.tasks) and len(rep.tasks) == 5

    rep2 = NullReporter()
    got = pull(f"{registry.host}/acme/roundtrip:v1", home=dst_home, plain_http=True,
               reporter=rep2)
    assert got.digest == kit["digest"]
    assert rep2.messages[0] == ("info", f"Pulling {registry.host}/acme/roundtrip:v1")
    assert rep2.messages[-1] == ("info", f"Pulled {kit['digest']}")
    dst = LocalStore(dst_home)
    repo_key = f"{registry.host}/acme/roundtrip"
    assert dst.read_manifest(dst.resolve_descriptor(repo_key, "v1")).raw == kit["bytes"]
    src_blobs = {k: v for k, v in _storage_files(src_home).items() if k.startswith("blobs/")}
    dst_blobs = {k: v for k, v in _storage_files(dst_home).items() if k.startswith("blobs/")}
    assert src_blobs == dst_blobs
    for name, blob in dst_blobs.items():
        assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[-1]
    top = json.loads((dst_home / "storage" / "index.json").read_text())
    assert kit["digest"] in [d["digest"] for d in top["manifests"]]
    assert dst.tags(repo_key)["v1"].digest == kit["digest"]


def test_pull_same_as_local_pack_layout(registry, tmp_path):
    """A pulled ModelKit is stored exactly as packing it under the same name would store it."""
    a, b = tmp_path / "a", tmp_path / "b"
    repo_key = f"{registry.host}/acme/layout"
    make_modelkit(a, repo_key, "v2", seed="L")
    push(f"{repo_key}:v2", home=a, plain_http=True)
    pull(f"{repo_key}:v2", home=b, plain_http=True)
    assert _storage_files(a) == _storage_files(b)


def test_repush_skips_existing_blobs(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/skip", "v1", seed="s")
    dest = f"{registry.host}/acme/skip:v1"
    push("skip:v1", dest, home=home, plain_http=True)
    mark = registry.mark()
    res = push("skip:v1", dest.replace(":v1", ":v2"), home=home, plain_http=True)
    reqs = registry.requests(mark)
    assert len(res.skipped) == 5 and not res.uploaded
    assert not [r for r in reqs if r[0] in ("POST", "PATCH")]
    puts = [r for r in reqs if r[0] == "PUT"]
    assert len(puts) == 1 and "/manifests/v2" in puts[0][1]
    assert len([r for r in reqs if r[0] == "HEAD"]) == 5


def test_default_tag_messages(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/deftag", "latest", seed="d")
    rep = NullReporter()
    push("deftag", f"{registry.host}/acme/deftag", home=home, plain_http=True, reporter=rep)
    assert ("info", "No tag specified for push. Using 'latest' as default ('deftag:latest')") \
        in rep.messages
    assert ("info", "No tag specified for push target. Using 'latest' as default "
            f"('{registry.host}/acme/deftag:latest')") in rep.messages
    rep = NullReporter()
    pull(f"{registry.host}/acme/deftag", home=tmp_path / "p", plain_http=True, reporter=rep)
    assert rep.messages[0] == ("info", "No tag specified for pull. Using 'latest' as default "
                               f"('{registry.host}/acme/deftag:latest')")


def test_push_requires_registry_and_local_modelkit(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/req", "v1")
    with pytest.raises(ReferenceError_, match="registry is required when pushing"):
        push("req:v1", home=home)
    with pytest.raises(NotFoundError, match="nothere:v1 not found in local storage"):
        push("nothere:v1", f"{registry.host}/acme/x:v1", home=home, plain_http=True)
    with pytest.raises(ReferenceError_, match="registry is required when pulling"):
        pull("req:v1", home=home)


def test_missing_reference_is_clear_and_fast(registry, tmp_path, retry_sleeps):
    with pytest.raises(NotFoundError) as info:
        pull(f"{registry.host}/acme/never:v9", home=tmp_path, plain_http=True)
    assert retry_sleeps == []  # a 404 is an answer, not something to retry
    msg = str(info.value)
    assert msg == f"failed to fetch {registry.host}/acme/never:v9: not found"
    assert "\n" not in msg
    assert not (tmp_path / "storage" / "index.json").exists() or \
        LocalStore(tmp_path).repositories() == []


def test_connection_refused_fails_fast(tmp_path, retry_sleeps):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError) as info:
        pull(f"127.0.0.1:{port}/acme/x:v1", home=tmp_path, plain_http=True)
    assert len(retry_sleeps) <= 2 and sum(retry_sleeps) < 3  # oras-py alone: 131 s of back-off
    assert str(info.value) == f"could not connect to registry 127.0.0.1:{port}: connection refused"


def test_tampered_blob_in_registry_is_detected(registry, tmp_path):
    home = tmp_path / "src"
    kit = make_modelkit(home, "localhost/tamper", "v1", seed="t")
    push("tamper:v1", f"{registry.host}/acme/tamper:v1", home=home, plain_http=True)
    code = kit["manifest"]["layers"][1]
    path = registry.blob_data_path(code["digest"])
    original = path.read_bytes()
    try:
        tampered = bytearray(original)
        tampered[600] ^= 0x01  # inside the file content, same size
        path.write_bytes(bytes(tampered))
        dst = tmp_path / "dst"
        with pytest.raises(RegistryError, match="does not match its digest"):
            pull(f"{registry.host}/acme/tamper:v1", home=dst, plain_http=True)
        store = LocalStore(dst)
        assert not store.has_blob(code["digest"])
        assert store.repositories() == []
        assert not list((dst / "storage" / "ingest").glob("*"))
    finally:
        path.write_bytes(original)


def test_remote_source_fetches_only_requested_blobs(registry, tmp_path):
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/partial", "v1", seed="p")
    push("partial:v1", f"{registry.host}/acme/partial:v1", home=home, plain_http=True)
    mark = registry.mark()
    with RemoteSource(f"{registry.host}/acme/partial:v1", {"plain_http": True}) as src:
        manifest = src.resolve(src.reference)
        assert manifest.raw == kit["bytes"] and manifest.digest == kit["digest"]
        docs = manifest.layers[3]
        with src.open_blob(docs) as f:
            blob = f.read()
    assert hashlib.sha256(blob).hexdigest() == docs.digest.split(":")[1]
    assert _blob_gets(registry.requests(mark)) == [docs.digest]


def test_remote_unpack_with_filter_fetches_only_needed_blobs(registry, tmp_path):
    from kit_jupyter.commands import unpack as unpack_mod

    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/runpack", "v1", seed="u")
    push("runpack:v1", f"{registry.host}/acme/runpack:v1", home=home, plain_http=True)
    fresh = tmp_path / "fresh"
    mark = registry.mark()
    unpack_mod.unpack(f"{registry.host}/acme/runpack:v1", home=fresh, plain_http=True,
                      dir=tmp_path / "out", filters=["docs"])
    gets = _blob_gets(registry.requests(mark))
    docs, config = kit["manifest"]["layers"][3], kit["manifest"]["config"]
    assert set(gets) <= {docs["digest"], config["digest"]} and docs["digest"] in gets
    assert (tmp_path / "out" / "README.md").read_text() == "# u\n"
    assert not (tmp_path / "out" / "model.bin").exists()


def test_remote_list_and_inspect(registry, tmp_path):
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/listme", "v1", seed="x")
    for tag in ("v1", "v2"):
        push("listme:v1", f"{registry.host}/acme/listme:{tag}", home=home, plain_http=True)
    listed = list_remote(f"{registry.host}/acme/listme", plain_http=True)
    assert [(m["tags"], m["digest"]) for m in listed.data] == [
        (["v1"], kit["digest"]), (["v2"], kit["digest"])]
    assert listed.data[0]["modelName"] == "churn-x" and listed.data[0]["author"] == "Alice"
    assert "REPOSITORY" in listed.text() and "churn-x" in listed._repr_html_()

    one = list_remote(f"{registry.host}/acme/listme:v2", plain_http=True)
    assert [m["tags"] for m in one.data] == [["v2"]]

    ins = inspect_remote(f"{registry.host}/acme/listme:v1", plain_http=True)
    assert ins.data["digest"] == kit["digest"]
    annotations = kit["manifest"]["annotations"]
    assert ins.data["cliVersion"] == annotations["ml.kitops.modelkit.cli-version"]
    assert ins.data["kitfile"] == kit["config"]
    assert ins.data["manifest"] == kit["manifest"]
    with pytest.raises(NotFoundError, match=r"^Could not find modelkit .*/acme/listme:v7$"):
        inspect_remote(f"{registry.host}/acme/listme:v7", plain_http=True)
    with pytest.raises(NotFoundError, match="not found"):
        list_remote(f"{registry.host}/acme/nosuchrepo", plain_http=True)


def test_concurrency_one_and_many_give_same_result(registry, tmp_path):
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/conc", "v1", seed="c")
    for n, name in ((1, "conc1"), (8, "conc8")):
        res = push("conc:v1", f"{registry.host}/acme/{name}:v1", home=home, plain_http=True,
                   concurrency=n)
        assert res.digest == kit["digest"]
        got = pull(f"{registry.host}/acme/{name}:v1", home=tmp_path / name, plain_http=True,
                   concurrency=n)
        assert got.digest == kit["digest"] and len(got.downloaded) == 5


def test_manifest_bytes_kept_exactly(registry, tmp_path):
    """Non-canonical JSON (spaces, key order) must survive the round trip unchanged."""
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/exact", "v1", seed="e")
    odd = json.dumps(kit["manifest"], indent=3).encode()  # same content, other bytes
    store = LocalStore(home)
    digest = store.add_manifest("localhost/exact", Manifest.parse(odd), ["odd"])
    res = push("exact:odd", f"{registry.host}/acme/exact:odd", home=home, plain_http=True)
    assert res.digest == digest
    with RegistryClient(registry.host, plain_http=True) as client:
        data, media_type, got = client.get_manifest("acme/exact", "odd")
    assert data == odd and got == digest
    assert media_type == "application/vnd.oci.image.manifest.v1+json"


def test_result_objects_render(registry, tmp_path):
    home = tmp_path / "h"
    make_modelkit(home, "localhost/render", "v1", seed="r")
    res = push("render:v1", f"{registry.host}/acme/render:v1", home=home, plain_http=True)
    assert res.data["destination"] == f"{registry.host}/acme/render:v1"
    assert "uploaded" in res._repr_html_() and res.summary().startswith("Pushed sha256:")
    got = pull(f"{registry.host}/acme/render:v1", home=tmp_path / "p", plain_http=True)
    assert got.data["tags"] == ["v1"] and "<table" in got._repr_html_()
    assert os.fspath(got.reference).endswith("/acme/render:v1")


def test_push_of_corrupt_local_blob_is_refused(registry, tmp_path):
    """Uploads are not hashed locally: the registry checks ``?digest=`` and we name the blob."""
    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/corrupt", "v1", seed="z")
    code = kit["manifest"]["layers"][1]
    path = LocalStore(home).blob_path(code["digest"])
    data = bytearray(path.read_bytes())
    data[600] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    rep = NullReporter()
    with pytest.raises(RegistryError) as info:
        push("corrupt:v1", f"{registry.host}/acme/corrupt:v1", home=home, plain_http=True,
             concurrency=1, reporter=rep)
    assert all(t.finished is not None for t in rep.tasks)  # no row left spinning
    assert [t.ok for t in rep.tasks].count(False) >= 1
    assert str(info.value) == (f"blob {code['digest']} is corrupt: {registry.host} computed a "
                               "different digest for the bytes sent")
    with RegistryClient(registry.host, plain_http=True) as client, \
            pytest.raises(NotFoundError):
        client.get_manifest("acme/corrupt", "v1")


def test_pull_refuses_non_modelkit(registry, tmp_path):
    with RegistryClient(registry.host, plain_http=True) as client:
        cfg = b'{"architecture":"amd64","os":"linux"}'
        desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)}
        client.push_blob("acme/image", Descriptor.from_json(desc), lambda: io.BytesIO(cfg))
        manifest = json.dumps({"schemaVersion": 2, "config": desc, "layers": []}).encode()
        client.put_manifest("acme/image", "v1", manifest,
                            "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(RegistryError, match=r"^reference .*/acme/image:v1 does not refer to a "
                                            r"model$"):
        pull(f"{registry.host}/acme/image:v1", home=tmp_path, plain_http=True)
    assert list_remote(f"{registry.host}/acme/image", plain_http=True).data == []


def test_pull_follows_model_reference(registry, tmp_path):
    """A ModelKit whose model.path names another ModelKit: kit pulls the parent too."""
    home = tmp_path / "h"
    base = make_modelkit(home, "localhost/base", "v1", seed="B")
    push("base:v1", f"{registry.host}/acme/base:v1", home=home, plain_http=True)
    store = LocalStore(home)
    config = {"manifestVersion": "1.0.0", "package": {"name": "child"},
              "model": {"name": "child", "path": f"{registry.host}/acme/base:v1"}}
    cfg = store.put_bytes(json.dumps(config).encode(), KIT_CONFIG)
    child = store.add_manifest("localhost/child", Manifest(cfg, artifact_type=KIT_ARTIFACT),
                               ["v1"])
    push("child:v1", f"{registry.host}/acme/child:v1", home=home, plain_http=True)
    fresh = tmp_path / "fresh"
    rep = NullReporter()
    got = pull(f"{registry.host}/acme/child:v1", home=fresh, plain_http=True, reporter=rep)
    assert got.digest == child and [p.digest for p in got.parents] == [base["digest"]]
    assert ("info", f"Pulling referenced image {registry.host}/acme/base:v1") in rep.messages
    dst = LocalStore(fresh)
    assert dst.resolve_descriptor(f"{registry.host}/acme/base", "v1").digest == base["digest"]


def test_parallel_failure_cancels_running_transfers():
    """One failed layer stops the others at their next chunk and its error is the one raised."""
    import threading

    from kit_jupyter.commands.remote import _parallel

    stop = threading.Event()
    started = threading.Barrier(3)

    def fn(i: int) -> int:
        started.wait(timeout=5)
        if i == 0:
            raise RegistryError("layer 0 failed")
        if not stop.wait(timeout=10):
            raise AssertionError("never cancelled")
        raise RegistryError(f"layer {i} cancelled")

    with pytest.raises(RegistryError, match="^layer 0 failed$"):
        _parallel(3, [0, 1, 2], fn, cancel=stop.set)
    assert stop.is_set()


def test_cli_push_pull_list_inspect_login_logout(registry, auth_registry, tmp_path, capsys,
                                                 monkeypatch):
    """``python -m kit_jupyter``: kit's lines on stdout, errors as one ``[ERROR]`` line."""
    from kit_jupyter.__main__ import main

    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/cli", "v1", seed="C")
    dest = f"{registry.host}/acme/cli:v1"
    assert main(["push", "cli:v1", dest, "--plain-http", "--config", str(home)]) == 0
    out = capsys.readouterr().out
    assert out == f"Pushing localhost/cli:v1 to {dest}\nPushed {kit['digest']}\n"
    other = tmp_path / "o"
    assert main(["pull", dest, "--plain-http", "--config", str(other)]) == 0
    assert capsys.readouterr().out == f"Pulling {dest}\nPulled {kit['digest']}\n"
    assert main(["list", f"{registry.host}/acme/cli", "--plain-http"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert lines[1].split()[:4] == ["acme/cli", "v1", "Alice", "churn-C"]
    assert main(["inspect", "-r", dest, "--plain-http"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == kit["digest"]
    assert main(["pull", f"{registry.host}/acme/cli:nope", "--plain-http", "--config",
                 str(other)]) == 1
    err = capsys.readouterr().err
    assert err == f"[ERROR] Failed to fetch {registry.host}/acme/cli:nope: not found\n"

    docker = tmp_path / "docker"
    docker.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    monkeypatch.setattr("sys.stdin", io.StringIO(auth_registry.password + "\n"))
    assert main(["login", auth_registry.host, "-u", auth_registry.username, "--password-stdin",
                 "--plain-http", "--config", str(home)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "Log in successful\n"
    assert auth_registry.password not in captured.out + captured.err
    assert main(["logout", auth_registry.host, "--config", str(home)]) == 0
    assert capsys.readouterr().out == f"Successfully logged out from {auth_registry.host}\n"


def test_magic_push_pull_returns_results_and_usage_errors(ip, registry, tmp_path, kitops_home):
    """``%kit push`` / ``%kit pull`` in a real IPython shell: results to assign, one-line
    UsageError (not a traceback) for a missing reference."""
    from IPython.core.error import UsageError

    kit = make_modelkit(kitops_home, "localhost/magic", "v1", seed="m")
    dest = f"{registry.host}/acme/magic:v1"
    res = ip.run_line_magic("kit", f"push magic:v1 {dest} --plain-http --progress none")
    assert isinstance(res, PushResult) and res.digest == kit["digest"]
    got = ip.run_line_magic("kit", f"pull {dest} --plain-http --progress none")
    assert got.digest == kit["digest"] and [b.action for b in got.blobs] == ["present"] * 5
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"pull {registry.host}/acme/magic:v404 --plain-http")
    assert type(info.value) is UsageError
    assert "not found" in str(info.value) and "\n" not in str(info.value)


def test_info_and_inspect_remote_through_local_commands(registry, tmp_path):
    """``info -r`` / ``inspect -r`` read the registry through ``RemoteSource``."""
    from kit_jupyter.commands import local

    home = tmp_path / "h"
    kit = make_modelkit(home, "localhost/viasrc", "v1", seed="v")
    push("viasrc:v1", f"{registry.host}/acme/viasrc:v1", home=home, plain_http=True)
    fresh = tmp_path / "fresh"
    mark = registry.mark()
    info = local.info(f"{registry.host}/acme/viasrc:v1", home=fresh, remote=True,
                      plain_http=True)
    assert "name: churn-v" in info.text()
    ins = local.inspect(f"{registry.host}/acme/viasrc:v1", home=fresh, remote=True,
                        plain_http=True)
    assert ins.digest == kit["digest"]
    layer_digests = {d["digest"] for d in kit["manifest"]["layers"]}
    assert not layer_digests & set(_blob_gets(registry.requests(mark)))  # config only
    assert not (fresh / "storage" / "index.json").exists()  # nothing stored locally


def test_results_show_their_summary_not_a_dataclass_repr():
    from IPython.lib.pretty import pretty

    from kit_jupyter.commands.remote import LogoutResult, PushResult

    push = PushResult(source="a:v1", destination="r.example/a:v1", digest="sha256:" + "0" * 64,
                      blobs=[])
    assert pretty(push).startswith("Pushed sha256:") and "PushResult(" not in repr(push)
    out = LogoutResult.__dataclass_fields__  # still a dataclass, with data fields
    assert "registry" in out
