"""Reporters: thread safety, throttling, text and widget output."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from ipywidgets.widgets import widget as ipywidget

from kit_jupyter.errors import UnpackError
from kit_jupyter.reporting import NullReporter, format_bytes
from kit_jupyter.ui.progress import WIDGET_VIEW, TextReporter, WidgetReporter


def test_concurrent_advances_are_counted_exactly():
    rep = NullReporter()
    overall = rep.task("all", 8 * 10_000)
    tasks = [rep.task(f"t{i}", 10_000, parent=overall) for i in range(8)]

    def work(t):
        for _ in range(10_000):
            t.advance(1)

    threads = [threading.Thread(target=work, args=(t,)) for t in tasks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(t.done == 10_000 for t in tasks)
    assert overall.done == 80_000


def test_text_reporter_throttles_and_prints_kit_style():
    out, err = io.StringIO(), io.StringIO()
    rep = TextReporter(out=out, err=err)
    rep.info("Unpacking model clf to model.pkl")
    rep.warning("ModelKit contains remote datasets. To unpack, specify the --include-remote flag")
    t = rep.task("data.bin", 100_000)
    for _ in range(100_000):
        t.advance(1)
    t.finish()
    assert out.getvalue() == "Unpacking model clf to model.pkl\n"
    text = err.getvalue()
    assert "[WARN ] ModelKit contains remote datasets" in text
    assert text.count("\r") < 50  # 100k updates drew only a handful of times
    assert "100.0%" in text


def test_text_reporter_marks_a_failed_task():
    err = io.StringIO()
    rep = TextReporter(out=io.StringIO(), err=err)
    t = rep.task("model.bin", 100)
    t.advance(84)
    rep.close(error=UnpackError("path 'model.bin' already exists"))
    assert err.getvalue().rstrip().endswith("FAILED")


class Recorder:
    """Stands in for IPython's display(): records each bundle shown under the one display id."""

    def __init__(self) -> None:
        self.bundles: list[dict[str, Any]] = []

    def __call__(self, bundle: dict[str, Any], raw: bool, display_id: bool) -> Recorder:
        assert raw and display_id is True
        self.bundles.append(dict(bundle))
        return self

    def update(self, bundle: dict[str, Any], raw: bool) -> None:
        assert raw
        self.bundles.append(dict(bundle))


@pytest.fixture
def models():
    """The ipywidgets models alive in this process, as a set of ids."""
    return lambda: set(ipywidget._instances)


def test_messages_alone_create_no_widget(models):
    before = models()
    shown = Recorder()
    rep = WidgetReporter(display=shown)
    rep.info("Saved model layer: sha256:ab")
    rep.info("Model saved: sha256:cd")
    rep.close()
    assert models() == before
    assert all(WIDGET_VIEW not in b for b in shown.bundles)
    final = shown.bundles[-1]
    assert "Model saved: sha256:cd" in final["text/plain"]
    assert "<details" in final["text/html"]  # two lines of kit output fold into one line


def test_nothing_said_nothing_shown(models):
    before = models()
    shown = Recorder()
    WidgetReporter(display=shown).close()
    assert shown.bundles == [] and models() == before


def test_live_widget_then_static_summary_and_the_whole_tree_closed(models, monkeypatch):
    monkeypatch.setattr("kit_jupyter.reporting.THROTTLE_SECONDS", 0.0)  # draw every advance
    before = models()
    shown = Recorder()
    rep = WidgetReporter(display=shown, delay=0.0)
    rep.info("Unpacking to /tmp/x")
    t = rep.task("events.parquet", 1000)
    live = shown.bundles[-1]
    assert WIDGET_VIEW in live
    created = models() - before
    assert live[WIDGET_VIEW]["model_id"] in created
    assert len(created) == 3  # HTML, its layout, its style: nothing else
    assert "events.parquet" in live["text/plain"]  # frontends without widgets see text, too
    t.advance(470)
    assert 'aria-valuenow="47"' in rep._widget.value  # the live widget follows the task
    t.advance(530)
    t.finish()
    rep.close()
    assert models() == before  # widget, layout and style all closed
    final = shown.bundles[-1]
    assert WIDGET_VIEW not in final
    assert "events.parquet: done 100%" in final["text/plain"]
    assert 'class="kit-progress-summary"' in final["text/html"]
    assert 'aria-valuenow="100"' in final["text/html"]
    assert "kit-badge-ok" in final["text/html"]


