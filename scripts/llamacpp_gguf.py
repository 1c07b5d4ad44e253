"""llama.cpp (through llama-cpp-python), GGUF (gguf-py) and comparison helpers for
scripts/check-gguf-adapter-llamacpp.py (its docstring says what is checked and why)."""
import hashlib
import os
import pathlib
import subprocess
import sys

import numpy as np

TOL_EXACT = 1e-3        # llama.cpp (F32 copy, F32 KV, no flash attention) vs fp32 logits
TOL_F16_FACTORS = 2e-2  # adapter factors stored as F16 vs the same factors in F32
GGML_TYPE_F32 = 0

# GGUF tensor name -> (Hugging Face module path within a layer)
HF_MODULE = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

# GGUF architectures whose q/k rows llama.cpp's converter permutes into its interleaved rotary
# order (LlamaModel.permute; Mistral converts as `llama` too). qwen2, qwen3 (NEOX rope) are not.
PERMUTING_ARCHS = ("llama",)

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


def llamacpp_tokenize(model_path, text):
    """llama.cpp's token ids for `text` (its own tokenizer from the GGUF; BOS as the model says)."""
    from llama_cpp import Llama
    llm = Llama(str(model_path), vocab_only=True, verbose=False)
    try:
        return llm.tokenize(text.encode(), add_bos=True, special=False)
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
    if "tokenizer.ggml.model" not in reader.fields:
        add_placeholder_vocab(writer, next(int(t.shape[1]) for t in reader.tensors if t.name == "token_embd.weight"))
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


def add_placeholder_vocab(writer, vocab):
    """llama.cpp refuses a GGUF without tokenizer.ggml.model (a tiny random model loramd saved from a
    folder without tokenizer.json): a SentencePiece-style vocabulary of `vocab` placeholder tokens
    (<unk> <s> </s>, then byte tokens <0x00>..., as ids 0, 1, 2, 3...) lets it load and evaluate ids.
    Only ids are ever given to it, so what the tokens spell does not matter."""
    import gguf
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(vocab - 3)]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                           + [gguf.TokenType.BYTE] * (vocab - 3))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(False)


def gguf_tokens(path):
    """The number of tokens of the GGUF's tokenizer, 0 when it has none (a tiny random model)."""
    import gguf
    field = gguf.GGUFReader(str(path)).fields.get("tokenizer.ggml.tokens")
    return len(field.data) if field is not None else 0


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


# ---------------------------------------------------------------- comparisons

def diff_stats(got, want):
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = max(1.0, float(np.abs(want).max()))
    agree = float((got.argmax(-1) == want.argmax(-1)).mean())
    return float(d.max()), float(d.max()) / scale, float(d.mean()), agree


def report(name, got, want, tol=None):
    mx, rel, mean, agree = diff_stats(got, want)
    text = f"{name}: max |d| {mx:.3g} (relative {rel:.3g}), mean |d| {mean:.3g}, argmax agreement {agree:.0%}"
    if tol is None and len(got) > 1:
        # llama.cpp's quantized runs of Qwen2.5 differ most at position 0 (see the main docstring).
        text += f"; from position 1 on: max |d| {diff_stats(got[1:], want[1:])[0]:.3g}"
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
    if tol is None and len(dg) > 1:
        e1, m1 = float(np.abs(dw[1:]).max()), float(np.abs(dg[1:] - dw[1:]).max())
        text += f"; from position 1 on: effect {e1:.3g}, difference {m1:.3g} ({100 * m1 / max(e1, 1e-30):.2g}%)"
    if tol is None:
        log(f"info {text}")
        return True
    return check(mx <= tol, f"{text} (tolerance {tol:g})")

