"""``init``: kit's kitfile-generation fixtures, kit's messages, and the notebook flow (a new
``%%kitfile`` cell via ``set_next_input``, checked in the in-process shell and in a real kernel)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from IPython.core.error import UsageError

from kit_jupyter.__main__ import main
from kit_jupyter.commands.init import init, listing_from_fs
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.errors import KitError
from kit_jupyter.kitfile.generate import (
    DirectoryListing,
    FileListing,
    detect_license,
    file_type,
    generate_kitfile,
    parse_skill_front_matter,
)
from kit_jupyter.kitfile.model import Package, load_kitfile
from kit_jupyter.kitfile.rules import validate

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "data" / "kit" / "kitfile-generation"
CASES = sorted(FIXTURES.glob("*.yaml"))


def setup_files(root: Path, files: list[str]) -> None:
    """kit's ``setupFiles``: each file holds ``testing: <path>`` (so sizes follow the names)."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"testing: {name}")


def as_config(kitfile_yaml: str) -> dict:
    """Both sides through our loader and kit's config JSON: what kit's struct comparison sees."""
    return json.loads(load_kitfile(kitfile_yaml).to_config_json())


def test_all_kit_fixtures_are_present():
    assert len(CASES) == 9  # if kit adds cases, copy them here with their commit in the README


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_kit_fixture(case, tmp_path, capsys):
    tt = yaml.safe_load(case.read_text())
    target = tmp_path / "testdata"
    target.mkdir()
    setup_files(target, tt["files"])
    # exactly kit's test invocation, through the terminal entry point
    rc = main(["init", str(target), "--name", tt["modelName"], "--desc", tt["description"],
               "--force"])
    out = capsys.readouterr().out
    assert rc == 0
    written = (target / "Kitfile").read_text()
    expected = yaml.safe_dump(tt["expectedKitfile"], sort_keys=False)
    assert as_config(written) == as_config(expected)
    # kit's own YAML form, byte for byte, and kit's two messages around it
    assert written == load_kitfile(expected).to_yaml()
    assert out == f"Generated Kitfile:\n\n{written}Saved to path '{target}/Kitfile'\n"
    # what init writes is a Kitfile kit accepts
    assert [f for f in validate(load_kitfile(written)) if f.severity == "error"] == []


