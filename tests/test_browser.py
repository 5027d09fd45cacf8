"""The demo notebooks in a real JupyterLab, in headless Chromium, and their plain HTML export.

Run All in Lab, then check what a user sees: the %%kitfile findings table, the live progress of
``%kit unpack --include-remote`` filling up to 100% and ending in a static summary; text contrast
(WCAG AA, 4.5:1) in JupyterLab Light and Dark, trusted and reopened untrusted (the sanitizer
strips ``<style>`` and ``var()``); the widget state Lab saves; and the notebook exported with a
plain ``jupyter nbconvert --to html`` (no options) opened offline. Screenshots of each go to
test-output/browser/.

The live widget is replaced by a static summary when the command ends, so it is watched while it
exists: a MutationObserver installed before Run All records every state of every live bar.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

KERNEL_IDLE = "Python 3 (ipykernel) | Idle"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
OURS = ".kit-validation, .kit-result-view, .kit-progress"

WATCH_PROGRESS = """
() => {
  const s = window.__kitProgress = {live: 0, maxPct: 0, labels: [], pctTexts: []};
  const seen = new WeakSet();
  const check = () => {
    for (const live of document.querySelectorAll('.kit-progress-live')) {
      if (!seen.has(live)) { seen.add(live); s.live += 1; }
      for (const row of live.querySelectorAll('tr')) {
        const bar = row.querySelector('.kit-bar');
        if (!bar) continue;
        const pct = parseFloat(bar.getAttribute('aria-valuenow')) || 0;
        if (pct > s.maxPct) s.maxPct = pct;
        const label = row.querySelector('td').textContent;
        if (!s.labels.includes(label)) s.labels.push(label);
        const shown = row.textContent.match(/\\b\\d+%/);  // the percentage as text, not only a bar
        if (shown && !s.pctTexts.includes(shown[0])) s.pctTexts.push(shown[0]);
      }
    }
  };
  new MutationObserver(check).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true});
}
"""

# Done when every code cell has an execution count, or as soon as something failed (Run All
# stops at an error, so the remaining prompts would never fill in).
ALL_RAN_OR_FAILED = """
() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
  const failed = document.querySelector(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]');
  const stderr = [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .some(e => e.textContent.includes('Error'));
  return failed || stderr ||
    (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
}
"""

ERRORS = """
() => [...document.querySelectorAll(
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],' +
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.textContent).filter(t => t.includes('Error'))
"""

# The contrast of every visible piece of text in our outputs against what is really behind it
# (semi-transparent colours and backgrounds composited), as WCAG 2 defines it.
CONTRAST = """
(selector) => {
  const parse = c => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (t, b) => [0, 1, 2].map(i => t[i] * t[3] + b[i] * (1 - t[3])).concat([1]);
  const lum = c => {
    const f = v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (const l of layers.reverse()) bg = over(l, bg);
    return bg;
  };
  const out = [];
  for (const root of document.querySelectorAll(selector)) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim());
      if (!own.length || !el.checkVisibility()) continue;
      const bg = background(el);
      const fg = over(parse(getComputedStyle(el).color), bg);
      const [a, b] = [lum(fg), lum(bg)];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      out.push({text: own.map(n => n.textContent.trim()).join(' ').slice(0, 60),
                ratio: Math.round(ratio * 100) / 100,
                fg: getComputedStyle(el).color, bg: 'rgb(' + bg.slice(0, 3).map(Math.round) + ')'});
    }
  }
  out.sort((x, y) => x.ratio - y.ratio);
  return out;
}
"""


def open_notebook(context: Any, lab: Any, notebook: str) -> Any:
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(lab.url(notebook))
    # The toolbar's idle indicator shows up while the kernel is still initializing; Run All then
    # opens a kernel dialog. The status bar text is the reliable signal.
    expect(page.get_by_text(KERNEL_IDLE)).to_be_visible(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="File Browser").first.click()  # more room
    return page


def menu(page: Any, *path: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=path[0]).first.click()
    for item in path[1:-1]:
        page.locator(".lm-Menu-itemLabel", has_text=item).first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=path[-1]).first.click()


def open_and_run_all(context: Any, lab: Any, notebook: str) -> Any:
    page = open_notebook(context, lab, notebook)
    page.evaluate(WATCH_PROGRESS)
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(ALL_RAN_OR_FAILED, timeout=240_000, polling=250)
    errors = page.evaluate(ERRORS)
    assert errors == [], f"{notebook} failed in the browser: {errors[0][-1500:]}"
    return page


def set_theme(page: Any, name: str) -> None:
    light = "true" if name == "JupyterLab Light" else "false"
    menu(page, "Settings", "Theme", name)
    page.wait_for_selector(f'body[data-jp-theme-light="{light}"]', state="attached",
                           timeout=30_000)
    page.wait_for_timeout(500)  # the theme's CSS variables apply on the next frame


def assert_contrast(page: Any, where: str, record: dict[str, float]) -> None:
    """Every piece of our text reaches WCAG AA; the lowest ratio is kept for the report."""
    found = page.evaluate(CONTRAST, OURS)
    assert found, f"{where}: none of our outputs found"
    record[where] = found[0]["ratio"]
    low = [f for f in found if f["ratio"] < 4.5]
    assert not low, f"{where}: below 4.5:1: {low[:5]}"


def save(page: Any, lab: Any, notebook: str) -> dict[str, Any]:
    """File > Save, then the notebook as the server has it."""
    before = lab.api(f"/api/contents/{notebook}")["last_modified"]
    menu(page, "File", "Save Notebook")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)
    for _ in range(100):
        model = lab.api(f"/api/contents/{notebook}")
        if model["last_modified"] != before:
            return model["content"]
        page.wait_for_timeout(100)
    raise AssertionError(f"{notebook} was not saved")


def export_plain(path: Path) -> Path:
    """``jupyter nbconvert --to html NOTEBOOK``: no template, no priority, no options."""
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path)],
                   check=True, capture_output=True, timeout=120)
    return path.with_suffix(".html")


def open_offline(context: Any, html: Path) -> Any:
    """The page with every request but file:// refused (no CDN, no server): offline for this page
    only, so the Lab pages of the same browser keep their connection."""
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort("internetdisconnected"))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    return page


def empty_outputs(page: Any) -> list[str]:
    """Outputs an export shows as nothing (a widget view without its manager, an empty HTML)."""
    return page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => !o.innerText.trim()).map(o => o.outerHTML.slice(0, 200))""")


