#!/usr/bin/env python3
"""LoRA on a real Qwen2.5: does a short run lower held-out perplexity on a domain?

    python3 bench/qwen_lora.py [--model GGUF] [--dtype bf16] [--steps 40] [--max-train-minutes 20] \\
        [--targets q_proj,v_proj] [--llamacpp /work/refenv/bin/python]

On Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF from loramd's model cache, `scripts/fetch-model
qwen2.5-coder-1.5b`; loaded with `model/load {dtype}`, i.e. dequantized to bf16 storage, fp32 compute)
and the Python standard library's own source split by file (loram_client.corpora, as
bench/loram_real.py: train on top-level modules a-m, held-out perplexity on modules n-z), it
measures, in one daemon session (release build):

1. held-out perplexity of the base (`eval/perplexity`, --eval-samples samples x --seq-len tokens);
2. LoRA training (`adapter/create` + `train/create` + `train/step` one step at a time, each timed;
   at most --steps steps, and no step started once --max-train-minutes would be passed);
3. held-out perplexity with the adapter (the same samples);
4. the adapter saved as a PEFT folder and as a GGUF LoRA file (`adapter/save {format: "gguf"}`);
   with --llamacpp PYTHON (a Python with llama-cpp-python, gguf, numpy), the GGUF adapter is then
   checked in llama.cpp by scripts/check-gguf-adapter-llamacpp.py `compare` (a second loramd, f32:
   base and base + adapter logits vs llama.cpp on an F32 copy of the GGUF, and the adapter's effect).

Writes bench/results/qwen2.5-1.5b-lora-<date>.json and .md (command, CPU, timings, figures).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import runtime  # noqa: E402  build_loramd, log, machine facts
from loram_client import Loram, corpora  # noqa: E402

DEFAULT_MODEL = os.path.join(os.environ.get("LORAMD_CACHE", os.path.expanduser("~/.cache/loramd")), "models",
                             "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-Q4_K_M.gguf")
log = runtime.log


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file or HF folder (default: Qwen2.5-Coder-1.5B Q4_K_M)")
    p.add_argument("--dtype", default="bf16", help="model/load storage dtype (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--targets", default="q_proj,v_proj", help="LoRA targets (default: %(default)s)")
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=40, help="at most this many optimizer steps")
    p.add_argument("--max-train-minutes", type=float, default=20.0, help="start no step after this much training time")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--schedule", default="constant")
    p.add_argument("--checkpointing", default="auto", help="train/create checkpointing (default: %(default)s)")
    p.add_argument("--activation-dtype", help="train/create activationDtype (default: the daemon's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-samples", type=int, default=16)
    p.add_argument("--eval-chunk-bytes", type=int, default=4096)
    p.add_argument("--train-file-bytes", type=int, default=8192)
    p.add_argument("--train-bytes", type=int, default=400_000)
    p.add_argument("--work", default="/tmp/qwen-lora", help="datasets and adapters (default: %(default)s)")
    p.add_argument("--out", help="JSON path (default: bench/results/qwen2.5-1.5b-lora-<date>.json; the .md beside it)")
    p.add_argument("--llamacpp", metavar="PYTHON", help="check the GGUF adapter in llama.cpp with this Python")
    p.add_argument("--loramd", help="the loramd binary (default: build and use .build/release/loramd)")
    p.add_argument("--no-build", action="store_true")
    return p.parse_args(argv)


def cpu_facts():
    out = subprocess.run("lscpu | grep -i -E 'model name|flags'", shell=True, capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in out.splitlines() if line.lower().startswith("flags")), [])
    return {"model": runtime._cpu_name(), "cores": os.cpu_count(),
            "amx": sorted(f for f in flags if f.startswith("amx")), "avx512": sorted(f for f in flags if f.startswith("avx512")),
            "lscpu": out.strip()}


def train(lm, args, model, ds, result):
    targets = args.targets.split(",")
    adapter = lm.create_adapter(model, r=args.r, alpha=args.alpha, targets=targets, dropout=args.dropout, seed=args.seed)
    extra = {"activation_dtype": args.activation_dtype} if args.activation_dtype else {}
    t = time.monotonic()
    job = lm.train_create(model, ds["train"], adapter_id=adapter["adapterId"], steps=args.steps, lr=args.lr,
                          seq_len=args.seq_len, micro_batch=args.micro_batch, schedule=args.schedule, seed=args.seed,
                          checkpointing=args.checkpointing, packing=True, **extra)
    result["seconds"]["trainCreate"] = time.monotonic() - t
    plan = job["plan"]
    log("train/create: %s examples, plan peak %.0f MiB, matmulDtype %s, checkpointing %s" % (
        job.get("examples"), plan.get("peakBytes", 0) / 2**20, plan.get("matmulDtype"), plan.get("checkpointing")))
    steps, budget, t0 = [], args.max_train_minutes * 60, time.monotonic()
    while len(steps) < args.steps:
        elapsed = time.monotonic() - t0
        mean = elapsed / len(steps) if steps else 0
        if steps and elapsed + mean > budget:
            log("stopping after %d steps: another would pass --max-train-minutes" % len(steps))
            break
        t = time.monotonic()
        s = lm.train_step(job["jobId"])
        steps.append({"step": s["step"], "loss": s["losses"][-1], "seconds": time.monotonic() - t,
                      "tokensPerSecond": s.get("tokensPerSecond"), "gradNorm": s.get("gradNorm"), "peakBytes": s.get("peakBytes")})
        log("  step %d/%d loss %.4f  %.1f s (%.0f tok/s)" % (s["step"], args.steps, steps[-1]["loss"], steps[-1]["seconds"],
                                                          steps[-1]["tokensPerSecond"] or 0))
    result["seconds"]["train"] = time.monotonic() - t0
    lm.train_close(job["jobId"])
    result["training"] = {"adapter": {k: adapter.get(k) for k in ("r", "alpha", "dropout", "targets", "parameters", "bytes")},
                          "stepsPlanned": args.steps, "stepsDone": len(steps), "steps": steps, "plan": plan,
                          "examples": job.get("examples"), "warnings": job.get("warnings"),
                          "tokens": len(steps) * args.micro_batch * args.seq_len}
    return adapter["adapterId"]


def perplexity(lm, args, model, ds, adapter, label, result):
    t = time.monotonic()
    r = lm.perplexity(model, ds["eval"], adapter_id=adapter, seq_len=args.seq_len, max_samples=args.eval_samples)
    result["seconds"]["eval" + label] = time.monotonic() - t
    result["perplexity"][label.lower()] = r
    log("%s: held-out perplexity %.4f (loss %.4f, %d tokens, %.0f s)" % (label, r["perplexity"], r["loss"], r["tokens"],
                                                                       result["seconds"]["eval" + label]))


def check_llamacpp(args, loramd, gguf_adapter, result):
    cmd = [args.llamacpp, os.path.join(ROOT, "scripts", "check-gguf-adapter-llamacpp.py"), "compare", "--base", args.model,
           "--adapter", gguf_adapter, "--daemon", loramd, "--work", os.path.join(args.work, "llamacpp")]
    log("llama.cpp check: " + " ".join(cmd))
    t = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL", "info", "--"))]
    for line in lines:
        log("  " + line)
    result["llamacpp"] = {"command": " ".join(cmd), "exitCode": proc.returncode, "lines": lines,
                          "seconds": time.monotonic() - t, "stderrTail": proc.stderr.strip().splitlines()[-5:]}


def markdown(r):
    s, tr, ppl = r["settings"], r["training"], r["perplexity"]
    steps = tr["steps"]
    step_s = sorted(x["seconds"] for x in steps)
    cpu = r["cpu"]
    before, after = ppl["before"], ppl["after"]
    lines = [
        "# LoRA on %s: held-out perplexity on the Python standard library (%s)" % (os.path.basename(s["model"]), r["date"]), "",
        "Command (commit %s, release build):" % r["commit"], "", "```sh", r["command"], "```", "",
        "**Machine**: %s, %d cores (shared; load average at start %s, at end %s). AVX-512: %s. AMX: %s." % (
            cpu["model"], cpu["cores"], r["loadavg"]["start"], r["loadavg"]["end"],
            "yes (" + " ".join(cpu["avx512"]) + ")" if cpu["avx512"] else "no", " ".join(cpu["amx"]) if cpu["amx"] else "no"),
        "", "```", cpu["lscpu"][:200] + (" ..." if len(cpu["lscpu"]) > 200 else ""), "```", "",
        "**What was measured**: the model GGUF loaded with `model/load {dtype: %s}` (weights dequantized once to %s "
        "storage; compute fp32, matmulDtype %s). Train: stdlib a-m (%d bytes, %d files, packed into %d-token rows); "
        "held-out: %d stdlib n-z files, %d bytes each from a third into the file, each cut to %d tokens by "
        "`eval/perplexity` (%d tokens scored). LoRA r %d, alpha %g, dropout %g on %s; AdamW lr %g %s, micro-batch %d; "
        "%d of at most %d steps (%d training tokens), one `train/step` each." % (
            s["dtype"], s["dtype"], tr["plan"].get("matmulDtype"), r["data"]["train"]["bytes"], len(r["data"]["train"]["files"]),
            s["seqLen"], r["data"]["eval"]["examples"], s["evalChunkBytes"], s["seqLen"], before["tokens"], s["r"], s["alpha"],
            s["dropout"], ", ".join(s["targets"]), s["lr"], s["schedule"], s["microBatch"], tr["stepsDone"], tr["stepsPlanned"],
            tr["tokens"]), "",
        "| | held-out loss | held-out perplexity |", "|---|---:|---:|",
        "| base (no adapter) | %.4f | %.4f |" % (before["loss"], before["perplexity"]),
        "| base + LoRA (%d steps) | %.4f | %.4f |" % (tr["stepsDone"], after["loss"], after["perplexity"]),
        "| change | %+.4f | %+.4f (%+.1f %%) |" % (after["loss"] - before["loss"], after["perplexity"] - before["perplexity"],
                                                  100 * (after["perplexity"] / before["perplexity"] - 1)), "",
        "**Timings** (wall, seconds): load %.1f; held-out eval %.0f before, %.0f after; train/create %.1f; training %.0f "
        "(%d steps: step median %.1f s, min %.1f, max %.1f, first %.1f; %.1f tokens/s overall); adapter saves %.1f." % (
            r["seconds"]["load"], r["seconds"]["evalBefore"], r["seconds"]["evalAfter"], r["seconds"]["trainCreate"],
            r["seconds"]["train"], len(steps), step_s[len(step_s) // 2], step_s[0], step_s[-1], steps[0]["seconds"],
            tr["tokens"] / r["seconds"]["train"], r["seconds"]["save"]),
        "Planned training peak %.0f MiB (train/create's plan, excluding the %.0f MiB of weights); daemon peak RSS %s MiB." % (
            tr["plan"].get("peakBytes", 0) / 2**20, r["model"]["bytes"] / 2**20,
            "%.0f" % (r["peakRss"] / 2**20) if r.get("peakRss") else "?"), "",
        "Training loss per step: " + ", ".join("%.3f" % x["loss"] for x in steps) + ".", "",
        "Adapter files: %s." % ", ".join("`%s`" % f for f in r["files"]), "",
    ]
    if r.get("llamacpp"):
        lc = r["llamacpp"]
        lines += ["**llama.cpp check of the GGUF adapter** (exit code %d, %.0f s):" % (lc["exitCode"], lc["seconds"]), "",
                  "```sh", lc["command"], "```", "", "```"] + lc["lines"] + ["```", ""]
    return "\n".join(lines) + "\n"


def peak_rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def main():
    args = parse_args()
    loramd, error = runtime.build_loramd(args)
    if error:
        sys.exit(error)
    os.makedirs(args.work, exist_ok=True)
    train_ds, eval_ds, record = corpora.python_stdlib_domain(
        args.work, train_bytes=args.train_bytes, train_file_bytes=args.train_file_bytes,
        eval_samples=args.eval_samples, eval_chunk_bytes=args.eval_chunk_bytes)
    ds = {"train": train_ds, "eval": eval_ds}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip():
        commit += " + uncommitted changes"
    result = {"date": datetime.date.today().isoformat(), "commit": commit, "command": " ".join(["python3"] + sys.argv),
              "cpu": cpu_facts(), "loadavg": {"start": runtime._loadavg()}, "data": record, "seconds": {}, "perplexity": {},
              "settings": {"model": args.model, "dtype": args.dtype, "targets": args.targets.split(","), "r": args.r,
                           "alpha": args.alpha, "dropout": args.dropout, "seqLen": args.seq_len, "microBatch": args.micro_batch,
                           "lr": args.lr, "schedule": args.schedule, "evalChunkBytes": args.eval_chunk_bytes,
                           "threads": args.threads, "seed": args.seed}}
    with Loram(command=loramd, init_params={"threads": args.threads}) as lm:
        t = time.monotonic()
        loaded = lm.load_model(args.model, dtype=args.dtype)
        result["seconds"]["load"] = time.monotonic() - t
        result["model"] = {k: loaded.get(k) for k in ("config", "parameters", "bytes", "format")}
        log("loaded %s: %d parameters, %.0f MiB as %s (%.0f s)" % (args.model, loaded["parameters"], loaded["bytes"] / 2**20,
                                                               args.dtype, result["seconds"]["load"]))
        model = loaded["modelId"]
        perplexity(lm, args, model, ds, None, "Before", result)
        adapter = train(lm, args, model, ds, result)
        perplexity(lm, args, model, ds, adapter, "After", result)
        t = time.monotonic()
        gguf_path = os.path.join(args.work, "qwen-lora.gguf")
        files = lm.save_adapter(adapter, gguf_path, format="gguf") + lm.save_adapter(adapter, os.path.join(args.work, "qwen-lora-peft"))
        result["seconds"]["save"] = time.monotonic() - t
        result["files"] = files
        result["peakRss"] = peak_rss(lm.pid)
    result["loadavg"]["end"] = runtime._loadavg()
    if args.llamacpp:
        check_llamacpp(args, loramd, files[0], result)
    out = args.out or os.path.join(BENCH, "results", "qwen2.5-1.5b-lora-%s.json" % result["date"])
    runtime.write_results(result, out, "qwen2.5-1.5b-lora")
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(markdown(result))
    log("wrote %s" % (os.path.splitext(out)[0] + ".md"))


if __name__ == "__main__":
    main()
