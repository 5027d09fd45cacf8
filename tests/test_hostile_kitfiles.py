"""Bad Kitfiles, as an attacker or an unlucky user makes them: one line, exit 1, bounded time and
memory, through the CLI, ``%%kitfile`` and (Hypothesis) the decoder itself.

The memory bound is real: every CLI run gets an address-space limit (``RLIMIT_AS``), so a decoder
that expanded an alias bomb would die with a MemoryError traceback instead of passing.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import KitfileError
from kit_jupyter.kitfile.model import MAX_KITFILE_BYTES, load_kitfile
from kit_jupyter.kitfile.rules import check_kitfile

ROOT = Path(__file__).resolve().parent.parent
HEAD = "manifestVersion: 1.0.0\npackage:\n  name: x\nmodel:\n  path: m\n  parameters:\n"
AS_LIMIT = 1536 * 2**20


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def kit(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], input=stdin,
                          capture_output=True, timeout=60, env=env, preexec_fn=_limit)


def laughs(kind: str) -> str:
    names = "abcdefghi"
    if kind == "seq":
        lines = ['    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"    {c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]"
                  for p, c in zip(names, names[1:], strict=False)]
    else:
        lines = ["    a: &a {" + ", ".join(f"x{j}: lol" for j in range(9)) + "}"]
        lines += [f"    {c}: &{c} {{" + ", ".join(f"k{j}: *{p}" for j in range(9)) + "}"
                  for p, c in zip(names, names[1:], strict=False)]
    return HEAD + "\n".join(lines) + "\n"


CASES = {
    "billion-laughs-sequences": (laughs("seq"), "document contains excessive aliasing"),
    "billion-laughs-mappings": (laughs("map"), "document contains excessive aliasing"),
    "large-anchor-aliased-500-times": (
        HEAD + f"    big: &big {'x' * 2**20}\n" + "".join(f"    r{i}: *big\n" for i in range(500)),
        "document contains excessive aliasing"),
    "binary-not-base64": ("manifestVersion: 1.0.0\npackage:\n  name: !!binary '%%%'\n",
                          "!!binary value contains invalid base64 data"),
    "int-of-5000-digits-as-int-tag": (HEAD + "    m: !!int " + "1" * 5000 + "\n",
                                      "cannot decode !!str"),
    "int-of-5000-digits-as-manifestVersion": ("manifestVersion: " + "9" * 5000 + "\nmodel: x\n",
                                              "cannot unmarshal !!str"),
}


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert needle in proc.stdout.decode() + err


@pytest.mark.parametrize("name", list(CASES))
def test_validate_refuses_with_one_line(tmp_path, name):
    text, needle = CASES[name]
    (tmp_path / "Kitfile").write_text(text)
    proc = kit("validate", str(tmp_path / "Kitfile"), "--format", "json")
    one_line_error(proc, needle)


@pytest.mark.parametrize("name", ["billion-laughs-mappings", "large-anchor-aliased-500-times",
                                  "binary-not-base64", "int-of-5000-digits-as-int-tag"])
def test_pack_refuses_and_writes_nothing(tmp_path, name, kitops_home):
    text, needle = CASES[name]
    (tmp_path / "Kitfile").write_text(text)
    (tmp_path / "m").write_text("model")
    proc = kit("pack", str(tmp_path), "-t", "x:v1")
    one_line_error(proc, needle)
    assert not (kitops_home / "storage" / "blobs").exists() or not any(
        (kitops_home / "storage" / "blobs").rglob("*"))


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("command", ["validate", "pack"])
def test_special_files_are_refused_not_read(tmp_path, special, command, kitops_home):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)  # nobody ever writes: opening it for reading would block for ever
    args = [command, special] if command == "validate" else [command, str(tmp_path), "-f",
                                                             special]
    proc = kit(*args)
    one_line_error(proc, "not a regular file")


def test_oversized_kitfile_is_refused_from_a_file_and_from_stdin(tmp_path, kitops_home):
    big = HEAD + "    pad: '" + "x" * MAX_KITFILE_BYTES + "'\n"
    (tmp_path / "Kitfile").write_text(big)
    one_line_error(kit("validate", str(tmp_path)), "is larger than 4 MiB")
    one_line_error(kit("pack", str(tmp_path), "-f", "-", stdin=big.encode()),
                   "is larger than 4 MiB")


@pytest.mark.parametrize("name", list(CASES))
def test_kitfile_cell_shows_one_finding(ip, name):
    text, needle = CASES[name]
    report = ip.run_cell_magic("kitfile", "kf", text)
    assert not report.valid
    assert any(needle in f.message for f in report.errors), report.errors
    assert "Traceback" not in report._repr_mimebundle_()["text/plain"]


# --------------------------------------------------------------------------------------------
# Hypothesis: the decoder and the model never raise anything but our errors.

YAMLISH = st.text(alphabet=st.sampled_from(list("abcmodelpath:- \n\t'\"&*!{}[],#|>%@`?0129.e+_"
                                                  "\\\u00e9\x00\ufeff")), max_size=300)


VALID = ("manifestVersion: 1.0.0\npackage:\n  name: churn\n  version: 1.10\n"
         "model:\n  name: clf\n  path: model.pkl\n  parameters: {a: [1, 2], b: &x {c: d}, e: *x}\n"
         "datasets:\n  - name: events\n    path: data/events.parquet\n"
         "    remotePath: s3://acme-ml/events.parquet\n    remoteHash: 9b2cf535f27731c97434-12\n"
         "code:\n  - path: src\n")


@st.composite
def mutated_kitfiles(draw) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(YAMLISH.filter(lambda s: len(s) < 12))
        if op == "insert":
            text = text[:i] + chunk + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + len(chunk):]
        else:
            text = text[:i] + chunk + text[i + len(chunk) * 2:]
    return text


def _decode_only_our_errors(text: str) -> None:
    """check_kitfile never raises; load_kitfile raises only KitfileError, with a message."""
    kf, findings = check_kitfile(text)
    assert kf is not None or any(f.severity == "error" for f in findings)
    try:
        load_kitfile(text)
    except KitfileError as exc:
        assert str(exc).strip()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_random_text_decodes_or_is_a_finding(text):
    _decode_only_our_errors(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_kitfiles())
def test_mutated_kitfiles_decode_or_are_findings(text):
    _decode_only_our_errors(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**40), max_value=10**40)
       | st.integers().map(lambda n: 10**300 + n),
       st.sampled_from(["", "!!int ", "!!float ", "!!str "]))
def test_numbers_of_any_size_in_parameters(n, tag):
    text = HEAD + f"    n: {tag}{n}\n"
    kf, findings = check_kitfile(text)
    if kf is None:
        assert findings and all(f.severity == "error" for f in findings)
