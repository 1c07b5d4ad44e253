"""The handle for one in-flight request: a concurrent.futures.Future that knows its id.

It works with everything that takes a Future (``concurrent.futures.wait``,
``as_completed``, ``asyncio.wrap_future``), and adds the request's ``request_id`` and
``method`` and a way to ask the daemon to stop working on it.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .client import LoramClient

__all__ = ["RequestFuture"]


class RequestFuture(concurrent.futures.Future):
    """Result of :meth:`LoramClient.request_async`.

    * ``cancel_request()`` sends ``$/cancelRequest``; the daemon then ends the request at
      its next safe point, and the future fails with :class:`~loram_client.RequestCancelled`
      (or completes normally if the work had already finished).
    * ``cancel()`` does the same, and also cancels the future itself at once, as a standard
      Future would: ``result()`` raises ``concurrent.futures.CancelledError`` and the
      daemon's eventual answer is dropped.
    """

    def __init__(self, client: "LoramClient", request_id: int, method: str, progress_token: Any = None) -> None:
        super().__init__()
        self._client = client
        self.request_id = request_id
        self.method = method
        #: The ``workDoneToken`` sent with the request, if any.
        self.progress_token = progress_token

    def cancel_request(self) -> None:
        """Ask the daemon to cancel this request (no-op once the future is done)."""
        if not self.done():
            self._client.cancel(self.request_id)

    def cancel(self) -> bool:
        """Cancel the daemon's work and this future; False if it had already completed."""
        # Locally first: the daemon answers a cancel within milliseconds, and that answer must
        # not complete the future between the notification and this cancel (it then returned False).
        if not super().cancel():
            return False
        try:
            self._client.cancel(self.request_id)
        except Exception:  # the daemon may already be gone; the future is cancelled all the same
            pass
        return True

    def result(self, timeout: Optional[float] = None) -> Any:
        self._client._check_not_in_callback(self, timeout)
        return super().result(timeout)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._client._check_not_in_callback(self, timeout)
        return super().exception(timeout)

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return "<RequestFuture id=%d %s %s>" % (self.request_id, self.method, state)
