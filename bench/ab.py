#!/usr/bin/env python3
"""A/B of two loramd builds on the same workloads, in one run, runs interleaved (A, B, A, B, ...).

Not the PyTorch comparison (bench/runtime.py and bench/train.py do that): this checks that a change
to loramd's own code (a refactor) keeps its speed and memory. Per model (the `small` preset made by
make-model, and SmolLM2-135M from the registry cache when present) it measures prefill tokens/s,
decode tokens/s (and with --nf4-decode, decode of the model quantized to NF4), LoRA-step tokens/s (r 8 on the seven projections, micro-batch x seqLen) and the
daemon's peak RSS while training, and prints B/A ratios.

    python3 bench/ab.py --a /tmp/loramd-old --b .build/release/loramd --threads 2 --out bench/results/ab-<date>.md
"""
import argparse, json, os, random, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from loram_client import LoramClient  # noqa: E402

SMOLLM2 = os.path.expanduser("~/.cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def measure(binary, model, args, dataset, vocab, train_extra=None):
    client = LoramClient(command=[binary], cwd=ROOT, init_params={"threads": args.threads}, lifecycle_timeout=60.0)
    try:
        loaded = client.request("model/load", {"path": model, **({"dtype": args.dtype} if args.dtype else {})}, timeout=600)
        mid = loaded["modelId"]
        rng = random.Random(0)
        prompt = [rng.randrange(3, vocab) for _ in range(args.prompt)]
        t0 = time.perf_counter()
        client.request("model/forward", {"modelId": mid, "ids": prompt, "logits": "last"}, timeout=600)
        prefill = args.prompt / (time.perf_counter() - t0)
        r = client.request("generate", {"modelId": mid, "ids": prompt, "maxTokens": args.new, "temperature": 0}, timeout=600)
        decode = r["timing"]["decodeTokensPerSecond"]
        nf4 = None
        if args.nf4_decode:
            q = client.request("model/quantize", {"modelId": mid, "format": "nf4"}, timeout=600)["modelId"]
            r = client.request("generate", {"modelId": q, "ids": prompt, "maxTokens": args.new, "temperature": 0}, timeout=600)
            nf4 = r["timing"]["decodeTokensPerSecond"]
            client.request("model/unload", {"modelId": q}, timeout=600)
        adapter = client.request("adapter/create", {"modelId": mid, "r": 8, "alpha": 16, "targets": TARGETS, "seed": 0})
        job = client.request("train/create", {"modelId": mid, "adapterId": adapter["adapterId"],
                                              "dataset": {"path": dataset, "format": "tokens"}, "seqLen": args.seq,
                                              "microBatch": args.micro, "steps": args.steps + 1, "lr": 1e-4,
                                              "checkpointing": "none", "seed": 0, **(train_extra or {})}, timeout=600)
        client.request("train/step", {"jobId": job["jobId"], "steps": 1}, timeout=3600)  # warm-up
        t0 = time.perf_counter()
        step = client.request("train/step", {"jobId": job["jobId"], "steps": args.steps}, timeout=3600)
        train = args.steps * args.micro * args.seq / (time.perf_counter() - t0)
        return {"prefill": prefill, "decode": decode, "nf4Decode": nf4, "train": train, "hwmMiB": vm_hwm_kib(client.pid) / 1024,
                "planned": job.get("plan", {}).get("peakBytes"), "losses": step.get("losses")}
    finally:
        client.close(timeout=10.0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--dtype", default=None)
    p.add_argument("--nf4-decode", action="store_true", help="also decode with the model quantized to NF4 (model/quantize)")
    p.add_argument("--models", default="small,SmolLM2-135M", help="comma-separated: small, SmolLM2-135M")
    p.add_argument("--b-train", default="{}", help="extra train/create params for B only, as JSON, e.g. '{\"activationDtype\": \"bf16\"}'")
    p.add_argument("--out", default="-")
    args = p.parse_args()
    b_train = json.loads(args.b_train)
    work = tempfile.mkdtemp(prefix="loramd-ab-")
    small = os.path.join(work, "small")
    os.system("%s make-model --preset small --out %s > /dev/null" % (args.b, small))
    models = [("small", small, 4096)] + ([("SmolLM2-135M", SMOLLM2, 49152)] if os.path.exists(SMOLLM2) else [])
    models = [m for m in models if m[0] in args.models.split(",")]
    lines = ["| model | metric | A | B | B/A |", "|---|---|---|---|---|"]
    for name, model, vocab in models:
        dataset = os.path.join(work, name + ".jsonl")
        rng = random.Random(1)
        with open(dataset, "w") as f:
            for _ in range(64):
                f.write(json.dumps({"ids": [rng.randrange(3, vocab) for _ in range(args.seq)]}) + "\n")
        best = {"A": {}, "B": {}}
        for _ in range(args.rounds):
            for side, binary in (("A", args.a), ("B", args.b)):
                m = measure(binary, model, args, dataset, vocab, b_train if side == "B" else None)
                for k, v in m.items():
                    if k in ("prefill", "decode", "nf4Decode", "train"):
                        best[side][k] = max(best[side].get(k) or 0, v or 0) or None
                    else:
                        best[side][k] = v
        for k, unit in (("prefill", "tok/s"), ("decode", "tok/s"), ("nf4Decode", "tok/s"), ("train", "tok/s"), ("hwmMiB", "MiB"), ("planned", "B")):
            a, b = best["A"].get(k), best["B"].get(k)
            ratio = "%.2f" % (b / a) if a and b else "-"
            fmt = (lambda x: "%.1f" % x if isinstance(x, float) else str(x))
            lines.append("| %s | %s (%s) | %s | %s | %s |" % (name, k, unit, fmt(a), fmt(b), ratio))
        lines.append("| %s | losses | %s | %s | |" % (name, best["A"].get("losses"), best["B"].get("losses")))
    b = args.b + (" with train/create %s" % args.b_train if b_train else "")
    text = "A: %s\nB: %s\nthreads %d, best of %d interleaved rounds; prompt %d, %d new tokens, LoRA r 8 on 7 projections, %dx%d, %d steps after a warm-up\n\n%s\n" % (
        args.a, b, args.threads, args.rounds, args.prompt, args.new, args.micro, args.seq, args.steps, "\n".join(lines))
    print(text)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
