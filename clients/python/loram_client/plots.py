"""Pictures of a memory plan and of a training loss: matplotlib when installed, else SVG.

``memory/plan`` with ``detail`` lists every buffer of the placed arena (name, kind, bytes,
offset, first and last op). :func:`plan_svg` draws them as ``loramd plan --svg`` does (time
across, offset up, one rectangle per buffer coloured by kind, lines at the peak and the lower
bound) in plain SVG, so it needs nothing installed; :func:`plot_plan` uses matplotlib when it
imports. The same split for the loss: :func:`loss_svg` and :func:`plot_loss`.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union
from xml.sax.saxutils import escape

from .results import MemoryPlan

__all__ = ["KIND_COLOURS", "plan_svg", "loss_svg", "plot_plan", "plot_loss", "have_matplotlib", "format_bytes"]

#: The daemon's colours (Sources/MemoryPlanner/PlanPicture.swift), so both pictures read alike.
KIND_COLOURS = {
    "weight": "#8c8c8c",
    "adapter": "#e377c2",
    "gradient": "#d62728",
    "optimizer": "#9467bd",
    "activation": "#1f77b4",
    "kvCache": "#2ca02c",
    "workspace": "#ff7f0e",
}

PathLike = Union[str, "os.PathLike[str]"]


def have_matplotlib() -> bool:
    """True when matplotlib imports (the plot_* functions then draw with it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def format_bytes(n: float) -> str:
    """``"1.50 GiB"``, ``"64.0 KiB"``, ``"100 B"``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, unit = float(n), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return "%d B" % n
    return ("%.2f %s" if value < 10 else "%.1f %s" if value < 100 else "%.0f %s") % (value, units[unit])


def _need_buffers(plan: MemoryPlan) -> None:
    if not plan.buffers:
        raise ValueError("the plan has no buffers: request it with detail=True (and accounting 'full')")


def plan_svg(plan: MemoryPlan, width: int = 960, height: int = 540) -> str:
    """The plan's arena as a self-contained SVG document (a ``<title>`` tooltip per buffer)."""
    _need_buffers(plan)
    left, right, top, bottom = 90.0, 170.0, 30.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    ops = max(max(b.end for b in plan.buffers) + 1, 1)
    y_max = float(max(plan.peak_bytes, plan.lower_bound_bytes, 1))

    def x(op: float) -> float:
        return left + plot_w * op / ops

    def y(offset: float) -> float:
        return top + plot_h * (1 - offset / y_max)

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">'
        % (width, height, width, height),
        '<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>' % (width, height),
        '<text x="%.2f" y="18" font-size="13">%s</text>'
        % (left, escape("%d buffers, %d ops: peak %s, lower bound %s, ratio %.4f" % (
            len(plan.buffers), ops, format_bytes(plan.peak_bytes), format_bytes(plan.lower_bound_bytes), plan.peak_over_lower_bound))),
        '<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000"/>' % (left, top, left, top + plot_h),
        '<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000"/>' % (left, top + plot_h, left + plot_w, top + plot_h),
        '<text x="%.2f" y="%d" text-anchor="middle">op</text>' % (left + plot_w / 2, height - 8),
        '<g stroke="#ffffff" stroke-width="0.3">',
    ]
    for b in plan.buffers:
        x0, x1 = x(b.start), x(b.end + 1)
        y0 = y(b.offset + b.bytes)
        tip = "%s (%s%s): %s at offset %d, ops %d-%d" % (
            b.name, b.kind, ", persistent" if b.persistent else "", format_bytes(b.bytes), b.offset, b.start, b.end)
        out.append('<rect class="buffer" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s</title></rect>'
                   % (x0, y0, x1 - x0, max(y(b.offset) - y0, 0.5), KIND_COLOURS.get(b.kind, "#000000"), escape(tip)))
    out.append("</g>")
    same = abs(y(plan.peak_bytes) - y(plan.lower_bound_bytes)) < 14
    for value, label, dash, nudge in ((plan.peak_bytes, "peak = lower bound" if same else "peak", "", -4.0),
                                      (plan.lower_bound_bytes, "" if same else "lower bound", ' stroke-dasharray="6 4"', 13.0)):
        ly = y(value)
        out.append('<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000"%s/>' % (left, ly, left + plot_w, ly, dash))
        if label:
            out.append('<text x="%.2f" y="%.2f" text-anchor="end" font-size="12">%s %s</text>'
                       % (left + plot_w - 4, ly + nudge, escape(label), format_bytes(value)))
    for i, (kind, colour) in enumerate(KIND_COLOURS.items()):
        ly = top + 20 * i
        out.append('<rect x="%.2f" y="%.2f" width="14" height="14" fill="%s"/>' % (left + plot_w + 20, ly, colour))
        out.append('<text x="%.2f" y="%.2f">%s</text>' % (left + plot_w + 40, ly + 11, kind))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def loss_svg(losses: Sequence[float], width: int = 640, height: int = 320, title: str = "training loss") -> str:
    """The loss per step as a line on a self-contained SVG."""
    left, right, top, bottom = 60.0, 20.0, 30.0, 40.0
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for v in losses]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    steps = max(len(values) - 1, 1)
    points = " ".join("%.2f,%.2f" % (left + plot_w * i / steps, top + plot_h * (1 - (v - low) / (high - low)))
                      for i, v in enumerate(values))
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">'
        % (width, height, width, height),
        '<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>' % (width, height),
        '<text x="%.2f" y="18" font-size="13">%s</text>' % (left, escape("%s: %d steps%s" % (
            title, len(values), ", last %.4f" % values[-1] if values else ""))),
        '<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000"/>' % (left, top, left, top + plot_h),
        '<line x1="%.2f" y1="%.2f" x2="%.2f" y2="%.2f" stroke="#000000"/>' % (left, top + plot_h, left + plot_w, top + plot_h),
        '<text x="%.2f" y="%.2f" text-anchor="end">%.3g</text>' % (left - 6, top + 4, high),
        '<text x="%.2f" y="%.2f" text-anchor="end">%.3g</text>' % (left - 6, top + plot_h, low),
        '<text x="%.2f" y="%d" text-anchor="middle">step</text>' % (left + plot_w / 2, height - 8),
        '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>' % points,
        "</svg>",
    ]) + "\n"


