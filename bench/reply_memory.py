#!/usr/bin/env python3
"""What big replies cost the daemon's process: peak resident memory above the loaded model.

    python3 bench/reply_memory.py [--daemon .build/release/loramd] [--model GGUF] [--text-mb 9]

On SmolLM2-135M-Instruct (49,152-token vocabulary) it measures, each in a fresh daemon so one
request's high-water mark does not hide another's:

- ``tokenize`` of a ``--text-mb`` MB text (the Python standard library's source, concatenated);
- ``model/forward`` of 490 ids with ``logits: "all"`` as JSON numbers, and as base64 float32;
- the same JSON forward under a cap just above the loaded model, which must be refused
  (OverBudget) before anything is built.

The figure is VmHWM (peak RSS) of the daemon after the request minus its VmRSS before it, with
the high-water mark reset (``/proc/PID/clear_refs``) in between. Pass ``--daemon`` twice to run
two builds side by side (e.g. the one before issue 14 and this one). Prints a table; results
quoted in docs go to bench/results/.
"""
import argparse
import os
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from loram_client import Loram, LoramError  # noqa: E402

MODEL = os.path.expanduser("~/.cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
MIB = 1024 * 1024


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def corpus(megabytes):
    """Python's own library source, concatenated to `megabytes` MB of text."""
    parts, size = [], 0
    lib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(lib)):
        if name.endswith(".py"):
            with open(os.path.join(lib, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            parts.append(text)
            size += len(text.encode())
            if size >= megabytes * 1_000_000:
                break
    return "".join(parts)[: megabytes * 1_000_000]


def measure(daemon, model, request, cap=None):
    """(peak above the pre-request RSS in bytes, seconds, outcome) of one request in a fresh daemon."""
    init = {"hbmCapBytes": cap} if cap else None
    with Loram([daemon], init_params=init) as d:
        model_id = d.load_model(model, dtype="bf16")["modelId"]
        time.sleep(0.2)
        before = status(d.pid, "VmRSS")
        reset_peak(d.pid)
        start = time.time()
        try:
            outcome = request(d, model_id)
        except LoramError as error:
            outcome = "%s (%d)" % (type(error).__name__, error.code)
        seconds = time.time() - start
        return status(d.pid, "VmHWM") - before, seconds, outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--daemon", action="append", help="loramd binary (repeat to compare builds)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--text-mb", type=int, default=9)
    args = parser.parse_args()
    daemons = args.daemon or [os.path.join(ROOT, ".build", "release", "loramd")]
    text = corpus(args.text_mb)
    ids = list(range(10, 500))

    def tokenize(d, m):
        return "%d ids" % len(d.tokenize(m, text))

    def forward(encoding):
        def run(d, m):
            reply = d.call("model/forward", {"modelId": m, "ids": ids, "logits": "all", "logitsEncoding": encoding})
            logits = reply["logits"]
            return "%d chars" % len(logits) if isinstance(logits, str) else "%d rows" % len(logits)
        return run

    def forward_json_plain(d, m):
        # A daemon from before logitsEncoding answers JSON whatever it is asked; ask it plainly.
        reply = d.call("model/forward", {"modelId": m, "ids": ids, "logits": "all"})
        return "%d rows" % len(reply["logits"])

    cases = [
        ("tokenize %d MB text" % args.text_mb, tokenize, None),
        ("forward 490 x 49152 logits, JSON", forward_json_plain, None),
        ("forward 490 x 49152 logits, base64", forward("base64"), None),
        ("forward JSON, cap 700 MB", forward_json_plain, 700_000_000),
    ]
    print("| request | daemon | peak above the loaded model | seconds | outcome |")
    print("|---|---|---|---|---|")
    for name, request, cap in cases:
        for daemon in daemons:
            peak, seconds, outcome = measure(daemon, args.model, request, cap)
            print("| %s | %s | %+.0f MiB | %.1f | %s |" % (name, daemon, peak / MIB, seconds, outcome), flush=True)


if __name__ == "__main__":
    main()
