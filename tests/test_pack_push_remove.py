"""``pack --push`` and ``remove --remote`` end to end: the CLI and ``%kit`` against the real
docker-registry on 127.0.0.1 (tests/plugins/registry_server.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.remote import remove_remote
from kit_jupyter.oci.store import LocalStore
from tests.plugins.registry_server import start_registry

KITFILE = "manifestVersion: 1.0.0\npackage:\n  name: pushed\nmodel:\n  path: model.bin\n" \
          "datasets:\n  - name: d\n    path: data\n"


def context(root):
    ctx = root / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_bytes(b"\x00weights" * 1000)
    (ctx / "data" / "a.csv").write_text("x,y\n1,2\n")
    return ctx


def kit(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def registry_get(registry, path):
    req = urllib.request.Request(f"{registry.url}{path}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KITOPS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pack_push_uploads_every_tag(registry, home, tmp_path, capsys):
    ctx = context(tmp_path)
    ref = f"{registry.host}/acme/pushed"
    code, out, err = kit(capsys, "pack", str(ctx), "-t", f"{ref}:v1,v2", "--push",
                         "--plain-http")
    assert code == 0, err
    digest = out.split("Model saved: ")[1].split()[0]
    assert f"Pushing {ref}:v1\n" in out and f"Pushing {ref}:v2\n" in out
    assert out.count(f"Pushed {digest}") == 2
    status, body = registry_get(registry, "/v2/acme/pushed/tags/list")
    assert status == 200 and sorted(json.loads(body)["tags"]) == ["v1", "v2"]
    status, body = registry_get(registry, "/v2/acme/pushed/manifests/v2")
    local = LocalStore(home)
    assert status == 200 and body == local.read_blob(local.resolve_descriptor(ref, "v1"))
    # a second pack finds its layers in storage; the registry already has every blob
    code, out, _ = kit(capsys, "pack", str(ctx), "-t", f"{ref}:v3", "--push", "--plain-http")
    assert code == 0 and "Already saved model layer" in out
    status, body = registry_get(registry, "/v2/acme/pushed/tags/list")
    assert sorted(json.loads(body)["tags"]) == ["v1", "v2", "v3"]


@pytest.mark.parametrize("tag", [None, "pushed:v1", "localhost/acme/pushed:v1"])
def test_pack_push_needs_a_registry_in_the_tag(home, tmp_path, capsys, tag):
    ctx = context(tmp_path)
    code, out, err = kit(capsys, "pack", str(ctx), "--push", *(["-t", tag] if tag else []))
    assert code == 1 and out == ""
    assert err == ("[ERROR] Invalid arguments: --push requires a --tag that names a registry "
                   "(e.g. registry.example.com/org/model:v1)\n")
    assert not (home / "storage" / "blobs").exists()  # refused before anything was written


def test_remove_remote_by_digest_and_force(registry, home, tmp_path, capsys):
    ctx = context(tmp_path)
    ref = f"{registry.host}/acme/removed"
    assert kit(capsys, "pack", str(ctx), "-t", f"{ref}:v1,v2", "--push", "--plain-http")[0] == 0
    status, body = registry_get(registry, "/v2/acme/removed/manifests/v1")
    digest = "sha256:" + __import__("hashlib").sha256(body).hexdigest()
    code, out, err = kit(capsys, "remove", "--remote", f"{ref}@{digest}", "--plain-http")
    assert code == 0, err
    assert out == f"Deleting remote ModelKit {ref}@{digest}\n"
    assert registry_get(registry, "/v2/acme/removed/manifests/v1")[0] == 404
    assert registry_get(registry, "/v2/acme/removed/manifests/v2")[0] == 404
    # local storage is not touched
    assert LocalStore(home).resolve_descriptor(ref, "v1") is not None
    # kit's command refuses -f (and -a) with --remote; its library, like our API, takes force:
    # a tag's manifest is deleted, with every tag
    assert kit(capsys, "pack", str(ctx), "-t", f"{ref}:v3,v4", "--push", "--plain-http")[0] == 0
    for flag in ("-f", "-a"):
        code, out, err = kit(capsys, "remove", "--remote", flag, f"{ref}:v3", "--plain-http")
        assert (code, out) == (1, "")
        assert err == "[ERROR] Invalid arguments: cannot use --all or --force with --remote\n"
    assert registry_get(registry, "/v2/acme/removed/manifests/v3")[0] == 200
    res = remove_remote(f"{ref}:v3", force=True, plain_http=True)
    assert res.removed[0]["action"] == "removed"
    assert res.messages == [("info", f"Deleting remote ModelKit {ref}@{res.removed[0]['digest']}")]
    assert res.text() == f"Deleting remote ModelKit {ref}@{res.removed[0]['digest']}\n"
    assert registry_get(registry, "/v2/acme/removed/manifests/v4")[0] == 404


def test_remove_remote_tag_untags_where_the_registry_can(registry, home, tmp_path, capsys):
    """kit untags a tag (DELETE on the tag); tag deletion is optional in the OCI distribution
    spec and Debian's docker-registry 2.8 refuses it, which kit reports as below."""
    ctx = context(tmp_path)
    ref = f"{registry.host}/acme/untag"
    assert kit(capsys, "pack", str(ctx), "-t", f"{ref}:v1", "--push", "--plain-http")[0] == 0
    code, out, err = kit(capsys, "remove", "--remote", f"{ref}:v1", "--plain-http")
    assert out == f"Untagging remote ModelKit {ref}:v1\n"
    assert code == 1 and err.startswith("[ERROR] Failed to untag ModelKit in remote: ")
    assert registry_get(registry, "/v2/acme/untag/manifests/v1")[0] == 200


