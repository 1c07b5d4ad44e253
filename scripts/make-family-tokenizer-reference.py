#!/usr/bin/env python3
"""Reference data for the tokenizers of two real model families, checked by
Tests/RuntimeTests/FamilyTokenizerTests.swift (the Swift tests never run Python):

- Qwen2.5-Coder-1.5B-Instruct (GGUF `tokenizer.ggml.model` gpt2, pre qwen2: byte-level BPE, 151k
  merges, ChatML / FIM / tool-call tokens). The 1.1 GB model is not fetched by CI, so its
  tokenizer metadata is copied into a tensor-free GGUF fixture, qwen2.5-coder-tokenizer.gguf.
- Gemma 3 270M (gemma3 architecture, `tokenizer.ggml.model` llama: SentencePiece BPE with byte
  fallback, 262k tokens, no merges). The tests read the real model (`scripts/fetch-model gemma3-270m`).

Run with the reference venv (transformers, tokenizers, gguf, sentencepiece, protobuf, torch):

    python3 scripts/make-family-tokenizer-reference.py qwen   [GGUF]   # fixture GGUF + qwen2.5_coder_tokenization.json
    python3 scripts/make-family-tokenizer-reference.py gemma  [GGUF]   # gemma3_tokenization.json
    python3 scripts/make-family-tokenizer-reference.py hf-folders      # hf-qwen2.5-coder/, hf-gemma3/

GGUF defaults: the model cache (~/.cache/loramd/models/...), as scripts/fetch-model writes it.

What "transformers" means here: `AutoTokenizer.from_pretrained(folder, gguf_file=name)`, with one
correction where its GGUF loader is shown to drop a step of the model's own tokenizer:

- Qwen2: transformers' `Qwen2Tokenizer` (and the old slow one, and Qwen's tokenizer.json) applies
  NFC before splitting; the GGUF loader builds a GPT2Tokenizer without it. The reference is the
  loader's tokenizer with `normalizers.NFC()` set; cases where the loader's ids differ (decomposed
  text) also carry `gguf_loader_ids_no_special`.
- Gemma 3: the loader's merges (file order as rank) give the same ids as the merges transformers'
  GemmaConverter makes from the tokenizer.model (merged-token id as rank), checked here on every
  case. SentencePiece itself (the model rebuilt from the GGUF's pieces, scores and types) differs on
  runs of 32 or more spaces (it takes the longest whitespace piece first, as llama.cpp does), and
  on `<pad>`/`<eos>`/`<bos>`/`<unk>` typed in text (control pieces it never matches); those
  cases carry `sentencepiece_ids_no_special`. The reference follows transformers.

hf-*/ are what transformers' `save_pretrained` writes for the two (Qwen's with the NFC above), less
the vocabulary and merges of tokenizer.json (11 and 33 MB): the test splices those in from the GGUF
and checks them against splice.json's checksum before loading the folder's tokenizer.json.

A reference JSON holds what scripts/make-gguf-tokenizer-reference.py's do (special ids, vocabulary
size, chat template, `cases` with ids / ids_no_special / decoded / decoded_skip, seeded random
`decode_cases`) for that script's strings plus the family strings below.
"""
import importlib.util
import json
import random
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/family-tokenizer"
CACHE = Path.home() / ".cache/loramd/models"
QWEN_GGUF = CACHE / "qwen2.5-coder-1.5b/qwen2.5-coder-1.5b-instruct-Q4_K_M.gguf"
GEMMA_GGUF = CACHE / "gemma3-270m/gemma-3-270m-Q4_K_M.gguf"
QWEN_FIXTURE = FIXTURES / "qwen2.5-coder-tokenizer.gguf"