def test_quick_tasks_create_no_widget(models):
    before = models()
    shown = Recorder()
    rep = WidgetReporter(display=shown, delay=3600)
    for name in ("model", "code", "docs"):
        with rep.task(name, 10) as t:
            t.advance(10)
    rep.close()
    assert models() == before
    assert all(WIDGET_VIEW not in b for b in shown.bundles)
    assert "docs: done 100%" in shown.bundles[-1]["text/plain"]


def test_failed_command_leaves_a_failed_display(models):
    shown = Recorder()
    rep = WidgetReporter(display=shown, delay=0.0)
    t = rep.task("model.bin", 100)
    t.advance(84)
    rep.close(error=UnpackError("path 'model.bin' already exists"))
    final = shown.bundles[-1]
    assert WIDGET_VIEW not in final
    assert final["text/plain"].startswith("failed after")
    assert "model.bin: failed 84%" in final["text/plain"]
    assert "kit-badge-error" in final["text/html"] and "kit-task-failed" in final["text/html"]
    assert "kit-task-running" not in final["text/html"]
    assert "<details" not in final["text/html"]  # nothing folded away when it failed


def test_one_remote_file_shows_one_bar():
    rep = WidgetReporter(display=Recorder())
    overall = rep.task("Remote datasets", 10)
    one = rep.task("data/events.bin", 10, parent=overall)
    one.advance(10)
    one.finish()
    overall.finish()
    rep.close()
    final = rep._handle.bundles[-1]
    assert "data/events.bin" in final["text/plain"]
    assert "Remote datasets" not in final["text/plain"]
    two = WidgetReporter(display=Recorder(), delay=3600)
    overall = two.task("Remote datasets", 20)
    first = two.task("a.bin", 10, parent=overall)
    first.advance(5)
    two._draw()  # while the first of two files runs, the overall row is there already
    assert "Remote datasets: running 25%" in two._handle.bundles[-1]["text/plain"]
    first.advance(5)
    first.finish()
    two.task("b.bin", 10, parent=overall).finish()
    two.close()
    assert "Remote datasets" in two._handle.bundles[-1]["text/plain"]


# kit's pkg/output/util_test.go TestFormatBytes table
@pytest.mark.parametrize("n,text", [
    (0, "0 B"), (500, "500 B"), ((1 << 10) - 1, "1023 B"), (1 << 10, "1.0 KiB"),
    (int(4.5 * (1 << 10)), "4.5 KiB"), ((1 << 20) - 1, "1023.9 KiB"), (1 << 20, "1.0 MiB"),
    (int(6.5 * (1 << 20)), "6.5 MiB"), ((1 << 30) - 1, "1023.9 MiB"), (1 << 30, "1.0 GiB"),
    (1 << 40, "1.0 TiB"), (1 << 50, "1.0 PiB"), (500 * (1 << 50), "500.0 PiB"),
    (1 << 60, "1024.0 PiB"),
])
def test_format_bytes_like_kit(n, text):
    assert format_bytes(n) == text


def test_format_bytes_of_a_rate_is_whole_bytes():
    assert format_bytes(12.9) == "12 B"


def test_rows_say_their_place_and_percentage(tmp_path):
    """Live and final rows carry the percentage and the position: "layer 2 of 2"."""
    from kit_jupyter.commands.pack import pack

    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "m.bin").write_bytes(b"m" * 5000)
    (project / "src" / "a.py").write_text("a\n")
    (project / "Kitfile").write_text(
        "manifestVersion: 1.0.0\nmodel:\n  path: m.bin\ncode:\n  - path: src\n")
    shown = Recorder()
    rep = WidgetReporter(display=shown)
    pack(str(project), tag="t/p:v1", home=str(tmp_path / "home"), reporter=rep)
    rep.close()
    final = shown.bundles[-1]
    assert "model m.bin (layer 1 of 2): done 100%" in final["text/plain"]
    assert "code src (layer 2 of 2): done 100%" in final["text/plain"]
    assert final["text/html"].count('aria-valuenow="100"') == 2
