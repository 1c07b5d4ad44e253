#!/usr/bin/env python3
"""Checks GGUF models and GGUF LoRA adapters against llama.cpp (through llama-cpp-python).

    /work/refenv/bin/python scripts/check-gguf-adapter-llamacpp.py COMMAND [options]

Commands (default base: the SmolLM2 Q4_1 GGUF `scripts/fetch-model smollm2` caches). --base is a
GGUF of architecture llama, qwen2 or qwen3, or a Hugging Face folder (e.g.
Tests/Fixtures/golden-qwen2/model), which loramd converts first (model/load, model/save {format:
"gguf", ggufType: "F32"}) into the work folder; transformers then runs that folder, not the GGUF.

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
      llama.cpp's base logits against transformers fp32: Tests/Fixtures/smollm2 for the SmolLM2
      GGUF; for another base, transformers run here (on its folder, or on the GGUF dequantized).
  synthetic [--base B.gguf] [--transformers]
      A random GGUF LoRA adapter written here with gguf-py in convert_lora_to_gguf.py's layout:
      llama.cpp loads it, it changes the logits, and its effect equals a base GGUF with
      W + scale*B*A folded in with numpy (and, with --transformers, transformers' model with the
      HF-order delta, which checks the q/k row permutation: present for `llama`, absent for
      qwen2/qwen3, whose NEOX rope llama.cpp's converter leaves in transformers' order); F16
      factors and lora_scale too.
  all       vs-transformers, synthetic --transformers, and loramd when the daemon exists.

Prompts: the fixtures' ids on SmolLM2; on another GGUF with a tokenizer, the fixtures' two texts
tokenized by llama.cpp; on one without (a tiny random model), two seeded lists of 36 ids. A GGUF
without tokenizer (loramd's model/save of a folder without tokenizer.json) does not load in
llama.cpp ("key not found in model: tokenizer.ggml.model"); its F32 copy gets a placeholder
vocabulary (llamacpp_gguf.add_placeholder_vocab) and the as-given runs are skipped.

How the comparison is made meaningful: llama.cpp computes a quantized GGUF with the quantized
weights and, on the CPU, quantizes activations to Q8_1/Q8_K for those dot products; its KV cache is F16
by default, and flash attention (off by default here) converts to F16 too. So by default llama.cpp
runs an F32 copy of the base (every tensor dequantized with gguf-py: the weights loramd and
transformers use) with an F32 KV cache and flash attention off (--exact, the default). Measured on
SmolLM2 against transformers' fp32: max |dlogit| 8e-5 (relative 2.6e-6); TOL_EXACT = 1e-3 is the
pass mark. With --quantized llama.cpp runs the GGUF as given (Q4_1: max |dlogit| 1-3.4, relative up
to 9%, argmax agreement 86-100%): reported, with the adapter's effect (with - without) compared
as well, but per-logit agreement is not expected there.

Measured (llama-cpp-python 0.3.36 built from the sdist, GGML_NATIVE, on AVX-512 without AMX):
- Qwen2.5-Coder-1.5B-Instruct Q4_K_M, F32 copy: loramd (f32) vs llama.cpp max |dlogit| 1.9e-4
  (logits up to 21; relative 9e-6), transformers fp32 vs llama.cpp 7.4e-5; a loramd-trained
  adapter's effect (with - without, up to 10.5) agrees to 3.1e-4. As given (Q4_K/Q6_K weights
  times Q8_K activations, F16 or F32 KV) llama.cpp differs by up to 12 (argmax 57-86%), almost all
  of it at position 0 (KL 3.5-5.6 nats there, <= 0.004 after; max |dlogit| <= 0.54 from position
  1 on): the first token of a Qwen2.5 prompt carries huge activations that llama.cpp's quantized
  products do not keep. That is llama.cpp's arithmetic, not loramd's: the F32 copy of the same
  GGUF agrees with loramd and transformers at every position.
- tiny qwen2, qwen2-tied, qwen3 goldens through loramd's GGUF writer: llama.cpp vs transformers
  and vs loramd max |dlogit| <= 3.2e-6, adapter effects <= 3.8e-6.

Needs llama-cpp-python, numpy and gguf (plus torch and transformers for vs-transformers' fixture
regeneration and synthetic --transformers); loramd and its tests do not. Not run by CI.
Exit code 0 when every check passes.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from llamacpp_gguf import (TOL_EXACT, base_info, check, dequantized_copy, describe_adapter, failures,  # noqa: E402
                           gguf_tokens, llamacpp_logits, llamacpp_tokenize, loads_in_llamacpp, log, report, report_delta)
import llamacpp_synthetic  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/Fixtures/smollm2"
DEFAULT_BASE = (pathlib.Path(os.environ.get("LORAMD_CACHE", pathlib.Path.home() / ".cache/loramd"))
                / "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def reference_prompts(names=("english", "python")):
    ref = json.loads((FIXTURES / "reference.json").read_text())
    return {p["name"]: p for p in ref["prompts"] if p["name"] in names}, ref


def is_fixture_model(base):
    return os.path.getsize(base) == reference_prompts()[1]["model"]["size"]


def prompts_for(base, names=("english", "python")):
    """{name: ids} to evaluate on `base`: the fixtures' ids on the fixtures' SmolLM2; on another
    GGUF with a tokenizer, the fixtures' texts tokenized by llama.cpp (its own tokenizer, so the
    ids mean the same text to it and to loramd); on one without (a tiny random model), 36 ids drawn
    with a fixed seed from [3, vocab) after id 1, as the golden prompts are."""
    prompts, _ = reference_prompts(names)
    if is_fixture_model(base):
        return {n: p["input_ids"] for n, p in prompts.items()}
    vocab = gguf_tokens(base)
    if vocab:
        return {n: llamacpp_tokenize(base, p["text"]) for n, p in prompts.items()}
    size = base_info(base)["shapes"]["token_embd.weight"][1]
    rng = np.random.default_rng(2024)
    return {n: [1] + rng.integers(3, size, 35).tolist() for n in prompts}


def parse_ids(text):
    return [int(x) for x in text.replace(",", " ").split()]


def default_ids(base):
    return prompts_for(base, ("python",))["python"]


# ---------------------------------------------------------------- commands

def cmd_logits(args, work):
    ids = parse_ids(args.ids) if args.ids else default_ids(args.base)
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


def find_daemon(args):
    """--daemon, $LORAMD, else the newer of .build/release and .build/debug."""
    if args.daemon or os.environ.get("LORAMD"):
        return args.daemon or os.environ["LORAMD"]
    builds = [p for p in (ROOT / ".build/release/loramd", ROOT / ".build/debug/loramd") if p.exists()]
    return str(max(builds, key=lambda p: p.stat().st_mtime)) if builds else str(ROOT / ".build/debug/loramd")


def loramd_client(args):
    sys.path.insert(0, str(ROOT / "clients/python"))
    from loram_client import Loram
    daemon = find_daemon(args)
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
        if not args.no_quantized and gguf_tokens(args.base):
            qb = llamacpp_logits(args.base, ids, exact=False)
            qa = llamacpp_logits(args.base, ids, adapter_path, exact=False)
            report("base: loramd vs llama.cpp (GGUF as given, default settings)", lb, qb)
            report("base + adapter: loramd vs llama.cpp (GGUF as given, default settings)", la, qa)
            report_delta("adapter effect: loramd vs llama.cpp (GGUF as given)", la, lb, qa, qb)


def cmd_compare(args, work):
    ids_list = [parse_ids(args.ids)] if args.ids else list(prompts_for(args.base).values())
    ok, why = loads_in_llamacpp(dequantized_copy(args.base, work), args.adapter)
    if not check(ok, f"llama.cpp loads {args.adapter} beside (an F32 copy of) {args.base}"):
        log(f"     {why}")
        return
    with loramd_client(args) as loram:
        model_id = loram.load_model(str(args.base), dtype="f32")["modelId"]
        adapter_id = loram.load_adapter(model_id, str(args.adapter))["adapterId"]
        compare_with_loramd(args, work, loram, model_id, args.adapter, adapter_id, ids_list)


def training_data(base, work):
    """A small text to train on; for a model without a tokenizer, the same idea as token ids
    (a repeated random phrase of 12 ids), as a `tokens` dataset."""
    if gguf_tokens(base):
        text = pathlib.Path(work) / "train.txt"
        text.write_text(("The cat sat on the mat. The dog lay on the rug. " * 40).strip() + "\n")
        return {"path": str(text), "format": "text"}
    vocab = base_info(base)["shapes"]["token_embd.weight"][1]
    phrase = np.random.default_rng(5).integers(3, vocab, 12).tolist()
    rows = pathlib.Path(work) / "train-tokens.jsonl"
    rows.write_text("".join(json.dumps({"ids": [1] + phrase * 6}) + "\n" for _ in range(8)))
    return {"path": str(rows), "format": "tokens"}


def cmd_loramd(args, work):
    ids_list = [parse_ids(args.ids)] if args.ids else list(prompts_for(args.base).values())
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
            job = loram.train_create(model_id, training_data(args.base, work), adapter_id=adapter_id,
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
        if gguf_tokens(args.base):
            ok, why = loads_in_llamacpp(args.base, adapter_path)
            check(ok, "llama.cpp loads loramd's GGUF adapter beside the base GGUF as given")
        compare_with_loramd(args, work, loram, model_id, adapter_path, adapter_id, ids_list)
        # loramd reads its own GGUF adapter back: same logits as the adapter it saved.
        back = loram.load_adapter(model_id, str(adapter_path))["adapterId"]
        ids = ids_list[0]
        a1 = np.array(loram.forward(model_id, ids, adapter_id=adapter_id, logits="all"), dtype=np.float32)
        a2 = np.array(loram.forward(model_id, ids, adapter_id=back, logits="all"), dtype=np.float32)
        report("loramd: adapter vs the same adapter saved as GGUF and loaded back", a2, a1, 1e-5)


def transformers_logits(args, ids):
    """transformers' fp32 logits for each id list on the base (its folder or the GGUF)."""
    import torch
    model = llamacpp_synthetic.transformers_model(args)
    with torch.no_grad():
        return {name: model(torch.tensor([x])).logits[0].numpy() for name, x in ids.items()}