def base_script():
    spec = importlib.util.spec_from_file_location("gguf_reference", ROOT / "scripts/make-gguf-tokenizer-reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CODE = [
    "func encode(_ text: String) -> [Int] {\n    guard !text.isEmpty else { return [] }\n    return text.utf8.map { Int($0) }\n}\n",
    "def fib(n: int) -> int:\n\tif n < 2:\n\t\treturn n\n\treturn fib(n - 1) + fib(n - 2)\n",
    "const sum = (xs) => xs.reduce((a, b) => a + b, 0); // 0x1F, 1e-9, 3.14159\n",
    "#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "fn main() { let v: Vec<u8> = (0..=255).collect(); println!(\"{:?}\", &v[..4]); }\n",
    "for f in *.gguf; do sha256sum \"$f\" | cut -d' ' -f1; done 2>/dev/null\n",
    "SELECT id, name FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC LIMIT 10;",
    "<div class=\"row\">\n  <span id='x'>&nbsp;&lt;tag&gt;</span>\n</div>",
    "{\n  \"name\": \"loramd\",\n  \"version\": \"0.1.0\",\n  \"tags\": [\"lora\", \"gguf\"]\n}",
    "    x = [i ** 2 for i in range(10) if i % 3 == 0]  # squares\n        y = {k: v for k, v in zip('abc', (1, 2, 3))}\n",
    "if (a != b && c <= d || e >= f) { x += 1; y -= 2; z *= 3; w /= 4; } // !== === => -> :: ...",
]
MULTILINGUAL = [
    "机器学习是人工智能的一个分支。", "日本語の文章とカタカナ、ひらがな。", "한국어 텍스트와 숫자 123.",
    "مرحبا بكم في عالم البرمجة", "שלום, מה שלומך?", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Привет, мир!",
    "Ελληνικά: αβγδε", "Tiếng Việt có dấu: ắ ằ ẳ ẵ ặ", "e\u0301 a\u0300 o\u0308 n\u0303 (combining)",
    unicodedata.normalize("NFD", "Ångström café naïve Äpfel ñandú"), "Z\u0351\u0360a\u035b\u0361l\u0350go",
    "👩‍💻 🧑🏾‍🚀 🏳️‍🌈 🇯🇵 1️⃣ ✌🏻", "ﬁ ﬂ ﬀ ℌ ℍ ① ⑴ ㈱ ㌔", "한\u1100\u1161 \u1112\u1161\u11ab",
    "\u0915\u094d\u0937 \u0627\u0644\u0639\u0631\u0628\u064a\u0651\u0629", "Ω Å K \u212b \u2126 \u212a",
]
WHITESPACE = (
    [" " * n for n in (1, 2, 3, 4, 8, 16, 31, 32, 33, 40, 64)]
    + ["x" + " " * n + "y" for n in (1, 2, 5, 30, 31, 32, 33, 47)]
    + ["\t" * n + "x" for n in (1, 2, 8, 31, 32, 35)]
    + ["\n" * n for n in (1, 2, 3, 31, 32, 40)]
    + [" \n", "\n ", " \n \n", "\t \n\t", "a \t b", "\r\n\r\n", "\n\n\n    x", "  \t  \n", "\u00a0\u00a0", "\u3000\u3000x"]
)
DIGITS = [
    "0", "12", "123", "1234", "12345678901234567890", "3.14159265", "-42", "1e-9", "1,234,567.89",
    "٠١٢٣٤٥٦٧٨٩", "१२३४", "１２３４", "²³¹", "½ ¾", "v1.2.3-rc.4", "0b1010 0o777 0xDEADbeef",
]
QWEN_SPECIAL = [
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nWrite hello world in Python.<|im_end|>\n<|im_start|>assistant\n",
    "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c<|fim_middle|>",
    "<|repo_name|>loramd\n<|file_sep|>Sources/main.swift\nprint(1)\n<|file_sep|>README.md\n# x",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    "<|endoftext|><|im_end|><|fim_pad|><|vision_start|><|image_pad|><|vision_end|><|box_start|>",
    "<|object_ref_start|>cat<|object_ref_end|><|quad_start|>1,2<|quad_end|><|video_pad|>",
    "<tool_call><tool_call></tool_call>", "[PAD151665]", "<|im_start|", "<|fim_prefix|x",
]
GEMMA_SPECIAL = [
    "<start_of_turn>user\nWrite a haiku about rain.<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn><eos>",
    "<pad><mask><unk><unused0><unused99><unused6241>[multimodal]", "<start_of_image><end_of_image>",
    "<table><tr><td>a</td></tr></table>", "<h1>Title</h1><code>x = 1</code><br>", "<unused6242>",
    "<start_of_turn", "<end_of_turn>\n\n<start_of_turn>", "\n\n\n<start_of_turn>model  ",
]


def family_texts(special):
    return CODE + MULTILINGUAL + WHITESPACE + DIGITS + special


def all_texts(base, special, extra=()):
    seen, out = set(), []
    for text in base.texts() + family_texts(special) + list(extra):
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def library_versions():
    import gguf
    import sentencepiece
    import tokenizers
    import torch
    import transformers
    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "gguf": getattr(gguf, "__version__", "0.19.0"), "sentencepiece": sentencepiece.__version__,
            "torch": torch.__version__, "python": sys.version.split()[0]}


def load(gguf_path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def reference(tokenizer, texts, source, alternative=None, alternative_name=None):
    """The reference JSON object; `alternative(text)` gives another tokenizer's ids_no_special,
    recorded as `alternative_name` where they differ from the reference."""
    cases, differing = [], 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        plain = tokenizer(text, add_special_tokens=False)["input_ids"]
        case = {"text": text, "ids": ids, "ids_no_special": plain,
                "decoded": tokenizer.decode(plain, skip_special_tokens=False),
                "decoded_skip": tokenizer.decode(ids, skip_special_tokens=True)}
        if alternative is not None:
            other = alternative(text)
            if other != plain:
                case[alternative_name] = other
                differing += 1
        cases.append(case)
    rng = random.Random(11)
    size, special = len(tokenizer), sorted(tokenizer.all_special_ids)
    decode_cases = []
    for _ in range(80):
        ids = [rng.choice(special) if rng.random() < 0.15 else rng.randrange(size) for _ in range(rng.randint(1, 16))]
        decode_cases.append({"ids": ids, "decoded": tokenizer.decode(ids),
                             "decoded_skip": tokenizer.decode(ids, skip_special_tokens=True)})
    print(f"{source}: {len(cases)} cases ({differing} with {alternative_name}), {len(decode_cases)} decode cases")
    return {
        "source": source, "made_with": library_versions(), "tokenizer_class": type(tokenizer).__name__,
        "vocabulary_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id, "unk_token_id": tokenizer.unk_token_id,
        "pad_token_id": tokenizer.pad_token_id, "special_ids": special, "chat_template": tokenizer.chat_template,
        "cases": cases, "decode_cases": decode_cases,
    }


def write(path, data):
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


def make_qwen(model_path):
    from tokenizers import normalizers
    base = base_script()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    base.write_tokenizer_gguf(QWEN_FIXTURE, base.read_gguf_fields(model_path))
    print(f"{QWEN_FIXTURE.relative_to(ROOT)}: {QWEN_FIXTURE.stat().st_size} bytes")
    loader = load(QWEN_FIXTURE)
    model_loader = load(model_path)
    assert loader.backend_tokenizer.to_str() == model_loader.backend_tokenizer.to_str(), "fixture differs from the model"
    corrected = load(QWEN_FIXTURE)
    corrected.backend_tokenizer.normalizer = normalizers.NFC()
    messages = [{"role": "system", "content": "You are a coding assistant."},
                {"role": "user", "content": "Reverse a list in Swift."},
                {"role": "assistant", "content": "let r = Array(xs.reversed())"}]
    rendered = loader.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    texts = all_texts(base, QWEN_SPECIAL, [rendered])
    data = reference(corrected, texts, model_path.name,
                     lambda text: loader(text, add_special_tokens=False)["input_ids"], "gguf_loader_ids_no_special")
    write(FIXTURES / "qwen2.5_coder_tokenization.json", data)


def sentencepiece_processor(gguf_path):
    """The Gemma SentencePiece model rebuilt from the GGUF: pieces (user-defined spaces back to
    "▁", as convert_hf_to_gguf.py pre-normalized them), scores and types, BPE with byte fallback,
    identity normalization without a dummy prefix, as Gemma's tokenizer.model has."""
    import gguf
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    reader = gguf.GGUFReader(str(gguf_path))
    field = lambda key: reader.fields[key].contents()
    proto = pb.ModelProto()
    proto.trainer_spec.model_type = pb.TrainerSpec.BPE
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id, proto.trainer_spec.bos_id = field("tokenizer.ggml.unknown_token_id"), field("tokenizer.ggml.bos_token_id")
    proto.trainer_spec.eos_id, proto.trainer_spec.pad_id = field("tokenizer.ggml.eos_token_id"), field("tokenizer.ggml.padding_token_id")
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    control = {proto.trainer_spec.pad_id, proto.trainer_spec.eos_id, proto.trainer_spec.bos_id}
    for k, (token, kind, score) in enumerate(zip(field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type"),
                                                field("tokenizer.ggml.scores"))):
        piece = proto.pieces.add()
        piece.piece = token.replace(" ", "\u2581") if kind == 4 else token
        # convert_hf_to_gguf.py typed every special added token control; the tokenizer.model has
        # three control pieces and the unknown one, the rest (<start_of_turn>, <unusedN>, ...) user-defined.
        if kind == 3:
            kind = 3 if k in control else 2 if k == proto.trainer_spec.unk_id else 4
        piece.score, piece.type = score, kind
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


def make_gemma(model_path):
    from tokenizers import Tokenizer, models
    from transformers.tokenization_utils_base import generate_merges
    base = base_script()
    tokenizer = load(model_path)
    # The merges GemmaConverter would make (ranked by merged-token id) must give the same ids.
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    converter = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    converter.model = models.BPE(vocab=vocab, merges=generate_merges(vocab), unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    processor = sentencepiece_processor(model_path)
    texts = all_texts(base, GEMMA_SPECIAL)
    for text in texts:
        assert converter.encode(text, add_special_tokens=False).ids == tokenizer(text, add_special_tokens=False)["input_ids"], text
    data = reference(tokenizer, texts, model_path.name, processor.encode, "sentencepiece_ids_no_special")
    write(FIXTURES / "gemma3_tokenization.json", data)


def fnv1a64(chunks):
    value = 0xCBF29CE484222325
    for chunk in chunks:
        for byte in chunk:
            value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def vocab_and_merges_checksum(model):
    """FNV-1a 64 over the vocabulary in id order ("token\\0id\\n") and the merges in rank order
    ("left right\\n"): the Swift test splices both in from the GGUF and checks the same sum."""
    chunks = [token.encode() + b"\0" + str(index).encode() + b"\n"
              for token, index in sorted(model["vocab"].items(), key=lambda item: item[1])]
    chunks += [f"{left} {right}\n".encode() for left, right in model["merges"]]
    return fnv1a64(chunks)


def make_hf_folder(tokenizer, name, texts):
    """transformers' save_pretrained of `tokenizer` as a skeleton: tokenizer.json without the
    vocabulary and merges (tens of MB; the test splices them in from the GGUF), with their
    checksum, and tokenizer_config.json."""
    import tempfile
    from transformers import AutoTokenizer
    folder = FIXTURES / name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as saved:
        tokenizer.save_pretrained(saved)
        reloaded = AutoTokenizer.from_pretrained(saved)
        for text in texts:
            assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"], text
        state = json.loads(Path(saved, "tokenizer.json").read_text())
        config = Path(saved, "tokenizer_config.json").read_text()
    model = state["model"]
    splice = {"vocabulary_size": len(model["vocab"]), "merge_count": len(model["merges"]),
              "fnv1a64": vocab_and_merges_checksum(model)}
    model["vocab"], model["merges"] = {}, []
    (folder / "tokenizer.json").write_text(json.dumps(state, ensure_ascii=False, separators=(",", ":")) + "\n")
    (folder / "tokenizer_config.json").write_text(config)
    (folder / "splice.json").write_text(json.dumps(splice) + "\n")
    print(f"{folder.relative_to(ROOT)}: {splice}")


def make_hf_folders(qwen_path, gemma_path):
    from tokenizers import normalizers
    base = base_script()
    qwen = load(qwen_path)
    qwen.backend_tokenizer.normalizer = normalizers.NFC()  # as in the reference (see above)
    make_hf_folder(qwen, "hf-qwen2.5-coder", all_texts(base, QWEN_SPECIAL))
    make_hf_folder(load(gemma_path), "hf-gemma3", all_texts(base, GEMMA_SPECIAL))


def main(argv):
    command = argv[1] if len(argv) > 1 else "help"
    if command == "qwen":
        make_qwen(Path(argv[2]) if len(argv) > 2 else QWEN_GGUF)
    elif command == "gemma":
        make_gemma(Path(argv[2]) if len(argv) > 2 else GEMMA_GGUF)
    elif command == "hf-folders":
        make_hf_folders(QWEN_FIXTURE, GEMMA_GGUF)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
