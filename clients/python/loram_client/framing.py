"""LSP base-protocol framing: how one JSON-RPC message travels over a byte stream.

Every message is a header block followed by a body::

    Content-Length: N\\r\\n
    Content-Type: application/vscode-jsonrpc; charset=utf-8\\r\\n   (optional)
    \\r\\n
    <N bytes of UTF-8 JSON>

This module knows nothing about JSON-RPC semantics (ids, methods, errors); it only turns
Python objects into frames and frames back into Python objects, so the client, the tests
and any fake daemon share one implementation of the wire format.
"""

from __future__ import annotations

import json
import threading
from typing import Any, BinaryIO, Dict, Optional

__all__ = [
    "FramingError",
    "encode_body",
    "encode_frame",
    "frame_bytes",
    "FrameReader",
    "FrameWriter",
]

#: Headers longer than this are treated as garbage rather than read forever.
MAX_HEADER_LINE = 8192


class FramingError(ValueError):
    """The byte stream does not follow the base protocol (bad header, bad length, bad JSON)."""


def encode_body(message: Any) -> bytes:
    """Serialise one JSON-RPC message (or batch) to compact UTF-8 JSON.

    NaN and infinities are rejected here, because they are not JSON and the daemon would
    answer them with a ParseError far away from the code that produced them.
    """
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def frame_bytes(body: bytes) -> bytes:
    """Prefix an already-encoded body with its ``Content-Length`` header."""
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode_frame(message: Any) -> bytes:
    """Encode a message and frame it: the exact bytes that go on the wire."""
    return frame_bytes(encode_body(message))


class FrameReader:
    """Reads framed messages from a blocking binary stream (e.g. a subprocess's stdout).

    Header names are matched case-insensitively, unknown headers (``Content-Type`` among
    them) are ignored, and a bare ``\\n`` line ending is tolerated. Not thread-safe: one
    thread owns the reader.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read_headers(self) -> Optional[Dict[str, str]]:
        """Read one header block; returns None at a clean end of stream before any header."""
        headers: Dict[str, str] = {}
        first = True
        while True:
            line = self._stream.readline(MAX_HEADER_LINE + 1)
            if not line:
                if first:
                    return None
                raise EOFError("end of stream inside a header block")
            if len(line) > MAX_HEADER_LINE:
                raise FramingError("header line longer than %d bytes" % MAX_HEADER_LINE)
            text = line.rstrip(b"\r\n")
            if not text:
                if first:
                    # Tolerate stray blank lines between messages.
                    continue
                return headers
            first = False
            name, sep, value = text.partition(b":")
            if not sep:
                raise FramingError("malformed header line %r" % text[:80])
            try:
                headers[name.strip().decode("ascii").lower()] = value.strip().decode("ascii")
            except UnicodeDecodeError as exc:
                raise FramingError("non-ASCII header line %r" % text[:80]) from exc

    def read_frame(self) -> Optional[bytes]:
        """Read one message body as raw bytes; None at a clean end of stream.

        Raises FramingError for a header block without a valid ``Content-Length`` and
        EOFError when the stream ends in the middle of a message.
        """
        headers = self.read_headers()
        if headers is None:
            return None
        raw_length = headers.get("content-length")
        if raw_length is None:
            raise FramingError("header block without Content-Length: %r" % headers)
        try:
            length = int(raw_length)
        except ValueError as exc:
            raise FramingError("bad Content-Length %r" % raw_length) from exc
        if length < 0:
            raise FramingError("negative Content-Length %d" % length)
        body = self._read_exactly(length)
        return body

    def read_message(self) -> Any:
        """Read one message and decode its JSON; None at a clean end of stream.

        Raises FramingError if the body is not UTF-8 JSON (the frame is consumed either way,
        so the caller may keep reading).
        """
        body = self.read_frame()
        if body is None:
            return None
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FramingError("body is not UTF-8 JSON: %s" % exc) from exc

    def _read_exactly(self, length: int) -> bytes:
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = self._stream.read(remaining)
            if not chunk:
                raise EOFError("end of stream after %d of %d body bytes" % (length - remaining, length))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


class FrameWriter:
    """Writes framed messages to a binary stream, one whole message at a time.

    A lock serialises writers, so messages sent from several threads never interleave;
    each write is flushed at once because the peer is waiting on a pipe.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write_message(self, message: Any) -> None:
        """Encode, frame and send one message (or a batch list)."""
        self.write_raw(encode_frame(message))

    def write_raw(self, data: bytes) -> None:
        """Send bytes exactly as given: for tests that need malformed or hand-made frames."""
        with self._lock:
            self._stream.write(data)
            self._stream.flush()

    def close(self) -> None:
        """Close the stream (for a daemon's stdin: tells it the client is gone)."""
        with self._lock:
            self._stream.close()
