#!/usr/bin/env python3
"""Does loram/run's progress percentage track wall time? Runs the main job's loram/run
(clients/python/examples/loram_pipeline.py's settings) and records every ``$/progress`` report
with the seconds since the request was sent, then prints, per stage, where the percentage stood
when the stage began against the share of wall time that had passed.

    python3 bench/pipeline_progress.py [--random] [--steps N] [--out FILE.json]   (LORAMD picks the daemon)
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from loram_client import Loram  # noqa: E402

spec = importlib.util.spec_from_file_location("loram_pipeline", os.path.join(ROOT, "clients/python/examples/loram_pipeline.py"))
pipeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipeline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--random", action="store_true")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out")
    args = parser.parse_args()
    job_args = pipeline.parse_args(["--steps", str(args.steps), "--out", tempfile.mkdtemp(prefix="progress-")]
                                   + (["--random"] if args.random else []))
    daemon = pipeline.daemon_path()
    path = None if args.random else pipeline.fetch_real_model()
    if path is None:
        model, dtype, settings, _, _ = pipeline.random_job(job_args, daemon)
    else:
        model, dtype, settings, _, _ = pipeline.real_job(job_args, path)
    events = []
    with Loram(daemon) as loram:
        started = time.monotonic()

        def record(value):
            if value.get("kind") == "report":
                events.append({"t": time.monotonic() - started, "percentage": value.get("percentage"),
                               "stage": value.get("stage"), "etaSeconds": value.get("etaSeconds"),
                               "message": (value.get("message") or "")[:60]})

        result = loram.loram_run(model, dtype=dtype, out_dir=os.path.join(job_args.out, "run"), progress=record,
                                 **{k: v for k, v in settings.items() if v is not None})
        total = time.monotonic() - started
    print("loram/run %.1f s; report seconds: %s" % (total, json.dumps(result["report"].get("seconds"))))
    print("%-10s %8s %8s %8s" % ("stage", "begins", "% shown", "% time"))
    seen = set()
    for event in events:
        if event["percentage"] is not None and event["stage"] not in seen:
            seen.add(event["stage"])
            print("%-10s %7.1fs %7.1f%% %7.1f%%" % (event["stage"], event["t"], event["percentage"], 100 * event["t"] / total))
    worst = max(abs(e["percentage"] - 100 * e["t"] / total) for e in events if e["percentage"] is not None)
    print("largest gap between the percentage shown and the share of time passed: %.1f points" % worst)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"seconds": total, "report": result["report"].get("seconds"), "events": events}, f, indent=1)


if __name__ == "__main__":
    main()
