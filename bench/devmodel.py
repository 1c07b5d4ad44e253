"""A stand-in for `loramd make-model`, used by bench/runtime.py only when that command is not
available (or with --dev-model): a random LLaMA written by transformers in the same layout
(config.json, model.safetensors in fp32, tokenizer.json, generation_config.json).

It is for developing and checking the benchmark, not for the numbers that get committed: those
come from the model loramd makes itself. The shapes of PRESETS are the ones `--preset small` is
meant to have; if make-model's preset differs, the committed results show its real shapes.
"""
import json
import os
import shutil

PRESETS = {
    "small": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=4, vocab_size=4096),
}


def _byte_level_tokenizer(vocab_size):
    """A GPT-2 style byte-level BPE with exactly `vocab_size` tokens: 3 specials, the 256 byte
    symbols, then merges of pairs of letters and digits. Deterministic, nothing to train."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    # GPT-2's bytes_to_unicode
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_symbols = [chr(c) for c in cs]

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for s in sorted(byte_symbols):
        vocab[s] = len(vocab)
    alnum = "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789"
    merges = []
    for a in alnum:
        for b in alnum:
            if len(vocab) >= vocab_size:
                break
            vocab[a + b] = len(vocab)
            merges.append((a, b))
    if len(vocab) != vocab_size:
        raise ValueError("cannot build a %d-token dev tokenizer" % vocab_size)
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok


def make_dev_model(out_dir, preset="small", seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError("no dev-model shapes for preset %r (known: %s)" % (preset, ", ".join(PRESETS)))
    torch.manual_seed(seed)
    cfg = LlamaConfig(**PRESETS[preset], max_position_embeddings=2048, rms_norm_eps=1e-5,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                      initializer_range=0.02)
    model = LlamaForCausalLM(cfg).to(torch.float32).eval()
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    _byte_level_tokenizer(cfg.vocab_size).save(os.path.join(tmp, "tokenizer.json"))
    with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False}, f, indent=2)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return out_dir


if __name__ == "__main__":
    import sys
    print(make_dev_model(sys.argv[1] if len(sys.argv) > 1 else "/tmp/loramd-bench-dev-small"))
