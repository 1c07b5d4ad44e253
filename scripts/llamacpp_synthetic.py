"""The `synthetic` command of scripts/check-gguf-adapter-llamacpp.py: a random GGUF LoRA adapter
written with gguf-py in convert_lora_to_gguf.py's layout, checked in llama.cpp against numpy
merges, F16 factors, a missing alpha, a wrong orientation, tied bases and transformers."""
import pathlib
import subprocess
import sys

import numpy as np

from llamacpp_gguf import (HF_MODULE, PERMUTING_ARCHS, TOL_EXACT, TOL_F16_FACTORS, adapter_loads, base_info, check, dequantized_copy, describe_adapter,
                           diff_stats, llamacpp_logits, loads_in_llamacpp, log, report, unpermute_rows, write_lora_gguf)


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


def cmd_synthetic(args, work, ids, cmd_compare):
    """ids: the prompt; cmd_compare: the `compare` command (for --with-loramd)."""
    info = base_info(args.base)
    rng = np.random.default_rng(1234)
    rank, alpha = 4, 8.0
    factors = synthetic_factors(info, rng, rank)
    adapter = pathlib.Path(work) / "synthetic-lora.f32.gguf"
    write_lora_gguf(adapter, info["arch"], alpha, factors)
    describe_adapter(adapter, args.base)
    exact = dequantized_copy(args.base, work)

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


def transformers_model(args):
    """transformers' fp32 model of the base: from the Hugging Face folder the GGUF was converted
    from (args.hf_folder), else from the GGUF itself (which transformers dequantizes). transformers
    5.25's GGUF reader ignores qwen3.attention.key_length (head_dim is then Qwen3Config's 128), so
    a Qwen3 whose head_dim is not 128 only loads from its folder."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    if getattr(args, "hf_folder", None):
        return AutoModelForCausalLM.from_pretrained(str(args.hf_folder), **kw).eval()
    base = pathlib.Path(args.base).resolve()
    return AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name, **kw).eval()


def check_transformers(args, info, factors, scale, ids, llamacpp_with_adapter):
    """transformers (HF row order) + scale * B_hf @ A equals llama.cpp with the adapter. For a
    LLaMA-rope GGUF (`llama`: llama.cpp's converter permutes q/k rows into its interleaved rotary
    order) the GGUF adapter's q/k B rows are in that order, B_gguf = LlamaModel.permute(B_hf), so
    B_hf = unpermute(B_gguf); for NEOX-rope families (qwen2, qwen3) nothing is permuted and
    B_hf = B_gguf. The control runs the other choice, which must differ."""
    import torch
    permutes = info["arch"] in PERMUTING_ARCHS
    model = transformers_model(args)

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

    how = "unpermute(B)" if permutes else "B (no q/k permutation)"
    report(f"transformers + scale*{how}@A (HF order) vs llama.cpp + adapter [{info['arch']}]", run(permutes),
           llamacpp_with_adapter, TOL_EXACT)
    mx, *_ = diff_stats(run(not permutes), llamacpp_with_adapter)
    check(mx > 10 * TOL_EXACT, f"control: {'without' if permutes else 'with'} un-permuting q/k rows the logits differ (max |d| {mx:.3g})")
