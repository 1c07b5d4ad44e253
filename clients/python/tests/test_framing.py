"""The LSP base protocol: framing round trips, tolerated header variants, malformed input."""

from __future__ import annotations

import io
import json
import threading

import pytest

from loram_client.framing import FrameReader, FrameWriter, FramingError, encode_frame


def reader_of(data: bytes) -> FrameReader:
    return FrameReader(io.BufferedReader(io.BytesIO(data)))


def test_round_trip_several_messages_then_clean_eof():
    messages = [{"jsonrpc": "2.0", "id": i, "method": "m", "params": {"i": i}} for i in range(3)]
    reader = reader_of(b"".join(encode_frame(m) for m in messages))
    assert [reader.read_message() for _ in messages] == messages
    assert reader.read_message() is None


def test_content_length_counts_utf8_bytes_not_characters():
    message = {"text": "héllo wörld ✓ 🦙"}
    frame = encode_frame(message)
    header, body = frame.split(b"\r\n\r\n", 1)
    assert header == b"Content-Length: %d" % len(body)
    assert len(body) > len(json.dumps(message, ensure_ascii=False))
    assert reader_of(frame).read_message() == message


@pytest.mark.parametrize(
    "header",
    [
        b"content-length: %d\r\n\r\n",
        b"CONTENT-LENGTH:%d\r\n\r\n",
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: %d\r\n\r\n",
        b"Content-Length: %d\r\nX-Unknown: 1\r\n\r\n",
        b"Content-Length: %d\n\n",
    ],
)
def test_header_variants(header):
    body = b'{"a":1}'
    assert reader_of(header % len(body) + body).read_message() == {"a": 1}


def test_missing_content_length():
    with pytest.raises(FramingError):
        reader_of(b"Content-Type: x\r\n\r\n{}").read_frame()


@pytest.mark.parametrize("value", [b"abc", b"-1", b""])
def test_bad_content_length(value):
    with pytest.raises(FramingError):
        reader_of(b"Content-Length: " + value + b"\r\n\r\n{}").read_frame()


def test_header_line_without_colon():
    with pytest.raises(FramingError):
        reader_of(b"garbage\r\n\r\n").read_frame()


def test_truncated_body_is_eof():
    with pytest.raises(EOFError):
        reader_of(b"Content-Length: 10\r\n\r\n{}").read_frame()


def test_eof_inside_headers():
    with pytest.raises(EOFError):
        reader_of(b"Content-Length: 10\r\n").read_frame()


def test_non_json_body_is_consumed_and_reading_continues():
    reader = reader_of(b"Content-Length: 3\r\n\r\n{x}" + encode_frame({"ok": True}))
    with pytest.raises(FramingError):
        reader.read_message()
    assert reader.read_message() == {"ok": True}


def test_nan_is_rejected_before_sending():
    with pytest.raises(ValueError):
        encode_frame({"x": float("nan")})


def test_writer_keeps_messages_whole_across_threads():
    sink = io.BytesIO()
    writer = FrameWriter(sink)
    per_thread, threads = 200, 8

    def work(t: int) -> None:
        for i in range(per_thread):
            writer.write_message({"t": t, "i": i, "pad": "x" * (i % 50)})

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    reader = reader_of(sink.getvalue())
    seen = []
    while True:
        message = reader.read_message()
        if message is None:
            break
        seen.append((message["t"], message["i"]))
    assert sorted(seen) == [(t, i) for t in range(threads) for i in range(per_thread)]
    for t in range(threads):  # each thread's own messages stay in order
        assert [i for tt, i in seen if tt == t] == list(range(per_thread))