def test_fixture_through_python_m(tmp_path):
    """One fixture end to end in a separate process, as a terminal user runs it."""
    tt = yaml.safe_load((FIXTURES / "test_directory-handling.yaml").read_text())
    setup_files(tmp_path, tt["files"])
    proc = subprocess.run(
        [sys.executable, "-m", "kit_jupyter", "init", ".", "--name", tt["modelName"],
         "--desc", tt["description"], "--author", "Zoë"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("Saved to path 'Kitfile'\n")
    got = as_config((tmp_path / "Kitfile").read_text())
    want = yaml.safe_load(yaml.safe_dump(tt["expectedKitfile"]))
    want["package"]["authors"] = ["Zoë"]
    assert got == as_config(yaml.safe_dump(want))
    # a second run refuses to overwrite, with kit's message and exit status
    again = subprocess.run([sys.executable, "-m", "kit_jupyter", "init", "."], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert again.returncode == 1
    assert again.stderr == ("[ERROR] Kitfile already exists at Kitfile. "
                            "Use '--force' to overwrite\n")


# -- messages and flags -------------------------------------------------------------------------

def test_missing_directory_message(tmp_path, capsys):
    assert main(["init", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert err == (f"[ERROR] Error processing directory: failed to read directory "
                   f"{tmp_path}/nope: open {tmp_path}/nope: no such file or directory\n")


def test_existing_kitfile_is_kept_without_force(tmp_path):
    (tmp_path / "model.gguf").write_text("x")
    (tmp_path / "Kitfile").write_text("mine\n")
    with pytest.raises(KitError, match=r"^Kitfile already exists at .*/Kitfile\. "
                                       r"Use '--force' to overwrite$"):
        init(tmp_path)
    assert (tmp_path / "Kitfile").read_text() == "mine\n"
    res = init(tmp_path, force=True)
    assert res.written and "path: model.gguf" in (tmp_path / "Kitfile").read_text()


def test_a_file_name_that_is_not_utf8_is_written_as_kit_writes_it_and_packs(
        tmp_path, kitops_home):
    """A file whose name is not valid UTF-8: init writes its path as yaml.v3 would,
    ``!!binary``; the Kitfile reads back to the same bytes, packs, and unpacks the file under
    its own name. (Before, the path was written as ``"bad\\uDCFF.txt"``, an escape our own
    reader -- and yaml.v3 -- refuse.)"""
    name = b"bad\xff.bin"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "model.safetensors").write_bytes(b"w")
    with open(os.path.join(os.fsencode(proj), name), "wb") as f:
        f.write(b"\x00\x01")
    init(proj)
    text = (proj / "Kitfile").read_text()
    assert text.endswith("code:\n  - path: !!binary YmFk/y5iaW4=\n")
    assert [os.fsencode(c.path) for c in load_kitfile(text).code] == [name]
    pack(proj, tag="bin/name:v1")
    out = tmp_path / "out"
    unpack("bin/name:v1", dir=out)
    assert open(os.path.join(os.fsencode(out), name), "rb").read() == b"\x00\x01"


def test_output_flag_and_stdout(tmp_path, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "data.csv").write_text("a,b\n")
    other = tmp_path / "elsewhere.yaml"
    assert main(["init", str(proj), "-o", str(other)]) == 0
    assert other.read_text() == "manifestVersion: 1.0.0\ndatasets:\n  - path: data.csv\n"
    assert not (proj / "Kitfile").exists()
    capsys.readouterr()
    # "y" would read back as a boolean in YAML 1.1: kit's writer quotes it, and so do we
    assert main(["init", str(proj), "-o", "-", "--name", "y"]) == 0
    assert capsys.readouterr().out == ('manifestVersion: 1.0.0\npackage:\n  name: "y"\n'
                                       "datasets:\n  - path: data.csv\n")
    assert not (proj / "Kitfile").exists()


def test_interactive_terminal_prompts_like_kit(tmp_path):
    """kit asks for name, description and author when stdin and stdout are a terminal."""
    (tmp_path / "m.onnx").write_text("x")
    pid, fd = pty.fork()
    if pid == 0:  # child: python -m kit_jupyter init . on a terminal
        os.chdir(tmp_path)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "kit_jupyter", "init", "."])
    transcript = b""
    answers = [b"churn\n", b"Churn model\n", b"Ada\n"]
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        transcript += chunk
        if answers and transcript.rstrip().endswith(b":"):
            os.write(fd, answers.pop(0))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, transcript
    for prompt in (b"Enter a name for the ModelKit: ", b"Enter a short description for the "
                   b"ModelKit: ", b"Enter an author for the ModelKit: "):
        assert prompt in transcript
    assert as_config((tmp_path / "Kitfile").read_text())["package"] == {
        "name": "churn", "description": "Churn model", "authors": ["Ada"]}


# -- generation rules beyond the fixtures --------------------------------------------------------

def _listing(files: dict[str, int]) -> DirectoryListing:
    root = DirectoryListing(name=".", path=".")
    for path, size in sorted(files.items()):
        d = root
        parts = path.split("/")
        for i, part in enumerate(parts[:-1]):
            sub = next((s for s in d.subdirs if s.name == part), None)
            if sub is None:
                sub = DirectoryListing(name=part, path="/".join(parts[: i + 1]))
                d.subdirs.append(sub)
            d = sub
        d.files.append(FileListing(name=parts[-1], path=path, size=size))
    return root


def test_file_types():
    assert file_type("system.prompt") == "prompt"
    assert file_type("chain.prompt.md") == "prompt"
    assert file_type("docs/AGENTS.md") == "prompt"
    assert file_type("prompt.txt") == "metadata"
    assert file_type("my_prompt.md") == "docs"
    assert file_type("prompter.py") == "unknown"
    assert file_type("pytorch_model-00001-of-00002.bin") == "model"
    assert file_type("sub/pytorch_model.bin") == "unknown"  # Go's * never crosses a /
    assert file_type("weights.bin") == "unknown"
    assert file_type("server.mcpb") == "mcpServer"


def test_few_unknown_files_are_listed_and_licence_goes_to_the_model():
    files = {"run.sh": 10, "train.py": 10, "model.safetensors": 100, "LICENSE": 1}
    kf = generate_kitfile(_listing(files), read_text={"LICENSE": APACHE_NOTICE}.get)
    assert [c.path for c in kf.code] == ["run.sh", "train.py"]
    assert kf.model is not None and kf.model.name == "model"
    assert kf.model.license == "Apache-2.0"
    assert [(d.path, d.description) for d in kf.docs] == [("LICENSE", "License file")]


def test_unrecognised_licence_warns_like_kit():
    warnings: list[str] = []
    kf = generate_kitfile(_listing({"LICENSE": 5, "a.csv": 1}),
                          read_text={"LICENSE": "all rights reserved"}.get,
                          warn=warnings.append)
    assert warnings == ["Unable to determine license type"]
    assert kf.datasets[0].license == ""


def test_depth_examines_subdirectories_file_by_file():
    files = {"sub/a.gguf": 10, "sub/b.csv": 1, "sub/c.sh": 1, "sub/deeper/x.md": 1}
    flat = generate_kitfile(_listing(files))
    assert [c.path for c in flat.code] == ["sub/"] and flat.model is not None  # mixed dir
    deep = generate_kitfile(_listing(files), depth=-1)
    assert deep.model is not None and deep.model.path == "sub/a.gguf"
    assert [d.path for d in deep.datasets] == ["sub/b.csv"]
    assert [c.path for c in deep.code] == ["sub/c.sh"]
    assert [d.path for d in deep.docs] == ["sub/deeper/x.md"]


def test_skill_directories():
    skill = "---\nname: pdf-tools\ndescription: Fill PDF forms\nlicense: MIT\n---\n# body\n"
    read = {"skills/pdf/SKILL.md": skill, "SKILL.md": skill}.get
    kf = generate_kitfile(_listing({"skills/pdf/SKILL.md": 1, "skills/pdf/run.py": 1}),
                          read_text=read)
    # a skill directory one level down: no skill there at depth 0 (skills/ holds a directory)
    assert [c.path for c in kf.code] == ["skills/"]
    kf = generate_kitfile(_listing({"pdf/SKILL.md": 1, "pdf/run.py": 1}),
                          read_text={"pdf/SKILL.md": skill}.get)
    assert [(p.name, p.path, p.description) for p in kf.prompts] == [
        ("pdf-tools", "pdf", "Fill PDF forms")]
    assert kf.package is not None
    assert (kf.package.name, kf.package.description, kf.package.license) == (
        "pdf-tools", "Fill PDF forms", "MIT")
    root = generate_kitfile(_listing({"SKILL.md": 1, "x.gguf": 1}), Package(name="given"),
                            read_text=read)
    assert [p.path for p in root.prompts] == ["."] and root.model is None
    assert root.package is not None and root.package.name == "given"
    assert parse_skill_front_matter("---\nname: 1.10\n---\n").name == "1.10"  # type: ignore
    assert parse_skill_front_matter("no front matter") is None


def test_symlinks_and_junk_are_not_listed(tmp_path):
    (tmp_path / "real.csv").write_text("1")
    (tmp_path / ".DS_Store").write_text("junk")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    listing = listing_from_fs(tmp_path)
    assert [f.path for f in listing.files] == ["real.csv"]


APACHE_NOTICE = ('Licensed under the Apache License, Version 2.0 (the "License"); you may not '
                 'use this file except in compliance with the License.')


def test_detect_license():
    assert detect_license(APACHE_NOTICE) == "Apache-2.0"
    mit = ("MIT License\n\nCopyright (c) 2026 Acme\n\nPermission is hereby granted, free of "
           "charge, to any person obtaining a copy of this software ... The above copyright "
           "notice and this permission notice shall be included in all copies.")
    assert detect_license(mit) == "MIT"
    assert detect_license(APACHE_NOTICE + "\n" + mit) == ""  # two licences: no answer
    assert detect_license("testing: LICENSE") == ""
    # a mention is not a licence
    assert detect_license("Weights: Llama 3 licence. Some code is under the Apache License, "
                          "Version 2.0.") == ""


COMMON_LICENSES = Path("/usr/share/common-licenses")  # Debian's base-files: the canonical texts


@pytest.mark.parametrize("name,spdx", [
    ("Apache-2.0", "Apache-2.0"), ("BSD", "BSD-3-Clause"), ("CC0-1.0", "CC0-1.0"),
    ("GPL-2", "GPL-2.0"), ("GPL-3", "GPL-3.0"), ("LGPL-2.1", "LGPL-2.1"), ("LGPL-3", "LGPL-3.0"),
    ("MPL-2.0", "MPL-2.0"), ("Artistic", ""), ("GFDL-1.3", ""), ("MPL-1.1", "")])
def test_detect_license_on_full_texts(name, spdx):
    path = COMMON_LICENSES / name
    if not path.exists():
        pytest.skip(f"{path} not installed")
    assert detect_license(path.read_text()) == spdx


# -- notebook ---------------------------------------------------------------------------------

def test_magic_puts_kitfile_into_a_new_cell(ip, tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "model.gguf").write_text("weights")
    monkeypatch.chdir(tmp_path)
    cells: list[str] = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: cells.append(text))
    res = ip.run_line_magic("kit", "init proj --name churn")
    assert not (tmp_path / "proj" / "Kitfile").exists()  # nothing written yet
    assert cells == ["%%kitfile -o proj/Kitfile\nmanifestVersion: 1.0.0\npackage:\n"
                     "  name: churn\nmodel:\n  name: model\n  path: model.gguf"]
    assert "new cell below" in res._repr_html_()
    # running that cell validates it and writes exactly what kit init would have written
    first, body = cells[0].split("\n", 1)
    report = ip.run_cell_magic("kitfile", first.split(" ", 1)[1], body + "\n")
    assert report.valid
    assert (tmp_path / "proj" / "Kitfile").read_text() == res.yaml
    # -o writes directly, and an existing Kitfile is refused as in kit
    with pytest.raises(UsageError, match="Kitfile already exists at proj/Kitfile"):
        ip.run_line_magic("kit", "init proj -o")
    written = ip.run_line_magic("kit", "init proj -o -f")
    assert written.written and cells == cells[:1]
    assert "Saved to path &#x27;proj/Kitfile&#x27;" in written._repr_html_()


def test_real_kernel_sends_set_next_input_payload(tmp_path):
    """The new cell travels as the execute_reply's ``set_next_input`` payload."""
    jupyter_client = pytest.importorskip("jupyter_client")
    (tmp_path / "model.gguf").write_text("weights")
    (tmp_path / "README.md").write_text("# churn")
    km, kc = jupyter_client.manager.start_new_kernel(
        kernel_name="python3", cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        reply = kc.execute_interactive("%load_ext kit_jupyter\n%kit init . --name churn",
                                       timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        payloads = [p for p in reply["content"]["payload"] if p["source"] == "set_next_input"]
        assert len(payloads) == 1 and payloads[0]["replace"] is False
        text = payloads[0]["text"]
        assert text.startswith("%%kitfile -o Kitfile\nmanifestVersion: 1.0.0\n")
        assert "  - path: README.md\n    description: Readme file" in text
        assert not (tmp_path / "Kitfile").exists()
        # run the proposed cell in the same kernel: the file appears, equal to `kit init`'s
        reply = kc.execute_interactive(text, timeout=120, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    generated = (tmp_path / "Kitfile").read_text()
    assert generated == text.split("\n", 1)[1] + "\n"
    os.remove(tmp_path / "Kitfile")
    init(tmp_path, name="churn")
    assert (tmp_path / "Kitfile").read_text() == generated
