#!/usr/bin/env python3
"""Checks GGUF models and GGUF LoRA adapters against llama.cpp (through llama-cpp-python).

    /work/refenv/bin/python scripts/check-gguf-adapter-llamacpp.py COMMAND [options]

Commands (default base: the SmolLM2 Q4_1 GGUF `scripts/fetch-model smollm2` caches):

  logits --base B.gguf [--adapter A.gguf] --ids 1,2,3 [--save out.npz]
      llama.cpp's logits at every position, without and (with --adapter) with the adapter:
      a summary per position (top-5 ids, max |delta|) and, with --save, the full arrays.
  compare --base B.gguf --adapter A.gguf [--ids ...]
      llama.cpp (base, base + adapter) against loramd (spawned: model/load {path: B, dtype: f32},
      adapter/load of A, model/forward {logits: "all"} with and without the adapter).
  loramd [--base B.gguf] [--train-steps N]
      The whole round trip: loramd loads B, creates an adapter on the seven projections (B drawn
      from N(0, bInitStd) so it matters; --train-steps N also trains it N steps on a small text),
      saves it with adapter/save {format: "gguf"}, then `compare` on that file.
  vs-transformers [--base B.gguf]
      llama.cpp's base logits against Tests/Fixtures/smollm2 (transformers, dequantized fp32).
  synthetic [--base B.gguf] [--transformers]
      A random GGUF LoRA adapter written here with gguf-py in convert_lora_to_gguf.py's layout:
      llama.cpp loads it, it changes the logits, and its effect equals a base GGUF with
      W + scale*B*A folded in with numpy (and, with --transformers, transformers' model with the
      HF-order delta, which checks the q/k row permutation); F16 factors and lora_scale too.
  all       vs-transformers, synthetic --transformers, and loramd when the daemon exists.

How the comparison is made meaningful: llama.cpp computes a quantized GGUF with the quantized
weights and, on the CPU, quantizes activations to Q8_1 for those dot products; its KV cache is F16
by default, and flash attention (off by default here) converts to F16 too. So by default llama.cpp
runs an F32 copy of the base (every tensor dequantized with gguf-py: the weights loramd and
transformers use) with an F32 KV cache and flash attention off (--exact, the default). Measured on
SmolLM2 against transformers' fp32: max |dlogit| 8e-5 (relative 2.6e-6); TOL_EXACT = 1e-3 is the
pass mark. With --quantized llama.cpp runs the GGUF as given (Q4_1: max |dlogit| 1-3.4, relative up
to 9%, argmax agreement 86-100%): reported, with the adapter's effect (with - without) compared
as well, but per-logit agreement is not expected there.

Needs llama-cpp-python, numpy and gguf (plus torch and transformers for vs-transformers' fixture
regeneration and synthetic --transformers); loramd and its tests do not. Not run by CI.
Exit code 0 when every check passes.
"""
import argparse
import hashlib
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/smollm2"
DEFAULT_BASE = (pathlib.Path(os.environ.get("LORAMD_CACHE", pathlib.Path.home() / ".cache/loramd"))
                / "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
TOL_EXACT = 1e-3        # llama.cpp (F32 copy, F32 KV, no flash attention) vs fp32 logits
TOL_F16_FACTORS = 2e-2  # adapter factors stored as F16 vs the same factors in F32
GGML_TYPE_F32 = 0

# GGUF tensor name -> (Hugging Face module path within a layer)
HF_MODULE = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

failures = []


def log(*a):
    print(*a, flush=True)


def check(ok, what):
    log(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
    return ok


# ---------------------------------------------------------------- llama.cpp

def adapter_loads(model_path, lora_path):
    """(True, None) when llama.cpp's llama_adapter_lora_init accepts the adapter beside the model,
    else (False, llama.cpp's reason). Checked with the C API because llama-cpp-python 0.3.36 does
    not notice a failed load (it tests the returned LP_c_void_p against None, and a NULL pointer is
    not None): it goes on with a NULL adapter and the process dies at the first eval."""
    import subprocess
    code = (
        "import sys, llama_cpp as l\n"
        "l.llama_backend_init()\n"
        "m = l.llama_model_load_from_file(sys.argv[1].encode(), l.llama_model_default_params())\n"
        "assert m, 'base model did not load'\n"
        "a = l.llama_adapter_lora_init(m, sys.argv[2].encode())\n"
        "print('LOADED' if a else 'REFUSED', flush=True)\n"
        "a and l.llama_adapter_lora_free(a)\n"
        "l.llama_model_free(m)\n"
    )
    # A subprocess: llama.cpp logs its reason on stderr (and a GGML_ASSERT would abort us).
    proc = subprocess.run([sys.executable, "-c", code, str(model_path), str(lora_path)],
                          capture_output=True, text=True)
    if "LOADED" in proc.stdout:
        return True, None
    reason = [l for l in proc.stderr.splitlines() if "failed" in l or "error" in l.lower() or "GGML_ASSERT" in l]
    return False, (reason[-1] if reason else proc.stderr.strip()[-500:] or f"exit code {proc.returncode}")


def llamacpp_logits(model_path, ids, lora_path=None, lora_scale=1.0, exact=True):
    """llama.cpp's logits [len(ids), vocab] for ids evaluated as one batch."""
    from llama_cpp import Llama
    if lora_path:
        ok, why = adapter_loads(model_path, lora_path)
        if not ok:
            raise RuntimeError(f"llama.cpp refuses {lora_path}: {why}")
    n_ctx = max(64, len(ids) + 8)
    kw = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, flash_attn=False) if exact else {}
    llm = Llama(str(model_path), lora_path=str(lora_path) if lora_path else None, lora_scale=lora_scale,
                logits_all=True, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=2, seed=0,
                verbose=False, **kw)
    try:
        llm.reset()
        llm.eval(list(ids))
        return np.array(llm.scores[:len(ids)], dtype=np.float32)
    finally:
        llm.close()


def loads_in_llamacpp(model_path, lora_path):
    """(True, None) when llama.cpp accepts the adapter, else (False, message)."""
    return adapter_loads(model_path, lora_path)


# ---------------------------------------------------------------- GGUF helpers (gguf-py)

def file_digest(path):
    h = hashlib.sha256()
    st = os.stat(path)
    h.update(f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def copy_kv(reader, writer, skip=()):
    from gguf import GGUFValueType
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in skip:
            continue
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), vtype)


