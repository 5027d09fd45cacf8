"""``python -m kit_jupyter`` in a real subprocess: exit codes and output formats."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.test_magics import BAD, GOOD


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit_jupyter", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


def test_validate_valid_exit_zero(tmp_path):
    (tmp_path / "Kitfile").write_text(GOOD)
    proc = run("validate", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


def test_validate_warnings_only_exit_zero(tmp_path):
    (tmp_path / "Kitfile").write_text("manifestVersion: v99.99.99\n")
    proc = run("validate", str(tmp_path / "Kitfile"), "--format", "json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data == {"valid": True, "findings": [{
        "severity": "warning",
        "message": "Unrecognized manifestVersion v99.99.99: treating Kitfile as 1.0.0",
        "field": "manifestVersion", "line": 1}]}


def test_validate_errors_exit_one_json_single_object(tmp_path):
    (tmp_path / "Kitfile").write_text(BAD)
    proc = run("validate", str(tmp_path), "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)  # exactly one JSON document
    assert data["valid"] is False
    assert {f["severity"] for f in data["findings"]} == {"error", "warning"}


def test_missing_kitfile_is_one_error_line(tmp_path):
    proc = run("validate", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("[ERROR] No Kitfile found in")
    assert proc.stderr.count("\n") == 1


def test_bad_arguments_exit_two(tmp_path):
    proc = run("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_help_lists_commands():
    proc = run("-h")
    assert proc.returncode == 0
    for cmd in ("validate", "pack", "unpack", "push", "pull", "list", "inspect", "login"):
        assert cmd in proc.stdout


def test_import_is_cheap():
    code = ("import sys, kit_jupyter; "
            "print(sorted(m for m in ('boto3', 'oras', 'ipywidgets', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"
