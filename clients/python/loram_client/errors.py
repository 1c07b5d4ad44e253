"""Typed exceptions: one class per error code of the loramd RPC contract, plus client-side ones.

Two families, so callers can tell "the daemon said no" from "the daemon is not there":

* :class:`LoramError` and its subclasses are error *responses* from the daemon. Each carries
  the JSON-RPC ``code``, ``message`` and ``data`` (the contract guarantees ``data.hint``;
  InvalidParams also names ``data.field``). :func:`error_from_response` maps a code to its
  class; codes the contract does not name become a plain :class:`LoramError`.
* :class:`ClientError` and its subclasses happen on this side: the daemon process exited or
  could not be found, a request timed out, the peer broke the protocol.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Type

__all__ = [
    "LoramError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "ServerNotInitialized",
    "RequestCancelled",
    "NotFound",
    "FormatError",
    "ShapeMismatch",
    "OverBudget",
    "LoramIOError",
    "ERROR_CLASSES",
    "error_from_response",
    "ClientError",
    "DaemonNotFound",
    "DaemonExited",
    "RequestTimeout",
    "ProtocolError",
    "CallbackDeadlock",
]


class LoramError(Exception):
    """An error response from the daemon.

    Attributes:
        code: the JSON-RPC error code.
        message: the daemon's one-line message.
        data: ``error.data`` as a dict (empty if the daemon sent none or a non-object).
        request_id: the id of the request that failed, when known.
        method: the method of the request that failed, when known.
    """

    #: The contract's code for this class; None on the base class.
    CODE: Optional[int] = None

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        *,
        request_id: Any = None,
        method: Optional[str] = None,
    ) -> None:
        self.code = code
        self.message = message
        self.data: Dict[str, Any] = dict(data) if isinstance(data, Mapping) else {}
        #: ``error.data`` exactly as received, in case it was not an object.
        self.raw_data = data
        self.request_id = request_id
        self.method = method
        super().__init__(code, message)

    @property
    def hint(self) -> Optional[str]:
        """The contract's one-sentence advice a person can act on (``data.hint``)."""
        hint = self.data.get("hint")
        return hint if isinstance(hint, str) else None

    def __str__(self) -> str:
        where = " (%s)" % self.method if self.method else ""
        text = "%s [%d]%s: %s" % (type(self).__name__, self.code, where, self.message)
        if self.hint:
            text += " -- hint: %s" % self.hint
        return text

    def __repr__(self) -> str:
        return "%s(code=%r, message=%r, data=%r)" % (
            type(self).__name__,
            self.code,
            self.message,
            self.raw_data,
        )


class ParseError(LoramError):
    """-32700: the body was not JSON, or the header was malformed."""

    CODE = -32700


class InvalidRequest(LoramError):
    """-32600: not a JSON-RPC 2.0 request object, or a request after ``shutdown``."""

    CODE = -32600


class MethodNotFound(LoramError):
    """-32601: the daemon has no such method (debug methods need ``--debug-methods``)."""

    CODE = -32601


class InvalidParams(LoramError):
    """-32602: a missing, ill-typed or out-of-range param; ``field`` names it."""

    CODE = -32602

    @property
    def field(self) -> Optional[str]:
        """The offending param (``data.field``), e.g. ``"ms"``."""
        field = self.data.get("field")
        return field if isinstance(field, str) else None


class InternalError(LoramError):
    """-32603: a bug in the daemon; it keeps serving."""

    CODE = -32603


class ServerNotInitialized(LoramError):
    """-32002: a request before ``initialize``."""

    CODE = -32002


class RequestCancelled(LoramError):
    """-32800: cancelled by ``$/cancelRequest`` or by end of input."""

    CODE = -32800


class NotFound(LoramError):
    """-31001: unknown modelId/adapterId/jobId, or a path that does not exist."""

    CODE = -31001


class FormatError(LoramError):
    """-31010: a checkpoint, tokenizer, adapter or dataset that cannot be read."""

    CODE = -31010


class ShapeMismatch(LoramError):
    """-31011: an adapter that does not fit the model it is applied to."""

    CODE = -31011


class OverBudget(LoramError):
    """-31020: the memory plan does not fit ``hbmCapBytes``; nothing was allocated."""

    CODE = -31020

    @property
    def need_bytes(self) -> Optional[int]:
        """Bytes the plan needs (``data.needBytes``)."""
        return _int_or_none(self.data.get("needBytes"))

    @property
    def cap_bytes(self) -> Optional[int]:
        """The budget it had to fit in (``data.capBytes``)."""
        return _int_or_none(self.data.get("capBytes"))

    @property
    def breakdown(self) -> Optional[Dict[str, Any]]:
        """The plan's per-category bytes (``data.breakdown``)."""
        value = self.data.get("breakdown")
        return value if isinstance(value, dict) else None

    @property
    def suggestion(self) -> Any:
        """A change that would fit (``data.suggestion``), if the daemon found one."""
        return self.data.get("suggestion")