def dequantized_copy(src, work_dir, deltas=None, tag="f32"):
    """An F32 copy of GGUF `src` (every tensor dequantized by gguf-py), cached in work_dir.
    deltas: {tensor name: float32 array in numpy (GGUF-reversed) shape} added to the weights."""
    import gguf
    dst = pathlib.Path(work_dir) / f"{pathlib.Path(src).stem}.{file_digest(src)}.{tag}.gguf"
    if dst.exists() and deltas is None:
        return dst
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), reader.fields["general.architecture"].contents())
    copy_kv(reader, writer, skip=("general.file_type",))
    writer.add_uint32("general.file_type", int(gguf.LlamaFileType.ALL_F32))
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        if deltas and t.name in deltas:
            w = w + deltas[t.name]
        writer.add_tensor(t.name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def base_info(path):
    import gguf
    r = gguf.GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()
    f = lambda k: r.fields[f"{arch}.{k}"].contents()  # noqa: E731
    shapes = {t.name: [int(x) for x in t.shape] for t in r.tensors}  # GGUF order: ne0, ne1
    return {"arch": arch, "layers": f("block_count"), "heads": f("attention.head_count"),
            "kv_heads": f("attention.head_count_kv"), "hidden": f("embedding_length"), "shapes": shapes}


def write_lora_gguf(path, arch, alpha, factors, dtype=np.float32, alpha_type="f32"):
    """factors: {base tensor name: (A [r, in], B [out, r])} in PEFT's orientation (numpy shapes).
    gguf-py reverses numpy shapes, so A lands as ne = [in, r] and B as ne = [r, out]."""
    import gguf
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type(gguf.GGUFType.ADAPTER)                  # general.type = "adapter"
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")       # adapter.type = "lora"
    if alpha_type == "f32":
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))  # must be FLOAT32
    for name, (a, b) in factors.items():
        w.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=dtype))
        w.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_lora_gguf(path):
    """(alpha, {base name: (A [r, in], B [out, r]) as float32})"""
    import gguf
    r = gguf.GGUFReader(str(path))
    alpha = float(r.fields["adapter.lora.alpha"].contents()) if "adapter.lora.alpha" in r.fields else 0.0
    parts = {}
    for t in r.tensors:
        base, kind = t.name.rsplit(".", 1)
        arr = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        parts.setdefault(base, {})[kind] = arr
    return alpha, {k: (v["lora_a"], v["lora_b"]) for k, v in parts.items()}


