#!/usr/bin/env python3
"""The quick lane under a flood of large replies: model/list latency while model/forward answers
with multi-MB base64 logits (issue 25, item 6).

    python3 bench/flood.py [--loramd .build/release/loramd] [--loramd OTHER] [--forwards 100]

Each daemon loads the golden tiny model (vocab 512, cheap to run, so stdout is the bottleneck, not
compute) and is kept busy with ``--inflight`` `model/forward` requests at a time, each of
``--rows`` ids with ``logits: "all"`` in base64 (2,048 rows: 4 MB of logits, 5.6 MB on the wire),
``--forwards`` in all; the reader parses each reply as a client would (its JSON, then the
base64), which is what makes replies wait on stdout (``--no-parse``: a reader as fast as the
pipe; ``--client-ms``: a client that also works that long on each, so replies queue). Meanwhile a prober sends one `model/list` every ``--probe-ms`` and waits
for its answer. A reader thread takes every byte off stdout as it comes and stamps each response
when its last byte arrives. Prints, per daemon and round, model/list's latency (send to receipt)
p50/p90/p99/max and the replies' throughput. Pass ``--loramd`` twice to run two builds side by
side, alternated. Results quoted go to bench/results/.
"""
import argparse
import base64
import json
import os
import re
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD_ID = re.compile(rb'\{"jsonrpc":"2.0","id":(\d+),')


def frame(obj):
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Reader(threading.Thread):
    """Frames stdout; stamps each response with the time its last byte arrived."""

    def __init__(self, stream, parse, client_ms):
        super().__init__(daemon=True)
        self.stream = stream
        self.parse = parse
        self.client_ms = client_ms
        self.arrived = {}
        self.bodies = {}
        self.received_bytes = 0
        self.cond = threading.Condition()

    def run(self):
        buffer = bytearray()
        need = None  # (header length, body length) of the message being read
        fd = self.stream.fileno()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            while True:
                if need is None:
                    end = buffer.find(b"\r\n\r\n", 0, 1024)
                    if end < 0:
                        break
                    need = (end + 4, int(bytes(buffer[:end]).split(b":")[1]))
                if len(buffer) < need[0] + need[1]:
                    break
                body = bytes(buffer[need[0]:need[0] + need[1]])
                del buffer[:need[0] + need[1]]
                need = None
                now = time.perf_counter()
                # A large reply's id is read from its head ({"jsonrpc":"2.0","id":N,"result":...);
                # with `parse`, the reader then does what a client does with it (the JSON, the base64).
                if len(body) > 1 << 16:
                    match = HEAD_ID.match(body)
                    msg_id, value = (int(match.group(1)) if match else None), None
                    if self.parse:
                        logits = json.loads(body)["result"]["logits"]
                        base64.b64decode(logits if isinstance(logits, str) else logits.get("data", ""))
                    time.sleep(self.client_ms / 1000)
                else:
                    value = json.loads(body)
                    msg_id = value.get("id")
                if msg_id is None:
                    continue
                with self.cond:
                    self.arrived[msg_id] = now
                    self.received_bytes += len(body)
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


def flood(loramd, model, forwards, inflight, rows, probe_ms, parse, client_ms):
    proc = subprocess.Popen([loramd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = Reader(proc.stdout, parse, client_ms)
    reader.start()
    write_lock = threading.Lock()

    def send(msg):
        with write_lock:
            proc.stdin.write(frame(msg))
            proc.stdin.flush()

    send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"processId": None}})
    reader.wait(0)
    send({"jsonrpc": "2.0", "id": 1, "method": "model/load", "params": {"path": model}})
    model_id = reader.wait(1)["result"]["modelId"]
    ids = [1 + (i % 500) for i in range(rows)]
    slots = threading.Semaphore(inflight)
    forward_ids = []
    done = threading.Event()

    def sender():
        for i in range(forwards):
            slots.acquire()
            msg_id = 1000 + i
            forward_ids.append(msg_id)
            send({"jsonrpc": "2.0", "id": msg_id, "method": "model/forward",
                  "params": {"modelId": model_id, "ids": ids, "logits": "all", "logitsEncoding": "base64"}})
            threading.Thread(target=lambda m=msg_id: (reader.wait(m), slots.release()), daemon=True).start()
        for msg_id in list(forward_ids):
            reader.wait(msg_id)
        done.set()

    start = time.perf_counter()
    threading.Thread(target=sender, daemon=True).start()
    latencies = []
    probe = 100000
    while not done.is_set():
        probe += 1
        sent = time.perf_counter()
        send({"jsonrpc": "2.0", "id": probe, "method": "model/list", "params": {}})
        reader.wait(probe)
        latencies.append(reader.arrived[probe] - sent)
        time.sleep(probe_ms / 1000)
    seconds = time.perf_counter() - start
    send({"jsonrpc": "2.0", "id": 9, "method": "shutdown"})
    send({"jsonrpc": "2.0", "method": "exit"})
    proc.stdin.close()
    proc.wait(timeout=60)
    return {"loramd": loramd, "parse": parse, "clientMs": client_ms, "forwards": forwards, "inflight": inflight, "rows": rows, "probes": len(latencies),
            "listP50": percentile(latencies, 0.5), "listP90": percentile(latencies, 0.9), "listP99": percentile(latencies, 0.99),
            "listMax": max(latencies), "seconds": seconds, "replyMBps": reader.received_bytes / seconds / 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loramd", action="append")
    parser.add_argument("--model", default=os.path.join(ROOT, "Tests", "Fixtures", "golden", "tiny"))
    parser.add_argument("--forwards", type=int, default=100)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--probe-ms", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds per daemon")
    parser.add_argument("--client-ms", type=float, default=0, help="the reader's own work after each large reply (a slow client: replies queue)")
    parser.add_argument("--no-parse", action="store_true", help="read the large replies without parsing them (a client as fast as the pipe)")
    args = parser.parse_args()
    daemons = args.loramd or [os.path.join(ROOT, ".build", "release", "loramd")]
    results = []
    for _ in range(args.rounds):
        for daemon in daemons:
            results.append(flood(daemon, args.model, args.forwards, args.inflight, args.rows, args.probe_ms, not args.no_parse, args.client_ms))
    print("%-32s %7s %8s %8s %8s %8s %8s %8s" % ("loramd", "probes", "p50 ms", "p90 ms", "p99 ms", "max ms", "total s", "MB/s"))
    for r in results:
        print("%-32s %7d %8.1f %8.1f %8.1f %8.1f %8.1f %8.0f" % (r["loramd"][-32:], r["probes"], 1e3 * r["listP50"], 1e3 * r["listP90"],
                                                             1e3 * r["listP99"], 1e3 * r["listMax"], r["seconds"], r["replyMBps"]))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
