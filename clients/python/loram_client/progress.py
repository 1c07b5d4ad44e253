"""Routing ``$/progress`` notifications to the request that asked for them.

A request that carries ``workDoneToken`` gets ``$/progress {token, value}`` notifications
while it runs; ``value.kind`` is ``begin`` (with ``title``), ``report`` (``message?``,
``percentage?`` and method-specific fields) or ``end``. The router maps tokens to the
per-request callbacks and hands each one the ``value`` dict.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from typing import Any, Callable, Dict, Mapping, Optional, Union

__all__ = ["ProgressCallback", "ProgressToken", "ProgressRouter", "new_token"]

#: ``callback(value)`` where value is ``{"kind": "begin" | "report" | "end", ...}``.
ProgressCallback = Callable[[Dict[str, Any]], None]
ProgressToken = Union[str, int]

_counter = itertools.count(1)
_session = uuid.uuid4().hex[:8]


def new_token() -> str:
    """A token unique within this machine's clients: pid, a random session part, a counter."""
    return "loram_client-%d-%s-%d" % (os.getpid(), _session, next(_counter))


class ProgressRouter:
    """Token -> callback table; thread-safe (requests register from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: Dict[ProgressToken, ProgressCallback] = {}

    def register(self, token: ProgressToken, callback: ProgressCallback) -> None:
        """Route progress for ``token`` to ``callback`` until :meth:`unregister`."""
        with self._lock:
            if token in self._callbacks:
                raise ValueError("progress token %r is already in use" % (token,))
            self._callbacks[token] = callback

    def unregister(self, token: ProgressToken) -> None:
        """Stop routing ``token`` (a no-op if it was never registered)."""
        with self._lock:
            self._callbacks.pop(token, None)

    def lookup(self, params: Any) -> Optional[Callable[[], None]]:
        """For ``$/progress`` params, a thunk that runs the matching callback, or None.

        Returns a thunk rather than calling at once so the client can run it on its
        dispatch thread, in order with everything else the daemon sent.
        """
        if not isinstance(params, Mapping):
            return None
        token = params.get("token")
        value = params.get("value")
        with self._lock:
            callback = self._callbacks.get(token) if isinstance(token, (str, int)) else None
        if callback is None:
            return None
        payload = dict(value) if isinstance(value, Mapping) else {"kind": None, "value": value}
        return lambda: callback(payload)