def permute_rows(b, n_head):
    """llama.cpp's LlamaModel.permute on rows (HF rotate-half order -> GGUF interleaved order)."""
    out = b.shape[0]
    return b.reshape(n_head, 2, out // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def unpermute_rows(b, n_head):
    """The inverse of permute_rows (GGUF order -> HF order), as transformers' GGUF loader does."""
    out = b.shape[0]
    return b.reshape(n_head, out // n_head // 2, 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


# ---------------------------------------------------------------- comparisons

def diff_stats(got, want):
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = max(1.0, float(np.abs(want).max()))
    agree = float((got.argmax(-1) == want.argmax(-1)).mean())
    return float(d.max()), float(d.max()) / scale, float(d.mean()), agree


def report(name, got, want, tol=None):
    mx, rel, mean, agree = diff_stats(got, want)
    text = f"{name}: max |d| {mx:.3g} (relative {rel:.3g}), mean |d| {mean:.3g}, argmax agreement {agree:.0%}"
    if tol is None:
        log(f"info {text}")
        return True
    return check(mx <= tol, f"{text} (tolerance {tol:g})")


def report_delta(name, got_with, got_without, want_with, want_without, tol=None):
    """Compares the adapter's effect (with - without) of two implementations."""
    dg, dw = got_with - got_without, want_with - want_without
    effect = float(np.abs(dw).max())
    mx = float(np.abs(dg - dw).max())
    text = f"{name}: adapter effect max |delta| {effect:.3g}, difference of effects max {mx:.3g} ({100 * mx / max(effect, 1e-30):.2g}% of it)"
    if tol is None:
        log(f"info {text}")
        return True
    return check(mx <= tol, f"{text} (tolerance {tol:g})")


def reference_prompts(names=("english", "python")):
    ref = json.loads((FIXTURES / "reference.json").read_text())
    return {p["name"]: p for p in ref["prompts"] if p["name"] in names}, ref


def parse_ids(text):
    return [int(x) for x in text.replace(",", " ").split()]


def default_ids():
    prompts, _ = reference_prompts(("python",))
    return prompts["python"]["input_ids"]


# ---------------------------------------------------------------- commands

def cmd_logits(args, work):
    ids = parse_ids(args.ids) if args.ids else default_ids()
    model = args.base if args.quantized else dequantized_copy(args.base, work)
    base = llamacpp_logits(model, ids, exact=not args.quantized)
    with_adapter = llamacpp_logits(model, ids, args.adapter, args.scale, exact=not args.quantized) if args.adapter else None
    np.set_printoptions(precision=4, suppress=True, linewidth=160)
    log(f"llama.cpp on {model} ({'as given' if args.quantized else 'F32 copy, F32 KV, no flash attention'}), "
        f"{len(ids)} ids, vocab {base.shape[1]}")
    for i, t in enumerate(ids):
        top = np.argsort(-base[i])[:5]
        line = f"pos {i:3d} id {t:6d}  base top5 {top.tolist()} {base[i, top]}"
        if with_adapter is not None:
            top_a = np.argsort(-with_adapter[i])[:5]
            line += f"  adapter top5 {top_a.tolist()} max|delta| {np.abs(with_adapter[i] - base[i]).max():.4g}"
        log(line)
    if args.save:
        arrays = {"ids": np.array(ids), "base": base}
        if with_adapter is not None:
            arrays["adapter"] = with_adapter
        np.savez(args.save, **arrays)
        log(f"saved {args.save}")
    if args.print_all:
        log("base logits:\n" + np.array2string(base, threshold=sys.maxsize))
        if with_adapter is not None:
            log("adapter logits:\n" + np.array2string(with_adapter, threshold=sys.maxsize))


def loramd_client(args):
    sys.path.insert(0, str(ROOT / "clients/python"))
    from loram_client import Loram
    daemon = args.daemon or os.environ.get("LORAMD") or str(ROOT / ".build/debug/loramd")
    if not pathlib.Path(daemon).exists():
        sys.exit(f"{daemon} not found: swift build first (or --daemon / $LORAMD)")
    return Loram(command=daemon, init_params={"threads": 2})


def compare_with_loramd(args, work, loram, model_id, adapter_path, adapter_id, ids_list):
    """llama.cpp vs loramd on base and base + adapter, for each id list."""
    exact_base = dequantized_copy(args.base, work)
    for ids in ids_list:
        log(f"-- {len(ids)} ids: {ids[:12]}{' ...' if len(ids) > 12 else ''}")
        lb = np.array(loram.forward(model_id, ids, logits="all"), dtype=np.float32)
        la = np.array(loram.forward(model_id, ids, adapter_id=adapter_id, logits="all"), dtype=np.float32)
        cb = llamacpp_logits(exact_base, ids)
        ca = llamacpp_logits(exact_base, ids, adapter_path)
        report("base: loramd vs llama.cpp (F32 copy)", lb, cb, TOL_EXACT)
        report("base + adapter: loramd vs llama.cpp (F32 copy)", la, ca, TOL_EXACT)
        report_delta("adapter effect: loramd vs llama.cpp (F32 copy)", la, lb, ca, cb, TOL_EXACT)
        if not args.no_quantized:
            qb = llamacpp_logits(args.base, ids, exact=False)
            qa = llamacpp_logits(args.base, ids, adapter_path, exact=False)
            report("base: loramd vs llama.cpp (GGUF as given, default settings)", lb, qb)
            report("base + adapter: loramd vs llama.cpp (GGUF as given, default settings)", la, qa)
            report_delta("adapter effect: loramd vs llama.cpp (GGUF as given)", la, lb, qa, qb)


def cmd_compare(args, work):
    ids_list = [parse_ids(args.ids)] if args.ids else [p["input_ids"] for p in reference_prompts()[0].values()]
    ok, why = loads_in_llamacpp(args.base, args.adapter)
    if not check(ok, f"llama.cpp loads {args.adapter} beside {args.base}"):
        log(f"     {why}")
        return
    with loramd_client(args) as loram:
        model_id = loram.load_model(str(args.base), dtype="f32")["modelId"]
        adapter_id = loram.load_adapter(model_id, str(args.adapter))["adapterId"]
        compare_with_loramd(args, work, loram, model_id, args.adapter, adapter_id, ids_list)


def cmd_loramd(args, work):
    prompts, _ = reference_prompts()
    ids_list = [parse_ids(args.ids)] if args.ids else [p["input_ids"] for p in prompts.values()]
    with loramd_client(args) as loram:
        loaded = loram.load_model(str(args.base), dtype="f32")
        model_id = loaded["modelId"]
        log(f"loramd loaded {args.base}: {loaded.get('format')}, config {loaded['config']}")
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        created = loram.create_adapter(model_id, r=args.rank, alpha=args.alpha, targets=targets, seed=7,
                                       b_init_std=args.b_init_std)
        adapter_id = created["adapterId"]
        log(f"adapter/create r={args.rank} alpha={args.alpha} bInitStd={args.b_init_std}: {created['parameters']} parameters")
        if args.train_steps:
            text = pathlib.Path(work) / "train.txt"
            text.write_text(("The cat sat on the mat. The dog lay on the rug. " * 40).strip() + "\n")
            job = loram.train_create(model_id, {"path": str(text), "format": "text"}, adapter_id=adapter_id,
                                     seq_len=32, micro_batch=1, steps=args.train_steps, lr=1e-3)
            result = loram.train_run(job["jobId"])
            log(f"trained {args.train_steps} steps: loss {result.get('loss')}")
            loram.train_close(job["jobId"])
        adapter_path = pathlib.Path(work) / "loramd-adapter.gguf"
        files = loram.save_adapter(adapter_id, str(adapter_path), format="gguf")
        log(f"adapter/save format gguf -> {files}")
        adapter_path = pathlib.Path(files[0])
        describe_adapter(adapter_path, args.base)
        ok, why = loads_in_llamacpp(dequantized_copy(args.base, work), adapter_path)
        if not check(ok, "llama.cpp loads loramd's GGUF adapter beside the F32 copy of the base"):
            log(f"     {why}")
            return
        ok, why = loads_in_llamacpp(args.base, adapter_path)
        check(ok, "llama.cpp loads loramd's GGUF adapter beside the base GGUF as given")
        compare_with_loramd(args, work, loram, model_id, adapter_path, adapter_id, ids_list)
        # loramd reads its own GGUF adapter back: same logits as the adapter it saved.
        back = loram.load_adapter(model_id, str(adapter_path))["adapterId"]
        ids = ids_list[0]
        a1 = np.array(loram.forward(model_id, ids, adapter_id=adapter_id, logits="all"), dtype=np.float32)
        a2 = np.array(loram.forward(model_id, ids, adapter_id=back, logits="all"), dtype=np.float32)
        report("loramd: adapter vs the same adapter saved as GGUF and loaded back", a2, a1, 1e-5)


def describe_adapter(path, base):
    import gguf
    r = gguf.GGUFReader(str(path))
    kv = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    log(f"adapter {path}: metadata {kv}")
    types = sorted({t.tensor_type.name for t in r.tensors})
    log(f"  {len(r.tensors)} tensors, types {types}; first: " +
        ", ".join(f"{t.name} ne={[int(x) for x in t.shape]}" for t in r.tensors[:4]))
    check(kv.get("general.type") == "adapter" and kv.get("adapter.type") == "lora"
          and r.fields["adapter.lora.alpha"].types[0].name == "FLOAT32"
          and kv.get("general.architecture") == base_info(base)["arch"],
          "adapter metadata: general.type adapter, adapter.type lora, adapter.lora.alpha FLOAT32, architecture of the base")


def cmd_vs_transformers(args, work):
    prompts, ref = reference_prompts(("english", "python", "chat"))
    L = np.load(FIXTURES / "logits.npy")
    if file_digest(args.base) and ref["model"]["size"] != os.path.getsize(args.base):
        log(f"note: {args.base} is not the fixtures' model ({ref['model']['gguf']})")
    exact = dequantized_copy(args.base, work)
    settings = [
        ("F32 copy, F32 KV, no flash attention", exact, dict(exact=True), TOL_EXACT),
        ("F32 copy, default F16 KV", exact, dict(exact=False), None),
        ("GGUF as given (Q4_1 x Q8_1), F32 KV", args.base, dict(exact=True), None),
        ("GGUF as given, default settings", args.base, dict(exact=False), None),
    ]
    for label, model, kw, tol in settings:
        for name, p in prompts.items():
            rows = p["logits_rows"]
            want = L[rows["first_row"]:rows["first_row"] + len(rows["positions"])]
            got = llamacpp_logits(model, p["input_ids"], **kw)[rows["positions"]]
            report(f"llama.cpp [{label}] vs transformers fp32, {name}", got, want, tol)


def synthetic_factors(info, rng, rank=4):
    """Random A, B (PEFT orientation, B in GGUF row order) for layers 0 and 1 (all seven linears)
    and q/k of the last layer."""
    factors = {}
    layers = [(0, list(HF_MODULE)), (1, list(HF_MODULE)), (info["layers"] - 1, ["attn_q", "attn_k"])]
    for layer, names in layers:
        for n in names:
            name = f"blk.{layer}.{n}.weight"
            ne0, ne1 = info["shapes"][name]          # in, out
            a = rng.normal(0, 1 / np.sqrt(ne0), size=(rank, ne0)).astype(np.float32)
            b = rng.normal(0, 0.05, size=(ne1, rank)).astype(np.float32)
            factors[name] = (a, b)
    return factors


def cmd_synthetic(args, work):
    info = base_info(args.base)
    rng = np.random.default_rng(1234)
    rank, alpha = 4, 8.0
    factors = synthetic_factors(info, rng, rank)
    adapter = pathlib.Path(work) / "synthetic-lora.f32.gguf"
    write_lora_gguf(adapter, info["arch"], alpha, factors)
    describe_adapter(adapter, args.base)
    exact = dequantized_copy(args.base, work)
    ids = default_ids()

    ok, why = loads_in_llamacpp(exact, adapter)
    if not check(ok, f"llama.cpp loads the synthetic adapter ({len(factors)} linears, r={rank}, alpha={alpha})"):
        log(f"     {why}")
        return
    base = llamacpp_logits(exact, ids)
    with_adapter = llamacpp_logits(exact, ids, adapter)
    effect = float(np.abs(with_adapter - base).max())
    check(effect > 0.05, f"the adapter changes llama.cpp's logits (max |delta| {effect:.3g})")

    # numpy: W' = W + (alpha / r) * B @ A on the dequantized weights; llama.cpp runs W' without adapter.
    for user_scale in (1.0, 0.5):
        scale = user_scale * alpha / rank
        deltas = {name: scale * (b @ a) for name, (a, b) in factors.items()}
        merged = dequantized_copy(args.base, work, deltas=deltas, tag=f"merged{user_scale}")
        want = llamacpp_logits(merged, ids)
        got = llamacpp_logits(exact, ids, adapter, lora_scale=user_scale)
        report(f"llama.cpp base + adapter (lora_scale {user_scale}) vs numpy-merged W + {scale:g}*B*A",
               got, want, TOL_EXACT)
        merged.unlink()

    # F16 factors: allowed (the converter's --outtype f16); equal up to F16 rounding.
    adapter16 = pathlib.Path(work) / "synthetic-lora.f16.gguf"
    write_lora_gguf(adapter16, info["arch"], alpha, factors, dtype=np.float16)
    ok, why = loads_in_llamacpp(exact, adapter16)
    if check(ok, "llama.cpp loads the synthetic adapter with F16 lora_a/lora_b"):
        report("adapter F16 factors vs F32 factors", llamacpp_logits(exact, ids, adapter16), with_adapter, TOL_F16_FACTORS)

    # No adapter.lora.alpha: llama.cpp then uses scale = lora_scale (not alpha / r).
    adapter_na = pathlib.Path(work) / "synthetic-lora.noalpha.gguf"
    write_lora_gguf(adapter_na, info["arch"], alpha, factors, alpha_type=None)
    got = llamacpp_logits(exact, ids, adapter_na, lora_scale=alpha / rank)
    report("no adapter.lora.alpha, lora_scale alpha/r vs alpha in the file", got, with_adapter, TOL_EXACT)

    # A wrong orientation is refused (lora_a stored [r, in] in GGUF terms, i.e. numpy A.T).
    bad = pathlib.Path(work) / "synthetic-lora.bad.gguf"
    write_lora_gguf(bad, info["arch"], alpha, {k: (a.T, b) for k, (a, b) in factors.items()})
    ok, why = loads_in_llamacpp(exact, bad)
    check(not ok, f"llama.cpp refuses lora_a with GGUF dimensions [r, in] (transposed): {why}")

    if "output.weight" not in info["shapes"]:
        check_tied(info, exact, work, rng, rank, alpha)

    if args.transformers:
        check_transformers(args, info, factors, alpha / rank, ids, with_adapter)

    if args.with_loramd:
        # An adapter made outside loramd (as convert_lora_to_gguf.py would), covering every layer of
        # its targets as loramd requires: loramd's adapter/load of it vs llama.cpp.
        full = {}
        for layer in range(info["layers"]):
            for n in ("attn_q", "attn_k", "ffn_down"):
                name = f"blk.{layer}.{n}.weight"
                ne0, ne1 = info["shapes"][name]
                full[name] = (rng.normal(0, 1 / np.sqrt(ne0), size=(rank, ne0)).astype(np.float32),
                              rng.normal(0, 0.02, size=(ne1, rank)).astype(np.float32))
        adapter_full = pathlib.Path(work) / "synthetic-lora.all-layers.gguf"
        write_lora_gguf(adapter_full, info["arch"], alpha, full)
        log(f"-- loramd: adapter/load of a gguf-py adapter on q, k, down of all {info['layers']} layers")
        args.adapter = adapter_full
        cmd_compare(args, work)


def check_tied(info, exact, work, rng, rank, alpha):
    """A tied base (no output.weight; llama.cpp's output matrix is token_embd.weight by name):
    lm_head LoRA is refused at load; token_embd LoRA loads but aborts at the first eval."""
    hidden, vocab = info["shapes"]["token_embd.weight"]
    out = pathlib.Path(work) / "tied-output.gguf"
    write_lora_gguf(out, info["arch"], alpha, {"output.weight": (
        rng.normal(0, 0.01, size=(rank, hidden)).astype(np.float32), rng.normal(0, 0.01, size=(vocab, rank)).astype(np.float32))})
    ok, why = adapter_loads(exact, out)
    check(not ok, f"tied base: output.weight (lm_head) LoRA refused: {why}")
    # convert_lora_to_gguf.py's embedding layout: lora_a = A.T (ne [r, vocab]), lora_b = B (ne [r, hidden]).
    emb = pathlib.Path(work) / "tied-embd.gguf"
    a = rng.normal(0, 0.1, size=(rank, vocab)).astype(np.float32)
    b = rng.normal(0, 0.1, size=(hidden, rank)).astype(np.float32)
    write_lora_gguf(emb, info["arch"], alpha, {"token_embd.weight": (a.T, b)})
    ok, _ = adapter_loads(exact, emb)
    import subprocess
    code = ("import sys; from llama_cpp import Llama\n"
            "l = Llama(sys.argv[1], lora_path=sys.argv[2], n_ctx=64, n_threads=2, verbose=False)\n"
            "l.eval([1, 2, 3]); print('EVAL OK')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(exact), str(emb)], capture_output=True, text=True)
    asserts = [l.split("/")[-1] for l in proc.stderr.splitlines() if "GGML_ASSERT" in l]
    check(ok and proc.returncode != 0,
          f"tied base: token_embd LoRA loads ({ok}) but the first eval aborts (exit {proc.returncode}: "
          f"{asserts[-1] if asserts else proc.stdout.strip()})")


def check_transformers(args, info, factors, scale, ids, llamacpp_with_adapter):
    """transformers (HF row order) + scale * unpermute(B) @ A equals llama.cpp with the adapter:
    the GGUF adapter's q/k B rows are in llama.cpp's order, i.e. LlamaModel.permute(B_hf)."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    base = pathlib.Path(args.base).resolve()
    model = AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()

    def run(permute):
        state = {}
        with torch.no_grad():
            for name, (a, b) in factors.items():
                _, layer, kind, _ = name.split(".")
                if permute and kind == "attn_q":
                    b = unpermute_rows(b, info["heads"])
                elif permute and kind == "attn_k":
                    b = unpermute_rows(b, info["kv_heads"])
                mod = model.get_submodule(f"model.layers.{layer}.{HF_MODULE[kind]}")
                state[name] = mod.weight.detach().clone()
                mod.weight += torch.from_numpy(scale * (b @ a))
            out = model(torch.tensor([ids])).logits[0].numpy()
            for name, w in state.items():
                _, layer, kind, _ = name.split(".")
                model.get_submodule(f"model.layers.{layer}.{HF_MODULE[kind]}").weight.copy_(w)
        return out

    report("transformers + scale*unpermute(B)@A (HF order) vs llama.cpp + adapter", run(True),
           llamacpp_with_adapter, TOL_EXACT)
    mx, *_ = diff_stats(run(False), llamacpp_with_adapter)
    check(mx > 10 * TOL_EXACT, f"control: without un-permuting q/k rows the logits differ (max |d| {mx:.3g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["logits", "compare", "loramd", "vs-transformers", "synthetic", "all"])
    ap.add_argument("--base", type=pathlib.Path, default=DEFAULT_BASE)
    ap.add_argument("--adapter", type=pathlib.Path)
    ap.add_argument("--ids", help="token ids, comma or space separated (default: the fixtures' prompts)")
    ap.add_argument("--scale", type=float, default=1.0, help="llama.cpp's user LoRA scale (logits)")
    ap.add_argument("--quantized", action="store_true", help="logits: run the GGUF as given, llama.cpp's default settings")
    ap.add_argument("--no-quantized", action="store_true", help="compare/loramd: skip the as-given GGUF runs")
    ap.add_argument("--save", type=pathlib.Path, help="logits: save ids and logits to this .npz")
    ap.add_argument("--print-all", action="store_true", help="logits: print every logit")
    ap.add_argument("--daemon", help="loramd executable (default $LORAMD, then .build/debug/loramd)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--b-init-std", type=float, default=0.02)
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--transformers", action="store_true", help="synthetic: also check against transformers (torch)")
    ap.add_argument("--with-loramd", action="store_true", help="synthetic: also compare loramd's adapter/load of a gguf-py adapter")
    ap.add_argument("--work", type=pathlib.Path, help="folder for the F32 copy and adapters (default: a temp dir)")
    args = ap.parse_args()
    if not args.base.is_file():
        sys.exit(f"{args.base} not found (scripts/fetch-model smollm2)")
    if args.command in ("logits", "compare") and args.command == "compare" and not args.adapter:
        sys.exit("compare needs --adapter")

    with tempfile.TemporaryDirectory(prefix="gguf-check-") as tmp:
        work = args.work or pathlib.Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.command == "logits":
            cmd_logits(args, work)
        elif args.command == "compare":
            cmd_compare(args, work)
        elif args.command == "loramd":
            cmd_loramd(args, work)
        elif args.command == "vs-transformers":
            cmd_vs_transformers(args, work)
        elif args.command == "synthetic":
            cmd_synthetic(args, work)
        else:
            cmd_vs_transformers(args, work)
            daemon = args.daemon or os.environ.get("LORAMD") or str(ROOT / ".build/debug/loramd")
            args.transformers = True
            args.with_loramd = pathlib.Path(daemon).exists()
            cmd_synthetic(args, work)
            if args.with_loramd:
                cmd_loramd(args, work)
            else:
                log(f"skip loramd: {daemon} not found")
    log(f"\n{len(failures)} check(s) failed" if failures else "\nall checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
