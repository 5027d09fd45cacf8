"""Every demo notebook, executed by nbclient in a real kernel -- twice in a row in the same kernel,
as a user pressing "Run All" again would -- with assertions on the outputs (which must carry
everything as static text/html + text/plain: no widget view survives a command) and on the widget
state nbclient saves into the notebook."""

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


class Client(nbclient.NotebookClient):
    """nbclient keeps the state of every widget model ever opened, closed or not; this records
    which were closed, so a test can tell the models a frontend still holds (JupyterLab's widget
    manager drops closed models, and saves only the rest) from nbclient's leftovers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed_comms: set[str] = set()

    def handle_comm_msg(self, outs: list[Any], msg: dict[str, Any], cell_index: int) -> None:
        if msg["msg_type"] == "comm_close":
            self.closed_comms.add(msg["content"]["comm_id"])
        super().handle_comm_msg(outs, msg, cell_index)


class Run:
    """One notebook executed ``runs`` times in one kernel; outputs are those of the last run."""

    def __init__(self, nb: Any, first_outputs: dict[str, list[Any]], closed: set[str]):
        self.nb = nb
        self.first_outputs = first_outputs
        meta = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
        self.widgets: dict[str, dict[str, Any]] = meta.get("state", {})
        #: models never closed: what JupyterLab would save
        self.open_widgets = {k: v for k, v in self.widgets.items() if k not in closed}

    def cell(self, tag: str) -> Any:
        found = [c for c in self.nb.cells if tag in c.metadata.get("tags", [])]
        assert len(found) == 1, f"expected one cell tagged {tag!r}, found {len(found)}"
        return found[0]

    def text(self, tag: str, outputs: list[Any] | None = None) -> str:
        """Everything a reader could see in the cell: streams, text/plain and text/html."""
        parts: list[str] = []
        stream = False  # one print may arrive in several stream outputs: they are one text
        for out in self.cell(tag).outputs if outputs is None else outputs:
            if out.output_type == "stream" and stream:
                parts[-1] += out.text
            elif out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", ""))
                parts.append(html.unescape(out.data.get("text/html", "")))
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
            stream = out.output_type == "stream"
        return "\n".join(parts)

    def bundle(self, tag: str, mime: str) -> list[Any]:
        return [out.data[mime] for out in self.cell(tag).outputs
                if out.output_type in ("execute_result", "display_data") and mime in out.data]


def execute(path: Path, tmp_path: Path, runs: int = 2, **env: str) -> Run:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        f"{path.name} must be committed with cleared outputs"
    kernel_env = dict(os.environ, KIT_DEMO_TMP=str(tmp_path),
                      KITOPS_HOME=str(tmp_path / "outer-home"), **env)
    client = Client(nb, timeout=240, kernel_name="python3",
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
    return Run(nb, first, client.closed_comms)


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


@pytest.fixture(scope="module")
def python_api(tmp_path_factory) -> Run:
    return execute(NOTEBOOKS / "05-python-api.ipynb", tmp_path_factory.mktemp("nb5"))


def test_every_notebook_is_executed_here():
    """scripts/demo.py runs every notebook in notebooks/; each must also be tested here."""
    tested = re.findall(r'NOTEBOOKS / "([^"]+\.ipynb)"', Path(__file__).read_text())
    assert sorted(tested) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


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
    assert '<table class="kit-findings"' in page
    rows = re.findall(r'<tr class="kit-finding kit-(\w+)">(.*?)</tr>', page, re.S)
    assert len(rows) == len(FINDINGS)
    for severity, message in FINDINGS:
        assert any(sev == severity and message in html.unescape(body) for sev, body in rows), \
            message
    (plain,) = quickstart.bundle("kitfile-findings", "text/plain")
    assert "5 errors, 1 warning" in plain
    assert all(message in plain for _, message in FINDINGS)


def test_no_widget_view_survives_a_command(quickstart, remote, registry):
    """Every output is static (text/html + text/plain), so a plain nbconvert export, GitHub and
    VS Code show it; and no model is left open for a saved notebook to carry, after two runs."""
    for run in (quickstart, remote, registry):
        for cell in run.nb.cells:
            for out in cell.get("outputs", []):
                assert WIDGET_VIEW not in out.get("data", {}), cell.source[:60]
        assert run.open_widgets == {}
        # nbclient keeps closed models too: at most one live display (3 models) per command
        # that showed progress, and none for anything else
        assert all(m["model_name"] in ("HTMLModel", "LayoutModel", "HTMLStyleModel")
                   for m in run.widgets.values())
        assert len(run.widgets) % 3 == 0


def test_quickstart_typo_is_named_with_line_and_suggestion(quickstart):
    text = quickstart.text("kitfile-typo")
    assert "descripton" in text and "description" in text
    (page,) = quickstart.bundle("kitfile-typo", "text/html")
    (row,) = re.findall(r'<tr class="kit-finding kit-error">(.*?)</tr>', page, re.S)
    assert re.match(r"<td[^>]*>6</td>", row)  # the editor's line: %%kitfile is line 1


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


def test_remote_unpack_ends_in_a_static_summary_at_100_percent(remote):
    text = remote.text("unpack")
    assert "Downloaded remote S3 dataset for path data/events.bin" in text
    assert "data/events.bin: done 100%" in text
    pages = "".join(remote.bundle("unpack", "text/html"))
    assert 'aria-valuenow="100"' in pages and "kit-task-failed" not in pages
    # a live widget exists only if the download outlasted KitMagics.progress_delay; if one did,
    # it (closed since) followed the download to its end
    lives = [m["state"]["value"] for m in remote.widgets.values()
             if m["model_name"] == "HTMLModel" and "data/events.bin" in m["state"]["value"]]
    assert all('aria-valuenow="100"' in v for v in lives)


def remote_row(run: Run, tag: str) -> list[str]:
    """The unpack result's row of the remote dataset: its cells' text."""
    (page,) = [p for p in run.bundle(tag, "text/html") if "Unpacked demo/churn:v2" in p]
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*dataset \(remote\).*?</tr>", page, re.S).group(0)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td.*?</td>", row)]


def test_remote_unpack_result_lists_the_dataset_with_status_and_etag(remote):
    etag = re.search(r"ETag ([0-9a-f]{32}-3)", remote.text("upload")).group(1)
    assert remote_row(remote, "unpack") == [
        "dataset (remote)", "", "data/events.bin", "downloaded", f"{DATASET_MB}.0 MiB", etag]
    assert remote_row(remote, "unpack-again")[3:] == ["already present", f"{DATASET_MB}.0 MiB",
                                                      etag]
    assert remote_row(remote, "unpack-no-remote")[3] == "skipped (no --include-remote)"


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


def test_init_drafts_a_kitfile_cell_and_writes_with_o(imported):
    """``%kit init DIR`` proposes a ``%%kitfile -o DIR/Kitfile`` cell (nbclient drops the
    set_next_input payload; the notebook prints ``.cell``) and writes nothing; ``-o`` writes."""
    cell = imported.text("init-cell")
    assert re.search(r"^%%kitfile -o \S*/churn/Kitfile$", cell, re.M), cell
    assert "model:\n" in cell and "  path: model/clf.safetensors\n" in cell
    assert "Saved to path" in imported.text("init-write")
    kitfile = imported.text("init-kitfile")
    assert "name: churn\n  description: Churn classifier\n  authors: [Demo Team]" in kitfile
    assert "path: model/clf.safetensors" in kitfile and "path: src/" in kitfile


def test_diff_is_a_table_and_data(imported):
    assert "Model saved: sha256:" in imported.text("diff-pack")
    table = imported.bundle("diff", "text/html")
    assert table and "ModelKits differ" in table[0] and "ModelKit2" in table[0]
    assert "localhost/demo/churn:v1" in imported.text("diff")
    assert imported.bundle("diff-data", "text/plain") == ["(False, ['model/clf.safetensors'])"]


def test_cache_clear_empties_the_cache(imported):
    assert "Removed 2 cache entries" in imported.text("cache-clear")  # import/ and pack/
    assert "Cache is currently empty" in imported.text("cache-empty")


# -- 05 Python API ------------------------------------------------------------------------------

@pytest.mark.registry
def test_python_api_names_and_help(python_api):
    names = python_api.text("setup")
    assert all(f"'{n}'" in names for n in ("pack", "unpack", "push", "pull", "make_reporter"))
    assert "'KitError'" not in names  # the cell lists the functions only
    text = python_api.text("help")
    assert "info(ref: 'str', *, home:" in text and "plain_http: 'bool' = False" in text
    assert "(``kit info REF [-f FILTER]``)" in text and "Returns:" in text


@pytest.mark.registry
def test_python_api_validate_load_and_errors(python_api):
    assert python_api.bundle("validate", "text/plain") == ["(True, [])"]
    assert python_api.bundle("load", "text/plain") == [
        "('churn', 'model/clf.bin', ['data/eval.csv'])"]
    assert python_api.text("errors").splitlines() == [
        'KitfileError: line 2: field descripton not found in package; did you mean '
        '"description"?',
        "NotFoundError: Could not find modelkit demo/churn:v9",
        "TypeError: unpack() got an unexpected keyword argument 'plain_htp'",
    ]


@pytest.mark.registry
def test_python_api_local_commands(python_api):
    # the repository as kit's list names it, in every result
    assert re.search(r"Model saved: sha256:[0-9a-f]{64} \(demo/churn:v1\)",
                     python_api.text("pack"))
    listing = python_api.text("list")
    assert "demo/churn" in listing and "Demo Team" in listing
    assert python_api.bundle("inspect", "text/plain")[0].startswith("(True,")
    assert "name: churn\nversion: 1.0.0\n" in python_api.text("info")
    assert python_api.bundle("unpack", "text/plain") == ["['README.md', 'model/clf.bin']"]


@pytest.mark.registry
def test_python_api_registry_round_trip_with_progress(python_api):
    assert python_api.bundle("push", "text/plain")[-1] == "(True, 5)"
    assert "Pushed sha256:" in python_api.text("push")
    assert "churn" in python_api.text("remote")
    assert python_api.bundle("remote-inspect", "text/plain") == ["True"]
    pulled = python_api.bundle("pull", "text/plain")[-1]
    assert re.fullmatch(r"\(True, \['127\.0\.0\.1:\d+/demo/churn'\]\)", pulled)
    # make_reporter()'s display ends static: every row done at 100%, in text and as bars
    plain = "\n".join(python_api.bundle("push", "text/plain"))
    rows = re.findall(r"^(.*\(blob \d+ of 5\)): (\w+) (\d+)%", plain, re.M)
    assert len(rows) == 5 and all(r[1:] == ("done", "100") for r in rows), plain
    page = "".join(python_api.bundle("push", "text/html"))
    assert page.count('aria-valuenow="100"') == 5 and "kit-task-failed" not in page
    assert "kit-task-failed" not in "".join(python_api.bundle("pull", "text/html"))


@pytest.mark.registry
def test_python_api_second_run_matches_first(python_api):
    for tag in ("validate", "load", "errors", "unpack"):
        assert python_api.text(tag) == python_api.text(tag, python_api.first_outputs[tag])