def _write(path: Optional[PathLike], text: str) -> None:
    if path is not None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def plot_plan(plan: MemoryPlan, path: Optional[PathLike] = None, *, ax: Any = None, use_matplotlib: Optional[bool] = None) -> Any:
    """Draw the plan's buffers. With matplotlib (when installed, or ``use_matplotlib=True``):
    returns the Axes, and saves the figure to ``path`` if given (.png, .svg, .pdf). Without:
    returns the SVG text (the daemon's own picture when the plan was asked with ``svg=True``,
    else drawn here from the buffers), written to ``path`` if given."""
    if use_matplotlib is False or (use_matplotlib is None and not have_matplotlib()):
        text = plan.raw.get("svg") if plan.raw.get("svg") else None
        if text is None:
            _need_buffers(plan)
            text = plan_svg(plan)
        _write(path, text)
        return text
    _need_buffers(plan)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 5.5))
    gib = float(1 << 30)
    for b in plan.buffers:
        ax.add_patch(Rectangle((b.start, b.offset / gib), b.end + 1 - b.start, b.bytes / gib,
                               facecolor=KIND_COLOURS.get(b.kind, "black"), edgecolor="white", linewidth=0.2))
    ax.axhline(plan.peak_bytes / gib, color="black", linewidth=1, label="peak")
    ax.axhline(plan.lower_bound_bytes / gib, color="black", linewidth=1, linestyle="--", label="lower bound")
    ax.set_xlim(0, max(b.end for b in plan.buffers) + 1)
    ax.set_ylim(0, max(plan.peak_bytes, plan.lower_bound_bytes) / gib * 1.05)
    ax.set_xlabel("op")
    ax.set_ylabel("offset (GiB)")
    ax.set_title("peak %s, lower bound %s" % (format_bytes(plan.peak_bytes), format_bytes(plan.lower_bound_bytes)))
    kinds = sorted({b.kind for b in plan.buffers}, key=list(KIND_COLOURS).index)
    ax.legend(handles=[Patch(color=KIND_COLOURS[k], label=k) for k in kinds], loc="upper left", bbox_to_anchor=(1.01, 1))
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax


def plot_loss(losses: Sequence[float], path: Optional[PathLike] = None, *, ax: Any = None,
              use_matplotlib: Optional[bool] = None) -> Any:
    """Draw the loss per step: the Axes with matplotlib, else the SVG text (``path`` as in plot_plan)."""
    if use_matplotlib is False or (use_matplotlib is None and not have_matplotlib()):
        text = loss_svg(losses)
        _write(path, text)
        return text
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(range(1, len(losses) + 1), list(losses), color=KIND_COLOURS["activation"])
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if path is not None:
        ax.figure.savefig(path, bbox_inches="tight")
    return ax
