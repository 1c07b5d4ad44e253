"""Progress bars for long requests: tqdm's when it is installed, a plain one-line bar otherwise.

Both take the same three calls (``update(done, postfix)``, ``close()``, a context manager), so
the typed API and the CLI never care which one they got. The plain bar redraws one stderr line
with a carriage return and never writes more than a few times a second.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping, Optional, TextIO

__all__ = ["ProgressBar", "PlainBar", "make_bar"]


class ProgressBar:
    """What a bar must do: move to ``done`` out of ``total`` and show a few named numbers."""

    def update(self, done: float, postfix: Optional[Mapping[str, Any]] = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class PlainBar(ProgressBar):
    """``title [#######.......]  12/30  loss 2.31  eta 1m05s`` redrawn in place on one line (the
    ETA, from the rate so far, once a second has passed)."""

    WIDTH = 24

    def __init__(self, total: float, title: str = "", stream: Optional[TextIO] = None, min_interval: float = 0.2) -> None:
        self.total = max(float(total), 1e-12)
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._started = time.monotonic()
        self._line = ""
        self._closed = False

    def update(self, done: float, postfix: Optional[Mapping[str, Any]] = None) -> None:
        filled = int(self.WIDTH * min(max(done / self.total, 0.0), 1.0))
        numbers = "  ".join("%s %s" % (k, _short(v)) for k, v in (postfix or {}).items())
        elapsed = time.monotonic() - self._started
        if elapsed >= 1 and 0 < done < self.total:
            numbers += "  eta %s" % _duration(elapsed * (self.total - done) / done)
        self._line = "%s[%s%s] %s/%s  %s" % (
            self.title + " " if self.title else "",
            "#" * filled,
            "." * (self.WIDTH - filled),
            _short(done),
            _short(self.total),
            numbers,
        )
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval or done >= self.total:
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        self.stream.write("\r" + self._line.rstrip() + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._line:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


class _TqdmBar(ProgressBar):
    def __init__(self, tqdm: Any, total: float, title: str, stream: Optional[TextIO]) -> None:
        self._bar = tqdm(total=total, desc=title or None, file=stream, leave=True, dynamic_ncols=True)
        self._done = 0.0

    def update(self, done: float, postfix: Optional[Mapping[str, Any]] = None) -> None:
        if postfix:
            self._bar.set_postfix({k: _short(v) for k, v in postfix.items()}, refresh=False)
        if done > self._done:
            step = done - self._done
            self._bar.update(int(step) if float(step).is_integer() else step)  # "5/5", not "5.0/5"
            self._done = done
        else:
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def make_bar(total: float, title: str = "", stream: Optional[TextIO] = None, plain: bool = False) -> ProgressBar:
    """A tqdm bar if tqdm imports (and ``plain`` is false), else a :class:`PlainBar`."""
    if not plain:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return _TqdmBar(tqdm, total, title, stream)
    return PlainBar(total, title, stream)


def _duration(seconds: float) -> str:
    """``"45s"``, ``"3m05s"``, ``"1h02m"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


def _short(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return "%.4g" % value
    return str(value)
