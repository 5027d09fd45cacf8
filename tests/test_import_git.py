"""``import`` from git: real ``git`` and ``git-lfs`` against a real git server with a real LFS
server on 127.0.0.1 (tests/plugins/git_server.py), through ``python -m kit_jupyter`` and
``%kit``. What is checked is what a user gets: the ModelKit's layers hold the LFS files' real
bytes (not pointers), the Kitfile is the one ``init`` generates, kit's texts, no token in any
output, and nothing left in ``$KITOPS_HOME/cache/import``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit_jupyter.commands.importer import extract_repo_from_url, files_to_download
from kit_jupyter.commands.init import init
from kit_jupyter.commands.local import info, inspect
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.kitfile.model import load_kitfile
from kit_jupyter.reporting import NullReporter
from kit_jupyter.transport.git import git_environment, sanitize_url
from kit_jupyter.transport.hf import HubFile
from tests.plugins.git_server import TOKEN

WEIGHTS = os.urandom(2_500_000)
FILES = {
    "model.safetensors": WEIGHTS,
    "adapter.safetensors": os.urandom(40_000),
    "config.json": b'{"hidden": 8}\n',
    "README.md": b"# Tiny model\n",
    "data/train.csv": b"x,y\n1,2\n",
    ".gitignore": b"*.tmp\n",
}


def run(*args: str, home: Path, env_extra: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KITOPS_HOME": str(home), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args, "--progress", "text"],
                          capture_output=True, text=True, timeout=300, env=env, input=stdin)


@pytest.fixture(scope="module")
def tiny(git_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    url = git_server.make_repo("acme/tiny", FILES, work=work, tags=["v1"])
    git_server.push_commit("acme/tiny", work, {"model.safetensors": b"changed after v1" * 10})
    return url


def packed_kitfile(ref: str, home: Path):
    return load_kitfile(info(ref, home=home).yaml)


def out(proc: subprocess.CompletedProcess) -> str:
    """Everything the command printed, lower-cased (``[ERROR]`` capitalises kit's line)."""
    return (proc.stdout + proc.stderr).lower()


def _layer_bytes(home: Path, ref: str, dest: Path) -> dict[str, bytes]:
    unpack(ref, dir=dest, home=home)
    return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_import_tag_through_the_cli(tiny, tmp_path):
    home = tmp_path / "home"
    proc = run("import", tiny, "--tool", "git", "--ref", "v1", "-t", "local/tiny:v1",
               home=home)
    assert proc.returncode == 0, proc.stderr
    err = proc.stdout + proc.stderr
    assert f"Cloning repository {tiny}" in err
    assert "Pulling large files" in err
    assert "Generated Kitfile:" in err
    assert "Packing model to local/tiny:v1" in err
    assert "Model is packed as local/tiny:v1" in err
    # per-file progress from git-lfs: one row per LFS file, with its size
    assert "model.safetensors" in err and "adapter.safetensors" in err

    files = _layer_bytes(home, "local/tiny:v1", tmp_path / "out")
    assert files["model.safetensors"] == WEIGHTS  # the v1 bytes, not the pointer, not main's
    assert files["data/train.csv"] == FILES["data/train.csv"]
    assert ".gitignore" not in files and ".gitattributes" not in files
    assert not any(name.startswith(".git/") for name in files)
    # nothing left behind in kit's cache
    assert list((home / "cache" / "import").iterdir()) == []


def test_generated_kitfile_is_inits(tiny, tmp_path):
    """The Kitfile packed is the one ``init`` writes for the same files (one generator), with
    the package filled from the repository like kit."""
    home = tmp_path / "home"
    proc = run("import", tiny, "--tool", "git", "--ref", "v1", "-t", "local/tiny:v1",
               home=home)
    assert proc.returncode == 0, proc.stderr
    packed = packed_kitfile("local/tiny:v1", home)

    same = tmp_path / "same"  # the v1 files, without git's own
    for rel, data in FILES.items():
        if rel != ".gitignore":
            (same / rel).parent.mkdir(parents=True, exist_ok=True)
            (same / rel).write_bytes(data)
    expected = init(same, name="tiny.git", author="acme", write=False).kitfile
    assert packed.package.name == "tiny.git" and packed.package.authors == ["acme"]
    assert packed.model is not None and packed.model.path == "model.safetensors"
    assert [p.path for p in packed.model.parts] == [p.path for p in expected.model.parts]
    assert load_kitfile(packed.to_yaml()).to_yaml() == expected.to_yaml()


def test_default_ref_takes_the_default_branch_and_default_tag(tiny, tmp_path):
    home = tmp_path / "home"
    proc = run("import", tiny, "--tool", "git", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Using tag acme/tiny.git:latest. Use flag --tag to override" in proc.stdout + proc.stderr
    files = _layer_bytes(home, "acme/tiny.git:latest", tmp_path / "out")
    assert files["model.safetensors"] == b"changed after v1" * 10


def test_tag_without_version_gets_latest(tiny, tmp_path):
    home = tmp_path / "home"
    proc = run("import", tiny, "--tool", "git", "-t", "mine/tiny", home=home)
    assert proc.returncode == 0, proc.stderr
    assert ("No tag or digest provided with --tag flag. Using 'latest' as default "
            "('mine/tiny:latest')") in proc.stdout + proc.stderr
    assert inspect("mine/tiny:latest", home=home).digest


def test_kitfile_flag_and_stdin(tiny, tmp_path):
    home = tmp_path / "home"
    kitfile = tmp_path / "Kitfile"
    kitfile.write_text("manifestVersion: 1.0.0\npackage:\n  name: mine\n"
                       "model:\n  path: model.safetensors\ndatasets:\n  - path: data\n")
    proc = run("import", tiny, "--tool", "git", "--ref", "v1", "-t", "mine/a:v1", "-f",
               str(kitfile), home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Generated Kitfile" not in proc.stdout + proc.stderr
    kf = packed_kitfile("mine/a:v1", home)
    assert kf.package.name == "mine" and kf.code == [] and kf.docs == []
    files = _layer_bytes(home, "mine/a:v1", tmp_path / "out")
    assert set(files) == {"Kitfile", "model.safetensors", "data/train.csv"}

    proc = run("import", tiny, "--tool", "git", "--ref", "v1", "-t", "mine/b:v1", "-f", "-",
               home=home, stdin=kitfile.read_text())
    assert proc.returncode == 0, proc.stderr
    assert packed_kitfile("mine/b:v1", home).package.name == "mine"


def test_invalid_kitfile_stops_before_cloning(tiny, tmp_path):
    home = tmp_path / "home"
    bad = tmp_path / "Kitfile"
    bad.write_text("manifestVersion: 1.0.0\nmodel:\n  path: /abs/model.bin\n")
    proc = run("import", tiny, "--tool", "git", "-t", "x/y:v1", "-f", str(bad), home=home)
    assert proc.returncode == 1
    assert f"kitfile ({bad}) is invalid:".lower() in out(proc)
    assert "Cloning repository" not in proc.stdout + proc.stderr


def test_repository_kitfile_is_used(git_server, tmp_path):
    url = git_server.make_repo("acme/withkitfile", {
        "w.safetensors": b"w" * 1000, "notes.txt": b"n\n",
        "Kitfile": b"manifestVersion: 1.0.0\npackage:\n  name: own\nmodel:\n"
                   b"  path: w.safetensors\n"}, work=tmp_path / "work")
    home = tmp_path / "home"
    proc = run("import", url, "--tool", "git", "-t", "own/k:v1", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "Generated Kitfile" not in proc.stdout + proc.stderr
    assert packed_kitfile("own/k:v1", home).package.name == "own"


def test_token_reaches_a_private_repository_and_never_shows(git_server, tmp_path):
    url = git_server.make_repo("private/secret", {"m.safetensors": b"s" * 5000},
                               work=tmp_path / "work")
    home = tmp_path / "home"
    proc = run("import", url, "--tool", "git", "-t", "p/s:v1", home=home)
    assert proc.returncode == 1
    assert "error cloning repository: exit status 128" in out(proc)
    assert proc.stderr.count("\n") <= 4  # one error line, no traceback

    proc = run("import", url, "--tool", "git", "-t", "p/s:v1", "--token", TOKEN, home=home)
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    files = _layer_bytes(home, "p/s:v1", tmp_path / "out")
    assert files["m.safetensors"] == b"s" * 5000

    # a token written into the URL is not shown either
    with_userinfo = url.replace("http://", f"http://token:{TOKEN}@")
    proc = run("import", with_userinfo, "--tool", "git", "-t", "p/s:v2", home=home)
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert f"Cloning repository {url}" in proc.stdout + proc.stderr


def test_kit_messages_for_bad_options(tiny, tmp_path):
    home = tmp_path / "home"
    proc = run("import", "file:///srv/git/model.git", "--tool", "git", home=home)
    assert proc.returncode == 1
    assert ("Could not generate tag from URL: could not extract organization and repository "
            "from 'srv/git/model.git'") in proc.stdout + proc.stderr
    assert "use flag --tag to set a tag for modelkit" in out(proc)
    proc = run("import", tiny, "--tool", "svn", "-t", "a/b:v1", home=home)
    assert proc.returncode == 1
    assert "invalid value for --tool flag. valid options are: git, hf" in out(proc)
    proc = run("import", tiny, "--concurrency", "0", "-t", "a/b:v1", home=home)
    assert "invalid argument for concurrency (0): must be at least 1" in out(proc)
    proc = run("import", tiny, "-t", "A/B:v1", home=home)
    assert "invalid argument: tag 'a/b:v1' is invalid:" in out(proc)
    proc = run("import", tiny, "--tool", "git", "--ref", "nope", "-t", "a/b:v1", home=home)
    assert proc.returncode == 1
    assert "error cloning repository: exit status 128" in out(proc)
    assert list((home / "cache" / "import").iterdir()) == []


def test_file_url_of_a_local_bare_repository(git_server, tmp_path):
    """``file://`` is a transport git supports; kit would send it to huggingface.co."""
    url = git_server.make_repo("acme/local", {"m.safetensors": b"L" * 3000},
                               work=tmp_path / "work")
    bare = git_server.root / "acme" / "local.git"
    home = tmp_path / "home"
    # LFS objects live on the LFS server the repository's URL points at; file:// has none, so
    # point git-lfs at the server the way a .lfsconfig in the repository would
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "lfs.url",
           "GIT_CONFIG_VALUE_0": url + "/info/lfs"}
    proc = run("import", f"file://{bare}", "--tool", "git", "-t", "local/model:v1", home=home,
               env_extra=env)
    assert proc.returncode == 0, proc.stderr
    files = _layer_bytes(home, "local/model:v1", tmp_path / "out")
    assert files["m.safetensors"] == b"L" * 3000


def test_magic(ip, tiny, kitops_home, tmp_path):
    result = ip.run_line_magic("kit", f"import {tiny} --tool git --ref v1 -t nb/tiny:v1 "
                                      "--progress none")
    assert result.tag == "nb/tiny:v1" and result.tool == "git"
    assert result.digest == inspect("nb/tiny:v1").digest
    assert dict(result.files)["model.safetensors"] == len(WEIGHTS)
    assert "nb/tiny:v1" in result._repr_html_()
    assert result.data["commit"] and len(result.data["commit"]) == 40
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="invalid value for --tool flag"):
        ip.run_line_magic("kit", f"import {tiny} --tool svn -t a/b:v1")


def test_killed_import_is_swept_by_the_next(tiny, tmp_path):
    """A working directory whose owner died (SIGKILL) is removed by the next import."""
    home = tmp_path / "home"
    stale = home / "cache" / "import" / "kj-999999-1-abcdef012345"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    proc = run("import", tiny, "--tool", "git", "--ref", "v1", "-t", "s/t:v1", home=home)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()


# -- pure pieces -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("organization/repository", "organization/repository"),
    ("https://example.com/org/repo", "org/repo"),
    ("https://huggingface.co/org/repo", "org/repo"),
    ("organization/repository.with-dots.and_CAPS", "organization/repository.with-dots.and_CAPS"),
    ("https://huggingface.co/org/trailing-slash/", "org/trailing-slash"),
    ("https://github.com/org/repo.git", "org/repo.git"),
])
def test_extract_repo_from_url_like_kit(raw, expected):
    """kit's own table (pkg/cmd/kitimport/util_test.go)."""
    assert extract_repo_from_url(raw) == expected