def test_remove_remote_errors(registry, home, tmp_path, capsys):
    ref = f"{registry.host}/acme/missing"
    code, _, err = kit(capsys, "remove", "--remote", f"{ref}:nope", "--plain-http")
    assert code == 1 and err == f"[ERROR] Model {ref}:nope not found\n"
    code, _, err = kit(capsys, "remove", "--remote", "--all", "--plain-http")
    assert code == 1
    assert err == "[ERROR] Invalid arguments: cannot use --all or --force with --remote\n"


def test_remove_remote_where_deletes_are_off(home, tmp_path, capsys):
    server = start_registry(tmp_path / "nodelete", delete=False)
    try:
        ctx = context(tmp_path)
        ref = f"{server.host}/acme/kept"
        code, out, _ = kit(capsys, "pack", str(ctx), "-t", f"{ref}:v1", "--push", "--plain-http")
        assert code == 0
        digest = out.split("Model saved: ")[1].split()[0]
        code, out, err = kit(capsys, "remove", "--remote", f"{ref}@{digest}", "--plain-http")
        assert code == 1
        assert err == f"[ERROR] Removing models is unsupported by registry {server.host}\n"
    finally:
        server.stop()


def test_magics_pack_push_and_remove_remote(ip, registry, home, tmp_path):
    ctx = context(tmp_path)
    ref = f"{registry.host}/acme/magic"
    ip.user_ns.update(ctx_dir=str(ctx), ref=ref)
    packed = ip.run_line_magic("kit", "pack $ctx_dir -t {ref}:v1 --push --plain-http")
    assert ("info", f"Pushed {packed.digest}") in packed.messages
    assert registry_get(registry, "/v2/acme/magic/manifests/v1")[0] == 200
    removed = ip.run_line_magic("kit", f"remove --remote {ref}@{packed.digest} --plain-http")
    assert removed.data == [{"reference": f"{ref}@{packed.digest}", "digest": packed.digest,
                             "action": "removed"}]
    assert registry_get(registry, "/v2/acme/magic/manifests/v1")[0] == 404
    with pytest.raises(UsageError, match=f"model {ref}:v1 not found"):
        ip.run_line_magic("kit", f"remove --remote {ref}:v1 --plain-http")


def test_magics_refusals_are_one_line(ip, registry, home, tmp_path):
    """Through ``%kit``: the tag rule of ``--push`` (nothing written), a tag the registry
    cannot untag (kit's ``Untagging`` line first, then kit's error), a registry with deletes
    off (405), each one ``UsageError`` line; the result of a removal repeats no message in its
    HTML (the reporter showed it while it ran)."""
    ctx = context(tmp_path)
    ip.user_ns["ctx_dir"] = str(ctx)
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", "pack $ctx_dir -t acme/local:v1 --push")
    assert str(info.value) == ("Invalid arguments: --push requires a --tag that names a "
                               "registry (e.g. registry.example.com/org/model:v1)")
    assert not (home / "storage" / "blobs").exists()
    ref = f"{registry.host}/acme/magic-untag"
    ip.run_line_magic("kit", f"pack $ctx_dir -t {ref}:v1 --push --plain-http")
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("kit", f"remove --remote {ref}:v1 --plain-http")
    assert str(info.value).startswith("failed to untag ModelKit in remote: ")
    assert "\n" not in str(info.value)
    server = start_registry(tmp_path / "nodelete", delete=False)
    try:
        kept = f"{server.host}/acme/kept"
        got = ip.run_line_magic("kit", f"pack $ctx_dir -t {kept}:v1 --push --plain-http")
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("kit", f"remove --remote {kept}@{got.digest} --plain-http")
        assert str(info.value) == f"removing models is unsupported by registry {server.host}"
    finally:
        server.stop()
    packed = ip.run_line_magic("kit", f"pack $ctx_dir -t {ref}:v2 --push --plain-http")
    with pytest.raises(UsageError, match="^Invalid arguments: cannot use --all or --force "
                                         "with --remote$"):
        ip.run_line_magic("kit", f"remove --remote -f {ref}:v2 --plain-http")
    removed = ip.run_line_magic("kit", f"remove --remote {ref}@{packed.digest} --plain-http")
    line = f"Deleting remote ModelKit {ref}@{packed.digest}"
    assert removed.messages == [("info", line)] and removed.text() == ""
    assert line not in removed._repr_html_() and removed.summary() == line