@pytest.fixture(scope="module")
def contrast() -> Any:
    ratios: dict[str, float] = {}
    yield ratios
    from tests.plugins.jupyterlab import TEST_OUTPUT

    TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
    (TEST_OUTPUT / "contrast.json").write_text(json.dumps(ratios, indent=2) + "\n")


@pytest.fixture(scope="module")
def saved() -> Any:
    """What Lab saved for each notebook (widget models, file size), kept in
    test-output/browser/widget-state.json for the report."""
    record: dict[str, dict[str, int]] = {}
    yield record
    from tests.plugins.jupyterlab import TEST_OUTPUT

    TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
    (TEST_OUTPUT / "widget-state.json").write_text(json.dumps(record, indent=2) + "\n")


def widget_state(nb: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return state


def record_saved(lab: Any, notebook: str, nb: dict[str, Any], record: dict[str, Any],
                 key: str) -> int:
    """The number of widget models Lab saved with ``notebook``; its size on disk with and without
    that state goes to ``record[key]``."""
    state = widget_state(nb)
    path = lab.root / notebook
    stripped = json.loads(path.read_text())
    stripped["metadata"].pop("widgets", None)
    record[key] = {"models": len(state), "bytes": path.stat().st_size,
                   "bytes_without_widget_state": len(json.dumps(stripped, indent=1)) + 1}
    return len(state)


def exported_offline(context: Any, lab: Any, notebook: str, nb: dict[str, Any],
                     record: dict[str, Any], key: str) -> Any:
    """What every notebook's test asks of its saved copy ``nb``: no widget model saved (sizes
    recorded under ``key``), and a plain HTML export that, opened offline, has no empty output.
    Returns that offline page; the caller checks its text and closes it."""
    models = record_saved(lab, notebook, nb, record, key)
    assert models == 0, f"Lab saved {models} widget models"
    page = open_offline(context, export_plain(lab.root / notebook))
    try:
        assert empty_outputs(page) == []
    except BaseException:
        page.close()
        raise
    return page


def run_all_again(page: Any) -> None:
    """Run All once more in the same kernel (as a user would) and wait until every prompt has a
    number higher than any before."""
    last = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '.jp-CodeCell .jp-InputPrompt')].map(p => +(p.textContent.match(/\\d+/) || [0])[0]))""")
    menu(page, "Run", "Run All Cells")
    page.wait_for_function("""(last) => {
      const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
      return prompts.every(p => +(p.textContent.match(/\\d+/) || [0])[0] > last);
    }""", arg=last, timeout=240_000, polling=250)
    errors = page.evaluate(ERRORS)
    assert errors == [], f"the second run failed in the browser: {errors[0][-1500:]}"


# -- 01 quickstart: findings -----------------------------------------------------------------

FINDINGS = [
    "Unrecognized manifestVersion 1.1.0: treating Kitfile as 1.0.0",
    "invalid path for model: HTTP urls are not supported in paths "
    "(https://example.com/models/clf.bin)",
    "absolute paths are not supported in a Kitfile (path /home/me/churn/src in code layer 0)",
    "remoteHash is required when remote dataset paths are used (s3://acme-ml/events/2026-11.bin)",
]


@pytest.fixture(scope="module")
def quickstart(jupyterlab, chromium) -> Any:
    page = open_and_run_all(chromium, jupyterlab, "01-quickstart.ipynb")
    yield page
    page.close()


def test_quickstart_findings_table_renders(quickstart, screenshot_dir):
    from playwright.sync_api import expect

    page = quickstart
    panel = page.locator(".kit-findings-panel").filter(
        has_text="absolute paths are not supported in a Kitfile")
    expect(panel).to_have_count(1, timeout=30_000)
    expect(panel.locator(".kit-finding")).to_have_count(6)
    expect(panel.locator(".kit-error")).to_have_count(5)
    expect(panel.locator(".kit-warning")).to_have_count(1)
    # numbers right, text left, whatever JupyterLab's table rule says
    line = panel.locator(".kit-finding td").first
    message = panel.locator(".kit-finding td").last
    assert line.evaluate("e => getComputedStyle(e).textAlign") == "right"
    assert message.evaluate("e => getComputedStyle(e).textAlign") == "left"
    typo = page.locator(".kit-findings-panel").filter(has_text="descripton")
    expect(typo.locator(".kit-finding td").first).to_have_text("6")  # the editor's line
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(screenshot_dir / "quickstart-findings-light.png"))
    page.screenshot(path=str(screenshot_dir / "quickstart-light.png"))


def test_quickstart_contrast_light_and_dark(quickstart, contrast, screenshot_dir):
    page = quickstart
    assert_contrast(page, "lab-light", contrast)
    set_theme(page, "JupyterLab Dark")
    try:
        assert_contrast(page, "lab-dark", contrast)
        panel = page.locator(".kit-findings-panel").filter(has_text="absolute paths")
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(screenshot_dir / "quickstart-findings-dark.png"))
        page.screenshot(path=str(screenshot_dir / "quickstart-dark.png"))
    finally:
        set_theme(page, "JupyterLab Light")


def test_quickstart_saved_then_exported_shows_everything_offline(
        quickstart, jupyterlab, chromium, saved, screenshot_dir):
    nb = save(quickstart, jupyterlab, "01-quickstart.ipynb")
    page = exported_offline(chromium, jupyterlab, "01-quickstart.ipynb", nb, saved, "01-quickstart")
    try:
        text = page.inner_text("body")  # what is rendered and visible, not hidden markup
        for message in FINDINGS:
            assert message in text
        assert "descripton" in text and "Kitfile: no findings" in text
        # %kit pack: the final progress summary (one line, the rest folded) and the result table
        assert re.search(r"done\s+4 tasks, [\d.]+ KiB in [\d.]+ s", text), text[-3000:]
        assert re.search(r"Saved quickstart/churn:v1\s*: 4 layers", text)
        assert re.search(r"model\s+model/clf\.bin\s+258\.0 KiB\s+[0-9a-f]{12}\b", text)
        assert re.search(r"quickstart/churn\s+v1\s+Demo Team\s+churn\s+265\.0 KiB", text)  # list
        page.screenshot(path=str(screenshot_dir / "quickstart-export-offline.png"),
                        full_page=True)
    finally:
        page.close()


def test_quickstart_strictly_sanitized_export_keeps_the_text(jupyterlab, chromium,
                                                              screenshot_dir):
    """The strictest sanitizer at hand, nbconvert's --sanitize-html (meant for nbviewer-like
    renderers; 7.x escapes every tag outside a small allowlist, even markdown's headings): the
    layout is lost, but the text of the findings, summaries and tables is still all there, as a
    renderer that strips HTML (GitHub's) would keep it."""
    source = jupyterlab.root / "01-quickstart.ipynb"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                    "--sanitize-html", "--output", "01-quickstart-sanitized", str(source)],
                   check=True, capture_output=True, timeout=120)
    page = open_offline(chromium, source.with_name("01-quickstart-sanitized.html"))
    try:
        assert empty_outputs(page) == []
        text = page.inner_text("body")
        for message in FINDINGS:
            assert message in text
        assert re.search(r"done\s+4 tasks, [\d.]+ KiB in [\d.]+ s", text), text[-3000:]
        assert re.search(r"Saved quickstart/churn:v1\s*: 4 layers", text)
        assert re.search(r"quickstart/churn\s+v1\s+Demo Team\s+churn\s+265\.0 KiB", text)
        page.screenshot(path=str(screenshot_dir / "quickstart-export-sanitized.png"),
                        full_page=True)
    finally:
        page.close()


