"""The notebook surface in a real kernel, over the Jupyter protocol (jupyter_client): what a
frontend receives -- the ``set_next_input`` payload of ``%%kitfile --fix``, stdout-only text,
plain ``%kit version``, and no widget opened for commands that show nothing live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent


class Kernel:
    def __init__(self, client: Any):
        self.client = client

    def run(self, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute ``code``; the execute_reply content and every iopub message it caused."""
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(code, timeout=120,
                                                output_hook=messages.append)
        return reply["content"], messages


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        KITOPS_HOME=str(home / "kitops"))
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env,
                                                      cwd=str(home))
    try:
        reply, _ = Kernel(kc).run("%load_ext kit_jupyter")
        assert reply["status"] == "ok"
        yield Kernel(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["msg_type"] for m in messages]


def _streams(messages: list[dict[str, Any]], name: str) -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


TYPO = """%%kitfile --fix kf
manifestVersion: 1.0.0
package:
  name: churn
  descripton: Predicts churn
model:
  name: clf
  path: model.bin
"""


def test_kitfile_fix_replaces_the_cell_text(kernel):
    reply, messages = kernel.run(TYPO)
    assert reply["status"] == "ok"
    (payload,) = [p for p in reply["payload"] if p["source"] == "set_next_input"]
    assert payload["replace"] is True
    assert payload["text"] == TYPO.replace("descripton:", "description:").rstrip("\n") + "\n"
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    assert "fixed in the cell: line 5: descripton -> description" in result["text/plain"]
    assert "valid, no findings" in result["text/plain"]
    assert "comm_open" not in _types(messages)
    check, _ = kernel.run("assert kf.package.description == 'Predicts churn'")
    assert check["status"] == "ok"


def test_kitfile_lines_are_the_editors(kernel):
    reply, messages = kernel.run("%%kitfile\nmanifestVersion: 1.0.0\nmodel:\n  pth: m\n")
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    assert "line 4  error  model.pth" in result["text/plain"]
    assert "line 4:" not in result["text/plain"]  # said once, in its column


def test_commands_that_show_nothing_live_open_no_widget(kernel):
    for code in ("%kit list", "%kit version", "r = %kit list", "%kit list --format json"):
        reply, messages = kernel.run(code)
        assert reply["status"] == "ok", code
        assert "comm_open" not in _types(messages), code


def test_version_prints_plainly(kernel):
    _, messages = kernel.run("%kit version")
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    assert result["text/plain"].startswith("kit-jupyter ")  # no quotes around it


def test_text_progress_goes_to_stdout_in_a_kernel(kernel, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "m.bin").write_bytes(b"x" * 1000)
    (project / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: m.bin\n")
    reply, messages = kernel.run(f"%kit pack {project} -t t/x:v1 --progress text")
    assert reply["status"] == "ok"
    assert "100.0%" in _streams(messages, "stdout")
    assert _streams(messages, "stderr") == ""
    assert "comm_open" not in _types(messages)


def test_completion_over_the_protocol(kernel):
    """What JupyterLab's Tab asks for: the choices of a flag, replacing only what was typed."""
    code = "%kit pack . --compression gz"
    kernel.client.complete(code, len(code))
    reply = kernel.client.get_shell_msg(timeout=30)["content"]
    assert reply["status"] == "ok"
    assert set(reply["matches"]) == {"gzip", "gzip-fastest"}
    assert reply["cursor_start"] == len(code) - len("gz") and reply["cursor_end"] == len(code)


def _displays(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"]["data"] for m in messages
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result")]


def test_a_failed_command_ends_its_display_failed_and_names_the_next_step(kernel, tmp_path):
    """unpack onto a changed file: one error line with the flags that help, and the progress
    display (the last state a saved notebook keeps) says failed, not half done."""
    project, out = tmp_path / "p", tmp_path / "out"
    project.mkdir()
    (project / "m.bin").write_bytes(b"x" * 100_000)
    (project / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel:\n  path: m.bin\n")
    reply, _ = kernel.run(f"%kit pack {project} -t t/failing:v1\n"
                          f"%kit unpack t/failing:v1 -d {out}")
    assert reply["status"] == "ok"
    (out / "m.bin").write_bytes(b"changed")
    reply, messages = kernel.run(f"%kit unpack t/failing:v1 -d {out}")
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    assert reply["evalue"].endswith("(-o/--overwrite replaces it, "
                                    "-i/--ignore-existing keeps it)")
    final = _displays(messages)[-1]
    assert final["text/plain"].startswith("failed after")
    assert "kit-badge-error" in final["text/html"] and "kit-task-running" not in final["text/html"]
    assert "done" not in final["text/plain"]
    assert (out / "m.bin").read_bytes() == b"changed"  # nothing touched
    assert "comm_open" not in _types(messages)


def test_kitfile_fix_with_check_remote_sets_the_current_etag(kernel, s3):
    """--check-remote finds a stale remoteHash; --fix puts the object's current ETag into the cell
    (and a misspelt key's one suggestion in the same pass)."""
    bucket = s3.bucket("fixme")
    etag = s3.put(bucket, "events.bin", b"x" * 1000)["etag"]
    reply, _ = kernel.run(f"import os\nos.environ.update({s3.env()!r})")
    assert reply["status"] == "ok"
    stale = "9b2cf535f27731c974343645a3985328-12"
    cell = ("%%kitfile --fix --check-remote kf\nmanifestVersion: 1.0.0\nmodel:\n  path: m.bin\n"
            "datasets:\n  - name: events\n    path: data/events.bin\n"
            f"    remotePath: s3://{bucket}/events.bin\n    remotHash: {stale}\n")
    reply, messages = kernel.run(cell)
    assert reply["status"] == "ok"
    (payload,) = [p for p in reply["payload"] if p["source"] == "set_next_input"]
    # one pass applies the rename; the stale hash is found once remoteHash is a key again
    first = payload["text"]
    assert "    remoteHash: " in first and "remotHash" not in first
    reply, messages = kernel.run(first)
    assert reply["status"] == "ok"
    (payload,) = [p for p in reply["payload"] if p["source"] == "set_next_input"]
    assert payload["replace"] is True
    assert payload["text"] == first.replace(stale, etag).rstrip("\n") + "\n"
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    assert f"line 9: {stale} -> {etag}" in result["text/plain"]
    assert "valid, no findings" in result["text/plain"]
    check, _ = kernel.run(f"assert kf.datasets[0].remote_hash == {etag!r}")
    assert check["status"] == "ok"
