"""The daemon as an operating-system process: spawning it, its stderr, its exit.

stdin and stdout are pipes owned by the RPC layer. stderr carries the daemon's logs; by
default it is drained on a thread into a bounded buffer of recent lines, so a crash can be
reported with its last words and a chatty daemon never blocks on a full stderr pipe.
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
from typing import IO, Any, Callable, Deque, List, Mapping, Optional, Sequence, Union

__all__ = ["StderrSpec", "DaemonProcess"]

#: None: capture recent lines; a callable: capture and also call it with each line (without
#: the newline); anything else is passed to subprocess.Popen as is (DEVNULL, a file, ...).
StderrSpec = Union[None, Callable[[str], None], int, IO[Any]]


class DaemonProcess:
    """A spawned daemon with piped stdin/stdout and (optionally) captured stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        env: Optional[Mapping[str, str]] = None,
        stderr: StderrSpec = None,
        keep_stderr_lines: int = 200,
    ) -> None:
        self.argv = list(argv)
        self._tail: Deque[str] = collections.deque(maxlen=keep_stderr_lines)
        self._tail_lock = threading.Lock()
        self._on_line: Optional[Callable[[str], None]] = stderr if callable(stderr) else None
        capture = stderr is None or callable(stderr)
        if stderr == subprocess.PIPE:
            raise ValueError("stderr=PIPE would fill up unread; pass None to capture it instead")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture else stderr,
            cwd=None if cwd is None else os.fspath(cwd),
            env=None if env is None else dict(env),
        )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.stdin: IO[bytes] = self.popen.stdin
        self.stdout: IO[bytes] = self.popen.stdout
        self._stderr_thread: Optional[threading.Thread] = None
        if capture:
            self._stderr_thread = threading.Thread(
                target=self._drain_stderr, name="loram_client-stderr", daemon=True
            )
            self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> Optional[int]:
        """The exit status once reaped (negative: killed by that signal), else None."""
        return self.popen.poll()

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for exit; raises subprocess.TimeoutExpired if still running after timeout."""
        return self.popen.wait(timeout)

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    def stderr_lines(self, wait: Optional[float] = None) -> List[str]:
        """The captured recent stderr lines; ``wait`` first lets the drain thread catch up
        (useful right after exit, when the last lines may still be in the pipe)."""
        if wait is not None and self._stderr_thread is not None:
            self._stderr_thread.join(wait)
        with self._tail_lock:
            return list(self._tail)

    def close_pipes(self) -> None:
        """Close our ends of the pipes (after exit; frees the file descriptors)."""
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def _drain_stderr(self) -> None:
        stream = self.popen.stderr
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                with self._tail_lock:
                    self._tail.append(line)
                if self._on_line is not None:
                    try:
                        self._on_line(line)
                    except Exception:  # a logging callback must not kill the drain
                        pass
        except (OSError, ValueError):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass
