#!/usr/bin/env python3
"""LoRAM on a real model: does "train small, infer large" pay, and where?

    python3 bench/loram_real.py [--grid quick|full] [--threads N] [--model GGUF_OR_DIR] [--steps S] ...

On a real checkpoint (default: SmolLM2-135M-Instruct from loramd's model cache) and a domain split
by file of the Python standard library's own source (train: top-level .py files whose name starts
with a-m; held-out perplexity: files n-z), it measures these arms:

- ``original``: the untuned original (no adapter);
- ``lora``: LoRA on the original (``train/create`` + ``train/step`` + ``eval/perplexity``);
- ``carrier``: the pruned carrier with its own adapter (train small, infer small);
- ``loram``: the original with the recovered adapter (train small, infer large);

the last two for every LoRAM configuration of the grid (pruning criterion, structured ratio,
alignment steps on unrelated general text, NF4 carrier), each one ``loram/run`` request, which
also reports the untuned carrier and the original. Alignment data is English prose the machine
has: Debian's /usr/share/doc/*/README* files (never the Python domain).

Per arm: held-out perplexity, training peak memory (planned and measured), tokens/s and wall
time, and the loss curve. Writes bench/results/loram-real-<date>.json and .md (after every arm,
so an interrupted run keeps what it finished; ``--resume`` skips arms already in the JSON) and,
with matplotlib, docs/loram-real-ppl-vs-memory.png and docs/loram-real-loss.png (``--replot JSON`` redraws
them and the table from a finished run).
bench/README.md explains the options and docs/loram-on-real-models.md the results.
"""
import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import runtime  # noqa: E402  build_loramd, log, machine facts (standard library only)
from loram_client import corpora  # noqa: E402  the stdlib domain and the Debian prose

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_MODEL = os.path.join(os.environ.get("LORAMD_CACHE", os.path.expanduser("~/.cache/loramd")),
                             "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
log = runtime.log

# The grid that fits ~75 minutes of 2 shared cores with the quick settings (see bench/README.md),
# most informative first so an interrupted run keeps the headline arms: (method, ratio, alignSteps,
# nf4), "A1"/"A2" being the 2nd/3rd --align-steps. The full grid is the cross product of --methods,
# --ratios, --align-steps and --nf4.
QUICK_GRID = [
    ("l2", 0.5, 0, False), ("l2", 0.5, "A2", False), ("l2", 0.5, "A2", True),
    ("l2", 0.3, 0, False), ("l2", 0.75, 0, False), ("random", 0.5, 0, False),
    ("l2", 0.5, "A1", False), ("taylor", 0.5, 0, False),
    ("random", 0.3, 0, False), ("random", 0.75, 0, False),
    ("l2", 0.75, "A2", False), ("l2", 0.5, 0, True),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="original model: a GGUF file or HF directory (default: SmolLM2-135M-Instruct from the cache)")
    p.add_argument("--dtype", default="bf16", help="storage of the loaded original (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--grid", choices=["quick", "full"], default="quick",
                   help="quick: the designed 12-configuration grid (module's QUICK_GRID, align sizes from --align-steps); "
                   "full: the cross product of --methods x --ratios x --align-steps x --nf4")
    p.add_argument("--methods", default="random,l2,taylor", help="pruning criteria for --grid full (default: %(default)s)")
    p.add_argument("--ratios", default="0.3,0.5,0.65,0.75", help="structured ratios for --grid full (default: %(default)s)")
    p.add_argument("--align-steps", default="0,20,60",
                   help="alignment budgets (steps); quick uses the 2nd and 3rd as A1 and A2 (default: %(default)s)")
    p.add_argument("--nf4", choices=["off", "on", "both"], default="both", help="NF4 carrier for --grid full (default: %(default)s)")
    p.add_argument("--arms", help="explicit LoRAM configurations instead of a grid: method:ratio:alignSteps[:nf4],... "
                   "e.g. l2:0.5:0,l2:0.5:60:nf4")
    p.add_argument("--skip-lora", action="store_true", help="no LoRA-on-the-original arm")
    p.add_argument("--only-lora", action="store_true", help="only the original and LoRA-on-the-original arms (timing)")
    p.add_argument("--limit", type=int, help="run at most this many LoRAM configurations (timing)")
    # Training (the same for LoRA on the original and on every carrier).
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--micro-batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0, help="data order, adapter init, random pruning")
    # Alignment (full-parameter training of the carrier, lm_head frozen).
    p.add_argument("--align-lr", type=float, default=1e-4)
    p.add_argument("--align-seq-len", type=int, help="default: --seq-len")
    # Evaluation.
    p.add_argument("--eval-samples", type=int, default=32, help="held-out samples (one per n-z file), each cut to --seq-len tokens")
    # Data caps (bytes), so runs stay bounded and the record is exact.
    p.add_argument("--train-file-bytes", type=int, default=8192, help="at most this many bytes from the start of each a-m file")
    p.add_argument("--train-bytes", type=int, default=400_000, help="at most this many training bytes in all")
    p.add_argument("--eval-chunk-bytes", type=int, default=4096, help="bytes per held-out sample (from a third into its file)")
    p.add_argument("--align-file-bytes", type=int, default=8192)
    p.add_argument("--align-bytes", type=int, default=400_000)
    p.add_argument("--calibration-rows", type=int, default=10, help="taylor: calibration rows (LLM-Pruner's 10 x 64 tokens)")
    p.add_argument("--work", default="/tmp/loram-real", help="datasets and loram/run outputs (default: %(default)s)")
    p.add_argument("--out", help="JSON path (default: bench/results/loram-real-<date>.json; the .md beside it)")
    p.add_argument("--plots", default=os.path.join(ROOT, "docs"), help="folder for the PNGs ('-' for none; default: docs/)")
    p.add_argument("--replot", metavar="JSON", help="run nothing: rewrite the .md beside JSON and the plots from it")
    p.add_argument("--resume", action="store_true", help="keep the arms already in --out and run only the missing ones")
    p.add_argument("--loramd", help="the loramd binary (default: build and use .build/release/loramd)")
    p.add_argument("--no-build", action="store_true")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data