def cmd_vs_transformers(args, work):
    """llama.cpp's base logits against transformers fp32: the fixtures' SmolLM2 logits.npy, or, for
    another base, transformers run here on the same GGUF."""
    if is_fixture_model(args.base):
        prompts, ref = reference_prompts(("english", "python", "chat"))
        L = np.load(FIXTURES / "logits.npy")
        want = {}
        for name, p in prompts.items():
            rows = p["logits_rows"]
            want[name] = (p["input_ids"], rows["positions"], L[rows["first_row"]:rows["first_row"] + len(rows["positions"])])
    else:
        ids = prompts_for(args.base)
        log(f"{args.base} is not the fixtures' model: transformers' logits computed here from "
            f"{getattr(args, 'hf_folder', None) or 'the same GGUF'}")
        want = {n: (x, list(range(len(x))), got) for (n, x), got in zip(ids.items(), transformers_logits(args, ids).values())}
    exact = dequantized_copy(args.base, work)
    settings = [
        ("F32 copy, F32 KV, no flash attention", exact, dict(exact=True), TOL_EXACT),
        ("F32 copy, default F16 KV", exact, dict(exact=False), None),
        ("GGUF as given, F32 KV", args.base, dict(exact=True), None),
        ("GGUF as given, default settings", args.base, dict(exact=False), None),
    ]
    if not gguf_tokens(args.base):
        log("the base has no tokenizer (llama.cpp loads only the F32 copy, which gets a placeholder one): no as-given runs")
        settings = settings[:2]
    for label, model, kw, tol in settings:
        for name, (ids, positions, reference) in want.items():
            got = llamacpp_logits(model, ids, **kw)[positions]
            report(f"llama.cpp [{label}] vs transformers fp32, {name}", got, reference, tol)


