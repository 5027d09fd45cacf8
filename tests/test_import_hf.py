"""``import`` from the Hugging Face Hub through ``huggingface_hub``, against a real
Hub-compatible server on 127.0.0.1 (olah, tests/plugins/hf_hub.py): ``HF_ENDPOINT`` points the
library at it, exactly as users point it at a mirror. Checked: the ModelKit holds the files'
bytes, only what the Kitfile packs is downloaded, the ref is pinned, a progress task per file,
checksums are verified, kit's texts, and nothing left in ``$KITOPS_HOME/cache/import``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.commands.importer import import_repository
from kit_jupyter.commands.local import info
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.model import load_kitfile
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport.hf import parse_repository
from tests.test_manifest_verify import _Proxy

WEIGHTS = os.urandom(1_500_000)
FILES = {
    "model.safetensors": WEIGHTS,
    "config.json": b'{"hidden": 8}\n',
    "tokenizer.json": b'{"vocab": {}}\n',
    "README.md": b"# Tiny\n",
    "extra/notes.bin": b"not in the Kitfile",
}


@pytest.fixture(scope="module")
def tiny(hf_hub):
    path = hf_hub.make_repo("acme/tiny", FILES, tags=["v1"])
    hf_hub.commit(path, {"model.safetensors": b"main moved on" * 100})
    return "acme/tiny"


def run(*args: str, home: Path, endpoint: str, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    env = {**os.environ, "KITOPS_HOME": str(home), "HF_ENDPOINT": endpoint,
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0"}
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args, "--progress", "text"],
                          capture_output=True, text=True, timeout=300, env=env, input=stdin)


def out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def unpacked(home: Path, ref: str, dest: Path) -> dict[str, bytes]:
    unpack(ref, dir=dest, home=home)
    return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_import_through_the_cli(tiny, hf_hub, tmp_path):
    home = tmp_path / "home"
    proc = run("import", "acme/tiny", "--ref", "v1", "-t", "acme/tiny:v1", home=home,
               endpoint=hf_hub.endpoint)
    assert proc.returncode == 0, out(proc)
    text = out(proc)
    assert "Generated Kitfile:" in text
    assert "Downloading file model.safetensors" in text
    assert "Packing model to acme/tiny:v1" in text and "Model is packed as acme/tiny:v1" in text
    files = unpacked(home, "acme/tiny:v1", tmp_path / "out")
    assert files["model.safetensors"] == WEIGHTS  # v1's bytes: the ref was honoured
    assert files["config.json"] == FILES["config.json"]
    assert list((home / "cache" / "import").iterdir()) == []
    kf = load_kitfile(info("acme/tiny:v1", home=home).yaml)
    assert kf.package.name == "tiny" and kf.package.authors == ["acme"]
    assert kf.model is not None and kf.model.path == "model.safetensors"


def test_default_tag_and_url_form(tiny, hf_hub, tmp_path):
    home = tmp_path / "home"
    proc = run("import", f"{hf_hub.endpoint}/acme/tiny", "--tool", "hf", home=home,
               endpoint=hf_hub.endpoint)
    assert proc.returncode == 0, out(proc)
    assert "Using tag acme/tiny:latest. Use flag --tag to override" in out(proc)
    files = unpacked(home, "acme/tiny:latest", tmp_path / "out")
    assert files["model.safetensors"] == b"main moved on" * 100


def test_only_what_the_kitfile_packs_is_downloaded(tiny, hf_hub, tmp_path):
    home = tmp_path / "home"
    rep = NullReporter()
    kitfile = tmp_path / "Kitfile"
    kitfile.write_text("manifestVersion: 1.0.0\npackage:\n  name: t\n"
                       "model:\n  path: model.safetensors\n  parts:\n    - path: config.json\n")
    result = import_repository("acme/tiny", ref="v1", tag="mine/t:v1", file=str(kitfile),
                               home=home, reporter=rep, concurrency=1,
                               env={"HF_ENDPOINT": hf_hub.endpoint})
    assert sorted(p for p, _ in result.files) == ["config.json", "model.safetensors"]
    assert not result.generated and result.tool == "hf"
    assert len(result.commit) == 40
    # a progress task per file, complete, with the file's size
    tasks = {t.label: t for t in rep.tasks if t.label in ("model.safetensors", "config.json")}
    assert tasks["model.safetensors"].total == len(WEIGHTS)
    assert tasks["model.safetensors"].done == len(WEIGHTS) and tasks["model.safetensors"].ok
    files = unpacked(home, "mine/t:v1", tmp_path / "out")
    assert set(files) == {"Kitfile", "model.safetensors", "config.json"}


def test_dataset_repository(hf_hub, tmp_path):
    hf_hub.make_repo("acme/data", {"train.csv": b"x,y\n1,2\n", "README.md": b"# data\n"},
                     kind="datasets")
    home = tmp_path / "home"
    proc = run("import", "datasets/acme/data", "-t", "acme/data:v1", home=home,
               endpoint=hf_hub.endpoint)
    assert proc.returncode == 0, out(proc)
    kf = load_kitfile(info("acme/data:v1", home=home).yaml)
    assert [d.path for d in kf.datasets] == ["train.csv"]
    assert unpacked(home, "acme/data:v1", tmp_path / "out")["train.csv"] == b"x,y\n1,2\n"


def test_missing_repository_and_ref(tiny, hf_hub, tmp_path):
    home = tmp_path / "home"
    proc = run("import", "acme/nope", "-t", "a/b:v1", home=home, endpoint=hf_hub.endpoint)
    assert proc.returncode == 1
    assert "failed to pin commit for acme/nope@main:" in out(proc).lower()
    proc = run("import", "acme/tiny", "--ref", "nope", "-t", "a/b:v1", home=home,
               endpoint=hf_hub.endpoint)
    assert proc.returncode == 1
    assert "failed to pin commit for acme/tiny@nope:" in out(proc).lower()
    assert out(proc).count("\n") <= 3  # one line, no traceback
    assert list((home / "cache" / "import").iterdir()) == []


def test_corrupt_file_on_the_server_is_refused(hf_hub, tmp_path):
    """The server sends bytes that do not hash to the LFS oid of the tree listing."""
    path = hf_hub.make_repo("acme/corrupt", {"w.safetensors": b"A" * 5000})
    (obj,) = [p for p in (path / ".git" / "lfs" / "objects").rglob("*") if p.is_file()]
    obj.write_bytes(b"B" * 5000)
    home = tmp_path / "home"
    proc = run("import", "acme/corrupt", "-t", "a/c:v1", home=home, endpoint=hf_hub.endpoint)
    assert proc.returncode == 1
    assert "error downloading repository: w.safetensors does not match its sha256" \
        in out(proc).lower()
    assert list((home / "cache" / "import").iterdir()) == []


@pytest.mark.parametrize("hostile", ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt"])
def test_a_listing_naming_a_path_outside_the_repository_is_refused(tiny, hf_hub, tmp_path,
                                                                   hostile):
    """A Hub (here the real one's stand-in behind a proxy that rewrites its tree listing) that
    names a file outside the repository: the import stops at the listing with one line, before
    anything is downloaded, whatever the installed huggingface_hub would do with the name."""
    def rename(path: str, body: bytes) -> tuple[bytes, dict[str, str]]:
        if "/tree/" not in path:
            return body, {}
        entries = json.loads(body)
        for entry in entries:
            if entry.get("path") == "config.json":
                entry["path"] = hostile
        return json.dumps(entries).encode(), {}

    proxy = _Proxy(hf_hub.endpoint.removeprefix("http://"), rewrite=rename)
    try:
        home = tmp_path / "home"
        proc = run("import", "acme/tiny", "-t", "a/t:v1", home=home, endpoint=f"http://{proxy.host}")
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert proc.returncode == 1, out(proc)
    assert proc.stderr.endswith(
        f"[ERROR] Failed to list files from HuggingFace API: the listing names {hostile!r}, not "
        "a path inside the repository\n"), out(proc)
    assert "Downloading file" not in out(proc) and "Traceback" not in out(proc)
    assert not (tmp_path / "escape.txt").exists()
    assert list((home / "cache" / "import").iterdir()) == []


def test_token_is_never_shown(tiny, hf_hub, tmp_path):
    home = tmp_path / "home"
    token = "hf_NeverShowThisToken42"
    proc = run("import", "acme/tiny", "--ref", "v1", "-t", "a/t:v1", "--token", token,
               home=home, endpoint=hf_hub.endpoint)
    assert token not in out(proc)


def test_magic(ip, tiny, hf_hub, kitops_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", hf_hub.endpoint)
    result = ip.run_line_magic("kit", "import acme/tiny --ref v1 -t nb/tiny:v1 --progress none")
    assert result.tool == "hf" and result.tag == "nb/tiny:v1"
    assert dict(result.files)["model.safetensors"] == len(WEIGHTS)
    assert "model.safetensors" in result._repr_html_()


@pytest.mark.parametrize("text,expected", [
    ("org/repo", ("org/repo", "model")),
    ("datasets/org/data", ("org/data", "dataset")),
    ("https://huggingface.co/org/repo", ("org/repo", "model")),
    ("https://huggingface.co/org/repo/", ("org/repo", "model")),
    ("https://huggingface.co/datasets/org/data", ("org/data", "dataset")),
    ("huggingface.co/org/repo", ("org/repo", "model")),
])
def test_parse_repository(text, expected):
    assert parse_repository(text, env={}) == expected


@pytest.mark.parametrize("text,message", [
    ("https://example.com/org/repo", "unsupported hostname: example.com"),
    ("https://huggingface.co/datasets/org", "invalid dataset URL"),
    ("https://huggingface.co/a/b/c", "unrecognized HuggingFace URL pattern"),
    ("too/many/parts", "invalid repository format"),
    ("datasets/x", "invalid dataset repository format"),
])
def test_parse_repository_errors(text, message):
    with pytest.raises(KitError, match=message):
        parse_repository(text, env={})


_REPO_PIECES = st.sampled_from([
    "https://", "http://", "huggingface.co", "hf.co", "sub.huggingface.co", "example.com",
    "datasets/", "datasets", "/", "//", "org", "name", "a.b", "-", ":", ":80", ":x", "@", "?q=1",
    "#f", "%", "%zz", "%2F", "[", "]", "[::1]", " ", "\n", "\r", "\t", "\u2028", "\x00", "é",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_REPO_PIECES | st.text(max_size=3), max_size=10).map("".join))
def test_any_repository_text_parses_or_is_one_line(text: str) -> None:
    """Whatever is typed (or pasted: line breaks too): an ``org/name`` of a model or dataset,
    or a KitError of one line -- never a URL parser's exception."""
    try:
        repo, kind = parse_repository(text, env={})
    except KitError as err:
        assert "\n" not in str(err) and len(str(err).splitlines()) == 1
        return
    assert kind in ("model", "dataset")
    org, _, name = repo.partition("/")
    assert org and name and "/" not in name


_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(_NAME, _NAME, st.sampled_from([
    ("{}/{}", "model"), ("https://huggingface.co/{}/{}", "model"),
    ("https://huggingface.co/{}/{}/", "model"), ("huggingface.co/{}/{}", "model"),
    ("http://huggingface.co/{}/{}", "model"), ("datasets/{}/{}", "dataset"),
    ("datasets/{}/{}/", "dataset"), ("https://huggingface.co/datasets/{}/{}", "dataset"),
    ("https://huggingface.co/datasets/{}/{}/tree/main", "dataset"),
]))
def test_every_form_names_the_same_repository(org: str, name: str,
                                              form: tuple[str, str]) -> None:
    """``org/name``, ``datasets/org/name`` and the Hub's URLs of them all name ``org/name``."""
    template, kind = form
    assert parse_repository(template.format(org, name), env={}) == (f"{org}/{name}", kind)
