#!/usr/bin/env python3
"""Builds the tokenizer fixtures in Tests/Fixtures/tokenizers with the Python
`tokenizers` library (the reference the Swift tokenizer reproduces), and checks the Swift
TokenizerBuilder's output against it.

    pip install tokenizers==0.23.3
    python3 scripts/make-tokenizer-fixtures.py                 # rewrite every cases.json
    python3 scripts/make-tokenizer-fixtures.py --retrain       # also retrain every tokenizer.json
    python3 scripts/make-tokenizer-fixtures.py --check-builder [LORAMD]
        # makes the tiny and small models with `loramd make-model` (their tokenizer.json comes from
        # TokenizerBuilder), encodes texts through the daemon's `tokenize` and with the tokenizers
        # library, and exits 1 unless every encoding is identical.

Each fixture is a tokenizer.json plus cases.json (UTF-8, compact, to stay small):
  cases:        text, ids (add_special_tokens=True), ids_no_special,
                decoded (decode(ids_no_special, skip_special_tokens=False); omitted when equal to text),
                decoded_skip (decode(ids, skip_special_tokens=True); omitted when equal to decoded)
  decode_cases: random id lists (some out of range, some special) with decoded / decoded_skip
The Swift code and tests never run Python; this script only writes files they read.
"""
import json
import random
import sys
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/tokenizers"
GOLDEN = ROOT / "Tests/Fixtures/golden/tiny_tokenizer_golden.json"

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A tokenizer splits text into pieces that a model
can read; the pieces come from merges learned on a corpus like this one. Don't worry: it's small,
we'll keep it that way, and they're fine with it. I'm sure you'd agree that I've seen worse.
Numbers such as 12345678, 2024, 3.14159 and 1,000,000 appear in reports, prices ($19.99) and dates.
Café, naïve, résumé, jalapeño and Zürich have accents; Ελληνικά and русский are other scripts.
def tokenize(text):
    return [piece for piece in text.split(" ") if piece]  # code has symbols: {}[]()<>=+-*/
