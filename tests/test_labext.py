"""The JupyterLab extension that highlights ``%%kitfile`` cells as YAML (source in labextension/,
prebuilt into kit_jupyter/labextension/ by scripts/build-labextension): the wheel ships it where
JupyterLab finds prebuilt extensions, this environment has it installed and enabled, and in a
real JupyterLab in headless Chromium a ``%%kitfile`` cell is highlighted exactly like JupyterLab
highlights YAML, while the same text without the magic line stays Python.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.plugins.jupyterlab import _lab_env

REPO = Path(__file__).resolve().parents[1]
BUILT = REPO / "kit_jupyter" / "labextension"
INSTALL_JSON = REPO / "labextension" / "install.json"
NAME = "kit-jupyter"
SHARE = f"share/jupyter/labextensions/{NAME}/"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _expected_install() -> dict[str, bytes]:
    """What an installation must hold: the committed build plus install.json (which makes
    `jupyter labextension list` say the extension comes from the kit-jupyter Python package)."""
    return {**_tree(BUILT), "install.json": INSTALL_JSON.read_bytes()}


def test_built_extension_is_complete():
    meta = json.loads((BUILT / "package.json").read_text())
    build = meta["jupyterlab"]["_build"]
    assert meta["name"] == NAME
    assert build["extension"] == "./extension"
    assert (BUILT / build["load"]).is_file(), build
    assert json.loads(INSTALL_JSON.read_text())["packageName"] == "kit-jupyter"


def test_wheel_ships_the_prebuilt_extension(tmp_path):
    from hatchling.builders.wheel import WheelBuilder  # the test extra

    wheel = next(iter(WheelBuilder(str(REPO)).build(directory=str(tmp_path),
                                                     versions=["standard"])))
    data = re.compile(r"kit_jupyter-[^/]+\.data/data/" + re.escape(SHARE) + "(.+)")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        shipped = {m.group(1): z.read(n) for n in names if (m := data.fullmatch(n))}
    assert shipped == _expected_install()
    # ...and only there: not a second copy inside the importable package
    assert [n for n in names if n.startswith("kit_jupyter/labextension")] == []


@pytest.mark.browser  # jupyterlab comes with the browser extra
def test_extension_is_installed_and_enabled(tmp_path, monkeypatch):
    """`jupyter labextension list` of this environment lists it, and the installed files are
    this checkout's build (an editable install copies them at install time)."""
    env = _lab_env(tmp_path, {})  # no user config or data dirs that could shadow or disable it
    jupyter = Path(sys.executable).with_name("jupyter")
    out = subprocess.run([str(jupyter), "labextension", "list"], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    listing = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    assert re.search(rf"^\s+{NAME} v\S+ enabled\s+OK \(python, kit-jupyter\)$", listing,
                     re.MULTILINE), listing

    from jupyter_core.paths import jupyter_path

    for key in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR"):
        monkeypatch.setenv(key, env[key])
    installed = [Path(d) / NAME for d in jupyter_path("labextensions")
                 if (Path(d) / NAME / "package.json").is_file()]
    assert installed, listing
    assert _tree(installed[0]) == _expected_install(), (
        f"{installed[0]} is not this checkout's kit_jupyter/labextension/: "
        "re-run `pip install -e .` after rebuilding the extension")


BODY = """manifestVersion: "1.0"
package:
  name: churn
  authors: [Ada]
model:
  path: model.pkl  # the weights
datasets:
  - path: data/train.csv
"""

# Leaf token spans of one cell, in order, as [text, class]. Code cells: the editor's lines from
# line `skip` on; Markdown cells: the rendered code block (JupyterLab's own highlighting of a
# ```yaml fence, the reference).
TOKENS = """
([index, skip]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  if (!cell) return null;
  const leaves = root => [...root.querySelectorAll('span')]
    .filter(s => !s.querySelector('span')).map(s => [s.textContent, s.className]);
  const code = cell.querySelector('.jp-RenderedMarkdown pre code');
  if (code) return leaves(code);
  return [...cell.querySelectorAll('.jp-InputArea-editor .cm-line')].slice(skip).flatMap(leaves);
}
"""

SAME_AS = f"""
([index, reference]) => {{
  const tokens = ({TOKENS})([index, 1]);
  return tokens !== null && tokens.length > 0 &&
    JSON.stringify(tokens) === JSON.stringify(reference);
}}
"""

HAS_KEY_TOKEN = f"""
([index, key]) => {{
  const tokens = ({TOKENS})([index, 1]);
  return tokens !== null && tokens.some(([text, cls]) => text === key[0] && cls === key[1]);
}}
"""


REFERENCE_READY = """
() => !!document.querySelectorAll('.jp-Notebook .jp-Cell')[2]
  ?.querySelector('.jp-RenderedMarkdown pre code span')
"""


def _tokens(page: Any, index: int) -> list[list[str]]:
    return page.evaluate(TOKENS, [index, 1])


@pytest.mark.browser
@pytest.mark.timeout(420)
def test_kitfile_cell_is_highlighted_as_yaml(jupyterlab, chromium, screenshot_dir):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%%kitfile\n" + BODY),
        # the same text without the magic line: a Python cell
        nbformat.v4.new_code_cell("# no magic here\n" + BODY),
        nbformat.v4.new_markdown_cell("```yaml\n" + BODY + "```\n"),
    ]
    nbformat.write(nb, jupyterlab.root / "kitfile-highlighting.ipynb")

    page = chromium.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(jupyterlab.url("kitfile-highlighting.ipynb"))
        page.wait_for_function(REFERENCE_READY, timeout=120_000, polling=250)
        reference = page.evaluate(TOKENS, [2, 0])
        key = next(t for t in reference if t[0] == "manifestVersion")
        assert key[1], reference  # JupyterLab's YAML highlighting styles the key

        # The %%kitfile cell's body is tokenized and styled exactly as JupyterLab's YAML
        # (it waits for the kernel's language and the lazily loaded YAML mode).
        try:
            page.wait_for_function(SAME_AS, arg=[0, reference], timeout=120_000,
                                   polling=250)
        except Exception:
            assert _tokens(page, 0) == reference
            raise
        # The same text without the magic is not highlighted as YAML.
        python = _tokens(page, 1)
        assert python != reference
        assert key not in python, python
        page.locator(".jp-Notebook").screenshot(path=str(screenshot_dir / "kitfile-yaml.png"))

        # Editing the magic line away turns the cell back to Python; typing it again, to YAML.
        first_line = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".cm-line").first
        first_line.click()
        page.keyboard.press("End")
        page.keyboard.press("Shift+Home")
        page.keyboard.type("# kitfile no more")
        page.wait_for_function(f"(a) => !({HAS_KEY_TOKEN})(a)", arg=[0, key], timeout=30_000,
                               polling=250)
        page.keyboard.press("End")
        page.keyboard.press("Shift+Home")
        page.keyboard.type("%%kitfile")
        page.wait_for_function(SAME_AS, arg=[0, reference], timeout=30_000,
                               polling=250)
        assert [e for e in errors if NAME in e or "kitfile" in e] == []
    finally:
        page.screenshot(path=str(screenshot_dir / "kitfile-highlighting.png"))
        page.close()
