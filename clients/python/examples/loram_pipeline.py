#!/usr/bin/env python3
"""The LoRAM pipeline end to end on a model loramd makes itself (no download):

1. make a random 28M-parameter LLaMA and a text dataset (train + held-out) with ``loramd``;
2. ask ``memory/plan`` what LoRA on the original and on a pruned NF4 carrier would need;
3. ``loram/run``: prune 50% of the heads and MLP neurons (layers 1-6), quantize the carrier to
   NF4, train LoRA on it, recover the adapter to the original's shapes, evaluate;
4. generate with the original model and the recovered adapter.

    python3 clients/python/examples/loram_pipeline.py [--out DIR] [--steps N]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from loram_client import Loram
from loram_client.locate import find_daemon

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


def mib(n: float) -> str:
    return "%.1f MiB" % (n / 2**20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "loramd-pipeline"))
    parser.add_argument("--steps", type=int, default=40, help="LoRA steps on the carrier")
    args = parser.parse_args()

    daemon = find_daemon()
    model_dir, data_dir, run_dir = (os.path.join(args.out, name) for name in ("model", "data", "run"))
    print("making a random small LLaMA in %s and a text dataset in %s" % (model_dir, data_dir))
    subprocess.run([daemon, "make-model", "--preset", "small", "--out", model_dir], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([daemon, "make-dataset", "--out", data_dir], check=True, stdout=subprocess.DEVNULL)
    train = {"path": os.path.join(data_dir, "train.jsonl"), "format": "text"}
    held_out = {"path": os.path.join(data_dir, "eval.jsonl"), "format": "text"}

    with Loram(daemon) as loram:
        # The dry run first: nothing is loaded for it.
        workload = {"kind": "train", "microBatch": 4, "seqLen": 128, "lora": {"r": 8, "targets": TARGETS}, "baseDtype": "f32"}
        full = loram.call("memory/plan", {"model": {"path": model_dir}, "workload": workload})
        carrier = loram.call("memory/plan", {"model": {"path": model_dir}, "workload": dict(
            workload, baseDtype="nf4", prune={"method": "l2", "ratio": 0.5, "layers": [1, 7]})})
        print("plan: LoRA on the original %s, on the pruned NF4 carrier %s" % (mib(full["peakBytes"]), mib(carrier["peakBytes"])))

        start = time.monotonic()
        result = loram.loram_run(
            model_dir, out_dir=run_dir, progress=True,
            prune={"method": "l2", "ratio": 0.5, "layers": [1, 7]},
            quantize="nf4",
            train={"dataset": train, "seqLen": 128, "microBatch": 4, "steps": args.steps, "lr": 3e-3, "packing": True,
                   "lora": {"r": 8, "alpha": 16, "targets": TARGETS}},
            eval={"datasets": [held_out], "seqLen": 128, "maxSamples": 40})
        report = result["report"]
        print("\nloram/run took %.0f s" % (time.monotonic() - start))
        parameters, memory = report["parameters"], report["memory"]
        print("parameters     original %s, carrier %s (%.2fx fewer)"
              % (format(parameters["original"], ","), format(parameters["carrier"], ","), report["reduction"]))
        print("training peak  planned %s, measured %s; LoRA on the original would plan %s (%.2fx more)"
              % (mib(memory["plannedPeakBytes"]), mib(memory["measuredPeakBytes"]), mib(memory["fullModelLoRAPlannedPeakBytes"]),
                 memory["savedOverFullModelLoRA"]))
        print("loss           %.3f -> %.3f over %d steps" % (report["training"]["firstLoss"], report["training"]["lastLoss"],
                                                          report["training"]["steps"]))
        for row in report["perplexity"]:
            print("perplexity     original %.0f | carrier %.0f | carrier + adapter %.0f | original + recovered adapter %.0f"
                  % (row["original"], row["carrier"], row["carrierWithAdapter"], row["originalWithRecoveredAdapter"]))
        print("files          %s" % ", ".join(report["files"].values()))

        prompt = "In Paris, the"
        print("\nthe original model with the recovered adapter (sampled at temperature 0.8):")
        for piece in loram.generate(result["modelId"], prompt, adapter_id=result["adapterId"], max_tokens=40, temperature=0.8,
                                    seed=1, stream=True):
            print(piece, end="", flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
