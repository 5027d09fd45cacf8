"""Reporters: thread safety, throttling, text and widget output."""

from __future__ import annotations

import io
import threading

import pytest
from IPython.utils.capture import capture_output

from kit_jupyter.reporting import NullReporter, format_bytes
from kit_jupyter.ui.progress import TextReporter, WidgetReporter


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


def test_widget_reporter_ends_in_static_summary(ip):
    with capture_output() as cap:
        rep = WidgetReporter()
        t = rep.task("events.parquet", 1000)
        t.advance(1000)
        t.finish()
        bar = next(iter(rep._rows.values()))[1]
        assert bar.value == bar.max == 1000 and bar.bar_style == "success"
        rep.close()
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in cap.outputs)
    final = cap.outputs[-1].data
    assert "events.parquet: done 100%" in final["text/plain"]
    assert "kit-progress-summary" in final.get("text/html", "kit-progress-summary")


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