def test_quickstart_run_again_saves_no_more(quickstart, jupyterlab, saved):
    """Run All a second time in the same kernel, save: still no widget state, same size."""
    run_all_again(quickstart)
    nb = save(quickstart, jupyterlab, "01-quickstart.ipynb")
    models = record_saved(jupyterlab, "01-quickstart.ipynb", nb, saved, "01-quickstart (run twice)")
    assert models == 0, f"Lab saved {models} widget models after a second run"
    first, again = saved["01-quickstart"]["bytes"], saved["01-quickstart (run twice)"]["bytes"]
    assert again <= first * 1.02, (first, again)  # times and digests differ, nothing piles up


def test_quickstart_reopened_untrusted_keeps_styles(jupyterlab, chromium, contrast,
                                                    screenshot_dir):
    """A copy the server has no signature for opens untrusted: HTML is sanitized."""
    from playwright.sync_api import expect

    nb = json.loads((jupyterlab.root / "01-quickstart.ipynb").read_text())
    nb["metadata"]["kit_test"] = "an unsigned copy"
    (jupyterlab.root / "01-untrusted.ipynb").write_text(json.dumps(nb))
    page = open_notebook(chromium, jupyterlab, "01-untrusted.ipynb")
    try:
        panel = page.locator(".kit-findings-panel").filter(has_text="absolute paths")
        expect(panel.locator(".kit-finding")).to_have_count(6, timeout=30_000)
        line = panel.locator(".kit-finding td").first
        assert line.evaluate("e => getComputedStyle(e).textAlign") == "right"
        badge = panel.locator(".kit-badge-error").first
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(183, 28, 28)"
        assert_contrast(page, "untrusted-light", contrast)
        set_theme(page, "JupyterLab Dark")
        assert_contrast(page, "untrusted-dark", contrast)
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "quickstart-untrusted-dark.png"))
    finally:
        set_theme(page, "JupyterLab Light")
        page.close()