class LoramIOError(LoramError):
    """-31030 IOError: the file system refused a write (disk full, read-only, no permission).

    Named so it does not shadow Python's built-in ``IOError``. Nothing partial was left behind.
    """

    CODE = -31030

    @property
    def path(self) -> Optional[str]:
        """The output (or parent folder) that could not be written (``data.path``)."""
        value = self.data.get("path")
        return value if isinstance(value, str) else None

    @property
    def reason(self) -> Optional[str]:
        """The operating system's text, e.g. "No space left on device" (``data.reason``)."""
        value = self.data.get("reason")
        return value if isinstance(value, str) else None

    @property
    def errno(self) -> Optional[int]:
        """The OS error number (``data.errno``)."""
        return _int_or_none(self.data.get("errno"))


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _classes(classes: Iterable[Type[LoramError]]) -> Dict[int, Type[LoramError]]:
    return {cls.CODE: cls for cls in classes if cls.CODE is not None}


#: code -> exception class, for every code the contract names.
ERROR_CLASSES: Dict[int, Type[LoramError]] = _classes(
    [
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ServerNotInitialized,
        RequestCancelled,
        NotFound,
        FormatError,
        ShapeMismatch,
        OverBudget,
        LoramIOError,
    ]
)


def error_from_response(
    error: Any, *, request_id: Any = None, method: Optional[str] = None
) -> LoramError:
    """Build the typed exception for a response's ``error`` member.

    Tolerates a malformed error object (missing or non-integer code, non-string message):
    the result is then a plain LoramError describing what arrived, never a crash in the
    reader thread.
    """
    if not isinstance(error, Mapping):
        return LoramError(
            InternalError.CODE or -32603,
            "malformed error object: %r" % (error,),
            request_id=request_id,
            method=method,
        )
    code = error.get("code")
    message = error.get("message")
    if isinstance(code, bool) or not isinstance(code, int):
        code_int = -32603
        message = "malformed error code %r: %s" % (code, message)
        cls: Type[LoramError] = LoramError
    else:
        code_int = code
        cls = ERROR_CLASSES.get(code, LoramError)
    if not isinstance(message, str):
        message = str(message)
    return cls(code_int, message, error.get("data"), request_id=request_id, method=method)


class ClientError(Exception):
    """A failure on the client's side of the pipe (no error response involved)."""


class DaemonNotFound(ClientError, FileNotFoundError):
    """No daemon binary: not given, not in ``$LORAMD``, not on PATH, no ``.build`` above cwd."""


class DaemonExited(ClientError):
    """The daemon process is gone; every request still pending fails with this.

    Attributes:
        exit_code: the process's exit status (negative: killed by that signal; None if it
            had not been reaped yet).
        stderr_lines: the last lines the daemon wrote to stderr, when the client captured it.
    """

    def __init__(self, exit_code: Optional[int], stderr_lines: Iterable[str] = (), reason: str = "") -> None:
        self.exit_code = exit_code
        self.stderr_lines: List[str] = list(stderr_lines)
        self.reason = reason
        super().__init__(exit_code, self.stderr_lines)

    def __str__(self) -> str:
        text = "loramd exited" if self.exit_code is not None else "loramd is gone"
        if self.exit_code is not None:
            text += " with code %d" % self.exit_code
        if self.reason:
            text += " (%s)" % self.reason
        if self.stderr_lines:
            text += "; last stderr lines:\n  " + "\n  ".join(self.stderr_lines)
        return text


class RequestTimeout(ClientError, TimeoutError):
    """A blocking request had no answer within its timeout (the client then cancels it)."""

    def __init__(self, method: str, request_id: int, timeout: float) -> None:
        self.method = method
        self.request_id = request_id
        self.timeout = timeout
        super().__init__("%s (id %d) had no answer within %gs" % (method, request_id, timeout))


class ProtocolError(ClientError):
    """The daemon sent something that is not valid base protocol / JSON-RPC."""


class CallbackDeadlock(ClientError, RuntimeError):
    """A blocking request was made from a callback, which would wait on itself forever.

    Callbacks (progress, notifications, future done-callbacks) run on the client's single
    dispatch thread, the same thread that delivers responses; from there, use
    ``request_async`` instead of ``request``.
    """
