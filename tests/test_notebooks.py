"""Every demo notebook, executed by nbclient in a real kernel -- twice in a row in the same kernel,
as a user pressing "Run All" again would -- with assertions on the outputs and on the widget state
nbclient saves into the notebook (the only place the final progress-bar values survive, since
the live widgets are replaced by a static summary at the end)."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
DATASET_MB = 12  # three multipart parts (5 + 5 + 2 MiB): small enough for moto, still multipart
MiB = 1024 * 1024

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(300)]


class Run:
    """One notebook executed ``runs`` times in one kernel; outputs are those of the last run."""

    def __init__(self, nb: Any, first_outputs: dict[str, list[Any]]):
        self.nb = nb
        self.first_outputs = first_outputs
        meta = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
        self.widgets: dict[str, dict[str, Any]] = meta.get("state", {})

    def cell(self, tag: str) -> Any:
        found = [c for c in self.nb.cells if tag in c.metadata.get("tags", [])]
        assert len(found) == 1, f"expected one cell tagged {tag!r}, found {len(found)}"
        return found[0]

    def text(self, tag: str, outputs: list[Any] | None = None) -> str:
        """Everything a reader could see in the cell: streams, text/plain and text/html."""
        parts = []
        for out in self.cell(tag).outputs if outputs is None else outputs:
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", ""))
                parts.append(html.unescape(out.data.get("text/html", "")))
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
        return "\n".join(parts)

    def bundle(self, tag: str, mime: str) -> list[Any]:
        return [out.data[mime] for out in self.cell(tag).outputs
                if out.output_type in ("execute_result", "display_data") and mime in out.data]

    def models(self, name: str) -> list[dict[str, Any]]:
        return [m["state"] for m in self.widgets.values() if m["model_name"] == name]

    def children(self, model_id: str) -> list[dict[str, Any]]:
        state = self.widgets[model_id]["state"]
        return [self.widgets[c.removeprefix("IPY_MODEL_")] for c in state.get("children", [])]


def execute(path: Path, tmp_path: Path, runs: int = 2, **env: str) -> Run:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} must be committed with cleared outputs"
    kernel_env = dict(os.environ, KIT_DEMO_TMP=str(tmp_path),
                      KITOPS_HOME=str(tmp_path / "outer-home"), **env)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    first: dict[str, list[Any]] = {}
    with client.setup_kernel(env=kernel_env):
        for run in range(runs):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError on any error
                if run == 0 and cell.cell_type == "code":
                    for tag in cell.metadata.get("tags", []):
                        first[tag] = list(cell.outputs)
        client.set_widgets_metadata()
    # The workspace is removed by the last cell: nothing left behind in the temp dir but the
    # (unused) outer KITOPS_HOME the kernel was started with.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "outer-home"]
    assert leftovers == [], f"{path.name} left {leftovers} behind"
    return Run(nb, first)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Run:
    return execute(NOTEBOOKS / "01-quickstart.ipynb", tmp_path_factory.mktemp("nb1"))


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Run:
    return execute(NOTEBOOKS / "02-remote-datasets.ipynb", tmp_path_factory.mktemp("nb2"),
                   KIT_DEMO_DATASET_MB=str(DATASET_MB))


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Run:
    return execute(NOTEBOOKS / "03-registry.ipynb", tmp_path_factory.mktemp("nb3"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Run:
    return execute(NOTEBOOKS / "04-import.ipynb", tmp_path_factory.mktemp("nb4"))


# -- 01 quickstart ------------------------------------------------------------------------------

FINDINGS = [
    ("warning", "Unrecognized manifestVersion 1.1.0: treating Kitfile as 1.0.0"),
    ("error", "invalid path for model: HTTP urls are not supported in paths "
              "(https://example.com/models/clf.bin)"),
    ("error", "invalid path for model: only local paths and ModelKit references are permitted"),
    ("error", "absolute paths are not supported in a Kitfile "
              "(path /home/me/churn/src in code layer 0)"),
    ("error", "paths outside the context directory are not supported in a Kitfile "
              "(path ../eval.csv in dataset layer 0)"),
    ("error", "remoteHash is required when remote dataset paths are used "
              "(s3://acme-ml/events/2026-11.bin)"),
]


def test_quickstart_html_fallback_lists_every_finding(quickstart):
    (page,) = quickstart.bundle("kitfile-findings", "text/html")
    assert '<table class="kit-findings">' in page
    rows = re.findall(r'<tr class="kit-finding kit-(\w+)">(.*?)</tr>', page, re.S)
    assert len(rows) == len(FINDINGS)
    for severity, message in FINDINGS:
        assert any(sev == severity and message in html.unescape(body) for sev, body in rows), \
            message
    (plain,) = quickstart.bundle("kitfile-findings", "text/plain")
    assert "5 error(s), 1 warning(s)" in plain
    assert all(message in plain for _, message in FINDINGS)


def test_quickstart_findings_panel_widget_state(quickstart):
    (view,) = quickstart.bundle("kitfile-findings", WIDGET_VIEW)
    panel = quickstart.widgets[view["model_id"]]
    assert panel["model_name"] == "VBoxModel"
    assert "kit-findings-panel" in panel["state"]["_dom_classes"]
    rows = [c["state"] for c in quickstart.children(view["model_id"])
            if "kit-finding" in c["state"].get("_dom_classes", [])]
    assert len(rows) == len(FINDINGS)
    for severity, message in FINDINGS:
        assert any(f"kit-{severity}" in r["_dom_classes"] and message in html.unescape(r["value"])
                   for r in rows), message


def test_quickstart_typo_is_named_with_line_and_suggestion(quickstart):
    text = quickstart.text("kitfile-typo")
    assert "descripton" in text and "description" in text
    (page,) = quickstart.bundle("kitfile-typo", "text/html")
    (row,) = re.findall(r'<tr class="kit-finding kit-error">(.*?)</tr>', page, re.S)
    assert "<td>5</td>" in row  # the YAML line of the unknown key


def test_quickstart_fixed_kitfile_is_valid_written_and_packed(quickstart):
    assert "valid, no findings" in quickstart.text("kitfile-fixed")
    (result,) = quickstart.bundle("kitfile-object", "text/plain")
    assert result == "('1.10', 'https://example.com/models/clf.bin', ['eval', 'events'])"
    (data,) = quickstart.bundle("validate-data", "text/plain")
    assert data == "(True, {'valid': True, 'findings': []})"
    listing = quickstart.text("list")
    assert "quickstart/churn" in listing and "v1" in listing


def test_quickstart_second_run_matches_first(quickstart):
    for tag in ("kitfile-findings", "validate-data", "kitfile-object"):
        assert quickstart.text(tag) == quickstart.text(tag, quickstart.first_outputs[tag])


# -- 02 remote datasets -------------------------------------------------------------------------

def test_remote_upload_is_multipart(remote):
    assert re.search(rf"{DATASET_MB} MiB, ETag [0-9a-f]{{32}}-3\b", remote.text("upload"))


def test_remote_stale_hash_finding_shows_current_etag(remote):
    etag = re.search(r"ETag ([0-9a-f]{32}-3)", remote.text("upload")).group(1)
    text = remote.text("check-remote")
    assert "9b2cf535f27731c974343645a3985328-12" in text
    assert etag in text
    assert "valid, no findings" in remote.text("kitfile")


def test_remote_pack_verifies_the_dataset(remote):
    assert "Verified remote S3 dataset for path data/events.bin" in remote.text("pack")


def test_remote_unpack_progress_bars_reached_100_percent(remote):
    bars = remote.models("FloatProgressModel")
    assert bars, "no progress bar was shown"
    size = DATASET_MB * MiB
    assert any(b["max"] == size for b in bars), [b["max"] for b in bars]
    for bar in bars:
        assert bar["value"] == bar["max"] and bar["bar_style"] == "success", bar
    text = remote.text("unpack")
    assert "Downloaded remote S3 dataset for path data/events.bin" in text
    assert "100%" in text  # the static summary the live widgets were replaced with


def test_remote_unpacked_file_is_complete(remote):
    (result,) = remote.bundle("unpack-check", "text/plain")
    assert result.startswith("(True, ")
    assert "'data'" in result and "'Kitfile'" in result


def test_remote_rerun_downloads_nothing(remote):
    text = remote.text("unpack-again")
    assert "Downloaded remote S3 dataset" not in text
    assert "Remote S3 dataset for path data/events.bin is up to date" in text


def test_remote_unpack_without_include_remote_warns(remote):
    text = remote.text("unpack-no-remote")
    assert "ModelKit contains remote datasets. To unpack, specify the --include-remote flag" \
        in text


# -- 03 registry --------------------------------------------------------------------------------

@pytest.mark.registry
def test_registry_push_list_inspect(registry):
    address = registry.bundle("setup", "text/plain")[0].strip("'")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
    assert "v1" in registry.text("remote-list")
    inspected = registry.text("remote-inspect")
    assert "sha256:" in inspected and "churn" in inspected


@pytest.mark.registry
def test_registry_unpack_with_filter_takes_only_the_model(registry):
    (files,) = registry.bundle("unpack-files", "text/plain")
    assert files == "['model/clf.bin']"


@pytest.mark.registry
def test_registry_pull_brings_it_back(registry):
    listing = registry.text("list")
    assert "demo/churn" in listing and "v1" in listing


# -- 04 import ----------------------------------------------------------------------------------

def test_import_packs_the_lfs_weights_and_the_generated_kitfile(imported):
    text = imported.text("import")
    assert "model.safetensors" in text and "2.0 MiB" in text and "local/model:v1" in text
    commit, digest = eval(imported.bundle("result", "text/plain")[0])  # a (str, str) tuple repr
    assert len(commit) == 40 and digest.startswith("sha256:")
    kitfile = imported.text("info")
    assert "path: model.safetensors" in kitfile and "path: config.json" in kitfile
    assert "name: model.git" in kitfile


def test_import_leaves_no_cache_behind(imported):
    assert "./import" in imported.text("cache")  # the directory stays ...
    assert imported.bundle("leftovers", "text/plain") == ["[]"]  # ... empty