@pytest.mark.parametrize("raw,pattern", [
    (":///invalidURL", "failed to parse url"),
    ("too/many/path/segments", "could not extract organization and repository from"),
    ("https://github.com/kitops-ml/github.com/kitops-ml/kitops/tree/main",
     "could not extract organization and repository from"),
])
def test_extract_repo_from_url_errors_like_kit(raw, pattern):
    with pytest.raises(Exception, match=pattern):
        extract_repo_from_url(raw)


def test_sanitize_url_and_token_environment():
    assert sanitize_url("https://user:tok@host/x.git") == "https://host/x.git"
    assert sanitize_url("file:///srv/a.git") == "file:///srv/a.git"
    env = git_environment("tok123", {"PATH": "/usr/bin"})
    assert env["KIT_IMPORT_TOKEN"] == "tok123"
    # the token is never on a command line or in a config value, only in the environment
    assert not any("tok123" in v for k, v in env.items() if k != "KIT_IMPORT_TOKEN")
    assert "GIT_ASKPASS" not in env
    assert git_environment(None, {"PATH": "/usr/bin"})["GIT_ASKPASS"] == "true"


def test_files_to_download_follow_the_kitfile():
    kf = load_kitfile("manifestVersion: 1.0.0\nmodel:\n  path: model.safetensors\n"
                      "datasets:\n  - path: data\ndocs:\n  - path: README.md\n")
    files = [HubFile(p, 1, None, None) for p in
             ("model.safetensors", "data/a.csv", "database.csv", "README.md", "other.bin",
              "Kitfile")]
    assert [f.path for f in files_to_download(files, kf)] == [
        "model.safetensors", "data/a.csv", "README.md"]
    catch_all = load_kitfile("manifestVersion: 1.0.0\ncode:\n  - path: .\n")
    assert [f.path for f in files_to_download(files, catch_all)] == [
        "model.safetensors", "data/a.csv", "database.csv", "README.md", "other.bin"]


def test_reporter_gets_a_task_per_lfs_file(tiny, tmp_path):
    from kit_jupyter.commands.importer import import_repository

    rep = NullReporter()
    result = import_repository(tiny, tool="git", ref="v1", tag="r/t:v1", home=tmp_path / "h",
                               reporter=rep)
    tasks = {t.label: t for t in rep.tasks}
    assert tasks["model.safetensors"].total == len(WEIGHTS)
    assert tasks["model.safetensors"].done == len(WEIGHTS) and tasks["model.safetensors"].ok
    assert tasks["adapter.safetensors"].total == 40_000
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    assert json.dumps(result.data)  # plain data
    assert digest  # the layer content was compared above through unpack
