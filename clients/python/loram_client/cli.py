"""``loram``: the command line for scripts and dry runs.

    loram plan --preset llama-3.1-70b --prune 0.85 --nf4 --cap 20G [--svg plan.svg] [--json]
    loram generate MODEL "Once upon a time" --max-tokens 64
    loram train MODEL data.jsonl --steps 100 --lr 2e-4 --out adapter/
    loram run MODEL data.jsonl --prune 0.5 --nf4 --steps 100 --lr 2e-4 --out run/

MODEL is a Hugging Face model folder (config.json, safetensors, tokenizer) or a GGUF file. Each
subcommand starts loramd (``--loramd``, else ``$LORAMD``, else the one beside this Python, as
scripts/setup links it in .venv/bin, else ``loramd`` on PATH, else the checkout's ``.build``,
release before debug when it is newer), sends one piece of work, and shuts it down. ``--json``
prints the daemon's result objects instead of tables. Sizes (``--cap``): bytes, or a number with
K M G T (binary: 18G is 18 GiB), KiB MiB GiB TiB, or KB MB GB TB (decimal). Exit codes: 0 done,
1 the daemon said no (printed as ``error: <message> (code N)`` and ``hint: ...``, over-budget
hints in this command's flags) or could not be started, 2 bad usage (a missing model or dataset
file is found here, before anything loads), 3 ``plan`` DOES NOT FIT under ``--cap``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Dict, Optional, Sequence

from .api import DECODER_TARGETS, Loram, dataset
from .errors import ClientError, LoramError
from .errors import OverBudget
from .plots import format_bytes, have_matplotlib, plot_plan
from .results import BREAKDOWN_KINDS, MemoryPlan
from .summary import CLI_FLAGS, human_sizes, over_budget_lines, run_summary

__all__ = ["main", "parse_bytes", "plan_table", "DOES_NOT_FIT"]

PRESETS = ("llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b")
# One letter is binary (18G = 18 GiB, as ulimit, docker and qemu read it); "GB" is decimal.
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
          "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: ``loram plan``'s exit status when the plan does not fit ``--cap`` (loramd plan's too).
DOES_NOT_FIT = 3
MODEL_HELP = "a Hugging Face model folder (config.json, safetensors, tokenizer) or a GGUF file"
CAP_HELP = "bytes, or 18G (= GiB), 20GiB, 512M, 24GB (decimal)"


class UsageError(Exception):
    """Bad arguments found after argparse (exit code 2)."""


def parse_bytes(text: str) -> int:
    """``"20GiB"`` and ``"20G"`` -> 21474836480; also ``24GB`` (decimal), ``512M``, ``1.5GiB``, plain bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError("%r is not a size (bytes, or a number with K M G T = KiB MiB GiB TiB, or KB MB GB TB)" % text)
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError("a size must be positive, got %r" % text)
    if value >= 1 << 62:
        raise argparse.ArgumentTypeError("%r is past any machine's memory (2^62 bytes)" % text)
    return value


def physical_memory() -> Optional[int]:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_cap(args: argparse.Namespace) -> None:
    """A cap above this machine's memory is said plainly: planning for another machine is fine,
    a daemon budget this machine cannot hold is a mistake the planner cannot catch."""
    cap, memory = getattr(args, "cap", None), physical_memory()
    if cap is None or memory is None or cap <= memory:
        return
    if args.command == "plan":
        print("note: --cap %s is more than this machine's %s of memory (planned as given)" % (format_bytes(cap), format_bytes(memory)), file=sys.stderr)
    else:
        print("warning: --cap %s is more than this machine's %s of memory: the daemon will plan to use what this "
              "machine does not have, and the system may kill it instead of it saying 'over budget'" % (format_bytes(cap), format_bytes(memory)),
              file=sys.stderr)


def _check_files(args: argparse.Namespace) -> None:
    """The model and every dataset exist, checked before the daemon loads anything."""
    named = [("model", getattr(args, "model", None)), ("dataset", getattr(args, "dataset", None)),
             ("--align-dataset", getattr(args, "align_dataset", None)), ("--adapter", getattr(args, "adapter", None))]
    named += [("--eval", path) for path in getattr(args, "eval", None) or []]
    for what, path in named:
        if path is not None and not os.path.exists(path):
            raise UsageError("%s %s does not exist" % (what, path))


def _gib(n: float) -> str:
    return "%8.2f GiB" % (n / float(1 << 30))


