"""How results look: inline-styled tables (text left, numbers right), short digests with the
full one in a tooltip, human sizes shown and bytes in ``.data``, kit's repository names in
every table, ``to_pandas()``, ``--format json`` in a notebook, and docstrings for ``?``."""

from __future__ import annotations

import json
import re

import pytest

from kit_jupyter.commands.local import inspect, list_modelkits
from kit_jupyter.commands.pack import pack
from kit_jupyter.commands.unpack import unpack
from kit_jupyter.reporting import format_bytes

KITFILE = """\
manifestVersion: 1.0.0
package:
  name: churn
  version: 1.10
  authors: [Demo Team]
model:
  name: clf
  path: model.bin
code:
  - path: src
"""


@pytest.fixture
def packed(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "model.bin").write_bytes(b"m" * 300_000)
    (project / "src" / "train.py").write_text("print('train')\n")
    (project / "Kitfile").write_text(KITFILE)
    home = tmp_path / "home"
    return pack(str(project), tag="myproj/churn:v1", home=str(home)), home


def cells(page: str, row: int) -> list[str]:
    """The <td> elements (with their attributes) of one body row."""
    body = re.search(r"<tbody>(.*)</tbody>", page, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return re.findall(r"<td[^>]*>.*?</td>", rows[row], re.S)


def test_list_table_inline_styles_short_digests_human_sizes(packed):
    result, home = packed
    listing = list_modelkits(home=str(home))
    page = listing._repr_html_()
    assert "<style" not in page and "class=" in page
    repo, tag, _maintainer, _name, size, digest = cells(page, 0)
    assert ">myproj/churn<" in repo and "text-align:left" in repo
    assert "text-align:right" in size and f">{format_bytes(result.size)}<" in size
    assert f'title="{result.size:,} bytes"' in size
    short = result.digest.split(":")[1][:12]
    assert f">{short}<" in digest and f'title="{result.digest}"' in digest
    # bytes in .data, kit's text in to_json()
    assert listing.data[0]["size"] == result.size
    assert json.loads(listing.to_json())[0]["size"] == format_bytes(result.size)


def test_repository_named_as_kit_shows_it_everywhere(packed, tmp_path):
    result, home = packed
    assert result.repository == "localhost/myproj/churn"
    assert result.reference == "myproj/churn:v1"
    assert "myproj/churn:v1" in result._repr_html_()
    assert "localhost/" not in result._repr_html_() + result.summary()
    assert list_modelkits(home=str(home)).data[0]["repo"] == "myproj/churn"
    done = unpack("myproj/churn:v1", dir=str(tmp_path / "out"), home=str(home))
    assert done.reference == "myproj/churn:v1" and "localhost/" not in done._repr_html_()


def test_pack_shows_one_summary_and_a_layer_table(packed):
    result, _ = packed
    page = result._repr_html_()
    assert page.count(result.digest) == 1  # once, in a tooltip; 12 hex digits shown
    assert re.search(r"<b>Saved myproj/churn:v1</b>: 2 layers", page)
    assert "Saved model layer" not in page  # kit's lines live in the (folded) progress display
    types = [re.sub(r"<[^>]+>", "", cells(page, i)[0]) for i in range(2)]
    assert types == ["model", "code"]


def test_inspect_is_readable_at_a_glance(packed):
    result, home = packed
    mk = inspect("myproj/churn:v1", home=str(home))
    page = mk._repr_html_()
    assert "<b>churn 1.10</b>" in page
    assert [re.sub(r"<[^>]+>", "", cells(page, i)[0]) for i in range(2)] == ["model", "code"]
    assert re.sub(r"<[^>]+>", "", cells(page, 0)[1]) == "model.bin"
    assert "<details" in page and "&quot;cliVersion&quot;" in page  # kit's JSON, folded
    assert len(repr(mk)) < 150 and "{" not in repr(mk)  # what ? shows as its string form


def test_to_pandas_keeps_bytes_as_integers(packed, tmp_path):
    pytest.importorskip("pandas")
    result, home = packed
    frame = list_modelkits(home=str(home)).to_pandas()
    assert list(frame.columns) == ["repository", "tag", "maintainer", "name", "size", "digest"]
    assert frame.loc[0, "size"] == result.size and str(frame["size"].dtype) == "Int64"
    layers = result.to_pandas()
    assert list(layers["type"]) == ["model", "code"]
    assert int(layers["size"].sum()) == result.size
    done = unpack("myproj/churn:v1", dir=str(tmp_path / "out"), home=str(home)).to_pandas()
    assert set(done["status"]) == {"unpacked"}


def test_results_have_docstrings_a_user_reads_with_question_mark():
    from kit_jupyter.commands import findings, remote, results

    classes = [results.PackResult, results.UnpackResult, results.ListResult,
               results.InspectResult, results.InfoResult, results.TagResult,
               results.RemoveResult, remote.PushResult, remote.PullResult, remote.LoginResult,
               remote.LogoutResult, findings.ValidationReport]
    for cls in classes:
        doc = cls.__doc__ or ""
        assert doc and not doc.startswith(cls.__name__ + "("), cls  # not dataclass's signature
        assert "%kit" in doc or "Kitfile" in doc, cls


def test_list_format_json_in_a_notebook(ip, packed):
    _, home = packed
    shown = ip.run_line_magic("kit", f"list --config {home} --format json")
    assert ip.display_formatter.format(shown)[0] == {"text/plain": shown}
    assert json.loads(shown)[0]["repo"] == "myproj/churn"


def test_unpack_lists_remote_datasets_with_status_and_etag():
    from kit_jupyter.commands.results import UnpackResult
    from kit_jupyter.transport.s3 import DownloadResult

    etag = "9b2cf535f27731c974343645a3985328-3"
    result = UnpackResult(
        reference="demo/churn:v2", digest="sha256:" + "a" * 64, directory="/tmp/x",
        kitfile_path="/tmp/x/Kitfile",
        layers=[{"type": "model", "name": "clf", "path": "model/clf.bin",
                 "digest": "sha256:" + "b" * 64, "size": 10}],
        remote=[DownloadResult("data/events.bin", "s3://acme/events.bin", "downloaded",
                               12 * 1024 * 1024, etag),
                DownloadResult("data/old.bin", "s3://acme/old.bin", "up-to-date", 5, "e1"),
                DownloadResult("data/skip.bin", "s3://acme/skip.bin", "skipped-existing"),
                DownloadResult("data/ref", "acme/data:v1", "unpacked", 7),
                DownloadResult("data/c.bin", "s3://acme/c.bin", "from-cache", 3, "e2")])
    page = result._repr_html_()
    assert re.sub(r"<[^>]+>", "", cells(page, 0)[3]) == "unpacked"  # a layer: no "(ModelKit)"
    assert re.sub(r"<[^>]+>", "", cells(page, 4)[3]) == "unpacked (ModelKit)"
    assert re.sub(r"<[^>]+>", "", cells(page, 5)[3]) == "copied from the cache"
    events = [re.sub(r"<[^>]+>", "", c) for c in cells(page, 1)]
    assert events == ["dataset (remote)", "", "data/events.bin", "downloaded", "12.0 MiB", etag]
    assert re.sub(r"<[^>]+>", "", cells(page, 2)[3]) == "already present"
    assert re.sub(r"<[^>]+>", "", cells(page, 3)[3]) == "skipped (exists)"
    assert "1 layer(s), 5 remote dataset(s)" in result.summary()


def test_no_result_or_report_carries_a_style_element(packed):
    from kit_jupyter.commands.validate import validate_text

    result, home = packed
    pages = [result._repr_html_(), list_modelkits(home=str(home))._repr_html_(),
             inspect("myproj/churn:v1", home=str(home))._repr_html_(),
             validate_text(KITFILE + "bogus: 1\n")._repr_html_()]
    for page in pages:
        assert "<style" not in page  # an untrusted notebook would drop it
        for decl in re.findall(r"(color|background):var\((--jp-[\w-]+),([^)]+)\)", page):
            assert f"{decl[0]}:{decl[2]};" in page  # a plain fallback precedes every var()
