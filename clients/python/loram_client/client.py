"""LoramClient: spawns loramd and talks JSON-RPC 2.0 to it over its stdin/stdout.

Threads, and why:

* the caller's threads send requests; a lock in the FrameWriter keeps messages whole;
* a reader thread does nothing but parse frames from the daemon's stdout, so the daemon
  never blocks on a full pipe however slow the callbacks are;
* a dispatch thread (see dispatch.py) completes futures and runs callbacks in the order the
  daemon sent them: when ``request()`` returns, every ``$/progress`` sent before the
  response has already been delivered;
* a stderr thread (see process.py) keeps the daemon's recent log lines for error reports.

If the daemon exits, every pending request fails with DaemonExited (exit code and last
stderr lines included), and later calls raise it at once.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import queue
import subprocess
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._version import __version__
from .dispatch import Dispatcher
from .errors import (
    CallbackDeadlock,
    DaemonExited,
    DaemonNotFound,
    ProtocolError,
    RequestTimeout,
    error_from_response,
)
from .framing import FrameReader, FrameWriter, FramingError, encode_frame
from .future import RequestFuture
from .locate import find_daemon
from .process import DaemonProcess, StderrSpec
from .progress import ProgressCallback, ProgressRouter, ProgressToken, new_token

__all__ = ["LoramClient", "DEBUG_METHODS_FLAG"]

log = logging.getLogger("loram_client")

#: The daemon flag that enables the ``debug/*`` methods.
DEBUG_METHODS_FLAG = "--debug-methods"

#: ``callback(params)`` for a notification from the daemon.
NotificationCallback = Callable[[Any], None]

Command = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]

_STDERR_LINES_IN_ERRORS = 20


class LoramClient:
    """A running loramd and the JSON-RPC session with it.

    Args:
        command: the daemon executable, or an argv prefix list. Default: ``$LORAMD``, else
            ``loramd`` on PATH, else ``.build/{debug,release}/loramd`` at or above ``cwd``.
        args: extra arguments for the daemon.
        cwd: the daemon's working directory (relative paths in params resolve against it).
        env: variables overlaid on the current environment (a value of None removes one).
        initialize: send ``initialize`` (and then ``initialized``) before returning.
        init_params: extra ``initialize`` params (``hbmCapBytes``, ``threads``, ...); they
            override the defaults ``processId`` and ``clientInfo``.
        stderr: None captures the daemon's stderr (see :attr:`stderr_lines`); a callable is
            also called with each line; otherwise anything ``subprocess.Popen`` accepts.
        debug_methods: add ``--debug-methods`` to the daemon's arguments.
        lifecycle_timeout: seconds to wait for ``initialize``, ``shutdown`` and exit.

    Use as a context manager so the daemon is shut down however the block ends::

        with LoramClient() as client:
            print(client.request("model/list"))
    """

    def __init__(
        self,
        command: Optional[Command] = None,
        args: Sequence[Union[str, "os.PathLike[str]"]] = (),
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        env: Optional[Mapping[str, Optional[str]]] = None,
        initialize: bool = True,
        init_params: Optional[Mapping[str, Any]] = None,
        stderr: StderrSpec = None,
        *,
        debug_methods: bool = False,
        lifecycle_timeout: float = 30.0,
    ) -> None:
        self.lifecycle_timeout = lifecycle_timeout
        self.init_result: Optional[Dict[str, Any]] = None
        self.server_info: Optional[Dict[str, Any]] = None
        self.capabilities: Optional[Dict[str, Any]] = None
        self.device: Optional[Dict[str, Any]] = None

        self._lock = threading.Lock()  # guards _pending, _dead, _ids
        self._ids = itertools.count(1)
        self._pending: Dict[int, RequestFuture] = {}
        self._dead: Optional[DaemonExited] = None
        self._closed = False
        self._handlers: Dict[str, List[NotificationCallback]] = {}
        self._handlers_lock = threading.Lock()
        self._progress = ProgressRouter()
        self._unmatched: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        #: What the daemon sent that broke the protocol (bad frames, non-JSON, non-objects);
        #: the contract says stdout carries only protocol messages, so tests can assert this
        #: stays empty. Bounded to the first 100.
        self.protocol_errors: List[ProtocolError] = []

        merged_env = _overlay_env(env)
        self.argv = _build_argv(command, args, cwd, merged_env, debug_methods)
        try:
            self._proc = DaemonProcess(self.argv, cwd=cwd, env=merged_env, stderr=stderr)
        except FileNotFoundError as exc:
            raise DaemonNotFound("cannot run %s: %s" % (self.argv[0], exc)) from exc
        self._writer = FrameWriter(self._proc.stdin)
        self._dispatcher = Dispatcher()
        self._reader = threading.Thread(target=self._read_loop, name="loram_client-reader", daemon=True)
        self._reader.start()

        if initialize:
            try:
                self.initialize(init_params)
            except BaseException:
                self.close(timeout=2.0)
                raise

    # ------------------------------------------------------------------ lifecycle

    def initialize(self, init_params: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Send ``initialize`` then the ``initialized`` notification; returns the result,
        also kept as :attr:`init_result`, :attr:`server_info`, :attr:`capabilities` and
        :attr:`device`."""
        params: Dict[str, Any] = {
            "processId": os.getpid(),
            "clientInfo": {"name": "loram_client", "version": __version__},
        }
        if init_params:
            params.update(init_params)
        result = self.request(
            "initialize", params, timeout=self.lifecycle_timeout if timeout is None else timeout
        )
        self.init_result = result if isinstance(result, dict) else {"result": result}
        self.server_info = self.init_result.get("serverInfo")
        self.capabilities = self.init_result.get("capabilities")
        self.device = self.init_result.get("device")
        self.notify("initialized", {})
        return self.init_result

    def shutdown(self, timeout: Optional[float] = None) -> int:
        """Send ``shutdown`` and then ``exit``; wait for the daemon and return its exit code.

        Raises the daemon's error if it refuses ``shutdown`` (it is then still running and
        :meth:`close` still works).
        """
        limit = self.lifecycle_timeout if timeout is None else timeout
        self.request("shutdown", None, timeout=limit)
        return self.exit(limit)

    def exit(self, timeout: Optional[float] = None) -> int:
        """Send ``exit`` (0 after ``shutdown``, else 1), wait for the process, return its code.

        Raises subprocess.TimeoutExpired if it is still running after ``timeout``.
        """
        try:
            self.notify("exit")
        except DaemonExited:
            pass
        return self.wait(timeout, close_stdin=True)

    def close_stdin(self) -> None:
        """Close the daemon's stdin: the contract says it then cancels its work and exits."""
        try:
            self._writer.close()
        except (OSError, ValueError):
            pass

    def wait(self, timeout: Optional[float] = None, close_stdin: bool = False) -> int:
        """Wait for the daemon to exit and return its exit code (negative: a signal).

        ``timeout`` None means :attr:`lifecycle_timeout`; raises subprocess.TimeoutExpired
        if the daemon is still running then. ``close_stdin`` first tells it to go.
        """
        if close_stdin:
            self.close_stdin()
        code = self._proc.wait(self.lifecycle_timeout if timeout is None else timeout)
        self._finish()
        return code

    def close(self, timeout: float = 5.0) -> Optional[int]:
        """Stop the daemon however it is doing: ``shutdown`` + ``exit`` if it answers, else
        terminate, else kill. Idempotent; returns the exit code."""
        if self._proc.returncode is None:
            try:
                if self._dead is None:
                    try:
                        self.request("shutdown", None, timeout=timeout)
                    except Exception:  # refused, timed out, or called from a callback
                        pass
                self.exit(timeout)
            except Exception:
                pass
        for stop in (self._proc.terminate, self._proc.kill):
            if self._proc.returncode is not None:
                break
            stop()
            try:
                self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
        self._finish()
        return self._proc.returncode

    def __enter__(self) -> "LoramClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _finish(self) -> None:
        """After exit: let the reader fail what is pending, then stop the threads."""
        if self._closed:
            return
        self._closed = True
        self._reader.join(5.0)
        self._dispatcher.stop(5.0)
        self._proc.close_pipes()

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self._proc.pid

    @property
    def process(self) -> DaemonProcess:
        """The daemon process (its ``popen`` is the underlying subprocess.Popen)."""
        return self._proc

    @property
    def returncode(self) -> Optional[int]:
        """The daemon's exit code, or None while it runs."""
        return self._proc.returncode

    @property
    def running(self) -> bool:
        """True while the daemon process has not exited."""
        return self._proc.returncode is None

    @property
    def stderr_lines(self) -> List[str]:
        """Recent lines of the daemon's stderr (empty unless captured; see ``stderr``)."""
        return self._proc.stderr_lines()

    @property
    def pending_ids(self) -> List[int]:
        """Ids of the requests still waiting for an answer."""
        with self._lock:
            return sorted(self._pending)

    # ------------------------------------------------------------------ requests

    def request_async(
        self,
        method: str,
        params: Any = None,
        *,
        work_done_token: Optional[ProgressToken] = None,
        on_progress: Optional[ProgressCallback] = None,
    ) -> RequestFuture:
        """Send a request and return its future at once.

        ``on_progress(value)`` receives each ``$/progress`` value for this request; without
        ``work_done_token`` a unique token is generated. Either way the token goes into the
        params as ``workDoneToken`` (the caller's params object is not modified).
        """
        params, token = _with_progress_token(params, work_done_token, on_progress)
        with self._lock:
            if self._dead is not None:
                raise self._dead
            request_id = next(self._ids)
            future = RequestFuture(self, request_id, method, token)
            self._pending[request_id] = future
        message: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        try:
            if on_progress is not None:
                self._progress.register(token, on_progress)  # type: ignore[arg-type]
            data = encode_frame(message)
        except BaseException:
            self._forget(request_id, future)
            raise
        try:
            self._writer.write_raw(data)
        except (OSError, ValueError) as exc:
            self._forget(request_id, future)
            raise self._death_on_write(exc) from exc
        return future

    def request(
        self,
        method: str,
        params: Any = None,
        timeout: Optional[float] = None,
        work_done_token: Optional[ProgressToken] = None,
        on_progress: Optional[ProgressCallback] = None,
    ) -> Any:
        """Send a request and wait for its result; raises the typed LoramError on an error
        response, DaemonExited if the daemon dies, RequestTimeout (after cancelling the
        request) if ``timeout`` seconds pass."""
        if self._dispatcher.on_dispatch_thread():
            raise CallbackDeadlock(
                "request(%r) from a callback would wait forever; use request_async" % method
            )
        future = self.request_async(method, params, work_done_token=work_done_token, on_progress=on_progress)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # answered in the meantime; concurrent.futures raced us
                return future.result()
            future.cancel()
            raise RequestTimeout(method, future.request_id, timeout or 0.0) from None

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer comes back)."""
        message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        data = encode_frame(message)
        if self._dead is not None:
            raise self._dead
        try:
            self._writer.write_raw(data)
        except (OSError, ValueError) as exc:
            raise self._death_on_write(exc) from exc

    def cancel(self, request: Union[int, RequestFuture]) -> None:
        """Send ``$/cancelRequest`` for a request id or a future from request_async."""
        request_id = request.request_id if isinstance(request, RequestFuture) else request
        self.notify("$/cancelRequest", {"id": request_id})

    def send_raw(self, data: bytes) -> None:
        """Write bytes to the daemon's stdin exactly as given (framed or not), whole.

        Answers to raw requests arrive in :meth:`next_unmatched_response`, since the client
        did not assign their ids.
        """
        if self._dead is not None:
            raise self._dead
        try:
            self._writer.write_raw(data)
        except (OSError, ValueError) as exc:
            raise self._death_on_write(exc) from exc

    def next_unmatched_response(self, timeout: Optional[float] = None) -> Any:
        """The next message that answered no request of this client (an id of null, e.g. a
        ParseError, or the id of a request written with send_raw). Raises queue.Empty."""
        return self._unmatched.get(timeout=timeout)

    # ------------------------------------------------------------------ notifications

    def on_notification(self, method: str, callback: NotificationCallback) -> Callable[[], None]:
        """Call ``callback(params)`` for each notification ``method`` from the daemon
        (``window/logMessage``; ``$/progress`` too, for every token). Runs on the dispatch
        thread; returns a function that removes the callback."""
        with self._handlers_lock:
            self._handlers.setdefault(method, []).append(callback)

        def remove() -> None:
            with self._handlers_lock:
                callbacks = self._handlers.get(method, [])
                if callback in callbacks:
                    callbacks.remove(callback)

        return remove

    # ------------------------------------------------------------------ internals

    def _check_not_in_callback(self, future: RequestFuture, timeout: Optional[float]) -> None:
        if not future.done() and self._dispatcher.on_dispatch_thread():
            raise CallbackDeadlock(
                "waiting on %r from a callback would block the thread that completes it" % future
            )

    def _forget(self, request_id: int, future: RequestFuture) -> None:
        with self._lock:
            self._pending.pop(request_id, None)
        if future.progress_token is not None:
            self._progress.unregister(future.progress_token)

    def _death_on_write(self, exc: BaseException) -> DaemonExited:
        """The pipe broke under a write: the daemon is gone (or we closed its stdin)."""
        if self._dead is not None:
            return self._dead
        try:
            code: Optional[int] = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            code = None
        reason = "its stdin is closed" if code is None else "write failed: %s" % exc
        return DaemonExited(code, self._proc.stderr_lines()[-_STDERR_LINES_IN_ERRORS:], reason)

    def _read_loop(self) -> None:
        reader = FrameReader(self._proc.stdout)
        reason = ""
        while True:
            try:
                message = reader.read_message()
            except FramingError as exc:
                self._protocol_error("malformed frame: %s" % exc)
                continue
            except (EOFError, OSError, ValueError) as exc:
                reason = str(exc)
                break
            if message is None:
                break
            self._dispatcher.submit(lambda message=message: self._handle(message))
        self._on_stdout_closed(reason)

    def _on_stdout_closed(self, reason: str) -> None:
        try:
            code: Optional[int] = self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            code = None
            reason = reason or "it closed its stdout"
        lines = self._proc.stderr_lines(wait=1.0 if code is not None else None)
        dead = DaemonExited(code, lines[-_STDERR_LINES_IN_ERRORS:], reason)
        with self._lock:
            self._dead = dead
        self._dispatcher.submit(lambda: self._fail_pending(dead))

    def _fail_pending(self, dead: DaemonExited) -> None:
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for future in pending:
            if future.progress_token is not None:
                self._progress.unregister(future.progress_token)
            _settle(future, exception=dead)

    def _handle(self, message: Any) -> None:
        if isinstance(message, list):  # a batch answer
            for item in message:
                self._handle_one(item)
            if not message:
                self._unmatched.put(message)
        else:
            self._handle_one(message)

    def _handle_one(self, message: Any) -> None:
        if not isinstance(message, dict):
            self._protocol_error("non-object message: %r" % (message,))
            self._unmatched.put(message)
            return
        if message.get("jsonrpc") != "2.0":
            self._protocol_error("message without \"jsonrpc\": \"2.0\": %r" % (message,))
        method = message.get("method")
        if isinstance(method, str):
            if "id" in message:
                self._refuse_server_request(message)
            else:
                self._deliver_notification(method, message.get("params"))
            return
        self._deliver_response(message)

    def _protocol_error(self, text: str) -> None:
        log.warning("loramd broke the protocol: %s", text)
        if len(self.protocol_errors) < 100:
            self.protocol_errors.append(ProtocolError(text))

    def _deliver_response(self, message: Dict[str, Any]) -> None:
        request_id = message.get("id")
        if "result" not in message and "error" not in message:
            self._protocol_error("response without result or error: %r" % (message,))
        future = None
        if isinstance(request_id, int) and not isinstance(request_id, bool):
            with self._lock:
                future = self._pending.pop(request_id, None)
        if future is None:
            self._unmatched.put(message)
            return
        if future.progress_token is not None:
            self._progress.unregister(future.progress_token)
        if "error" in message:
            _settle(future, exception=error_from_response(message["error"], request_id=request_id, method=future.method))
        else:
            _settle(future, result=message.get("result"))

    def _deliver_notification(self, method: str, params: Any) -> None:
        if method == "$/progress":
            thunk = self._progress.lookup(params)
            if thunk is not None:
                try:
                    thunk()
                except Exception:
                    log.exception("progress callback raised")
        with self._handlers_lock:
            callbacks = list(self._handlers.get(method, ()))
        for callback in callbacks:
            try:
                callback(params)
            except Exception:
                log.exception("callback for %s raised", method)

    def _refuse_server_request(self, message: Dict[str, Any]) -> None:
        """The contract has no daemon-to-client requests; answer any with MethodNotFound so
        the daemon is never left waiting."""
        reply = {
            "jsonrpc": "2.0",
            "id": message.get("id"),
            "error": {
                "code": -32601,
                "message": "loram_client does not handle %s" % message.get("method"),
                "data": {"hint": "the RPC contract has no daemon-to-client requests"},
            },
        }
        try:
            self._writer.write_message(reply)
        except (OSError, ValueError):
            pass

    def __repr__(self) -> str:
        state = "running" if self.running else "exited %s" % self.returncode
        return "<LoramClient pid=%d %s>" % (self.pid, state)


def _settle(future: RequestFuture, *, result: Any = None, exception: Optional[BaseException] = None) -> None:
    """Complete a future unless the caller already cancelled it locally."""
    if future.done():
        return
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:  # cancelled from another thread just now
        pass


def _with_progress_token(
    params: Any, token: Optional[ProgressToken], on_progress: Optional[ProgressCallback]
) -> Tuple[Any, Optional[ProgressToken]]:
    """Params with ``workDoneToken`` set when progress is wanted, and the token used."""
    if token is None and on_progress is None:
        return params, None
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise TypeError("progress needs object params, got %s" % type(params).__name__)
    if token is None:
        token = params.get("workDoneToken") or new_token()
    params = dict(params)
    params["workDoneToken"] = token
    return params, token


def _overlay_env(env: Optional[Mapping[str, Optional[str]]]) -> Optional[Dict[str, str]]:
    if env is None:
        return None
    merged = dict(os.environ)
    for key, value in env.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _build_argv(
    command: Optional[Command],
    args: Sequence[Union[str, "os.PathLike[str]"]],
    cwd: Optional[Union[str, "os.PathLike[str]"]],
    env: Optional[Mapping[str, str]],
    debug_methods: bool,
) -> List[str]:
    if command is None:
        argv = [find_daemon(start=cwd, env=env)]
    elif isinstance(command, (str, os.PathLike)):
        argv = [os.fspath(command)]
    else:
        argv = [os.fspath(part) for part in command]
        if not argv:
            raise ValueError("empty command")
    argv.extend(os.fspath(arg) for arg in args)
    if debug_methods and DEBUG_METHODS_FLAG not in argv:
        argv.append(DEBUG_METHODS_FLAG)
    return argv