def plan_table(plan: MemoryPlan, workload: Dict[str, Any]) -> str:
    """The plan as ``loramd plan`` prints it: parameters, workload, peak, breakdown, verdict, suggestion."""
    lora = workload.get("lora")
    nf4 = workload.get("baseDtype") == "nf4"
    lines = [
        "model      %s parameters; carrier %s (%.2fx fewer%s)" % (
            format(plan.parameters_original, ","), format(plan.parameters_carrier, ","), plan.reduction,
            ", counted as the paper counts 4-bit" if nf4 else ""),
        "workload   %s, micro-batch %d x %d tokens, %s, base %s%s%s" % (
            workload["kind"], workload.get("microBatch", 1), workload["seqLen"],
            "LoRA r %d" % lora["r"] if lora else "full-parameter", workload.get("baseDtype", "bf16"),
            ", layer checkpointing" if workload.get("checkpointing") else "",
            ", bf16 activations" if workload.get("activationDtype") == "bf16" else ""),
    ]
    if plan.accounting == "paper":
        lines.append("peak      %s  (paper accounting: parameter storage only)" % _gib(plan.peak_bytes))
    else:
        lines.append("peak      %s  (lower bound %s, peak/bound %.4f)" % (
            _gib(plan.peak_bytes), _gib(plan.lower_bound_bytes), plan.peak_over_lower_bound))
        for kind in BREAKDOWN_KINDS:
            if plan.breakdown.get(kind, 0) > 0:
                lines.append("  %-11s %s" % (kind, _gib(plan.breakdown[kind])))
    lines.append(("fits       under %s" if plan.fits else "DOES NOT FIT under %s") % _gib(plan.cap_bytes))
    if plan.suggestion is not None:
        lines.append("suggestion %s -> peak %s" % (plan.suggestion.describe(), _gib(plan.suggestion.peak_bytes)))
    elif plan.searched:
        lines.append("suggestion none: no checkpointing, micro-batch, 4-bit or pruning change fits")
    return "\n".join(lines)


# ---------------------------------------------------------------------- subcommands


def _plan(loram: Loram, args: argparse.Namespace) -> int:
    if args.preset:
        model: Dict[str, Any] = {"preset": args.preset}
    else:
        model = {"path": os.path.abspath(args.config)}
    picture = args.svg or args.png
    if picture and args.paper:
        raise UsageError("--paper counts parameter storage only: it has no buffers to draw; drop --svg/--png")
    if args.png and not have_matplotlib():
        raise UsageError("--png needs matplotlib (pip install matplotlib); --svg needs nothing")
    plan = loram.memory_plan(
        model, kind="generate" if args.generate else "train", seq_len=args.seq, micro_batch=args.micro_batch,
        new_tokens=args.new_tokens, lora_r=None if args.full else args.lora_r, base_dtype="nf4" if args.nf4 else args.base,
        prune=args.prune, checkpointing="layer" if args.checkpointing else None, activation_dtype=args.activations, cap_bytes=args.cap,
        search=args.search and not args.paper, accounting="paper" if args.paper else None, detail=True if picture else None,
    )
    if args.svg:
        plot_plan(plan, args.svg, use_matplotlib=False)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        plot_plan(plan, args.png, use_matplotlib=True)
    if args.json:
        raw = dict(plan.raw)
        raw.pop("buffers", None)  # thousands of entries; the picture is what they were asked for
        raw.pop("liveAtPeak", None)
        _print_json(raw)
    else:
        workload = {"kind": "generate" if args.generate else "train", "seqLen": args.seq, "microBatch": args.micro_batch,
                    "lora": None if args.full else {"r": args.lora_r}, "baseDtype": "nf4" if args.nf4 else args.base,
                    "checkpointing": args.checkpointing, "activationDtype": args.activations}
        print(plan_table(plan, workload))
        if picture:
            print("picture    %s" % picture)
    return 0 if plan.fits else DOES_NOT_FIT


def _generate(loram: Loram, args: argparse.Namespace) -> int:
    model = loram.load_model(args.model, dtype=args.dtype)["modelId"]
    adapter = loram.load_adapter(model, args.adapter)["adapterId"] if args.adapter else None
    stream = loram.generate(model, args.prompt, max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, seed=args.seed, stop=args.stop or None, adapter_id=adapter, stream=True)
    for piece in stream:
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    result = stream.result
    if args.json:
        _print_json(result.raw)
    else:
        sys.stdout.write("\n")
        sys.stdout.flush()  # before the summary on stderr, so a terminal shows them in order
        sys.stderr.write("[%s: %d prompt + %d new tokens, decode %.1f tok/s]\n" % (
            result.finish_reason, result.prompt_tokens, result.completion_tokens, result.timing.get("decodeTokensPerSecond", 0.0)))
    return 0


