#!/usr/bin/env python3
"""loramd vs PyTorch+transformers, side by side: same checkpoint, same thread count, one run.

    python3 bench/runtime.py [--threads N] [--model DIR] [--preset small] [--runs K]

Measures prefill tokens/s (one forward over a --prompt-tokens prompt, default 512) and decode
tokens/s (--new-tokens greedy tokens after that prompt, default 128) for both, alternating
torch, loramd, torch, loramd, ... and keeping the best of --runs rounds for each; prints the
ratios against the targets (prefill >= 1.15x, decode >= 2.5x PyTorch) and how close each side
gets to the machine's ceilings, which bench/sgemm_bandwidth.c measures with the same OpenBLAS
and the same thread count: prefill as a fraction of the sgemm rate, decode as a fraction of the
memory-bandwidth limit. Writes everything as JSON to bench/results/runtime-<date>.json.
bench/README.md explains the numbers.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")

# Defaults for the `small` model (issue 16 sets none there for prefill and decode); bench/table.py
# passes issue 16's SmolLM2 targets (prefill >= 1.6x, decode >= 4x and >= 70% of the bandwidth limit).
TARGET_PREFILL = 1.15
TARGET_DECODE = 2.5
DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2}
SAFETENSORS_DTYPES = {"F32": "f32", "BF16": "bf16", "F16": "f16"}


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for both sides and the ceilings (default: all cores, %(default)s)")
    p.add_argument("--model", help="a Hugging Face LLaMA directory (default: make one with "
                   "`loramd make-model --preset PRESET`)")
    p.add_argument("--preset", default="small", help="make-model preset (default: %(default)s)")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--runs", type=int, default=5, help="timed rounds per side, after a warm-up (default: %(default)s)")
    p.add_argument("--loramd", help="the loramd binary (default: build and use .build/release/loramd)")
    p.add_argument("--no-build", action="store_true", help="do not run `swift build -c release`")
    p.add_argument("--dev-model", action="store_true",
                   help="use a random transformers-made model of the preset's shapes instead of make-model's "
                   "(development only; also the fallback when make-model is not available)")
    p.add_argument("--skip-loramd", action="store_true", help="PyTorch side and ceilings only")
    p.add_argument("--bf16-matmul", action="store_true",
                   help="bf16 products with fp32 sums on both sides: loramd's matmulDtype bf16 (Intel AMX), "
                        "PyTorch under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--out", help="JSON output path (default: bench/results/runtime-<date>.json; '-' for none)")
    p.add_argument("--bw-mib", type=int, default=1024, help="bandwidth buffer, MiB (default: %(default)s)")
    p.add_argument("--dtype", choices=sorted(DTYPE_BYTES),
                   help="loramd's storage (model/load dtype; default: as stored); also the bytes per weight of "
                   "the decode limit (default: the checkpoint's own dtype). PyTorch computes in fp32 either way")
    p.add_argument("--target-prefill", type=float, default=TARGET_PREFILL,
                   help="loramd/PyTorch prefill tokens/s target (default: %(default)s)")
    p.add_argument("--target-decode", type=float, default=TARGET_DECODE,
                   help="loramd/PyTorch decode tokens/s target (default: %(default)s)")
    p.add_argument("--target-decode-bandwidth", type=float,
                   help="also a target for loramd's decode as a fraction of the bandwidth limit (e.g. 0.7)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- setup

def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def tail(text, n=3):
    return " | ".join(line for line in text.strip().splitlines()[-n:])


def build_loramd(args):
    """Returns (path or None, error or None)."""
    if args.loramd:
        return (args.loramd, None) if os.access(args.loramd, os.X_OK) else (None, "%s is not executable" % args.loramd)
    path = os.path.join(ROOT, ".build", "release", "loramd")
    if not args.no_build:
        log("building loramd: swift build -c release ...")
        r = run(["swift", "build", "-c", "release"])
        if r.returncode != 0:
            return None, "swift build -c release failed: " + tail(r.stdout)
    if not os.access(path, os.X_OK):
        return None, "%s does not exist" % path
    return path, None


def make_model(args, loramd):
    """Returns (directory, how it was made)."""
    if args.model:
        return args.model, "given (--model)"
    if not args.dev_model and loramd:
        out = "/tmp/loramd-bench-%s" % args.preset
        log("making the model: loramd make-model --preset %s --out %s ..." % (args.preset, out))
        r = run([loramd, "make-model", "--preset", args.preset, "--out", out])
        if r.returncode == 0 and os.path.exists(os.path.join(out, "config.json")):
            return out, "loramd make-model --preset %s" % args.preset
        log("loramd make-model is not available (%s); using a transformers-made dev model instead"
            % tail(r.stdout, 2))
    sys.path.insert(0, BENCH)
    from devmodel import make_dev_model
    out = "/tmp/loramd-bench-dev-%s" % args.preset
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        log("making a dev model with transformers at %s ..." % out)
        make_dev_model(out, args.preset)
    return out, "DEV: random transformers model (bench/devmodel.py), not make-model's"


def model_shapes(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    hidden = c["hidden_size"]
    heads = c["num_attention_heads"]
    kv_heads = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or hidden // heads
    s = dict(layers=c["num_hidden_layers"], hidden=hidden, intermediate=c["intermediate_size"],
             heads=heads, kvHeads=kv_heads, headDim=head_dim, vocab=c["vocab_size"],
             tiedEmbeddings=bool(c.get("tie_word_embeddings", False)),
             bos=c.get("bos_token_id"), eos=c.get("eos_token_id"), pad=c.get("pad_token_id"))
    q, kv = heads * head_dim, kv_heads * head_dim
    s["layerMatmulParams"] = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * s["intermediate"]
    s["lmHeadParams"] = s["vocab"] * hidden
    s["normParams"] = (2 * s["layers"] + 1) * hidden
    s["parameters"] = (s["layers"] * s["layerMatmulParams"] + s["lmHeadParams"] + s["normParams"]
                       + (0 if s["tiedEmbeddings"] else s["vocab"] * hidden))
    s["storedDtype"] = stored_dtype(model_dir)
    return s


def stored_dtype(model_dir):
    """The dtype the checkpoint's decoder linears are stored in (`f32`/`bf16`/`f16`), from the
    safetensors header of the file holding layer 0's q_proj; None when it cannot be told."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    name = "model.layers.0.self_attn.q_proj.weight"
    try:
        if os.path.exists(index):
            with open(index) as f:
                path = os.path.join(model_dir, json.load(f)["weight_map"][name])
        else:
            path = os.path.join(model_dir, "model.safetensors")
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= 100 * 2 ** 20:
                return None
            header = json.loads(f.read(n))
        return SAFETENSORS_DTYPES.get(header[name]["dtype"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def decode_dtype(args, shapes):
    """The storage dtype loramd decodes from: --dtype, else the checkpoint's own (fp32 if unknown)."""
    return args.dtype or shapes.get("storedDtype") or "f32"


CEILINGS_EXE = "/tmp/loramd-bench-sgemm_bandwidth"


def machine_ceilings(args, shapes):
    exe = CEILINGS_EXE
    src = os.path.join(BENCH, "sgemm_bandwidth.c")
    r = None
    for flags in (["-O2", "-march=native"], ["-O2"]):
        r = run(["gcc", *flags, src, "-lopenblas", "-lpthread", "-o", exe])
        if r.returncode == 0:
            break
    if r.returncode != 0:
        raise RuntimeError("cannot build bench/sgemm_bandwidth.c: " + tail(r.stdout))
    cmd = [exe, "--threads", str(args.threads), "--tokens", str(args.prompt_tokens),
           "--layers", str(shapes["layers"]), "--hidden", str(shapes["hidden"]),
           "--intermediate", str(shapes["intermediate"]), "--heads", str(shapes["heads"]),
           "--kv-heads", str(shapes["kvHeads"]), "--head-dim", str(shapes["headDim"]),
           "--vocab", str(shapes["vocab"]), "--bw-mib", str(args.bw_mib)]
    log("measuring the ceilings: %s ..." % " ".join(cmd[1:]))
    meter = CpuMeter()
    best = None
    for attempt in range(3):
        c0 = meter.start()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        busy = meter.stop(c0)
        if r.returncode != 0:
            raise RuntimeError("sgemm_bandwidth failed: " + tail(r.stderr))
        ceil = json.loads(r.stdout)
        ceil["interference"] = busy
        ceil["attempts"] = attempt + 1
        if best is None or ceil["sgemm"]["gflops"] > best["sgemm"]["gflops"]:
            best = ceil
        # Another process taking more than 5% of the cores meanwhile: measure again (up to 3 times),
        # keeping the attempt with the best sgemm rate.
        if not busy or busy["foreignCpuSeconds"] <= 0.05 * busy["wallSeconds"] * (os.cpu_count() or 1):
            break
        log("  another process used %.2f CPU-s meanwhile; measuring again" % busy["foreignCpuSeconds"])
    best["attempts"] = attempt + 1
    return best


def bandwidth_again(args):
    """GB/s at N threads now (median of 5 passes), or None."""
    r = subprocess.run([CEILINGS_EXE, "--threads", str(args.threads), "--bandwidth-only", "--bw-reps", "5",
                        "--bw-mib", str(args.bw_mib)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return json.loads(r.stdout)["bandwidth"]["GBps"]
    except (ValueError, KeyError, TypeError):
        return None


def prompt_ids(shapes, n):
    """n ids, deterministic: BOS, then an LCG over the vocabulary skipping special ids."""
    special = {i for i in (shapes["bos"], shapes["eos"], shapes["pad"], 0) if isinstance(i, int)}
    ids = [shapes["bos"]] if isinstance(shapes["bos"], int) else []
    x = 12345
    while len(ids) < n:
        x = (1103515245 * x + 12345) % (1 << 31)
        t = (x >> 8) % shapes["vocab"]
        if t not in special:
            ids.append(t)
    return ids


# --------------------------------------------------------------------------- the two sides

class TorchSide:
    def __init__(self, model_dir, threads, autocast=False):
        import contextlib
        import torch
        import transformers
        from transformers import LlamaForCausalLM

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.torch = torch
        # bf16 autocast: each linear casts its fp32 weight and input to bf16 and runs oneDNN's bf16 GEMM.
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
        try:
            self.model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        except TypeError:  # transformers < 4.56
            self.model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        self.model.eval()
        self.info = {"torch": torch.__version__, "transformers": transformers.__version__,
                     "threads": torch.get_num_threads(), "autocast": "bf16" if autocast else None,
                     "attnImplementation": getattr(self.model.config, "_attn_implementation", None),
                     "blas": "MKL" if torch.backends.mkl.is_available() else "other"}
        self.eos = self.model.config.eos_token_id
        if isinstance(self.eos, list):
            self.eos = self.eos[0]

    def prefill(self, ids):
        """Seconds for one forward over the prompt, as generate's first step does it
        (KV cache filled, logits for the last position only)."""
        torch = self.torch
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad(), self.autocast():
            t0 = time.perf_counter()
            self.model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1)
            return time.perf_counter() - t0

    def generate(self, ids, new_tokens):
        """(seconds for the whole generate call, seconds from the first logits processing to the
        end (a cross-check: new_tokens - 1 single-token steps), new ids)."""
        torch = self.torch
        from transformers import LogitsProcessor, LogitsProcessorList

        stamps = []

        class Stamp(LogitsProcessor):
            def __call__(self, input_ids, scores):
                if not stamps:
                    stamps.append(time.perf_counter())
                return scores

        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad(), self.autocast():
            t0 = time.perf_counter()
            out = self.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=False, temperature=None,
                                      top_p=None, top_k=None, pad_token_id=self.eos,
                                      logits_processor=LogitsProcessorList([Stamp()]))
            t1 = time.perf_counter()
        return t1 - t0, (t1 - stamps[0]) if stamps else None, out[0, len(ids):].tolist()

    def linear_gflops(self, shapes, tokens, reps=5):
        """PyTorch's own matmul rate (F.linear, its MKL sgemm) on the prefill shapes, for reading
        its prefill fraction: how much of the gap to the sgemm rate is matmul, how much the rest."""
        torch = self.torch
        q, kv, h, i = shapes["heads"] * shapes["headDim"], shapes["kvHeads"] * shapes["headDim"], \
            shapes["hidden"], shapes["intermediate"]
        dims = [(q, h), (kv, h), (kv, h), (h, q), (i, h), (i, h), (h, i)]
        g = torch.Generator().manual_seed(0)
        ws = [[torch.randn(n, k, generator=g) * 0.05 for n, k in dims] for _ in range(shapes["layers"])]
        xs = {k: torch.randn(tokens, k, generator=g) for k in {k for _, k in dims}}
        best = float("inf")
        with torch.no_grad():
            for r in range(reps + 1):
                t0 = time.perf_counter()
                for layer in ws:
                    for w in layer:
                        torch.nn.functional.linear(xs[w.shape[1]], w)
                dt = time.perf_counter() - t0
                if r > 0:
                    best = min(best, dt)
        return 2.0 * tokens * shapes["layers"] * sum(n * k for n, k in dims) / best / 1e9


class LoramdSide:
    def __init__(self, loramd, model_dir, threads, dtype=None, quantize=None, matmul=None):
        sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
        from loram_client import LoramClient

        init = {"threads": threads, **({"matmulDtype": matmul} if matmul else {})}
        self.client = LoramClient(command=[loramd], cwd=ROOT, init_params=init, lifecycle_timeout=60.0)
        try:
            self.info = {"server": self.client.server_info, "device": self.client.device}
            loaded = self.client.request("model/load", {"path": os.path.abspath(model_dir),
                                                        **({"dtype": dtype} if dtype else {})}, timeout=600)
            self.model_id = loaded["modelId"]
            self.info["load"] = {k: loaded.get(k) for k in ("config", "parameters", "bytes")}
            if quantize:  # e.g. "nf4": the new model is the one generate runs on
                q = self.client.request("model/quantize", {"modelId": self.model_id, "format": quantize}, timeout=600)
                self.model_id = q["modelId"]
                self.info["quantize"] = {k: q.get(k) for k in ("parameters", "bytes", "bytesPerParameter")}
        except BaseException:
            self.close()
            raise

    def generate(self, ids, new_tokens):
        t0 = time.perf_counter()
        r = self.client.request("generate", {"modelId": self.model_id, "ids": ids, "maxTokens": new_tokens,
                                             "temperature": 0}, timeout=1800)
        wall = time.perf_counter() - t0
        out = list(r.get("ids") or [])
        if len(out) > new_tokens and out[:len(ids)] == ids:  # prompt + completion
            out = out[len(ids):]
        return wall, r, out

    def close(self):
        try:
            self.client.close(timeout=10.0)
        except Exception:
            pass


class CpuMeter:
    """CPU seconds spent on this machine by processes other than this benchmark (its threads, its
    waited-for children, the loramd daemon) while something is timed, from /proc: a busy neighbour
    (a concurrent build) shows up here rather than as an unexplained slow round."""

    def __init__(self):
        self.tick = float(os.sysconf("SC_CLK_TCK"))
        self.pids = []

    def _snap(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq (guest is in user)
            steal = v[7] if len(v) > 7 else 0
            own = 0
            for pid in ["self"] + [str(p) for p in self.pids]:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                own += sum(int(x) for x in fields[11:15 if pid == "self" else 13])  # utime stime (cutime cstime)
            return busy, steal, own, time.perf_counter()
        except (OSError, ValueError, IndexError):
            return None

    def start(self):
        return self._snap()

    def stop(self, start):
        end = self._snap()
        if not start or not end:
            return None
        return {"foreignCpuSeconds": round(max(0, (end[0] - start[0]) - (end[2] - start[2])) / self.tick, 3),
                "stealSeconds": round((end[1] - start[1]) / self.tick, 3),
                "wallSeconds": round(end[3] - start[3], 3)}


def settle():
    """Let the other side's idle BLAS/OpenMP threads stop spinning before timing this one."""
    time.sleep(1.0)


# --------------------------------------------------------------------------- measurement

def measure(args, shapes, model_dir, loramd, loramd_error):
    ids = prompt_ids(shapes, args.prompt_tokens)
    log("loading the model in PyTorch ...")
    torch_side = TorchSide(model_dir, args.threads, autocast=args.bf16_matmul)
    lm = None
    if loramd and not args.skip_loramd:
        try:
            log("starting loramd and loading the model ...")
            lm = LoramdSide(loramd, model_dir, args.threads, dtype=args.dtype, matmul="bf16" if args.bf16_matmul else None)
        except Exception as exc:
            loramd_error = "%s: %s" % (type(exc).__name__, exc)
    elif args.skip_loramd:
        loramd_error = "skipped (--skip-loramd)"

    t = {"prefill": [], "generate": [], "decodeHook": [], "ids": None, "linearGflops": None, "bandwidth": [],
         "interference": []}
    m = {"prefill": [], "decode": [], "wall": [], "results": [], "ids": None, "interference": []}
    meter = CpuMeter()
    if lm is not None:
        meter.pids = [lm.client.pid]

    def loramd_round(n_new):
        nonlocal lm, loramd_error
        if lm is None:
            return None
        try:
            return lm.generate(ids, n_new)
        except Exception as exc:
            loramd_error = "%s: %s" % (type(exc).__name__, exc)
            log("loramd: generate failed: " + loramd_error)
            lm.close()
            lm = None
            return None

    try:
        log("warm-up ...")
        t["linearGflops"] = torch_side.linear_gflops(shapes, args.prompt_tokens)
        torch_side.prefill(ids)
        torch_side.generate(ids, min(8, args.new_tokens))
        settle()
        loramd_round(min(8, args.new_tokens))
        for k in range(args.runs):
            t["bandwidth"].append(bandwidth_again(args))
            settle()
            log("round %d/%d: torch ..." % (k + 1, args.runs))
            c0 = meter.start()
            t["prefill"].append(torch_side.prefill(ids))
            dt, hook, out = torch_side.generate(ids, args.new_tokens)
            t["interference"].append(meter.stop(c0))
            t["generate"].append(dt)
            t["decodeHook"].append(hook)
            t["ids"] = out
            if lm is not None:
                settle()
                log("round %d/%d: loramd ..." % (k + 1, args.runs))
                c0 = meter.start()
                got = loramd_round(args.new_tokens)
                m["interference"].append(meter.stop(c0))
                if got is not None:
                    wall, res, out = got
                    timing = res.get("timing") or {}
                    m["prefill"].append(timing.get("prefillTokensPerSecond"))
                    m["decode"].append(timing.get("decodeTokensPerSecond"))
                    m["wall"].append(wall)
                    m["results"].append({k2: res.get(k2) for k2 in ("finishReason", "usage", "timing")})
                    m["ids"] = out
    finally:
        if lm is not None:
            lm.close()
    return ids, torch_side.info, t, (lm.info if lm else None), m, loramd_error


def summarize(args, shapes, ceil, torch_info, t, m, loramd_error):
    T, N = args.prompt_tokens, args.new_tokens
    L, hd, H = shapes["layers"], shapes["headDim"], shapes["heads"]
    # FLOPs of one prefill: the weight matmuls over all T tokens (plus lm_head for the last token
    # only, as generate does) and, counted apart, causal attention (Q·Kᵀ and P·V).
    weight_flops = 2.0 * T * L * shapes["layerMatmulParams"] + 2.0 * shapes["lmHeadParams"]
    attn_flops = 2.0 * L * H * hd * T * (T + 1)  # 2 matmuls · 2 flops · Σ_{t=1..T} t · H · hd
    sgemm = ceil["sgemm"]["gflops"] * 1e9
    # Bytes read per decoded token: every weight matrix (in loramd's storage dtype: fp32, or 2 bytes
    # for bf16/f16, lm_head included) plus the norms and one embedding row. The KV cache read is
    # reported apart (at the mean context length of the decode).
    weight_bytes = DTYPE_BYTES[decode_dtype(args, shapes)] * (
        L * shapes["layerMatmulParams"] + shapes["lmHeadParams"] + shapes["normParams"] + shapes["hidden"])
    mean_ctx = T + N / 2.0
    kv_bytes = 4.0 * L * 2 * shapes["kvHeads"] * hd * mean_ctx
    # The read bandwidth: the median of the ceilings' measurement and the per-round ones (on a VM it
    # moves while the benchmark runs; the range is reported).
    samples = [x for x in [(ceil.get("bandwidth") or {}).get("GBps")] + t["bandwidth"] if x]
    bw_gbps = statistics.median(samples) if samples else None
    bw = bw_gbps * 1e9 if bw_gbps else None
    limit = bw / weight_bytes if bw else None
    limit_kv = bw / (weight_bytes + kv_bytes) if bw else None
    sgemv_limit = 1.0 / ceil["sgemv"]["secondsPerToken"]

    def prefill_fracs(tps):
        if tps is None:
            return None
        secs = T / tps
        return {"sgemmFraction": weight_flops / secs / sgemm,
                "sgemmFractionWithAttention": (weight_flops + attn_flops) / secs / sgemm,
                "weightGflops": weight_flops / secs / 1e9}

    def decode_fracs(tps):
        if tps is None or not limit:
            return None
        return {"bandwidthFraction": tps / limit, "bandwidthFractionWithKV": tps / limit_kv,
                "sgemvFraction": tps / sgemv_limit, "effectiveGBps": tps * weight_bytes / 1e9}

    tp_best = min(t["prefill"])
    tg_best = min(t["generate"])
    torch_prefill = T / tp_best
    # Decode, defined as loramd's timing defines it: the tokens after the first (which the prefill
    # yields) over the time from the end of the prefill to the end of generation. The end of the
    # prefill is when generate first calls its logits processors. The definition,
    # N / (generate time - prefill time), is kept as decodeTokensPerSecondSubtraction.
    torch_decode_sub = N / (tg_best - tp_best)
    hooks = [x for x in t["decodeHook"] if x]
    torch_decode = (N - 1) / min(hooks) if hooks and N > 1 else torch_decode_sub
    out = {
        "torch": {"prefillTokensPerSecond": torch_prefill, "decodeTokensPerSecond": torch_decode,
                  "decodeTokensPerSecondSubtraction": torch_decode_sub,
                  "prefillSeconds": t["prefill"], "generateSeconds": t["generate"],
                  "decodeSeconds": t["decodeHook"],
                  "linearGflops": t["linearGflops"],
                  "linearSgemmFraction": t["linearGflops"] / (sgemm / 1e9) if t["linearGflops"] else None,
                  "prefill": prefill_fracs(torch_prefill), "decode": decode_fracs(torch_decode)},
        "loramd": None,
        "loramdError": loramd_error,
        "flops": {"prefillWeightMatmuls": weight_flops, "prefillAttention": attn_flops},
        "bytes": {"weightsPerDecodedToken": weight_bytes, "kvCachePerDecodedTokenMean": kv_bytes},
        "interference": {"torch": t["interference"], "loramd": m["interference"]},
        "bandwidthGBps": {"used": bw_gbps, "samples": samples,
                          "min": min(samples) if samples else None, "max": max(samples) if samples else None,
                          "statistic": "median of the ceilings' measurement and one per round"},
        "limits": {"decodeTokensPerSecondBandwidthBound": limit,
                   "decodeTokensPerSecondBandwidthBoundWithKV": limit_kv,
                   "decodeTokensPerSecondSgemvAllWeights": sgemv_limit,
                   "prefillTokensPerSecondSgemmBound": T * sgemm / weight_flops},
    }
    pre = [x for x in m["prefill"] if isinstance(x, (int, float))]
    dec = [x for x in m["decode"] if isinstance(x, (int, float))]
    if pre and dec:
        lp, ld = max(pre), max(dec)
        out["loramd"] = {"prefillTokensPerSecond": lp, "decodeTokensPerSecond": ld,
                         "prefillTokensPerSecondRuns": m["prefill"], "decodeTokensPerSecondRuns": m["decode"],
                         "wallSecondsRuns": m["wall"], "results": m["results"],
                         "prefill": prefill_fracs(lp), "decode": decode_fracs(ld)}
        out["ratios"] = {"prefill": lp / torch_prefill, "decode": ld / torch_decode,
                         "prefillTarget": args.target_prefill, "decodeTarget": args.target_decode,
                         "prefillMeetsTarget": lp / torch_prefill >= args.target_prefill,
                         "decodeMeetsTarget": ld / torch_decode >= args.target_decode}
        fb = (out["loramd"]["decode"] or {}).get("bandwidthFraction")
        if args.target_decode_bandwidth is not None and fb is not None:
            out["ratios"].update({"decodeBandwidthTarget": args.target_decode_bandwidth,
                                  "decodeBandwidthMeetsTarget": fb >= args.target_decode_bandwidth})
    elif m["results"] and out["loramdError"] is None:
        out["loramdError"] = "generate's result has no timing.prefillTokensPerSecond/decodeTokensPerSecond"
    if t["ids"] is not None and m["ids"] is not None:
        a, b = t["ids"], m["ids"]
        first_mismatch = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if first_mismatch is None and len(a) != len(b):
            first_mismatch = min(len(a), len(b))
        out["greedy"] = {"compared": min(len(a), len(b)), "torchTokens": len(a), "loramdTokens": len(b),
                         "matchingPositions": sum(x == y for x, y in zip(a, b)),
                         "matchingPrefix": first_mismatch if first_mismatch is not None else len(a),
                         "firstMismatch": first_mismatch,
                         "torchIds": a, "loramdIds": b}
    return out


# --------------------------------------------------------------------------- report

def fmt(x, spec="%.1f"):
    return "-" if x is None else spec % x


def report(args, shapes, model_dir, model_source, ceil, torch_info, s):
    T, N = args.prompt_tokens, args.new_tokens
    print()
    compute = "bf16 products (loramd matmulDtype bf16, PyTorch bf16 autocast)" if args.bf16_matmul else "fp32 compute"
    print("loramd vs PyTorch %s + transformers %s, %d threads, %s (loramd stores the weights as %s)" %
          (torch_info["torch"], torch_info["transformers"], args.threads, compute, decode_dtype(args, shapes)))
    print("model: %s (%s)" % (model_dir, model_source))
    print("       %d layers, hidden %d, intermediate %d, heads %d/%d kv, head_dim %d, vocab %d, %.1fM parameters"
          % (shapes["layers"], shapes["hidden"], shapes["intermediate"], shapes["heads"], shapes["kvHeads"],
             shapes["headDim"], shapes["vocab"], shapes["parameters"] / 1e6))
    bw = ceil.get("bandwidth") or {}
    print("ceilings (OpenBLAS %s, %s kernels, %d threads): sgemm %.1f GFLOP/s at M=%d on the layer shapes;"
          % (ceil["openblas"]["config"].split()[1], ceil["openblas"]["core"], ceil["threads"],
             ceil["sgemm"]["gflops"], T))
    hot = ceil["sgemv"].get("sgemmM1SlowdownHotPerShape") or {}
    print("       sgemv %.1f GFLOP/s over all weights of one token (%.1f GB/s; sgemm at M=1 is %.1fx slower there,"
          " %s-%sx on one cache-resident matrix);"
          % (ceil["sgemv"]["gflops"], ceil["sgemv"]["effectiveGBps"], ceil["sgemv"]["sgemmM1SlowdownVsSgemv"],
             fmt(min(hot.values()) if hot else None), fmt(max(hot.values()) if hot else None)))
    b = s["bandwidthGBps"]
    print("       read bandwidth %s GB/s (median of %d measurements, one per round, range %s-%s; %s GB/s on 1 thread)"
          % (fmt(b["used"]), len(b["samples"]), fmt(b["min"]), fmt(b["max"]), fmt(bw.get("GBps1Thread"))))
    if b["min"] and b["max"] / b["min"] > 1.25:
        print("       NOTE: the bandwidth moved by %.0f%% during the run (on a VM, presumably where the vCPUs run);"
              " decode fractions use the median" % (100 * (b["max"] / b["min"] - 1)))
    lim = s["limits"]
    print("       => prefill bound %.0f tok/s (weight matmuls at the sgemm rate); decode bound %s tok/s "
          "(%.1f MB of weights per token; %s tok/s with the mean KV-cache read)"
          % (lim["prefillTokensPerSecondSgemmBound"], fmt(lim["decodeTokensPerSecondBandwidthBound"], "%.0f"),
             s["bytes"]["weightsPerDecodedToken"] / 1e6, fmt(lim["decodeTokensPerSecondBandwidthBoundWithKV"], "%.0f")))
    print("          (OpenBLAS sgemv alone over all weights: %.0f tok/s; PyTorch's own matmul on the prefill shapes: "
          "%s GFLOP/s = %s of the sgemm rate)"
          % (lim["decodeTokensPerSecondSgemvAllWeights"], fmt(s["torch"]["linearGflops"]),
             fmt(s["torch"]["linearSgemmFraction"] and 100 * s["torch"]["linearSgemmFraction"], "%.0f%%")))
    print()
    tr, lm = s["torch"], s["loramd"]
    r = s.get("ratios") or {}

    def frac(d, key):
        return "-" if not d or d.get(key) is None else "%.0f%%" % (100 * d[key])

    def verdict(ok):
        return "" if ok is None else ("ok" if ok else "BELOW TARGET")

    hdr = "%-24s %10s %10s %8s %8s %-13s %-24s %-24s" % (
        "", "torch", "loramd", "ratio", "target", "", "loramd of ceiling", "torch of ceiling")
    print(hdr)
    print("%-24s %10s %10s %8s %8s %-13s %-24s %-24s" % (
        "prefill tok/s (%d)" % T, fmt(tr["prefillTokensPerSecond"]), fmt(lm and lm["prefillTokensPerSecond"]),
        fmt(r.get("prefill"), "%.2fx"), "%.2fx" % args.target_prefill, verdict(r.get("prefillMeetsTarget")),
        "%s sgemm (%s w/ attn)" % (frac(lm and lm["prefill"], "sgemmFraction"),
                                  frac(lm and lm["prefill"], "sgemmFractionWithAttention")),
        "%s sgemm (%s w/ attn)" % (frac(tr["prefill"], "sgemmFraction"),
                                  frac(tr["prefill"], "sgemmFractionWithAttention"))))
    print("%-24s %10s %10s %8s %8s %-13s %-24s %-24s" % (
        "decode tok/s (%d new)" % N, fmt(tr["decodeTokensPerSecond"]), fmt(lm and lm["decodeTokensPerSecond"]),
        fmt(r.get("decode"), "%.2fx"), "%.2fx" % args.target_decode, verdict(r.get("decodeMeetsTarget")),
        "%s bandwidth" % frac(lm and lm["decode"], "bandwidthFraction"),
        "%s bandwidth" % frac(tr["decode"], "bandwidthFraction")))
    if r.get("decodeBandwidthTarget") is not None:
        print("%-24s %10s %10s %8s %8s %-13s" % (
            "decode, of bandwidth", "", frac(lm and lm["decode"], "bandwidthFraction"), "",
            ">=%.0f%%" % (100 * r["decodeBandwidthTarget"]), verdict(r.get("decodeBandwidthMeetsTarget"))))
    print()
    print("prefill: one forward over the %d-token prompt, logits for the last position; best of %d. "
          "Fraction of sgemm = weight-matmul FLOPs (2·params·tokens, attention excluded) / time / sgemm rate; "
          "'w/ attn' adds the causal attention FLOPs." % (T, args.runs))
    print("decode: %d greedy tokens after the same prompt, both sides as loramd's timing defines it: %d tokens after "
          "the first / the time after the prefill (torch: from generate's first logits processing to its end; "
          "%d / (generate - prefill) gives %.1f); best of %d. Fraction of bandwidth = tok/s / "
          "(read bandwidth / %s weight bytes per token)."
          % (N, N - 1, N, tr["decodeTokensPerSecondSubtraction"], args.runs, decode_dtype(args, shapes)))
    print_interference(s["interference"])
    ci = ceil.get("interference")
    if ci and ci["foreignCpuSeconds"] > 0.05 * ci["wallSeconds"] * (os.cpu_count() or 1):
        print("WARNING: other processes used %.2f CPU-s of %.1f s while the ceilings were measured (%d attempts);"
              " the sgemm/sgemv/bandwidth figures are low" % (ci["foreignCpuSeconds"], ci["wallSeconds"], ceil["attempts"]))
    if lm is None:
        print()
        print("loramd: not available yet: %s" % (s["loramdError"] or "unknown"))
    else:
        us = [x.get("usage") for x in lm["results"]]
        fr = sorted({x.get("finishReason") for x in lm["results"]} - {None})
        print("loramd usage: %s; finishReason %s" % (us[-1] if us else None, ",".join(fr) or "-"))
        if s.get("loramdError"):
            print("loramd: a later request failed: %s" % s["loramdError"])
    g = s.get("greedy")
    if g:
        print()
        line = "greedy ids: %d of %d positions match (identical prefix: %d tokens)" % (
            g["matchingPositions"], g["compared"], g["matchingPrefix"])
        if g["torchTokens"] != g["loramdTokens"]:
            line += "; torch made %d tokens, loramd %d" % (g["torchTokens"], g["loramdTokens"])
        print(line)
        if g["matchingPrefix"] < min(8, g["compared"]) or g["compared"] == 0:
            print("!" * 78)
            print("!! MISMATCH: loramd's greedy ids differ from PyTorch's at position %s of %d"
                  % (g["firstMismatch"], g["compared"]))
            print("!!   torch : %s" % g["torchIds"][:16])
            print("!!   loramd: %s" % g["loramdIds"][:16])
            print("!" * 78)
        elif g["firstMismatch"] is not None:
            print("(the first %d agree; a later divergence can be a near-tie in a random model's logits)"
                  % g["matchingPrefix"])


def set_thread_env(threads):
    """Before torch is imported, so its OpenMP/MKL pools never start more threads than asked."""
    if threads < 1:
        sys.exit("--threads must be >= 1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def main():
    args = parse_args()
    set_thread_env(args.threads)
    write_results(run_benchmark(args), args.out, "runtime")


def run_benchmark(args):
    """Everything but writing the JSON: builds (unless told not to), makes or takes the model,
    measures the ceilings and both sides, prints the report; returns the result dict."""
    loramd, loramd_error = (None, "skipped (--skip-loramd)")
    if not args.skip_loramd or not (args.model or args.dev_model):
        loramd, loramd_error = build_loramd(args)
        if loramd_error:
            log("loramd: not available: " + loramd_error)
    model_dir, model_source = make_model(args, loramd)
    load_before = _loadavg()
    if load_before and load_before[0] > 0.5:
        log("note: load average %.2f before measuring: something else is using the CPU, expect noise"
            % load_before[0])
    shapes = model_shapes(model_dir)
    ceil = machine_ceilings(args, shapes)
    if args.skip_loramd:
        loramd, loramd_error = None, "skipped (--skip-loramd)"

    ids, torch_info, t, lm_info, m, loramd_error = measure(args, shapes, model_dir, loramd, loramd_error)
    s = summarize(args, shapes, ceil, torch_info, t, m, loramd_error)
    report(args, shapes, model_dir, model_source, ceil, torch_info, s)

    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "git": run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip(),
        # uncommitted changes under Sources/ were compiled into the loramd that ran
        "gitDirtySources": [line[3:] for line in run(["git", "status", "--porcelain", "--", "Sources", "Package.swift"])
                            .stdout.splitlines() if line.strip()],
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadAverageBefore": load_before, "loadAverageAfter": _loadavg()},
        "threads": args.threads, "promptTokens": args.prompt_tokens, "newTokens": args.new_tokens,
        "runs": args.runs, "promptIds": {"first": ids[:8], "count": len(ids)},
        "model": {"path": model_dir, "source": model_source, "shapes": shapes},
        "dtype": decode_dtype(args, shapes),
        "ceilings": ceil, "torchInfo": torch_info, "loramdInfo": lm_info, **s,
    }
    return result


def print_interference(interference):
    """One line on what other processes did during the timed rounds (both benchmarks measure it)."""
    busy = []
    for side in ("torch", "loramd"):
        xs = [x for x in interference[side] if x]
        if xs:
            busy.append("%s %.2f CPU-s in %.1f s" % (side, sum(x["foreignCpuSeconds"] for x in xs),
                                                   sum(x["wallSeconds"] for x in xs)))
    if busy:
        print("other processes during the timed rounds: %s (on %d cores; per round in the JSON)"
              % ("; ".join(busy), os.cpu_count() or 0))


def write_results(result, out, name):
    """Writes `result` to `out` (default bench/results/<name>-<date>.json; "-" writes nothing),
    under a temporary name first."""
    if out == "-":
        return
    path = out or os.path.join(BENCH, "results", "%s-%s.json" % (name, datetime.date.today().isoformat()))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("\nwrote %s" % os.path.relpath(path, ROOT))


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
