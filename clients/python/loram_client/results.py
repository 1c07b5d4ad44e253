"""Typed views of the results that have behaviour or many fields worth naming.

Most methods return the daemon's JSON object as a dict (their keys are listed in each method's
docstring and in docs/rpc.md). The results below get a dataclass because callers read them field
by field, print them or plot them. Every one keeps the daemon's object as ``raw``, so a field
added to the contract later is never out of reach.
"""

from __future__ import annotations

import base64
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

__all__ = ["MemoryPlan", "PlanBuffer", "PlanSuggestion", "Generation", "BREAKDOWN_KINDS", "decode_logits"]

#: The order the daemon lists a plan's breakdown in (weights first, scratch space last).
BREAKDOWN_KINDS = ("weights", "adapter", "gradients", "optimizer", "activations", "kvCache", "workspace")


@dataclass(frozen=True)
class PlanBuffer:
    """One buffer of a placed plan: ``bytes`` at ``offset`` from op ``start`` to op ``end``."""

    name: str
    kind: str
    bytes: int
    offset: int
    start: int
    end: int
    persistent: bool = False

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "PlanBuffer":
        return cls(
            name=str(value["name"]),
            kind=str(value["kind"]),
            bytes=int(value["bytes"]),
            offset=int(value["offset"]),
            start=int(value["start"]),
            end=int(value["end"]),
            persistent=bool(value.get("persistent", False)),
        )


@dataclass(frozen=True)
class PlanSuggestion:
    """The cheapest change that fits the cap (``changes`` as the daemon names them)."""

    changes: Dict[str, str]
    peak_bytes: int
    breakdown: Dict[str, int]

    def describe(self) -> str:
        """``"checkpointing=layer"``: the changes as one would type them."""
        return ", ".join("%s=%s" % item for item in self.changes.items())


@dataclass(frozen=True)
class MemoryPlan:
    """A ``memory/plan`` result: will this workload fit, and where does the memory go."""

    fits: bool
    peak_bytes: int
    lower_bound_bytes: int
    cap_bytes: int
    breakdown: Dict[str, int]
    parameters_original: int
    parameters_carrier: int
    reduction: float
    accounting: str
    #: Present when the request asked for ``search`` and the plan did not fit; ``None`` inside
    #: means the daemon searched and no change fits.
    searched: bool = False
    suggestion: Optional[PlanSuggestion] = None
    #: With ``detail``: every buffer, and the names of those live at the peak.
    buffers: List[PlanBuffer] = field(default_factory=list)
    live_at_peak: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "MemoryPlan":
        suggestion = value.get("suggestion")
        return cls(
            fits=bool(value["fits"]),
            peak_bytes=int(value["peakBytes"]),
            lower_bound_bytes=int(value["lowerBoundBytes"]),
            cap_bytes=int(value["capBytes"]),
            breakdown={k: int(v) for k, v in value["breakdown"].items()},
            parameters_original=int(value["parameters"]["original"]),
            parameters_carrier=int(value["parameters"]["carrier"]),
            reduction=float(value["reduction"]),
            accounting=str(value.get("accounting", "full")),
            searched="suggestion" in value,
            suggestion=None
            if not isinstance(suggestion, Mapping)
            else PlanSuggestion(
                changes={str(k): str(v) for k, v in suggestion["changes"].items()},
                peak_bytes=int(suggestion["peakBytes"]),
                breakdown={k: int(v) for k, v in suggestion.get("breakdown", {}).items()},
            ),
            buffers=[PlanBuffer.from_json(b) for b in value.get("buffers", [])],
            live_at_peak=[str(n) for n in value.get("liveAtPeak", [])],
            raw=dict(value),
        )

    @property
    def peak_over_lower_bound(self) -> float:
        """How much the placement lost to fragmentation (1.0: nothing)."""
        return float(self.raw.get("peakOverLowerBound", self.peak_bytes / max(self.lower_bound_bytes, 1)))


@dataclass(frozen=True)
class Generation:
    """A ``generate`` result; ``finish_reason`` is ``length``, ``stop``, ``eos`` or ``cancelled``."""

    text: str
    ids: List[int]
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    timing: Dict[str, float] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Generation":
        usage = value.get("usage") or {}
        return cls(
            text=str(value.get("text", "")),
            ids=[int(i) for i in value.get("ids", [])],
            finish_reason=str(value.get("finishReason", "")),
            prompt_tokens=int(usage.get("promptTokens", 0)),
            completion_tokens=int(usage.get("completionTokens", len(value.get("ids", [])))),
            timing={k: float(v) for k, v in (value.get("timing") or {}).items()},
            raw=dict(value),
        )


def decode_logits(result: Mapping[str, Any], numpy: bool = False) -> Any:
    """The logits of a ``model/forward`` result as rows of floats, whichever encoding it came in:
    JSON rows as they are, or ``logitsEncoding: "base64"`` (little-endian float32, ``shape``
    [rows, vocab]) unpacked. With ``numpy=True``, a float32 array of that shape (numpy must be
    installed); otherwise a list of lists of Python floats, the same values either way."""
    logits = result["logits"]
    if result.get("logitsEncoding") != "base64":
        if numpy:
            import numpy as np

            return np.asarray(logits, dtype=np.float32)
        return logits
    if result.get("dtype", "float32") != "float32":
        raise ValueError("unsupported logits dtype %r" % result.get("dtype"))
    rows, vocab = (int(n) for n in result["shape"])
    raw = base64.b64decode(logits)
    if len(raw) != 4 * rows * vocab:
        raise ValueError("base64 logits hold %d bytes, shape %dx%d needs %d" % (len(raw), rows, vocab, 4 * rows * vocab))
    if numpy:
        import numpy as np

        return np.frombuffer(raw, dtype="<f4").reshape(rows, vocab)
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return [values[r * vocab:(r + 1) * vocab].tolist() for r in range(rows)]
