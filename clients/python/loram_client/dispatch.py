"""The client's dispatch thread: runs callbacks and completes futures, in arrival order.

Why a separate thread from the reader: user callbacks may be slow, and must never stop the
client from reading the daemon's output (the daemon would block on a full pipe). Why one
thread for both callbacks and responses: everything the daemon sends is then delivered in
the order it was sent, so when a request's result is visible, every ``$/progress`` sent
before it has already reached its callback.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Optional

__all__ = ["Dispatcher"]

log = logging.getLogger("loram_client")

_STOP = object()


class Dispatcher:
    """A single daemon thread draining a FIFO of thunks; exceptions are logged, not fatal."""

    def __init__(self, name: str = "loram_client-dispatch") -> None:
        self._queue: "queue.SimpleQueue[object]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, thunk: Callable[[], None]) -> None:
        """Run ``thunk()`` on the dispatch thread after everything submitted before it."""
        self._queue.put(thunk)

    def on_dispatch_thread(self) -> bool:
        """True when called from a callback (blocking on the client there would deadlock)."""
        return threading.current_thread() is self._thread

    def stop(self, timeout: Optional[float] = None) -> None:
        """Finish the queued thunks, then end the thread (waits unless called from it)."""
        self._queue.put(_STOP)
        if not self.on_dispatch_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                item()  # type: ignore[operator]
            except Exception:  # a user callback failed; keep delivering the rest
                log.exception("loram_client callback raised")
