#!/usr/bin/env python3
"""The quick lane under a flood of large replies: model/list latency while model/forward answers
with multi-MB base64 logits.

    python3 bench/flood.py [--loramd .build/release/loramd] [--loramd OTHER] [--requests 400]

Each daemon loads make-model's `small` random model (vocab 4,096) and is sent ``--requests``
requests back to back without waiting: every ``--every``-th a `model/forward` of ``--rows`` ids
with ``logits: "all"`` in base64 (256 rows: 4.2 MB of logits, 5.6 MB on the wire), the rest
`model/list`. A reader thread takes every byte off stdout as it comes and stamps each response.
Prints, per daemon, model/list's latency (send to receipt) p50/p90/p99/max, the forwards' time,
and the rounds whose model/list `usedBytes` counted more than the loaded weights. Pass
``--loramd`` twice to run two builds side by side. Results quoted go to bench/results/.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD_ID = re.compile(rb'\{"jsonrpc":"2.0","id":(\d+),')


def frame(obj):
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Reader(threading.Thread):
    """Frames stdout and stamps each message with the time its last byte arrived."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.arrived = {}
        self.bodies = {}
        self.cond = threading.Condition()

    def run(self):
        buffer = bytearray()
        fd = self.stream.fileno()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                length = int(bytes(buffer[:end]).split(b":")[1])
                if len(buffer) < end + 4 + length:
                    break
                body = bytes(buffer[end + 4:end + 4 + length])
                del buffer[:end + 4 + length]
                now = time.perf_counter()
                # Small bodies are parsed whole; a large reply's id is read from its head
                # ({"jsonrpc":"2.0","id":N,"result":...), which is all the flood needs of it.
                if len(body) > 1 << 16:
                    match = HEAD_ID.match(body)
                    msg_id, value = (int(match.group(1)) if match else None), None
                else:
                    value = json.loads(body)
                    msg_id = value.get("id")
                if msg_id is None:
                    continue
                with self.cond:
                    self.arrived[msg_id] = now
                    if value is not None:
                        self.bodies[msg_id] = value
                    self.cond.notify_all()

    def wait(self, msg_id, timeout=600):
        with self.cond:
            self.cond.wait_for(lambda: msg_id in self.arrived, timeout)
            return self.bodies.get(msg_id)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def flood(loramd, model, requests, every, rows):
    proc = subprocess.Popen([loramd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = Reader(proc.stdout)
    reader.start()

    def call(msg_id, method, params):
        proc.stdin.write(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
        proc.stdin.flush()
        return reader.wait(msg_id)

    call(0, "initialize", {"processId": None})
    model_id = call(1, "model/load", {"path": model})["result"]["modelId"]
    weights = call(2, "model/list", {})["result"]["memory"]["usedBytes"]
    ids = [1 + (i % 4000) for i in range(rows)]
    sent = {}
    kinds = {}
    start = time.perf_counter()
    for i in range(requests):
        msg_id = 100 + i
        if i % every == 0:
            msg = {"jsonrpc": "2.0", "id": msg_id, "method": "model/forward",
                   "params": {"modelId": model_id, "ids": ids, "logits": "all", "logitsEncoding": "base64"}}
            kinds[msg_id] = "forward"
        else:
            msg = {"jsonrpc": "2.0", "id": msg_id, "method": "model/list", "params": {}}
            kinds[msg_id] = "list"
        sent[msg_id] = time.perf_counter()
        proc.stdin.write(frame(msg))
        proc.stdin.flush()
    for msg_id in sent:
        reader.wait(msg_id)
    total = time.perf_counter() - start
    lists = [reader.arrived[i] - sent[i] for i in sent if kinds[i] == "list"]
    phantom = sum(1 for i in sent if kinds[i] == "list" and reader.bodies[i]["result"]["memory"]["usedBytes"] > weights)
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 9, "method": "shutdown"}))
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    proc.stdin.close()
    proc.wait(timeout=60)
    return {"loramd": loramd, "requests": requests, "forwards": sum(1 for k in kinds.values() if k == "forward"),
            "listP50": percentile(lists, 0.5), "listP90": percentile(lists, 0.9), "listP99": percentile(lists, 0.99),
            "listMax": max(lists), "seconds": total, "phantomRounds": phantom, "lists": len(lists)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loramd", action="append")
    parser.add_argument("--model", help="a model folder (default: make-model's small, made once)")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--every", type=int, default=4, help="every N-th request is a large forward")
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds per daemon")
    args = parser.parse_args()
    daemons = args.loramd or [os.path.join(ROOT, ".build", "release", "loramd")]
    model = args.model
    if model is None:
        model = os.path.join(tempfile.gettempdir(), "loramd-flood-small")
        if not os.path.exists(os.path.join(model, "config.json")):
            subprocess.run([daemons[0], "make-model", "--preset", "small", "--out", model], check=True, stdout=subprocess.DEVNULL)
    results = []
    for _ in range(args.rounds):
        for daemon in daemons:
            results.append(flood(daemon, model, args.requests, args.every, args.rows))
    print("%-40s %8s %8s %8s %8s %8s %8s" % ("loramd", "p50 ms", "p90 ms", "p99 ms", "max ms", "total s", "phantom"))
    for r in results:
        print("%-40s %8.1f %8.1f %8.1f %8.1f %8.1f %5d/%d" % (r["loramd"][-40:], 1e3 * r["listP50"], 1e3 * r["listP90"],
                                                          1e3 * r["listP99"], 1e3 * r["listMax"], r["seconds"], r["phantomRounds"], r["lists"]))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