def gguf_of_folder(args, work):
    """A Hugging Face folder as --base (e.g. Tests/Fixtures/golden-qwen2/model): loramd converts it
    (model/load, model/save {format: "gguf", ggufType: "F32"}) into the work folder."""
    out = pathlib.Path(work) / f"{args.base.resolve().parent.name}-{args.base.name}.f32.gguf"
    with loramd_client(args) as loram:
        loaded = loram.load_model(str(args.base), dtype="f32")
        files = loram.save_model(loaded["modelId"], str(out), format="gguf", gguf_type="F32")
    log(f"loramd converted {args.base} ({loaded['config']}) to {out}: {files}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["logits", "compare", "loramd", "vs-transformers", "synthetic", "all"])
    ap.add_argument("--base", type=pathlib.Path, default=DEFAULT_BASE)
    ap.add_argument("--adapter", type=pathlib.Path)
    ap.add_argument("--ids", help="token ids, comma or space separated (default: the fixtures' prompts)")
    ap.add_argument("--scale", type=float, default=1.0, help="llama.cpp's user LoRA scale (logits)")
    ap.add_argument("--quantized", action="store_true", help="logits: run the GGUF as given, llama.cpp's default settings")
    ap.add_argument("--exact", action="store_true", help="llama.cpp on an F32 copy, F32 KV, no flash attention (the default)")
    ap.add_argument("--no-quantized", action="store_true", help="compare/loramd: skip the as-given GGUF runs")
    ap.add_argument("--save", type=pathlib.Path, help="logits: save ids and logits to this .npz")
    ap.add_argument("--print-all", action="store_true", help="logits: print every logit")
    ap.add_argument("--daemon", help="loramd executable (default $LORAMD, then the newer of .build/release/loramd and .build/debug/loramd)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--b-init-std", type=float, default=0.02)
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--transformers", action="store_true", help="synthetic: also check against transformers (torch)")
    ap.add_argument("--with-loramd", action="store_true", help="synthetic: also compare loramd's adapter/load of a gguf-py adapter")
    ap.add_argument("--work", type=pathlib.Path, help="folder for the F32 copy and adapters (default: a temp dir)")
    args = ap.parse_args()
    if not args.base.exists():
        sys.exit(f"{args.base} not found (scripts/fetch-model smollm2)")
    if args.command in ("logits", "compare") and args.command == "compare" and not args.adapter:
        sys.exit("compare needs --adapter")

    with tempfile.TemporaryDirectory(prefix="gguf-check-") as tmp:
        work = args.work or pathlib.Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        args.hf_folder = None
        if args.base.is_dir():
            args.hf_folder, args.base = args.base, gguf_of_folder(args, work)
        if args.command == "logits":
            cmd_logits(args, work)
        elif args.command == "compare":
            cmd_compare(args, work)
        elif args.command == "loramd":
            cmd_loramd(args, work)
        elif args.command == "vs-transformers":
            cmd_vs_transformers(args, work)
        elif args.command == "synthetic":
            llamacpp_synthetic.cmd_synthetic(args, work, default_ids(args.base), cmd_compare)
        else:
            cmd_vs_transformers(args, work)
            daemon = find_daemon(args)
            args.transformers = True
            args.with_loramd = pathlib.Path(daemon).exists()
            llamacpp_synthetic.cmd_synthetic(args, work, default_ids(args.base), cmd_compare)
            if args.with_loramd:
                cmd_loramd(args, work)
            else:
                log(f"skip loramd: {daemon} not found")
    log(f"\n{len(failures)} check(s) failed" if failures else "\nall checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