def make_data(args):
    """Writes train.jsonl, eval.jsonl, align.jsonl, calibration.jsonl under args.work (the rules are
    loram_client.corpora's); returns their datasets and an exact record of which files and bytes went in."""
    train, held_out, record = corpora.python_stdlib_domain(
        args.work, train_bytes=args.train_bytes, train_file_bytes=args.train_file_bytes,
        eval_samples=args.eval_samples, eval_chunk_bytes=args.eval_chunk_bytes)
    align, record["align"] = corpora.debian_prose(args.work, total_bytes=args.align_bytes, file_bytes=args.align_file_bytes)
    # Taylor calibration: the first rows of the alignment text (general text, as LLM-Pruner's BookCorpus).
    with open(align["path"]) as f:
        lines = f.readlines()[:args.calibration_rows]
    calib_path = os.path.join(args.work, "calibration.jsonl")
    with open(calib_path, "w") as f:
        f.writelines(lines)
    with open(calib_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    record["calibration"] = {"path": calib_path, "sha256": digest, "examples": len(lines),
                             "rule": "the first alignment lines, cut to 64 tokens"}
    ds = {"train": train, "eval": held_out, "align": align, "calibration": {"path": calib_path, "format": "text"}}
    return ds, record


# --------------------------------------------------------------------------- arms

def grid(args):
    aligns = [int(x) for x in args.align_steps.split(",") if x != ""]
    if args.arms:
        out = []
        for spec in args.arms.split(","):
            parts = spec.split(":")
            out.append((parts[0], float(parts[1]), int(parts[2]) if len(parts) > 2 else 0, len(parts) > 3 and parts[3] == "nf4"))
        return out
    if args.grid == "full":
        nf4 = {"off": [False], "on": [True], "both": [False, True]}[args.nf4]
        return [(m, float(r), a, q) for m in args.methods.split(",") for r in args.ratios.split(",") for a in aligns for q in nf4]
    sizes = {"A1": aligns[1] if len(aligns) > 1 else 20, "A2": aligns[2] if len(aligns) > 2 else (aligns[-1] if aligns else 60)}
    return [(m, r, sizes.get(a, a), q) for (m, r, a, q) in QUICK_GRID]


def arm_key(method, ratio, align, nf4):
    return "%s-r%g-a%d%s" % (method, ratio, align, "-nf4" if nf4 else "")


def train_fields(args, ds):
    return {"dataset": ds["train"], "seqLen": args.seq_len, "microBatch": args.micro_batch, "steps": args.steps,
            "lr": args.lr, "schedule": "constant", "packing": True, "seed": args.seed}


class RssSampler:
    """Samples the daemon's VmRSS every 0.2 s while running (a cross-check of the daemon's own figures)."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid) or 0)
            self._stop.wait(0.2)

    def __enter__(self):
        self.start_rss = rss(self.pid) or 0
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def rss(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def lora_on_original(lm, args, ds):
    """The untuned original and LoRA on it: planned peak as loram/run plans the carrier's (the
    job's plan + the model's weights + the adapter), measured peak = the model's bytes + the
    largest RSS growth of the daemon over adapter creation and training."""
    t0 = time.monotonic()
    loaded = lm.load_model(args.model, dtype=args.dtype)
    model = loaded["modelId"]
    load_s = time.monotonic() - t0
    ev = {"datasets": None}
    t = time.monotonic()
    base = lm.perplexity(model, ds["eval"], seq_len=args.seq_len, max_samples=args.eval_samples)
    eval_s = time.monotonic() - t
    log("original: perplexity %.3f (%d tokens, %.0f s)" % (base["perplexity"], base["tokens"], eval_s))
    before = rss(lm.pid) or 0
    adapter = lm.create_adapter(model, r=args.r, alpha=args.alpha, targets=TARGETS, dropout=args.dropout, seed=args.seed)
    tf = train_fields(args, ds)
    job = lm.train_create(model, tf["dataset"], adapter_id=adapter["adapterId"], steps=args.steps, lr=args.lr,
                          seq_len=args.seq_len, micro_batch=args.micro_batch, schedule="constant", seed=args.seed, packing=True)
    losses, tps, peak_rss, arena = [], [], before, None
    t = time.monotonic()
    for i in range(args.steps):
        s = lm.train_step(job["jobId"])
        losses.append(s["losses"][-1])
        tps.append(s.get("tokensPerSecond"))
        arena = s.get("arena") or arena
        peak_rss = max(peak_rss, rss(lm.pid) or 0)
        if (i + 1) % 10 == 0 or i == 0:
            log("  lora on original: step %d/%d loss %.4f (%.0f tok/s)" % (i + 1, args.steps, losses[-1], tps[-1] or 0))
    train_s = time.monotonic() - t
    lm.train_close(job["jobId"])
    t = time.monotonic()
    tuned = lm.perplexity(model, ds["eval"], adapter_id=adapter["adapterId"], seq_len=args.seq_len, max_samples=args.eval_samples)
    eval2_s = time.monotonic() - t
    log("lora on original: perplexity %.3f (%.0f s training)" % (tuned["perplexity"], train_s))
    planned = job["plan"]["peakBytes"] + loaded["bytes"] + adapter["bytes"]
    tokens = args.steps * args.micro_batch * args.seq_len
    arms = [
        {"arm": "original", "key": "original", "perplexity": base["perplexity"], "loss": base["loss"], "evalTokens": base["tokens"],
         "seconds": {"load": load_s, "eval": eval_s}},
        {"arm": "lora", "key": "lora", "perplexity": tuned["perplexity"], "loss": tuned["loss"], "evalTokens": tuned["tokens"],
         "memory": {"plannedPeakBytes": planned, "measuredPeakBytes": loaded["bytes"] + max(0, peak_rss - before),
                    "measuredHow": "model bytes + daemon RSS growth over adapter/create, train/create and every step",
                    "jobPlan": job["plan"], "lastStepArena": arena, "modelBytes": loaded["bytes"], "adapterBytes": adapter["bytes"]},
         "savedBytes": 0, "tokensPerSecond": tokens / train_s, "stepTokensPerSecondMedian": _median([x for x in tps if x]),
         "wallSeconds": train_s + eval2_s, "seconds": {"train": train_s, "eval": eval2_s},
         "losses": losses, "trainTokens": tokens, "jobParameters": job.get("parameters"), "examples": job.get("examples")},
    ]
    lm.unload_adapter(adapter["adapterId"])
    lm.unload_model(model)
    return arms


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def loram_arm(lm, args, ds, method, ratio, align, nf4):
    key = arm_key(method, ratio, align, nf4)
    out_dir = os.path.join(args.work, "runs", key)
    prune = {"method": method, "ratio": ratio}
    if method == "random":
        prune["seed"] = args.seed
    if method == "taylor":
        prune["calibration"] = ds["calibration"]
    train = dict(train_fields(args, ds), lora={"r": args.r, "alpha": args.alpha, "dropout": args.dropout, "targets": TARGETS, "seed": args.seed})
    align_params = None
    if align:
        align_params = {"dataset": ds["align"], "seqLen": args.align_seq_len or args.seq_len, "microBatch": args.micro_batch,
                        "steps": align, "lr": args.align_lr, "schedule": "cosine", "warmupSteps": max(1, align // 10),
                        "packing": True, "seed": args.seed}
    curves = {"align": {}, "train": {}}

    def progress(value):
        if value.get("kind") == "report" and "step" in value and value.get("stage") in curves and "loss" in value:
            curves[value["stage"]][int(value["step"])] = value["loss"]

    t = time.monotonic()
    with RssSampler(lm.pid) as sampler:
        result = lm.loram_run(args.model, dtype=args.dtype, prune=prune, align=align_params, quantize="nf4" if nf4 else None,
                              train=train, eval={"datasets": [ds["eval"]], "seqLen": args.seq_len, "maxSamples": args.eval_samples},
                              out_dir=out_dir, progress=progress)
    wall = time.monotonic() - t
    rep = result["report"]
    ppl = rep["perplexity"][0]
    mem = rep.get("memory", {})
    sec = rep.get("seconds", {})
    train_s = sec.get("train")
    tokens = args.steps * args.micro_batch * args.seq_len
    common = {"method": method, "ratio": ratio, "alignSteps": align, "nf4": nf4,
              "parameters": rep.get("parameters"), "reduction": rep.get("reduction"), "bytes": rep.get("bytes"),
              "memory": mem, "savedBytes": (mem.get("fullModelLoRAPlannedPeakBytes", 0) - mem.get("plannedPeakBytes", 0)) if mem else None,
              "tokensPerSecond": tokens / train_s if train_s else None, "wallSeconds": wall, "seconds": sec,
              "losses": [curves["train"][k] for k in sorted(curves["train"])],
              "alignLosses": [curves["align"][k] for k in sorted(curves["align"])],
              "training": rep.get("training"), "align": rep.get("align"), "daemonRssPeakBytes": sampler.peak,
              "untunedCarrierPerplexity": ppl["carrier"], "originalPerplexityInRun": ppl["original"], "report": rep}
    log("%s: original %.3f | carrier %.3f | carrier+adapter %.3f | original+recovered %.3f | %.0f s; planned %.0f MiB vs LoRA on original %.0f MiB"
        % (key, ppl["original"], ppl["carrier"], ppl["carrierWithAdapter"], ppl["originalWithRecoveredAdapter"], wall,
           mem.get("plannedPeakBytes", 0) / 2**20, mem.get("fullModelLoRAPlannedPeakBytes", 0) / 2**20))
    for adapter in (result["adapterId"], result["carrierAdapterId"]):
        lm.unload_adapter(adapter)
    for model in (result["prunedModelId"], result["modelId"]):
        lm.unload_model(model)
    return [dict(common, arm="carrier", key=key + "/carrier", perplexity=ppl["carrierWithAdapter"]),
            dict(common, arm="loram", key=key + "/loram", perplexity=ppl["originalWithRecoveredAdapter"])]


# --------------------------------------------------------------------------- output

def mib(n):
    return "" if n is None else "%.0f" % (n / 2**20)


def fnum(x, spec="%.2f"):
    return "" if x is None else spec % x


def markdown(result):
    arms = result["arms"]
    orig = next((a for a in arms if a["arm"] == "original"), None)
    lora = next((a for a in arms if a["arm"] == "lora"), None)
    s = result["settings"]
    lines = ["# LoRAM on %s: held-out perplexity (%s)" % (os.path.basename(s["model"]), result["date"]), "",
             "Train: stdlib a-m (%d bytes), held-out: stdlib n-z (%d samples x %d tokens). LoRA r %d / alpha %g / dropout %g on "
             "the seven projections, seqLen %d, micro-batch %d, %d steps, lr %g constant; alignment lr %g cosine on Debian READMEs. "
             "Memory in MiB: training peak (planned / measured); saved = LoRA-on-original's planned peak minus the arm's. "
             "`bench/loram_real.py`, commit %s." % (result["data"]["train"]["bytes"], result["data"]["eval"]["examples"], s["seqLen"],
                                                    s["r"], s["alpha"], s["dropout"], s["seqLen"], s["microBatch"], s["steps"], s["lr"],
                                                    s["alignLr"], result.get("commit", "?")), ""]
    lines.append("| arm | criterion | ratio | align | NF4 | ppl | vs original | untuned carrier | planned | measured | saved | tok/s | wall s |")
    lines.append("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = orig["perplexity"] if orig else None

    def row(a):
        m = a.get("memory") or {}
        vs = "%+.2f" % (a["perplexity"] - base) if base and a.get("perplexity") is not None else ""
        label = {"original": "original (no adapter)", "lora": "LoRA on original", "carrier": "carrier + its adapter",
                 "loram": "**LoRAM** (original + recovered)"}[a["arm"]]
        return "| %s | %s | %s | %s | %s | %.3f | %s | %s | %s | %s | %s | %s | %s |" % (
            label, a.get("method", ""), fnum(a.get("ratio"), "%g"), a.get("alignSteps", ""), "yes" if a.get("nf4") else "",
            a["perplexity"], vs, fnum(a.get("untunedCarrierPerplexity")), mib(m.get("plannedPeakBytes")), mib(m.get("measuredPeakBytes")),
            mib(a.get("savedBytes")), fnum(a.get("tokensPerSecond"), "%.0f"), fnum(a.get("wallSeconds"), "%.0f"))
    for a in arms:
        lines.append(row(a))
    if lora and base:
        lines += ["", "LoRA on the original gains %.3f perplexity over the untuned original; for each LoRAM configuration, the share of "
                  "that gain it recovers (negative: worse than no adapter), and LoRAM minus train-small-infer-small:" % (base - lora["perplexity"]), "",
                  "| configuration | LoRAM ppl | share of LoRA's gain | LoRAM - carrier+adapter | saved MiB (x) |", "|---|---:|---:|---:|---:|"]
        gain = base - lora["perplexity"]
        by = {}
        for a in arms:
            if a["arm"] in ("carrier", "loram"):
                by.setdefault(a["key"].split("/")[0], {})[a["arm"]] = a
        for k, pair in by.items():
            if "loram" in pair and "carrier" in pair:
                l, c = pair["loram"], pair["carrier"]
                m = l.get("memory") or {}
                lines.append("| %s | %.3f | %.0f %% | %+.3f | %s (%.2fx) |" % (k, l["perplexity"], 100 * (base - l["perplexity"]) / gain if gain else 0,
                                                                   l["perplexity"] - c["perplexity"], mib(l.get("savedBytes")),
                                                                   m.get("savedOverFullModelLoRA") or 0))
    return "\n".join(lines) + "\n"


def plots(result, folder):
    if folder == "-":
        return []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plots (pip install matplotlib)")
        return []
    os.makedirs(folder, exist_ok=True)
    arms = result["arms"]
    orig = next((a for a in arms if a["arm"] == "original"), None)
    lora = next((a for a in arms if a["arm"] == "lora"), None)
    written = []

    # Left: LoRAM against LoRA on the original and the untuned original (linear, zoomed). Right: every
    # trained arm on a log scale, where train-small-infer-small's carriers (often 10-100x worse) fit.
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    style = {"loram": ("o", "tab:blue", "LoRAM (original + recovered adapter)"), "carrier": ("s", "tab:orange", "carrier + its adapter")}
    for panel, ax in enumerate(axes):
        kinds = ["loram"] if panel == 0 else ["loram", "carrier"]
        for kind in kinds:
            marker, color, label = style[kind]
            pts = [a for a in arms if a["arm"] == kind and a.get("savedBytes") is not None]
            for i, a in enumerate(pts):
                ax.scatter(a["savedBytes"] / 2**20, a["perplexity"], marker=marker, edgecolors=color,
                           facecolors=color if a.get("alignSteps") else "none", s=70 if a.get("nf4") else 45,
                           linewidths=2.5 if a.get("nf4") else 1.2, label=label if i == 0 else None)
                if panel == 0 or kind == "carrier":
                    ax.annotate("%s %g a%d%s" % (a["method"], a["ratio"], a["alignSteps"], " nf4" if a["nf4"] else ""),
                                (a["savedBytes"] / 2**20, a["perplexity"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        if lora:
            ax.scatter(0, lora["perplexity"], marker="*", s=180, color="tab:green", label="LoRA on the original", zorder=3)
        if orig:
            ax.axhline(orig["perplexity"], color="gray", linestyle="--", label="original, no adapter (%.2f)" % orig["perplexity"])
        ax.set_xlabel("training peak memory saved vs LoRA on the original (planned, MiB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("held-out perplexity (stdlib n-z)")
    axes[0].set_title("inference on the original (filled: aligned; thick: NF4 carrier)", fontsize=10)
    axes[1].set_yscale("log")
    axes[1].set_title("with train-small-infer-small (log scale)", fontsize=10)
    fig.suptitle("%s, %d LoRA steps: held-out perplexity against training memory saved"
                 % (os.path.basename(result["settings"]["model"]), result["settings"]["steps"]), fontsize=11)
    path = os.path.join(folder, "loram-real-ppl-vs-memory.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    if lora:
        ax.plot(range(1, len(lora["losses"]) + 1), lora["losses"], color="black", linewidth=2, label="LoRA on the original")
    for a in arms:
        if a["arm"] == "loram" and a.get("losses"):
            ax.plot(range(1, len(a["losses"]) + 1), a["losses"], linewidth=1, alpha=0.8, label=a["key"].split("/")[0])
    ax.set_xlabel("LoRA step")
    ax.set_ylabel("training loss (stdlib a-m)")
    ax.set_title("LoRA training loss: on the original vs on each carrier", fontsize=10)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for a in arms:
        if a["arm"] == "loram" and a.get("alignLosses"):
            ax.plot(range(1, len(a["alignLosses"]) + 1), a["alignLosses"], label=a["key"].split("/")[0])
    ax.set_xlabel("alignment step")
    ax.set_ylabel("alignment loss (Debian READMEs)")
    ax.set_title("alignment (full-parameter, lm_head frozen)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path = os.path.join(folder, "loram-real-loss.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def write(result, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    md = os.path.splitext(path)[0] + ".md"
    with open(md + ".tmp", "w") as f:
        f.write(markdown(result))
    os.replace(md + ".tmp", md)


def git_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() or None


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        with open(args.replot) as f:
            result = json.load(f)
        result["plots"] = [os.path.relpath(p, ROOT) for p in plots(result, args.plots)]
        write(result, args.replot)
        print(markdown(result))
        return 0
    from loram_client import Loram
    if not os.path.exists(args.model):
        log("no model at %s (scripts/fetch-model smollm2 fetches it)" % args.model)
        return 1
    loramd, err = runtime.build_loramd(args)
    if err:
        log("loramd: " + err)
        return 1
    path = args.out or os.path.join(BENCH, "results", "loram-real-%s.json" % datetime.date.today().isoformat())
    ds, record = make_data(args)
    settings = {"model": args.model, "dtype": args.dtype, "threads": args.threads, "seqLen": args.seq_len, "microBatch": args.micro_batch,
                "steps": args.steps, "lr": args.lr, "schedule": "constant", "packing": True, "r": args.r, "alpha": args.alpha,
                "dropout": args.dropout, "targets": TARGETS, "seed": args.seed, "alignLr": args.align_lr, "alignSchedule": "cosine, warmup steps/10",
                "alignSeqLen": args.align_seq_len or args.seq_len, "evalSamples": args.eval_samples, "grid": args.grid, "arms": args.arms}
    result = {"date": datetime.date.today().isoformat(), "command": " ".join([sys.executable] + sys.argv), "commit": git_commit(),
              "machine": {"cpu": runtime._cpu_name(), "cores": os.cpu_count(), "loadavgBefore": runtime._loadavg()},
              "settings": settings, "data": record, "arms": []}
    done = set()
    if args.resume and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        result["arms"] = old.get("arms", [])
        result["failures"] = old.get("failures", [])
        result["previousSeconds"] = old.get("totalSeconds", 0) or 0
        result["commands"] = (old.get("commands") or [old.get("command")]) + [result["command"]]
        done = {a["key"] for a in result["arms"]}
        log("resuming: %d arms already in %s" % (len(done), path))
    configs = grid(args)
    if args.limit is not None:
        configs = configs[:args.limit]
    log("data: train %d bytes from %d files, held-out %d samples, align %d bytes from %d files"
        % (record["train"]["bytes"], len(record["train"]["files"]), record["eval"]["examples"], record["align"]["bytes"], len(record["align"]["files"])))
    log("LoRAM configurations: %s" % ", ".join(arm_key(*c) for c in configs))
    start = time.monotonic()
    with Loram(loramd, init_params={"threads": args.threads}) as lm:
        result["daemon"] = {"serverInfo": lm.server_info, "device": lm.device}
        if not args.skip_lora and not ({"original", "lora"} <= done):
            result["arms"] = [a for a in result["arms"] if a["arm"] not in ("original", "lora")]
            result["arms"][:0] = lora_on_original(lm, args, ds)
            write(result, path)
        if not args.only_lora:
            for c in configs:
                key = arm_key(*c)
                if key + "/loram" in done:
                    continue
                try:
                    result["arms"] += loram_arm(lm, args, ds, *c)
                except Exception as e:  # noqa: BLE001  a failed arm is recorded, the grid goes on
                    log("%s failed: %r" % (key, e))
                    result.setdefault("failures", []).append({"key": key, "error": repr(e)})
                result["totalSeconds"] = time.monotonic() - start + result.get("previousSeconds", 0)
                write(result, path)
    result["totalSeconds"] = time.monotonic() - start + result.get("previousSeconds", 0)
    result["machine"]["loadavgAfter"] = runtime._loadavg()
    write(result, path)
    result["plots"] = [os.path.relpath(p, ROOT) for p in plots(result, args.plots)]
    write(result, path)
    print(markdown(result))
    log("wrote %s and %s (%.0f s)" % (os.path.relpath(path, ROOT), os.path.relpath(os.path.splitext(path)[0] + ".md", ROOT), result["totalSeconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