Email me at someone@example.com or visit https://example.org/path?query=1&x=2 for details.
She sells sea shells by the sea shore. Peter Piper picked a peck of pickled peppers.
Training small models teaches large lessons; inference at scale needs careful memory planning.
The rain in Spain stays mainly in the plain. How much wood would a woodchuck chuck?
"""

EXTRA_TEXTS = [
    "Hello", " Hello", "  Hello", "Hello ", "Hello  ", "hello world", "hello   world",
    "a\nb", "a\n\nb", "a \n b", "a\r\nb", "\n", "\n\n\n", " \n ", "\t\tx", "x\t", "  \n \n  x",
    "12345678", "1 22 333 4444 55555", "3.14159", "$19.99", "2024-01-15",
    "DON'T", "I'LL", "WE'RE", "they've", "She'd", "it's", "'s", "'ſa", "'Sa", "''s",
    "(hello", "...hello", "hello...", " !\n\n", "a\u0301b", "x\u200by", "\u3000a", "\u00a0a",
    "a\u2028b", "a\u0085b", "\u0085", "a\x0bb", "a\x1cb", "ß", "İstanbul", "ǅemal", "Ⅻ²٣",
    "😀", "👍🏽", "👨‍👩‍👧", "🇺🇸", "中文字符", "日本語のテキスト", "한국어", "Ελληνικά", "русский",
    "é vs e\u0301", "▁already▁marked", "ĠG", "<s>", "</s>", "<s>hello", "hello<s> world",
    "text</s>", " <s> ", "<unk>", "<|begin_of_text|>Hi<|eot_id|>", "<|eot_id|><|eot_id|>",
    "a <mask> b", "a<mask>b", "x   <mask>   y", "[SW] x", "x[SW]", "x [SW] y", "ZZTop", "the ZZTop band",
    "xZZTop", "tokenization", " tokenization", "unbelievable tokenization", "a-b--c---d", "-lead", "trail-",
    "ab ab abab", "Z", "zz zz", "\u2581", "\u2581\u2581x", "a<|endoftext|>b", "<|endoftext|> x", "x <|endoftext|>",
]

RANDOM_PIECES = ["a", "b", "Z", "the", " ", "  ", "\n", "\r\n", "\t", "'s", "'S", "'ll", "'ſ", "1", "23",
                 "4567", "!", "?", ".", ",", "-", "é", "e\u0301", "中", "文", "😀", "👍🏽", "\u00a0", "\u200b",
                 "\u3000", "\u2028", "\u0085", "\x0b", "ß", "Ⅻ", "²", "٣", "<s>", "</s>", "<|eot_id|>",
                 "<mask>", "ZZTop", "\u2581", "Ġ", "ab"]


def texts(full):
    """The golden texts, the tricky ones above and seeded random mixes of RANDOM_PIECES; a
    shorter list (no golden texts, fewer mixes) for the variants that only change one step."""
    out = []
    if full:
        golden = json.loads(GOLDEN.read_text())
        out += [bytes.fromhex(c["utf8_hex"]).decode("utf-8") for c in golden["cases"]]
    out += EXTRA_TEXTS
    rng = random.Random(20251125)
    for _ in range(30 if full else 15):
        out.append("".join(rng.choice(RANDOM_PIECES) for _ in range(rng.randint(1, 12))))
    return out


def cases_for(tok, full):
    cases = []
    for text in texts(full):
        with_special = tok.encode(text, add_special_tokens=True)
        plain = tok.encode(text, add_special_tokens=False)
        case = {"text": text, "ids": with_special.ids, "ids_no_special": plain.ids}
        decoded = tok.decode(plain.ids, skip_special_tokens=False)
        decoded_skip = tok.decode(with_special.ids, skip_special_tokens=True)
        if decoded != text:
            case["decoded"] = decoded
        if decoded_skip != decoded:
            case["decoded_skip"] = decoded_skip
        cases.append(case)
    size = tok.get_vocab_size(with_added_tokens=True)
    rng = random.Random(7)
    decode_cases = []
    for _ in range(20 if full else 10):
        ids = [rng.randrange(size + 5) for _ in range(rng.randint(1, 16))]
        decode_cases.append({"ids": ids,
                             "decoded": tok.decode(ids, skip_special_tokens=False),
                             "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return {"tokenizers_version": tokenizers.__version__, "cases": cases, "decode_cases": decode_cases}


RETRAIN = "--retrain" in sys.argv


def write(name, tok_json, description, full=True):
    """Writes the fixture from tokenizer.json text, encoding with a tokenizer loaded from that text.
    An existing tokenizer.json is kept unless --retrain: the trainer breaks some ties differently
    from run to run, and the committed tokenizers should only change on purpose."""
    folder = FIXTURES / name
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "tokenizer.json").exists() and not RETRAIN:
        tok_json = (folder / "tokenizer.json").read_text()
    else:
        (folder / "tokenizer.json").write_text(tok_json)
    tok = Tokenizer.from_str(tok_json)
    data = cases_for(tok, full)
    data["description"] = description
    (folder / "cases.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{name}: {len(data['cases'])} cases, {len(data['decode_cases'])} decode cases")


def compact(tok):
    """tokenizer.json text without indentation, to keep fixtures small."""
    return json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")) + "\n"


def trained(pre_tokenizer, normalizer=None, vocab_size=400, **trainer_args):
    """Vocabulary and merges learned on TRAINING_TEXT."""
    tok = Tokenizer(models.BPE(**{k: v for k, v in trainer_args.items() if k in ("continuing_subword_prefix", "end_of_word_suffix")}))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, **trainer_args)
    tok.train_from_iterator(TRAINING_TEXT.splitlines(), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    return [t for t, _ in vocab], [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]


def sentencepiece_model(byte_fallback=True, fuse_unk=True):
    """LLaMA-2 layout: <unk> <s> </s>, the 256 <0xAB> byte tokens, then learned pieces."""
    pieces, merges = trained(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True),
                             normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
                             vocab_size=300, initial_alphabet=["▁"])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    return models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=byte_fallback, fuse_unk=fuse_unk)


def llama_specials(tok, extra=()):
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    for t in extra:
        tok.add_tokens([t])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])


def make_llama2():
    tok = Tokenizer(sentencepiece_model())
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    llama_specials(tok, [AddedToken("ZZTop", special=False, normalized=True)])
    write("llama2-sentencepiece", compact(tok),
          "LLaMA-2 style: Prepend/Replace normalizer, BPE with byte_fallback and fuse_unk, Replace/ByteFallback/Fuse/Strip decoder, "
          "<s> template; a normalized non-special added token ZZTop")


def make_metaspace():
    tok = Tokenizer(sentencepiece_model())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    llama_specials(tok)
    write("metaspace-first", compact(tok), "Metaspace pre-tokenizer and decoder, prepend_scheme first, split false (no ByteFallback decoder)")

    tok = Tokenizer(sentencepiece_model(byte_fallback=False, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    llama_specials(tok)
    data = json.loads(tok.to_str())
    # The form written before tokenizers 0.15: add_prefix_space instead of prepend_scheme and split.
    legacy = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True, "str_rep": "▁"}
    data["pre_tokenizer"] = dict(legacy)
    data["decoder"] = dict(legacy)
    write("metaspace-legacy-unk", json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n",
          "Legacy Metaspace (add_prefix_space true, so always + split); no byte_fallback, so unknown characters become <unk>, fused")


def byte_level_model(pre_tokenizer, vocab_size=400, extra_words=(), **kwargs):
    pieces, merges = trained(pre_tokenizer, vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    vocab = {p: i for i, p in enumerate(pieces)}
    for word in extra_words:
        vocab.setdefault(word, len(vocab))
    return models.BPE(vocab=vocab, merges=merges, **kwargs)


def make_llama3():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    # Whole words without the merges to build them: only ignore_merges yields them.
    tok = Tokenizer(byte_level_model(pre, extra_words=["tokenization", "Ġtokenization", "Ġunbelievable"], ignore_merges=True))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("[SW]", special=False, single_word=True, normalized=False),
                    AddedToken("ZZTop", special=False, normalized=True)])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))]),
    ])
    write("llama3-byte-level", compact(tok),
          "LLaMA-3 style: Split(cl100k regex, isolated) + ByteLevel(use_regex false), ignore_merges with whole-word vocab entries, "
          "<|begin_of_text|> template inside a Sequence with ByteLevel; <mask> lstrip/rstrip, [SW] single_word, ZZTop normalized")


def make_gpt2():
    pre = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok = Tokenizer(byte_level_model(pre))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    data = json.loads(tok.to_str())
    # Merges in the "a b" string form files written before tokenizers 0.20 use.
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    write("gpt2-prefix-space", json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n",
          "GPT-2 style: ByteLevel with add_prefix_space, merges as \"a b\" strings, no post-processor")


def make_splits():
    base = byte_level_model(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), vocab_size=320)
    variants = {
        "split-merged-previous-digits": (
            pre_tokenizers.Sequence([pre_tokenizers.Split("-", "merged_with_previous"), pre_tokenizers.Split(" ", "removed"),
                                     pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            "Split on \"-\" merged_with_previous, on \" \" removed, Digits(individual), ByteLevel without regex"),
        "split-merged-next-inverted": (
            pre_tokenizers.Sequence([pre_tokenizers.Split("-", "merged_with_next", invert=True), pre_tokenizers.Split("ab", "contiguous"),
                                     pre_tokenizers.Digits(individual_digits=False), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            "Split on \"-\" merged_with_next inverted, on \"ab\" contiguous, Digits grouped, ByteLevel without regex"),
        "split-qwen2-regex": (
            pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_REGEX), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
            "Split with the Qwen2 regex (single digits), then ByteLevel without regex"),
    }
    for name, (pre, description) in variants.items():
        tok = Tokenizer(base)
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        write(name, compact(tok), description, full=False)


def make_affixes():
    pre = pre_tokenizers.Split(" ", "removed")
    pieces, merges = trained(pre, vocab_size=300, continuing_subword_prefix="##", end_of_word_suffix="</w>")
    vocab = {"[UNK]": 0}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", fuse_unk=False,
                               continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre
    tok.add_special_tokens([AddedToken("[UNK]", special=True, normalized=False)])
    write("bpe-subword-affixes", compact(tok),
          "BPE with continuing_subword_prefix ## and end_of_word_suffix </w>, [UNK] unfused, Strip normalizer, no decoder (tokens joined by spaces)",
          full=False)


def check_builder(loramd):
    import os, subprocess, tempfile
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients/python"))
    from loram_client import LoramClient
    golden = json.loads((Path(__file__).resolve().parent.parent / "Tests/Fixtures/golden/tiny_tokenizer_golden.json").read_text())
    cases = golden["cases"] if isinstance(golden, dict) else golden
    texts = [bytes.fromhex(c["utf8_hex"]).decode("utf-8") for c in cases]
    texts += [p for p in (Path(__file__).resolve().parent.parent / "README.md").read_text().split("\n\n") if p.strip()]
    bad = 0
    with tempfile.TemporaryDirectory() as work, LoramClient(loramd) as client:
        for preset in ["tiny", "small"]:
            folder = os.path.join(work, preset)
            subprocess.run([loramd, "make-model", "--preset", preset, "--out", folder], check=True, capture_output=True)
            tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            model = client.request("model/load", {"path": folder})["modelId"]
            for text in texts:
                ours = client.request("tokenize", {"modelId": model, "text": text})["ids"]
                theirs = tok.encode(text, add_special_tokens=True).ids
                if ours != theirs:
                    bad += 1
                    print("MISMATCH", preset, repr(text[:60]), ours[:20], theirs[:20])
            print(f"builder check, {preset}: vocab {tok.get_vocab_size()}, {len(texts)} texts")
    print(f"builder check: {bad} mismatches")
    return bad == 0


def main():
    if len(sys.argv) in (2, 3) and sys.argv[1] == "--check-builder":
        sys.exit(0 if check_builder(sys.argv[2] if len(sys.argv) == 3 else ".build/debug/loramd") else 1)
    print("tokenizers", tokenizers.__version__)
    make_llama2()
    make_metaspace()
    make_llama3()
    make_gpt2()
    make_splits()
    make_affixes()
    builder = FIXTURES / "builder-512"
    if (builder / "tokenizer.json").exists():
        # Written by the Swift TokenizerBuilder; here only its reference encodings are made.
        write("builder-512", (builder / "tokenizer.json").read_text(), "TokenizerBuilder.byteLevelBPE(builtInCorpus, 512), made by Swift")
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"fixtures: {total} bytes")


if __name__ == "__main__":
    main()
