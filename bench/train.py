#!/usr/bin/env python3
"""LoRA training, loramd vs PyTorch+transformers+PEFT: same checkpoint, same batch, same threads.

    python3 bench/train.py [--threads N] [--model DIR] [--preset small] [--steps S] [--runs K]

One configuration: LoRA r 8, alpha 16, dropout 0, on all 7 projections; seqLen 256, micro-batch 4;
AdamW lr 1e-4 (weight decay 0, as transformers' Trainer), gradient clipping at 1.0, constant
schedule. Both sides start from the same adapter (PEFT creates it and saves it; loramd loads that
file) and train on the same fixed batch of 4 × 256 random ids every step, alternating
torch, loramd, torch, loramd, ... for --runs rounds of --steps steps after --warmup steps.
Prints tokens/s (target: loramd >= 1.5x PyTorch), peak memory (target: loramd <= 0.35x PyTorch; issue 16, on small),
the losses of both sides step by step, and the step's matmul rate against the machine's sgemm
ceiling (bench/sgemm_bandwidth.c, as bench/runtime.py measures it). Writes everything as JSON to
bench/results/train-<date>.json. bench/README.md explains the numbers.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
import runtime  # noqa: E402  the shared machinery: build, make-model, shapes, ceilings, CpuMeter

# Issue 16's targets on the `small` model (the default); on SmolLM2-135M they are 1.8x and 0.25x
# (bench/table.py passes those with --target-speed / --target-memory).
TARGET_SPEED = 1.5      # loramd tokens/s >= 1.5x PyTorch
TARGET_MEMORY = 0.35    # loramd peak <= 0.35x PyTorch
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
log = runtime.log


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for both sides and the ceilings (default: all cores, %(default)s)")
    p.add_argument("--model", help="a Hugging Face LLaMA directory (default: `loramd make-model --preset PRESET`)")
    p.add_argument("--preset", default="small", help="make-model preset (default: %(default)s)")
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.0, help="LoRA dropout, both sides (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clipping, both sides; 0 for none")
    p.add_argument("--b-init-std", type=float, default=0.0,
                   help="draw B ~ N(0, std) instead of PEFT's zeros (both sides get the same file); "
                   "makes the first step's loss comparison cover the adapter's path")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per side before the rounds (default: %(default)s)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per round (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="timed rounds per side (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the batch's ids and PEFT's init")
    p.add_argument("--loramd", help="the loramd binary (default: build and use .build/release/loramd)")
    p.add_argument("--no-build", action="store_true", help="do not run `swift build -c release`")
    p.add_argument("--dev-model", action="store_true", help="a transformers-made model instead of make-model's")
    p.add_argument("--skip-loramd", action="store_true", help="PyTorch side and ceilings only")
    p.add_argument("--bf16-matmul", action="store_true",
                   help="bf16 products with fp32 sums on both sides: loramd's matmulDtype bf16 (Intel AMX), "
                        "PyTorch's forward under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--skip-ceilings", action="store_true", help="do not measure sgemm/bandwidth")
    p.add_argument("--out", help="JSON output path (default: bench/results/train-<date>.json; '-' for none)")
    p.add_argument("--bw-mib", type=int, default=256, help="bandwidth buffer for the ceilings, MiB (default: %(default)s)")
    p.add_argument("--dtype", choices=["f32", "bf16", "f16"],
                   help="loramd's storage (model/load dtype; default: as stored). PyTorch computes in fp32 either way")
    p.add_argument("--target-speed", type=float, default=TARGET_SPEED,
                   help="loramd/PyTorch tokens/s target (default: %(default)s)")
    p.add_argument("--target-memory", type=float, default=TARGET_MEMORY,
                   help="loramd/PyTorch peak RSS target (default: %(default)s)")
    p.add_argument("--torch-worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the batch and the FLOPs

def batch_rows(shapes, rows, seq_len, seed):
    """rows × seq_len ids: BOS, then an LCG over the vocabulary skipping special ids (as
    bench/runtime.py's prompt), each row from its own seed."""
    out = []
    for r in range(rows):
        special = {i for i in (shapes["bos"], shapes["eos"], shapes["pad"], 0) if isinstance(i, int)}
        ids = [shapes["bos"]] if isinstance(shapes["bos"], int) else []
        x = 12345 + 7919 * (r + 1) + 104729 * seed
        while len(ids) < seq_len:
            x = (1103515245 * x + 12345) % (1 << 31)
            t = (x >> 8) % shapes["vocab"]
            if t not in special:
                ids.append(t)
        out.append(ids)
    return out


def step_flops(shapes, rows, seq_len, r):
    """Matmul FLOPs of one LoRA step (forward, then backward to the inputs of every linear; base
    weights get no gradient), by part."""
    T = rows * seq_len
    L, C, hd, H, kv, I, V = (shapes[k] for k in ("layers", "hidden", "headDim", "heads", "kvHeads",
                                                  "intermediate", "vocab"))
    q, k = H * hd, kv * hd
    base = 2.0 * T * (L * shapes["layerMatmulParams"] + V * C)     # forward, lm_head on every position
    in_out = [(C, q), (C, k), (C, k), (q, C), (C, I), (C, I), (I, C)]
    lora = 2.0 * T * r * L * sum(a + b for a, b in in_out)          # x·Aᵀ and u·Bᵀ
    attention = 2.0 * L * H * hd * seq_len * (seq_len + 1) * rows  # Q·Kᵀ and P·V, causal
    # Backward: dX through every base linear (same as forward); LoRA: dU, dX, dA, dB (2x forward);
    # attention: dP, dV, dQ, dK (2x forward).
    return {"baseLinears": 2 * base, "lora": 3 * lora, "attention": 3 * attention,
            "total": 2 * base + 3 * lora + 3 * attention}


# --------------------------------------------------------------------------- PyTorch, in its own process

def status_kib(pid, field):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def torch_worker(spec):
    """Runs in a subprocess so its peak RSS is PyTorch's alone. Protocol: one JSON line per reply
    on the original stdout (everything else printed goes to stderr); commands on stdin."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import torch
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")

    torch.set_num_threads(spec["threads"])
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(spec["seed"])
    try:
        base = LlamaForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    except TypeError:  # transformers < 4.56
        base = LlamaForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32)
    rss_loaded = status_kib("self", "VmRSS")
    config = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], lora_dropout=spec["dropout"],
                        target_modules=TARGETS, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    if spec["bInitStd"] > 0:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, spec["bInitStd"])
    # loramd loads this file: both sides start from the same A and B (saved in fp32, losslessly).
    model.save_pretrained(spec["adapterDir"])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=spec["weightDecay"])
    ids = torch.tensor(spec["rows"], dtype=torch.long)
    mask = torch.ones_like(ids)
    reply({"ready": True, "torch": torch.__version__, "transformers": transformers.__version__,
           "peft": peft.__version__, "threads": torch.get_num_threads(),
           "autocast": "bf16" if spec.get("autocast") else None,
           "attnImplementation": getattr(model.config, "_attn_implementation", None),
           "trainableParameters": sum(p.numel() for p in params), "rssAfterLoadKiB": rss_loaded,
           "rssReadyKiB": status_kib("self", "VmRSS")})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        losses, norms = [], []
        t0 = time.perf_counter()
        for _ in range(cmd["steps"]):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.get("autocast", False)):
                out = model(input_ids=ids, attention_mask=mask, labels=ids)
            out.loss.backward()
            if spec["maxGradNorm"] > 0:
                norms.append(float(torch.nn.utils.clip_grad_norm_(params, spec["maxGradNorm"])))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(out.loss.detach()))
        reply({"seconds": time.perf_counter() - t0, "losses": losses, "gradNorms": norms})
    reply({"vmHWMKiB": status_kib("self", "VmHWM"),
           "maxRssKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


class TorchSide:
    def __init__(self, spec):
        env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--torch-worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.pid = self.proc.pid
        self.info = self._read()
        if not self.info.get("ready"):
            raise RuntimeError("the PyTorch worker did not start: %s" % self.info)

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker exited (code %s)" % self.proc.wait())
        return json.loads(line)

    def steps(self, n):
        self.proc.stdin.write(json.dumps({"steps": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def finish(self):
        self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        self.proc.wait(timeout=60)
        return out


# --------------------------------------------------------------------------- loramd

class LoramdSide:
    def __init__(self, loramd, model_dir, args, adapter_dir, dataset_path, total_steps):
        sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
        from loram_client import LoramClient

        init = {"threads": args.threads, **({"matmulDtype": "bf16"} if args.bf16_matmul else {})}
        self.client = LoramClient(command=[loramd], cwd=ROOT, init_params=init, lifecycle_timeout=60.0)
        self.pid = self.client.pid
        self.notes = []
        try:
            self.info = {"server": self.client.server_info, "device": self.client.device}
            loaded = self.client.request("model/load", {"path": os.path.abspath(model_dir),
                                                        **({"dtype": args.dtype} if args.dtype else {})}, timeout=600)
            self.model_id = loaded["modelId"]
            self.info["rssAfterLoadKiB"] = status_kib(self.pid, "VmRSS")
            self.info["load"] = {k: loaded.get(k) for k in ("parameters", "bytes")}
            try:
                adapter = self.client.request("adapter/load", {"modelId": self.model_id, "path": adapter_dir}, timeout=600)
                self.info["adapter"] = "PEFT's file (adapter/load %s)" % adapter_dir
            except Exception as exc:  # an older loramd: its own init, so the losses differ from step 2
                adapter = self.client.request("adapter/create", {
                    "modelId": self.model_id, "r": args.r, "alpha": args.alpha, "dropout": args.dropout,
                    "targets": TARGETS, "seed": args.seed}, timeout=600)
                self.info["adapter"] = "adapter/create (adapter/load failed: %s); init differs from PEFT's" % exc
                self.notes.append(self.info["adapter"])
            self.adapter_id = adapter["adapterId"]
            self.info["adapterParameters"] = adapter.get("parameters")
            created = self.client.request("train/create", {
                "modelId": self.model_id, "adapterId": self.adapter_id,
                "dataset": {"path": dataset_path, "format": "tokens"},
                "seqLen": args.seq_len, "microBatch": args.micro_batch, "gradAccum": 1,
                "steps": total_steps, "lr": args.lr, "schedule": "constant", "warmupSteps": 0,
                "weightDecay": args.weight_decay, "maxGradNorm": args.max_grad_norm,
                "checkpointing": "none", "seed": args.seed}, timeout=600)
            self.job_id = created["jobId"]
            self.info["plan"] = created.get("plan")
        except BaseException:
            self.close()
            raise

    def steps(self, n):
        t0 = time.perf_counter()
        r = self.client.request("train/step", {"jobId": self.job_id, "steps": n}, timeout=3600)
        return time.perf_counter() - t0, r

    def memory(self):
        return {"vmHWMKiB": status_kib(self.pid, "VmHWM"), "vmRSSKiB": status_kib(self.pid, "VmRSS")}

    def close(self):
        try:
            self.client.close(timeout=10.0)
        except Exception:
            pass


# --------------------------------------------------------------------------- measurement

def measure(args, shapes, model_dir, loramd, loramd_error, tmp):
    rows = batch_rows(shapes, args.micro_batch, args.seq_len, args.seed)
    # The dataset is exactly one micro-batch, so every step of either side trains on the same 4
    # rows whatever order loramd's loader draws them in (the loss is a mean over the batch).
    dataset = os.path.join(tmp, "batch.jsonl")
    with open(dataset, "w") as f:
        for ids in rows:
            f.write(json.dumps({"ids": ids}) + "\n")
    adapter_dir = os.path.join(tmp, "adapter")
    total_steps = args.warmup + args.runs * args.steps
    spec = {"model": os.path.abspath(model_dir), "threads": args.threads, "seed": args.seed, "r": args.r,
            "alpha": args.alpha, "dropout": args.dropout, "lr": args.lr, "weightDecay": args.weight_decay,
            "maxGradNorm": args.max_grad_norm, "bInitStd": args.b_init_std, "adapterDir": adapter_dir,
            "rows": rows, "autocast": args.bf16_matmul}
    log("starting the PyTorch worker (model, PEFT adapter saved to %s) ..." % adapter_dir)
    torch_side = TorchSide(spec)
    lm = None
    if loramd and not args.skip_loramd:
        try:
            log("starting loramd: model/load, adapter/load, train/create ...")
            lm = LoramdSide(loramd, model_dir, args, adapter_dir, dataset, total_steps)
        except Exception as exc:
            loramd_error = "%s: %s" % (type(exc).__name__, exc)
            log("loramd: not available yet: " + loramd_error)
    meter = runtime.CpuMeter()
    meter.pids = [torch_side.pid] + ([lm.pid] if lm else [])
    t = {"seconds": [], "losses": [], "gradNorms": [], "interference": []}
    m = {"seconds": [], "wall": [], "tokensPerSecond": [], "losses": [], "gradNorms": {}, "results": [],
         "peakBytes": None, "interference": []}

    def loramd_steps(n, timed):
        nonlocal lm, loramd_error
        if lm is None:
            return
        try:
            c0 = meter.start()
            wall, r = lm.steps(n)
            busy = meter.stop(c0)
            m["losses"] += list(r.get("losses") or [])
            # gradNorm is the last step's of the call: keyed by that step
            if isinstance(r.get("step"), int) and r.get("gradNorm") is not None:
                m["gradNorms"][str(r["step"])] = r["gradNorm"]
            m["peakBytes"] = r.get("peakBytes", m["peakBytes"])
            if timed:
                m["wall"].append(wall)
                m["tokensPerSecond"].append(r.get("tokensPerSecond"))
                m["results"].append({k: r.get(k) for k in ("step", "lr", "gradNorm", "tokensPerSecond", "peakBytes")})
                m["interference"].append(busy)
        except Exception as exc:
            loramd_error = "%s: %s" % (type(exc).__name__, exc)
            log("loramd: train/step failed: " + loramd_error)
            m["memory"] = lm.memory()
            lm.close()
            lm = None

    def torch_steps(n, timed):
        c0 = meter.start()
        r = torch_side.steps(n)
        busy = meter.stop(c0)
        t["losses"] += r["losses"]
        t["gradNorms"] += r["gradNorms"]
        if timed:
            t["seconds"].append(r["seconds"])
            t["interference"].append(busy)

    try:
        log("warm-up: %d steps each ..." % args.warmup)
        torch_steps(args.warmup, False)
        runtime.settle()
        loramd_steps(args.warmup, False)
        for k in range(args.runs):
            runtime.settle()
            log("round %d/%d: torch, %d steps ..." % (k + 1, args.runs, args.steps))
            torch_steps(args.steps, True)
            if lm is not None:
                runtime.settle()
                log("round %d/%d: loramd, %d steps ..." % (k + 1, args.runs, args.steps))
                loramd_steps(args.steps, True)
        torch_memory = torch_side.finish()
        if lm is not None:
            m["memory"] = lm.memory()
    finally:
        if lm is not None:
            lm.close()
        if torch_side.proc.poll() is None:
            torch_side.proc.kill()
    return torch_side.info, torch_memory, t, (lm.info if lm else None), (lm.notes if lm else []), m, loramd_error


def summarize(args, shapes, ceil, torch_info, torch_memory, t, m, loramd_error):
    tokens = args.micro_batch * args.seq_len * args.steps
    flops = step_flops(shapes, args.micro_batch, args.seq_len, args.r)
    sgemm = ceil["sgemm"]["gflops"] * 1e9 if ceil else None
    best = min(t["seconds"])
    torch_tps = tokens / best

    def rate(tps):
        if tps is None:
            return None
        steps_per_second = tps / (args.micro_batch * args.seq_len)
        g = flops["total"] * steps_per_second
        return {"matmulGflops": g / 1e9, "sgemmFraction": g / sgemm if sgemm else None}

    out = {"tokensPerRound": tokens, "flopsPerStep": flops,
           "torch": {"tokensPerSecond": torch_tps, "secondsRuns": t["seconds"],
                     "tokensPerSecondRuns": [tokens / s for s in t["seconds"]],
                     "peakRssBytes": 1024 * torch_memory["vmHWMKiB"] if torch_memory.get("vmHWMKiB") else None,
                     "maxRssBytes": 1024 * torch_memory["maxRssKiB"],
                     "rssAfterModelLoadBytes": 1024 * (torch_info.get("rssAfterLoadKiB") or 0),
                     "losses": t["losses"], "gradNorms": t["gradNorms"], "rate": rate(torch_tps)},
           "loramd": None, "loramdError": loramd_error,
           "interference": {"torch": t["interference"], "loramd": m["interference"]}}
    tps = [x for x in m["tokensPerSecond"] if isinstance(x, (int, float))]
    if tps:
        lt = max(tps)
        mem = m.get("memory") or {}
        peak = 1024 * mem["vmHWMKiB"] if mem.get("vmHWMKiB") else None
        out["loramd"] = {"tokensPerSecond": lt, "tokensPerSecondRuns": m["tokensPerSecond"],
                         "tokensPerSecondWallClock": tokens / min(m["wall"]), "wallSecondsRuns": m["wall"],
                         "peakRssBytes": peak, "peakBytesReported": m["peakBytes"],
                         "losses": m["losses"], "gradNorms": m["gradNorms"], "results": m["results"],
                         "rate": rate(lt)}
        out["ratios"] = {"speed": lt / torch_tps, "speedTarget": args.target_speed,
                         "speedMeetsTarget": lt / torch_tps >= args.target_speed}
        tp = out["torch"]["peakRssBytes"]
        if peak and tp:
            out["ratios"].update({"memory": peak / tp, "memoryTarget": args.target_memory,
                                  "memoryMeetsTarget": peak / tp <= args.target_memory})
    elif m["results"] and loramd_error is None:
        out["loramdError"] = "train/step's result has no tokensPerSecond"
    return out


# --------------------------------------------------------------------------- report

def mib(x):
    return "-" if not x else "%.0f MiB" % (x / 2 ** 20)


def report(args, shapes, model_dir, model_source, ceil, torch_info, lm_info, notes, s):
    fmt = runtime.fmt
    print()
    compute = "bf16 products (loramd matmulDtype bf16, PyTorch bf16 autocast)" if args.bf16_matmul else "fp32"
    print("LoRA training: loramd vs PyTorch %s + transformers %s + PEFT %s, %d threads, %s"
          % (torch_info["torch"], torch_info["transformers"], torch_info["peft"], args.threads, compute))
    print("model: %s (%s), %.1fM parameters; LoRA r %d alpha %g dropout %g on %s: %d trainable"
          % (model_dir, model_source, shapes["parameters"] / 1e6, args.r, args.alpha, args.dropout,
             "all 7 projections", torch_info["trainableParameters"]))
    print("step: micro-batch %d x seqLen %d = %d tokens; AdamW lr %g, weight decay %g, clip %g; %d warm-up steps, "
          "then %d rounds of %d steps per side, alternating; best round kept"
          % (args.micro_batch, args.seq_len, args.micro_batch * args.seq_len, args.lr, args.weight_decay,
             args.max_grad_norm, args.warmup, args.runs, args.steps))
    f = s["flopsPerStep"]
    print("matmul work per step: %.1f GFLOP (base linears fwd+dX %.1f, LoRA %.1f, attention %.1f)"
          % (f["total"] / 1e9, f["baseLinears"] / 1e9, f["lora"] / 1e9, f["attention"] / 1e9)
          + ("; sgemm ceiling %.1f GFLOP/s (OpenBLAS, M=%d)" % (ceil["sgemm"]["gflops"], args.micro_batch * args.seq_len)
             if ceil else ""))
    print()
    tr, lm, r = s["torch"], s["loramd"], s.get("ratios") or {}

    def verdict(ok):
        return "" if ok is None else ("ok" if ok else "MISSES TARGET")

    def frac(side):
        rt = side and side.get("rate")
        return "-" if not rt or rt.get("sgemmFraction") is None else "%.0f%% of sgemm" % (100 * rt["sgemmFraction"])

    print("%-26s %12s %12s %8s %8s %-14s %-16s %-16s" % ("", "torch", "loramd", "ratio", "target", "", "loramd", "torch"))
    print("%-26s %12s %12s %8s %8s %-14s %-16s %-16s" % (
        "tokens/s", fmt(tr["tokensPerSecond"]), fmt(lm and lm["tokensPerSecond"]), fmt(r.get("speed"), "%.2fx"),
        ">=%sx" % ("%.2f" % args.target_speed).rstrip("0").rstrip("."), verdict(r.get("speedMeetsTarget")), frac(lm), frac(tr)))
    print("%-26s %12s %12s %8s %8s %-14s" % (
        "peak memory (VmHWM)", mib(tr["peakRssBytes"]), mib(lm and lm["peakRssBytes"]), fmt(r.get("memory"), "%.2fx"),
        "<=%sx" % ("%.2f" % args.target_memory).rstrip("0").rstrip("."), verdict(r.get("memoryMeetsTarget"))))
    if lm:
        print("loramd's own peakBytes: %s; its tokens/s from the client's wall clock: %.1f"
              % (mib(lm["peakBytesReported"]), lm["tokensPerSecondWallClock"]))
    print("PyTorch's RSS after loading the model: %s (the worker process, torch and its libraries included)"
          % mib(tr["rssAfterModelLoadBytes"]))
    print()
    tl, ll = tr["losses"], (lm["losses"] if lm else [])
    tg, lg = tr["gradNorms"], (lm["gradNorms"] if lm else {})
    n = max(len(tl), len(ll))
    print("losses and gradient norms (same adapter file, same batch every step; loramd reports the norm of the"
          " last step of each train/step call):")
    print("  %-5s %12s %12s %10s   %12s %12s %10s" % ("step", "torch loss", "loramd", "diff", "torch norm", "loramd", "diff"))

    def diff(a, b):
        return fmt(b - a if a is not None and b is not None else None, "%+.2e")

    for i in range(n):
        a = tl[i] if i < len(tl) else None
        b = ll[i] if i < len(ll) else None
        ga = tg[i] if i < len(tg) else None
        gb = lg.get(str(i + 1))
        print("  %-5d %12s %12s %10s   %12s %12s %10s" % (i + 1, fmt(a, "%.6f"), fmt(b, "%.6f"), diff(a, b),
                                                          fmt(ga, "%.6f"), fmt(gb, "%.6f"), diff(ga, gb)))
    for note in notes:
        print("note: " + note)
    runtime.print_interference(s["interference"])
    if lm is None:
        print()
        print("loramd: not available yet: %s" % (s["loramdError"] or "unknown"))
    elif s.get("loramdError"):
        print("loramd: a later request failed: %s" % s["loramdError"])


def main():
    args = parse_args()
    if args.torch_worker:
        return torch_worker(json.loads(args.torch_worker))
    runtime.set_thread_env(args.threads)
    runtime.write_results(run_benchmark(args), args.out, "train")


def run_benchmark(args):
    """Everything but writing the JSON: builds (unless told not to), makes or takes the model,
    measures the ceiling and both sides, prints the report; returns the result dict."""
    loramd, loramd_error = (None, "skipped (--skip-loramd)")
    if not args.skip_loramd or not (args.model or args.dev_model):
        loramd, loramd_error = runtime.build_loramd(args)
        if loramd_error:
            log("loramd: not available: " + loramd_error)
    model_dir, model_source = runtime.make_model(args, loramd)
    load_before = runtime._loadavg()
    if load_before and load_before[0] > 0.5:
        log("note: load average %.2f before measuring: something else is using the CPU, expect noise" % load_before[0])
    shapes = runtime.model_shapes(model_dir)
    ceil = None
    if not args.skip_ceilings:
        ceiling_args = argparse.Namespace(threads=args.threads, prompt_tokens=args.micro_batch * args.seq_len,
                                          bw_mib=args.bw_mib)
        ceil = runtime.machine_ceilings(ceiling_args, shapes)
    if args.skip_loramd:
        loramd, loramd_error = None, "skipped (--skip-loramd)"

    tmp = "/tmp/loramd-bench-train-%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    try:
        torch_info, torch_memory, t, lm_info, notes, m, loramd_error = measure(args, shapes, model_dir, loramd,
                                                                               loramd_error, tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    s = summarize(args, shapes, ceil, torch_info, torch_memory, t, m, loramd_error)
    report(args, shapes, model_dir, model_source, ceil, torch_info, lm_info, notes, s)

    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "git": runtime.run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip(),
        "gitDirtySources": [line[3:] for line in runtime.run(["git", "status", "--porcelain", "--", "Sources",
                                                              "Package.swift"]).stdout.splitlines() if line.strip()],
        "machine": {"cpu": runtime._cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadAverageBefore": load_before,
                    "loadAverageAfter": runtime._loadavg()},
        "threads": args.threads,
        "config": {"seqLen": args.seq_len, "microBatch": args.micro_batch, "r": args.r, "alpha": args.alpha,
                   "dropout": args.dropout, "targets": TARGETS, "lr": args.lr, "weightDecay": args.weight_decay,
                   "maxGradNorm": args.max_grad_norm, "bInitStd": args.b_init_std, "warmup": args.warmup,
                   "steps": args.steps, "runs": args.runs, "seed": args.seed, "bf16Matmul": args.bf16_matmul},
        "model": {"path": model_dir, "source": model_source, "shapes": shapes},
        "dtype": args.dtype,
        "ceilings": ceil, "torchInfo": torch_info, "loramdInfo": lm_info, **s,
    }
    return result


if __name__ == "__main__":
    main()
