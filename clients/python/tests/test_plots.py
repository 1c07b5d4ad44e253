"""Plan and loss pictures: the SVG drawn from ``memory/plan``'s buffers (no matplotlib needed)
puts each buffer where the plan placed it, and matplotlib draws the same when installed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import loram_client as lc
from loram_client import plots

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def plan(loramd_path):
    with lc.Loram(loramd_path) as loram:
        return loram.memory_plan({"preset": "llama-3.1-8b"}, seq_len=64, prune=0.5, detail=True)


def test_plan_svg_draws_every_buffer_at_its_offset(plan):
    root = ET.fromstring(plots.plan_svg(plan, width=960, height=540))
    rects = root.findall(".//%srect[@class='buffer']" % SVG)
    assert len(rects) == len(plan.buffers)
    plot_h, top = 540 - 30 - 40, 30.0
    scale = plot_h / max(plan.peak_bytes, plan.lower_bound_bytes)
    for rect, buffer in zip(rects, plan.buffers):
        assert buffer.name in rect.find(SVG + "title").text
        assert rect.get("fill") == plots.KIND_COLOURS[buffer.kind]
        # The top edge is exact; tiny buffers are drawn at least 0.5 px tall, so not the bottom.
        assert float(rect.get("y")) == pytest.approx(top + plot_h - (buffer.offset + buffer.bytes) * scale, abs=0.02)
    # The topmost buffer touches the peak line.
    assert min(float(r.get("y")) for r in rects) == pytest.approx(top, abs=0.02)


def test_plot_plan_without_matplotlib_writes_svg(plan, tmp_path):
    text = plots.plot_plan(plan, tmp_path / "p.svg", use_matplotlib=False)
    assert (tmp_path / "p.svg").read_text() == text and text.startswith("<?xml")


def test_plot_plan_needs_detail(loramd_path):
    with lc.Loram(loramd_path) as loram:
        bare = loram.memory_plan({"preset": "llama-3.1-8b"}, seq_len=64)
    with pytest.raises(ValueError, match="detail=True"):
        plots.plan_svg(bare)


def test_loss_svg_is_a_polyline_through_every_step():
    root = ET.fromstring(plots.loss_svg([3.0, 2.0, 2.5, 1.0], width=640, height=320))
    points = [tuple(map(float, p.split(","))) for p in root.find(SVG + "polyline").get("points").split()]
    assert len(points) == 4
    assert points[0][1] == pytest.approx(30.0) and points[3][1] == pytest.approx(320 - 40)  # highest, lowest
    assert [x for x, _ in points] == sorted(x for x, _ in points)


def test_matplotlib_plots(plan, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    ax = plots.plot_plan(plan, tmp_path / "p.png", use_matplotlib=True)
    assert len(ax.patches) == len(plan.buffers) and (tmp_path / "p.png").stat().st_size > 0
    plots.plot_loss([3.0, 2.0, 1.0], tmp_path / "l.png", use_matplotlib=True)
    assert (tmp_path / "l.png").stat().st_size > 0


def test_format_bytes():
    assert plots.format_bytes(100) == "100 B"
    assert plots.format_bytes(1536) == "1.50 KiB"
    assert plots.format_bytes(20 << 30) == "20.0 GiB"


def test_plot_plan_uses_the_daemons_own_picture_when_asked(loramd_path, tmp_path, plan):
    with lc.Loram(loramd_path) as loram:
        drawn = loram.memory_plan({"preset": "llama-3.1-8b"}, seq_len=64, prune=0.5, svg=True)
    assert drawn.buffers == []  # no detail needed: the daemon drew it
    text = plots.plot_plan(drawn, tmp_path / "daemon.svg", use_matplotlib=False)
    assert text == drawn.raw["svg"] == (tmp_path / "daemon.svg").read_text()
    root = ET.fromstring(text)
    # One rectangle per buffer of the same plan (the daemon's picture has a few more: background, legend).
    assert len(root.findall(".//%srect" % SVG)) >= len(plan.buffers)
