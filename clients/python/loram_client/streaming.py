"""GenerationStream: the text of a running ``generate`` request, piece by piece, as it arrives.

The daemon streams new text as ``$/progress`` reports with a ``text`` field; this turns them into
an iterator. When the iterator ends, :attr:`GenerationStream.result` holds the whole
:class:`~loram_client.results.Generation`. :meth:`GenerationStream.cancel` asks the daemon to stop
at the next token; the iterator then ends normally and ``result`` is the partial output with
``finish_reason == "cancelled"`` (the daemon sends it in RequestCancelled's ``data.partial``).
"""

from __future__ import annotations

import queue
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional

from .errors import RequestCancelled, RequestTimeout
from .results import Generation

if TYPE_CHECKING:  # pragma: no cover
    from .client import LoramClient
    from .future import RequestFuture

__all__ = ["GenerationStream"]

_DONE = object()


class GenerationStream:
    """Iterate to get text pieces; ``result`` after the end; ``cancel()`` to stop early.

    ``timeout`` bounds the whole generation: past it the request is cancelled and iteration
    raises :class:`~loram_client.RequestTimeout`.
    """

    def __init__(self, client: "LoramClient", params: Dict[str, Any], timeout: Optional[float] = None) -> None:
        self._pieces: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._result: Optional[Generation] = None
        self._cancelled = False
        self.future: "RequestFuture" = client.request_async("generate", params, on_progress=self._on_progress)
        # Done-callbacks run on the client's dispatch thread after every progress value the
        # daemon sent before its answer, so _DONE is always the last item queued.
        self.future.add_done_callback(lambda _: self._pieces.put(_DONE))

    def _on_progress(self, value: Dict[str, Any]) -> None:
        text = value.get("text")
        if value.get("kind") == "report" and isinstance(text, str) and text:
            self._pieces.put(text)

    def __iter__(self) -> Iterator[str]:
        while True:
            item = self._next_item()
            if item is _DONE:
                self._finish()
                return
            yield item

    def _next_item(self) -> Any:
        try:
            if self._deadline is None:
                return self._pieces.get()
            return self._pieces.get(timeout=max(self._deadline - time.monotonic(), 0.0))
        except queue.Empty:
            self.future.cancel()
            raise RequestTimeout("generate", self.future.request_id, self._timeout or 0.0) from None
        except KeyboardInterrupt:
            self.future.cancel_request()
            raise

    def _finish(self) -> None:
        try:
            self._result = Generation.from_json(self.future.result())
        except RequestCancelled as error:
            partial = error.data.get("partial")
            if not (self._cancelled and isinstance(partial, dict)):
                raise
            self._result = Generation.from_json(partial)

    def cancel(self) -> None:
        """Ask the daemon to stop generating; iteration then ends with the text so far."""
        self._cancelled = True
        self.future.cancel_request()

    @property
    def result(self) -> Generation:
        """The whole generation; waits for the end if the stream was not read to its end."""
        if self._result is None:
            for _ in self:
                pass
        assert self._result is not None
        return self._result

    def text(self, on_piece: Optional[Callable[[str], None]] = None) -> str:
        """Read the stream to its end (calling ``on_piece`` with each piece); the whole text."""
        for piece in self:
            if on_piece is not None:
                on_piece(piece)
        return self.result.text