def _train_params(args: argparse.Namespace) -> Dict[str, Any]:
    params: Dict[str, Any] = {"dataset": dataset(os.path.abspath(args.dataset), args.format), "seqLen": args.seq_len,
                              "microBatch": args.micro_batch, "steps": args.steps, "lr": args.lr}
    for key, value in (("gradAccum", args.grad_accum), ("schedule", args.schedule), ("warmupSteps", args.warmup_steps),
                       ("checkpointing", args.checkpointing), ("activationDtype", args.activations), ("seed", args.seed)):
        if value is not None:
            params[key] = value
    return params


def _train(loram: Loram, args: argparse.Namespace) -> int:
    model = loram.load_model(args.model, dtype=args.dtype)["modelId"]
    adapter = loram.create_adapter(model, r=args.r, alpha=args.alpha, targets=args.targets, seed=args.seed)
    options = _train_params(args)
    options.pop("dataset")
    job = loram.train_create(model, dataset(os.path.abspath(args.dataset), args.format), adapter_id=adapter["adapterId"],
                             **{_snake(k): v for k, v in options.items()})
    if not args.json:
        print("training %s LoRA parameters (r %d) for %d steps; planned peak %s" % (
            format(adapter["parameters"], ","), args.r, args.steps, format_bytes(job["plan"]["peakBytes"])), file=sys.stderr)
    run = loram.train_run(job["jobId"], progress=not args.json and not args.no_progress)
    files = loram.save_adapter(adapter["adapterId"], os.path.abspath(args.out)) if args.out else []
    if args.json:
        _print_json({"adapter": adapter, "job": job, "run": run, "files": files})
    else:
        print("step %d  loss %.4f" % (run["step"], run["loss"]))
        if files:
            print("adapter    %s" % os.path.abspath(args.out))
    return 0