# -- 02 remote datasets: live progress ------------------------------------------------------------

def test_remote_datasets_live_progress_then_static_summary(jupyterlab, chromium, contrast,
                                                            saved, screenshot_dir):
    from playwright.sync_api import expect

    page = open_and_run_all(chromium, jupyterlab, "02-remote-datasets.ipynb")
    try:
        progress = page.evaluate("() => window.__kitProgress")
        assert progress["live"] >= 1, "no live progress widget was rendered"
        assert progress["maxPct"] == pytest.approx(100.0), progress
        assert any("data/events.bin" in label for label in progress["labels"]), progress
        # live rows say where they are in the whole; one remote file has one bar, no aggregate
        assert any(re.search(r"\(layer [1-3] of 3\)$", label) for label in progress["labels"]), \
            progress
        assert "Remote datasets" not in progress["labels"], progress
        assert "100%" in progress["pctTexts"] and len(progress["pctTexts"]) > 1, progress
        expect(page.locator(".kit-progress-live")).to_have_count(0)  # all closed
        # ...and each live display ended as a static summary
        row = page.locator("tr.kit-task", has_text="data/events.bin")
        summary = page.locator(".kit-progress.kit-done details", has=row).first
        expect(summary.locator("summary")).to_be_visible()  # one line: done, size, time
        summary.locator("summary").click()
        expect(row.first).to_be_visible()
        expect(row.first).to_contain_text("100%")
        summary.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "remote-datasets-progress.png"))
        assert_contrast(page, "remote-light", contrast)
        set_theme(page, "JupyterLab Dark")  # badges, bars and result tables in the dark
        try:
            assert_contrast(page, "remote-dark", contrast)
            page.screenshot(path=str(screenshot_dir / "remote-datasets-progress-dark.png"))
        finally:
            set_theme(page, "JupyterLab Light")
        nb = save(page, jupyterlab, "02-remote-datasets.ipynb")
    finally:
        page.close()
    page = exported_offline(chromium, jupyterlab, "02-remote-datasets.ipynb", nb, saved,
                            "02-remote-datasets")
    try:
        text = page.evaluate("() => document.body.textContent")
        assert "data/events.bin" in text and "100%" in text
        assert "Downloaded remote S3 dataset for path data/events.bin" in text
        shown = page.inner_text("body")
        # the unpack result lists the remote dataset with its status and ETag, run after run
        etags = re.findall(r"dataset \(remote\)\s+data/events\.bin\s+(downloaded|already present)"
                           r"\s+48\.0 MiB\s+([0-9a-f]{32}-\d+)", shown)
        assert [status for status, _ in etags] == ["downloaded", "already present"], etags
        assert len({etag for _, etag in etags}) == 1
        assert re.search(r"dataset \(remote\)\s+data/events\.bin\s+skipped \(no --include-remote\)",
                         shown)
        page.screenshot(path=str(screenshot_dir / "remote-datasets-export-offline.png"),
                        full_page=True)
    finally:
        page.close()


# -- 03 registry: push, pull, unpack ---------------------------------------------------------------

def test_registry_notebook_saves_no_widget_state_and_exports(jupyterlab, chromium, saved,
                                                              screenshot_dir):
    page = open_and_run_all(chromium, jupyterlab, "03-registry.ipynb")
    try:
        nb = save(page, jupyterlab, "03-registry.ipynb")
    finally:
        page.close()
    page = exported_offline(chromium, jupyterlab, "03-registry.ipynb", nb, saved, "03-registry")
    try:
        text = page.inner_text("body")
        assert re.search(r"done\s+\d+ tasks?, [\d.]+ MiB in [\d.]+ s", text), text[-3000:]
        assert re.search(r"demo/churn\s+v1\s+", text)  # the remote list
        assert "['model/clf.bin']" in text  # unpack --filter model took only the model
        page.screenshot(path=str(screenshot_dir / "registry-export-offline.png"), full_page=True)
    finally:
        page.close()
