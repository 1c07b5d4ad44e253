#!/usr/bin/env python3
"""Reference fixtures for checkpoint layouts the golden tiny model does not cover.

Each fixture is a small random LlamaForCausalLM saved by transformers itself
(save_pretrained, safetensors) plus the logits transformers computes for fixed ids, in fp32
with eager attention. The Swift tests load each directory and must reproduce the logits.

    python3 scripts/make-layout-fixtures.py      # writes Tests/Fixtures/layouts/<name>/

Needs torch and transformers (bench/requirements.txt); the daemon and its tests do not.
"""
import json
import pathlib
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/layouts"
TOKENIZER = ROOT / "Tests/Fixtures/golden/tiny/tokenizer.json"

BASE = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, attn_implementation="eager")

LAYOUTS = {
    # LLaMA-3.1's RoPE scaling; original context 16 so the scaled bands matter within 48 tokens.
    "llama3-rope-tied-mha": dict(num_key_value_heads=4, tie_word_embeddings=True, eos_token_id=[2, 3],
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                                 rope_theta=500000.0),
    # Linear position interpolation, an explicit head_dim that is not hidden/heads, GQA 4/1.
    "linear-rope-headdim": dict(num_key_value_heads=1, head_dim=24,
                                rope_scaling={"rope_type": "linear", "factor": 4.0}),
    # bf16 weights in two shards with an index.
    "bf16-sharded": dict(dtype="bfloat16", shard="40KB"),
}


def main() -> None:
    torch.manual_seed(0)
    ids = torch.tensor([[1] + [(7 * i * i + 3 * i + 5) % 509 + 3 for i in range(47)]])
    if OUT.exists():
        shutil.rmtree(OUT)
    for name, overrides in LAYOUTS.items():
        overrides = dict(overrides)
        shard = overrides.pop("shard", None)
        dtype = overrides.pop("dtype", "float32")
        config = LlamaConfig(**{**BASE, **overrides})
        model = LlamaForCausalLM(config).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0, 0.1)
            for module_name, module in model.named_modules():
                if module_name.endswith("norm"):
                    module.weight.copy_(1 + 0.1 * torch.randn_like(module.weight))
        directory = OUT / name
        if dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        model.save_pretrained(directory, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        shutil.copy(TOKENIZER, directory / "tokenizer.json")
        # Reference: fp32 math on the weights as saved (bf16 ones widened), as loramd computes.
        reference = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            logits = reference(ids).logits[0]
        (directory / "reference.json").write_text(json.dumps({
            "ids": ids[0].tolist(),
            "logits": [[round(float(v), 7) for v in row] for row in logits],
            "made_with": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
        }))
        print(name, sorted(p.name for p in directory.iterdir()), float(logits.abs().max()))


if __name__ == "__main__":
    main()