def _run(loram: Loram, args: argparse.Namespace) -> int:
    train = _train_params(args)
    train["lora"] = {"r": args.r, "alpha": args.alpha, "targets": list(args.targets)}
    params: Dict[str, Any] = {"prune": {"method": args.method, "ratio": args.prune}, "train": train, "out_dir": os.path.abspath(args.out)}
    if args.nf4:
        params["quantize"] = "nf4"
    if args.align_dataset:
        params["align"] = {"dataset": dataset(os.path.abspath(args.align_dataset), args.format), "steps": args.align_steps}
    if args.eval:
        params["eval"] = [dataset(os.path.abspath(path), args.format) for path in args.eval]
    result = loram.loram_run(os.path.abspath(args.model), progress=not args.json and not args.no_progress, **params)
    if args.json:
        _print_json(result)
    else:
        print("\n".join(run_summary(result, CLI_FLAGS)))
    return 0


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------- arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loram", description="Train small, infer large: loramd from the command line.")
    parser.add_argument("--loramd", help="the daemon binary (default: $LORAMD, loramd on PATH, or the checkout's .build)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="print the daemon's result objects as JSON")
        sub.add_argument("--threads", type=int, help="BLAS threads for the daemon")

    def matmul(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--matmul", choices=("f32", "bf16"),
                         help="products against the frozen weights (training, prefill): bf16 with fp32 sums on Intel AMX; "
                              "f32 where the CPU has no AMX")

    plan = commands.add_parser("plan", help="dry run: will a training step or a generation fit a memory cap?",
                               description="Plan memory for a model without loading it (memory/plan).")
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a model shape: " + ", ".join(PRESETS))
    source.add_argument("--config", help="a config.json (or its directory)")
    plan.add_argument("--generate", action="store_true", help="plan a generation instead of a training step")
    plan.add_argument("--seq", type=int, default=512, help="tokens per sequence (the prompt for --generate; default 512)")
    plan.add_argument("--micro-batch", type=int, default=1)
    plan.add_argument("--new-tokens", type=int, help="generated tokens (--generate)")
    plan.add_argument("--lora-r", type=int, default=8, help="LoRA rank on the seven projections (default 8)")
    plan.add_argument("--full", action="store_true", help="full-parameter training instead of LoRA")
    plan.add_argument("--base", choices=("f32", "bf16", "f16", "nf4"), default="bf16", help="the frozen base's storage")
    plan.add_argument("--nf4", action="store_true", help="same as --base nf4 (QLoRAM)")
    plan.add_argument("--prune", type=float, help="structured pruning ratio (LoRAM), e.g. 0.85")
    plan.add_argument("--checkpointing", action="store_true", help="layer checkpointing")
    plan.add_argument("--activations", choices=("f32", "bf16"), help="how the layers keep activations (training)")
    plan.add_argument("--cap", type=parse_bytes, help="memory cap: " + CAP_HELP + " (default: the daemon's budget)")
    plan.add_argument("--search", action=argparse.BooleanOptionalAction, default=True,
                      help="when it does not fit, suggest the cheapest change that does (default on)")
    plan.add_argument("--paper", action="store_true", help="count parameter storage only, as the paper does")
    plan.add_argument("--svg", metavar="FILE", help="write the arena's picture as SVG")
    plan.add_argument("--png", metavar="FILE", help="write the picture as PNG (needs matplotlib)")
    common(plan)
    plan.set_defaults(handler=_plan)

    gen = commands.add_parser("generate", help="stream a generation from a model directory")
    gen.add_argument("model", help=MODEL_HELP)
    gen.add_argument("prompt")
    gen.add_argument("--adapter", help="a PEFT adapter directory to apply")
    gen.add_argument("--max-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, help="0 is greedy (the default)")
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--stop", action="append", help="a stop string (repeatable)")
    gen.add_argument("--dtype", choices=("f32", "bf16", "f16"))
    gen.add_argument("--cap", type=parse_bytes, help="the daemon's memory budget: " + CAP_HELP)
    common(gen)
    matmul(gen)
    gen.set_defaults(handler=_generate)

    def training(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("model", help=MODEL_HELP)
        sub.add_argument("dataset", help="JSONL (or .txt) training data")
        sub.add_argument("--format", choices=("text", "prompt_completion", "tokens"), default="text")
        sub.add_argument("--steps", type=int, required=True)
        sub.add_argument("--lr", type=float, required=True)
        sub.add_argument("--seq-len", type=int, default=512)
        sub.add_argument("--micro-batch", type=int, default=1)
        sub.add_argument("--grad-accum", type=int)
        sub.add_argument("--schedule", choices=("constant", "linear", "cosine"))
        sub.add_argument("--warmup-steps", type=int)
        sub.add_argument("--checkpointing", choices=("none", "layer", "auto"))
        sub.add_argument("--activations", choices=("f32", "bf16"), help="how layers keep activations (bf16: less memory)")
        sub.add_argument("-r", "--r", type=int, default=8, help="LoRA rank")
        sub.add_argument("--alpha", type=float, default=16)
        sub.add_argument("--targets", nargs="+", default=list(DECODER_TARGETS), metavar="MODULE")
        sub.add_argument("--seed", type=int)
        sub.add_argument("--dtype", choices=("f32", "bf16", "f16"))
        sub.add_argument("--cap", type=parse_bytes, help="the daemon's memory budget: " + CAP_HELP)
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        common(sub)
        matmul(sub)

    train = commands.add_parser("train", help="train a LoRA adapter on a model directory and save it")
    training(train)
    train.add_argument("--out", help="save the adapter here (PEFT layout)")
    train.set_defaults(handler=_train)

    run = commands.add_parser("run", help="the LoRAM pipeline: prune, (align, quantize,) train small, recover")
    training(run)
    run.add_argument("--prune", type=float, required=True, help="pruning ratio")
    run.add_argument("--method", choices=("random", "l2", "taylor", "semi", "magnitude"), default="l2")
    run.add_argument("--nf4", action="store_true", help="quantize the pruned carrier to NF4 (QLoRAM)")
    run.add_argument("--align-dataset", help="continual pre-training data for the alignment step")
    run.add_argument("--align-steps", type=int, default=100)
    run.add_argument("--eval", action="append", metavar="DATASET", help="measure perplexity before and after (repeatable)")
    run.add_argument("--out", required=True, help="the run's output directory")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    try:
        _check_files(args)
    except UsageError as error:
        parser.error(str(error))  # exits 2
    _check_cap(args)
    init: Dict[str, Any] = {}
    if getattr(args, "cap", None) is not None and args.command != "plan":
        init["hbmCapBytes"] = args.cap
    if args.threads is not None:
        init["threads"] = args.threads
    if getattr(args, "matmul", None) is not None:
        init["matmulDtype"] = args.matmul
    try:
        with Loram(args.loramd, init_params=init) as loram:
            return int(args.handler(loram, args))
    except UsageError as error:
        parser.error(str(error))  # exits 2
    except OverBudget as error:
        # The daemon's hint names its RPC (hbmCapBytes in 'initialize') and counts bytes; say it as this command does.
        print("error: %s (code %d)" % (human_sizes(error.message), error.code), file=sys.stderr)
        for line in over_budget_lines(error.data, CLI_FLAGS):
            print("hint: %s" % line, file=sys.stderr)
        return 1
    except LoramError as error:
        print("error: %s (code %d)" % (error.message, error.code), file=sys.stderr)
        if error.hint:
            print("hint: %s" % error.hint, file=sys.stderr)
        return 1
    except ClientError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the daemon's work was cancelled", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
