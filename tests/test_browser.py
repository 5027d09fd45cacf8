"""The demo notebooks in a real JupyterLab, in headless Chromium: Run All Cells, then check that
the widgets really render -- the %%kitfile findings panel, and the progress bar of
``%kit unpack --include-remote`` filling up to 100% -- and save screenshots under
test-output/browser/.

The live progress widgets are replaced by a static summary when the command ends, so the bar is
watched while it exists: a MutationObserver installed before Run All records every state of every
``.widget-hprogress`` bar the page ever shows.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

KERNEL_IDLE = "Python 3 (ipykernel) | Idle"

WATCH_PROGRESS = """
() => {
  const seen = new WeakSet();
  const s = window.__kitProgress = {bars: 0, maxPct: 0, success100: false};
  const check = () => {
    for (const bar of document.querySelectorAll('.widget-hprogress .progress-bar')) {
      if (!seen.has(bar)) { seen.add(bar); s.bars += 1; }
      const pct = parseFloat(bar.style.width) || 0;
      if (pct > s.maxPct) s.maxPct = pct;
      if (pct >= 99.999 && bar.classList.contains('progress-bar-success')) s.success100 = true;
    }
  };
  new MutationObserver(check).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['style', 'class']});
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


def open_and_run_all(context: Any, lab: Any, notebook: str) -> Any:
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(lab.url(notebook))
    # The toolbar's idle indicator shows up while the kernel is still initializing; Run All then
    # opens a kernel dialog. The status bar text is the reliable signal.
    expect(page.get_by_text(KERNEL_IDLE)).to_be_visible(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="View").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="File Browser").first.click()  # more room
    page.evaluate(WATCH_PROGRESS)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_function(ALL_RAN_OR_FAILED, timeout=240_000, polling=250)
    errors = page.evaluate(ERRORS)
    assert errors == [], f"{notebook} failed in the browser: {errors[0][-1500:]}"
    return page


def test_quickstart_findings_panel_renders(jupyterlab, chromium, screenshot_dir):
    from playwright.sync_api import expect

    page = open_and_run_all(chromium, jupyterlab, "01-quickstart.ipynb")
    try:
        # the %%kitfile cells and %kit validate render as live widget panels
        panel = page.locator(".kit-findings-panel").filter(
            has_text="absolute paths are not supported in a Kitfile")
        expect(panel).to_have_count(1, timeout=30_000)
        expect(panel.locator(".kit-finding")).to_have_count(6)
        expect(panel.locator(".kit-error")).to_have_count(5)
        expect(panel.locator(".kit-warning")).to_have_count(1)
        expect(panel.locator(".kit-finding").first).to_be_visible()
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(screenshot_dir / "quickstart-findings-panel.png"))
        page.screenshot(path=str(screenshot_dir / "quickstart.png"))
    finally:
        page.close()


def test_remote_datasets_progress_bar_reaches_100(jupyterlab, chromium, screenshot_dir):
    from playwright.sync_api import expect

    page = open_and_run_all(chromium, jupyterlab, "02-remote-datasets.ipynb")
    try:
        progress = page.evaluate("() => window.__kitProgress")
        assert progress["bars"] >= 1, "no progress bar was rendered"
        assert progress["maxPct"] == pytest.approx(100.0), progress
        assert progress["success100"], progress
        # ...and the live widgets ended as the static summary, at 100% too
        summary = page.locator("table.kit-progress-summary").filter(has_text="data/events.bin")
        expect(summary).to_have_count(1)
        expect(summary).to_be_visible()
        expect(summary.locator("tr", has_text="data/events.bin")).to_contain_text("100%")
        summary.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "remote-datasets-progress.png"))
    finally:
        page.close()
