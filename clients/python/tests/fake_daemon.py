"""A tiny stand-in daemon for testing the client's own mechanics without the Swift build.

It speaks the same framing and lifecycle as loramd, plus a few methods that make the
daemon misbehave on purpose (crash with stderr output, print non-protocol text, send a
request to the client), which the real daemon cannot be asked to do.

Methods: initialize, shutdown, exit, echo (result = params), crash {code, lines},
garbage (writes junk to stdout, then answers), ask (sends the client a request and
answers with the client's reply), progress {workDoneToken} (begin/report/end, then answers),
never (does not answer).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loram_client.framing import FrameReader, FrameWriter  # noqa: E402

reader = FrameReader(sys.stdin.buffer)
writer = FrameWriter(sys.stdout.buffer)


def reply(request_id, result=None, error=None):
    message = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        message["error"] = error
    else:
        message["result"] = result
    writer.write_message(message)


def main() -> int:
    shut_down = False
    while True:
        message = reader.read_message()
        if message is None:
            return 0
        method = message.get("method")
        request_id = message.get("id")
        params = message.get("params")
        if method == "initialize":
            reply(
                request_id,
                {
                    "serverInfo": {"name": "fake_daemon", "version": "0"},
                    "capabilities": {"methods": ["echo"], "dtypes": [], "pruning": []},
                    "device": {"kind": "cpu", "threads": 1, "memoryBytes": 1, "hbmCapBytes": 1},
                },
            )
        elif method == "echo":
            reply(request_id, params)
        elif method == "crash":
            for line in params.get("lines", []):
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
            return int(params.get("code", 3))
        elif method == "garbage":
            sys.stdout.buffer.write(b"this is not a header\r\n\r\n")
            sys.stdout.buffer.flush()
            reply(request_id, "after garbage")
        elif method == "ask":
            writer.write_message({"jsonrpc": "2.0", "id": "srv-1", "method": "client/question", "params": {}})
            answer = reader.read_message()
            reply(request_id, answer)
        elif method == "progress":
            token = params["workDoneToken"]
            for value in ({"kind": "begin", "title": "t"}, {"kind": "report", "percentage": 50}, {"kind": "end"}):
                writer.write_message({"jsonrpc": "2.0", "method": "$/progress", "params": {"token": token, "value": value}})
            reply(request_id, "done")
        elif method == "never":
            pass
        elif method == "shutdown":
            shut_down = True
            reply(request_id, None)
        elif method == "exit":
            return 0 if shut_down else 1
        elif request_id is not None:
            reply(request_id, error={"code": -32601, "message": "no such method", "data": {"hint": "fake"}})


if __name__ == "__main__":
    sys.exit(main())
