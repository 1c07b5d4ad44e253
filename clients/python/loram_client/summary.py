"""loram/run's report and the daemon's advice, for people at a command line.

The daemon speaks its own RPC: its suggestions say ``align: true (80 steps ...)`` and ``ratio
0.15``, its over-budget errors count bytes and name ``hbmCapBytes in 'initialize'``. A command
line (``loram run``, examples/loram_pipeline.py) says the same with its own flags and sizes:
:func:`suggestion_flags` and :func:`over_budget_lines` translate, given a ``Flags`` table of
how that command spells each setting; :func:`run_summary` prints the report.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

from .plots import format_bytes

__all__ = ["Flags", "CLI_FLAGS", "suggestion_flags", "carrier_check", "run_summary", "over_budget_lines", "human_sizes"]

#: Setting -> how a command line spells it, "{}" standing for the value; None: it has no flag.
Flags = Mapping[str, Optional[str]]

#: ``loram``'s own flags (train and run; plan's --seq is spelled in over_budget_lines' caller).
CLI_FLAGS: Dict[str, Optional[str]] = {
    "align": "--align-dataset TEXT.jsonl --align-steps {}",
    "prune": "--prune {}",
    "method": "--method {}",
    "layers": None,
    "cap": "--cap {}",
    "checkpointing": "--checkpointing {}",
    "microBatch": "--micro-batch {}",
    "seqLen": "--seq-len {}",
    "dtype": "--dtype {}",
    "activationDtype": "--activations {}",
    "baseDType": "--nf4",  # the only base a suggestion names (run; train has no such flag)
    "gradAccum": "--grad-accum {}",
}

# The daemon's suggestion sentences (Sources/Runtime/Pruning/CarrierDiagnosis.swift), matched by
# what they propose; a sentence that matches none is kept as it is.
_SUGGESTIONS = [
    (re.compile(r"Align longer: (\d+) steps.*?align \{steps: (\d+)\}"), "align", lambda m: m.group(2), "align longer"),
    (re.compile(r"Align the carrier before training: align: true \((\d+) steps"), "align", lambda m: m.group(1), "align the carrier first"),
    (re.compile(r"Prune less: (?:ratio|sparsity) ([0-9.]+) instead of ([0-9.]+)"), "prune", lambda m: m.group(1), "prune less"),
    (re.compile(r"Prune a narrower layer window: layers \[(\d+), (\d+)\)"), "layers", lambda m: "%s-%s" % (m.group(1), m.group(2)),
     "prune a narrower layer window"),
    (re.compile(r"Another criterion: (\w+)"), "method", lambda m: m.group(1), "another criterion"),
]


def suggestion_flags(text: str, flags: Flags) -> str:
    """One daemon suggestion as ``what (--flag value)``, or as it was if it is not one we know."""
    for pattern, setting, value, what in _SUGGESTIONS:
        match = pattern.search(text)
        if match:
            spelled = flags.get(setting)
            if spelled is None:
                return "%s (%s %s)" % (what, setting, value(match))
            return "%s (%s)" % (what, spelled.format(value(match)))
    return text


def carrier_check(report: Mapping[str, Any], flags: Flags, tries: int = 2) -> Optional[str]:
    """The carrier check in one line (level, KL, top-1 agreement, the first ``tries`` things to
    try), or None when close; the whole sentence and every suggestion stay in the report."""
    diagnostics = report.get("diagnostics") or {}
    compare = diagnostics.get("afterAlign") or diagnostics.get("afterPrune")
    if not isinstance(compare, Mapping) or not isinstance(compare.get("verdict"), Mapping):
        return None
    verdict = compare["verdict"]
    level = verdict.get("level")
    if level in (None, "close"):
        return None
    words = {"moderate": "moderately far from", "far": "far from"}.get(level, "%s from" % level)
    tried = "; ".join(suggestion_flags(s, flags) for s in (verdict.get("suggestions") or [])[:tries])
    keep = "LoRAM may keep only part of LoRA's gain" if level == "moderate" else "the adapter may make the original worse"
    return "the carrier is %s the original (KL %.2f nats/token, top-1 agreement %.0f%%): %s%s" % (
        words, float(compare.get("klPerToken", float("nan"))), 100 * float(compare.get("top1Agreement", float("nan"))),
        keep, "; try: " + tried if tried else "")


def _verdict_text(verdict: Mapping[str, Any], flags: Flags) -> Optional[str]:
    text = verdict.get("text")
    if not isinstance(text, str):
        return None
    # "... Do not use this adapter; the carrier was far from the original. <suggestion>."
    head, sep, tail = text.partition("the original. ")
    return head + sep + suggestion_flags(tail.rstrip("."), flags) if sep and tail else text


def run_summary(result: Mapping[str, Any], flags: Flags = CLI_FLAGS) -> List[str]:
    """loram/run's result as lines: sizes, memory, the check, the perplexity of every arm, the
    verdict and where the files are."""
    report = result.get("report") or {}
    lines: List[str] = []
    parameters, memory = report.get("parameters") or {}, report.get("memory") or {}
    if parameters.get("original") and parameters.get("carrier"):
        lines.append("parameters     original %s, carrier %s (%.2fx fewer)" % (
            format(parameters["original"], ","), format(parameters["carrier"], ","), parameters["original"] / parameters["carrier"]))
    if memory.get("plannedPeakBytes"):
        lines.append("training peak  planned %s, measured %s; LoRA on the original would plan %s (%.2fx more)" % (
            format_bytes(memory["plannedPeakBytes"]), format_bytes(memory.get("measuredPeakBytes", 0)),
            format_bytes(memory.get("fullModelLoRAPlannedPeakBytes", 0)), memory.get("savedOverFullModelLoRA", float("nan"))))
    check = carrier_check(report, flags)
    if check:
        lines.append("check          %s" % check)
    if report.get("stoppedBefore"):
        lines.append("stopped        before %s: the carrier is far from the original" % report["stoppedBefore"])
    names = (("original", "original, untuned"), ("carrier", "carrier, untuned"),
             ("carrierWithAdapter", "carrier + its adapter (train small, infer small)"),
             ("originalWithRecoveredAdapter", "original + recovered adapter (LoRAM)"))
    for row in report.get("perplexity") or []:
        lines.append("perplexity on  %s" % row.get("dataset"))
        for key, title in names:
            value = row.get(key)
            lines.append("  %-50s %8s" % (title, "%.2f" % value if isinstance(value, (int, float)) else "n/a"))
    verdict = _verdict_text(report.get("verdict") or {}, flags)
    if verdict:
        lines.append("verdict        %s" % verdict)
    files = report.get("files") or {}
    for key, title in (("recoveredAdapter", "adapter"), ("recoveredAdapterGGUF", "adapter gguf"), ("carrier", "carrier"), ("report", "report")):
        if files.get(key):
            lines.append("%-14s %s" % (title, files[key]))
    seconds = report.get("seconds") or {}
    if seconds:
        lines.append("took           %.0f s (%s)" % (sum(seconds.values()), ", ".join(
            "%s %.0f s" % (k, v) for k, v in seconds.items() if v >= 0.5)))
    return lines


def human_sizes(text: str) -> str:
    """Byte counts in a daemon message (``123456789 bytes``, ``1 of 2 are free``) as GiB/MiB."""
    text = re.sub(r"\b(\d{4,}) bytes\b", lambda m: format_bytes(int(m.group(1))), text)
    text = re.sub(r"\b(\d{4,}) of (\d{4,})\b", lambda m: "%s of %s" % (format_bytes(int(m.group(1))), format_bytes(int(m.group(2)))), text)
    return re.sub(r"\b(\d{4,})-byte\b", lambda m: format_bytes(int(m.group(1))), text)


def over_budget_lines(data: Mapping[str, Any], flags: Flags = CLI_FLAGS) -> List[str]:
    """An OverBudget error's hint in the command line's terms: how far over, the cheapest change
    the daemon found (``data.suggestion``), and raising ``--cap``."""
    need, cap = data.get("needBytes"), data.get("capBytes")
    lines: List[str] = []
    suggestion = data.get("suggestion")
    if isinstance(suggestion, Mapping) and isinstance(suggestion.get("changes"), Mapping):
        spelled = []
        for key, value in suggestion["changes"].items():
            value = str(value).replace("structured ", "")  # prune: "structured 0.5"
            flag = flags.get(key)
            spelled.append(flag.format(value) if flag else "%s %s" % (key, value))
        peak = suggestion.get("peakBytes")
        lines.append("fits with %s%s" % (" ".join(spelled), " (peak %s)" % format_bytes(peak) if isinstance(peak, int) else ""))
    elif "suggestion" in data and isinstance(need, int):
        lines.append("no change of checkpointing, micro-batch, sequence length, 4-bit base or pruning fits under this cap")
    if isinstance(need, int) and isinstance(cap, int):
        lines.append("or raise %s (needs %s in all; the cap is %s)" % (
            (flags.get("cap") or "the cap").format("SIZE"), format_bytes(need), format_bytes(cap)))
    if not lines:
        lines.append("raise %s, or free memory the daemon holds" % (flags.get("cap") or "the cap").format("SIZE"))
    return lines
