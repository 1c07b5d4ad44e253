"""Loram: one typed Python method per loramd RPC, on top of the LoramClient transport.

    from loram_client import Loram

    with Loram() as loram:                                   # spawns loramd, initialize ... shutdown
        model = loram.load_model("/tmp/small")["modelId"]
        for piece in loram.generate(model, "Once upon a time", max_tokens=32, stream=True):
            print(piece, end="")
        plan = loram.memory_plan({"preset": "llama-3.1-70b"}, kind="train", seq_len=512,
                                 lora_r=8, base_dtype="nf4", prune=0.85, cap_bytes=18 << 30, search=True)
        print(plan.fits, plan.peak_bytes, plan.suggestion)

Keyword arguments are the contract's params in snake_case (``max_tokens`` is ``maxTokens``);
``None`` means "not sent", so the daemon's default applies. ``**extra`` passes params this
module does not name (loramd's own additions) through unchanged. Every method takes
``timeout`` (seconds; the request is cancelled on the daemon, then RequestTimeout is raised),
and Ctrl-C during a blocking call cancels the daemon's work before the KeyboardInterrupt goes on.
Errors are the typed exceptions of errors.py, each with ``code``, ``message`` and ``hint``.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from .bars import ProgressBar, make_bar
from .client import LoramClient
from .errors import RequestTimeout
from .future import RequestFuture
from .progress import ProgressCallback
from .results import Generation, MemoryPlan, decode_logits
from .streaming import GenerationStream

__all__ = ["Loram", "dataset", "DECODER_TARGETS", "ALL_TARGETS"]

#: The seven projections of a LLaMA decoder layer, in the contract's order.
DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ALL_TARGETS = DECODER_TARGETS + ("lm_head",)

PathLike = Union[str, "os.PathLike[str]"]
#: A dataset param: ``{"path", "format"}``, or just a path (then ``format`` is ``text``).
Dataset = Union[PathLike, Mapping[str, Any]]
#: ``progress=True`` for a bar, or a callable that gets each ``$/progress`` value.
Progress = Union[bool, ProgressCallback, None]


def dataset(path: PathLike, format: str = "text", **extra: Any) -> Dict[str, Any]:
    """The contract's dataset object: ``format`` is ``text``, ``prompt_completion`` or ``tokens``;
    ``extra`` adds e.g. ``trainOnInputs=True``."""
    return {"path": os.fspath(path), "format": format, **extra}


def _dataset(value: Optional[Dataset]) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    return dataset(value)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _params(**values: Any) -> Dict[str, Any]:
    """Params in the contract's camelCase, without the ones left as None."""
    return {_camel(k): (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in values.items() if v is not None}


class Loram(LoramClient):
    """A loramd session with a typed method per RPC. Construct it as a :class:`LoramClient`
    (``command``, ``init_params``, ``debug_methods``, ...); use it as a context manager."""

    # ------------------------------------------------------------------ plumbing

    def call(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        timeout: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
    ) -> Any:
        """Send ``method`` and wait; like :meth:`request`, and Ctrl-C cancels it on the daemon."""
        future = self.request_async(method, dict(params) if params is not None else None, on_progress=on_progress)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                return future.result()
            future.cancel()
            raise RequestTimeout(method, future.request_id, timeout or 0.0) from None
        except KeyboardInterrupt:
            future.cancel_request()
            raise

    def has_method(self, method: str) -> bool:
        """Whether this daemon serves ``method`` (``initialize``'s ``capabilities.methods``)."""
        return method in ((self.capabilities or {}).get("methods") or [])

    # ------------------------------------------------------------------ models

    def list_models(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``model/list``: ``models``, ``adapters``, ``jobs`` and ``memory {capBytes, usedBytes, peakBytes}``."""
        return self.call("model/list", timeout=timeout)

    def load_model(self, path: PathLike, *, dtype: Optional[str] = None, timeout: Optional[float] = None, **extra: Any) -> Dict[str, Any]:
        """``model/load`` a Hugging Face LLaMA directory; ``dtype`` ``f32``/``bf16``/``f16`` storage.
        Returns ``modelId``, ``config``, ``parameters``, ``bytes``."""
        return self.call("model/load", _params(path=path, dtype=dtype, **extra), timeout=timeout)

    def unload_model(self, model_id: str, *, timeout: Optional[float] = None) -> None:
        """``model/unload``: its memory goes back to the budget (refused while it has adapters)."""
        self.call("model/unload", _params(model_id=model_id), timeout=timeout)

    def save_model(
        self,
        model_id: str,
        path: PathLike,
        *,
        dtype: Optional[str] = None,
        format: Optional[str] = None,
        gguf_type: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> List[str]:
        """``model/save`` as a Hugging Face checkpoint, or with ``format="gguf"`` as one GGUF file
        (``gguf_type`` F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1); returns the files written."""
        params = _params(model_id=model_id, path=path, dtype=dtype, format=format, gguf_type=gguf_type)
        return self.call("model/save", params, timeout=timeout)["files"]

    def prune_model(
        self,
        model_id: str,
        ratio: float,
        *,
        method: str = "l2",
        layers: Optional[Sequence[int]] = None,
        calibration: Optional[Dataset] = None,
        seed: Optional[int] = None,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``model/prune``: a new, pruned model (the original stays loaded). ``method`` ``random``/
        ``l2``/``taylor`` (structured), ``semi`` (2:4) or ``magnitude``; ``layers`` ``[start, end)``.
        Returns the new ``modelId``, ``parameters``, ``reduction`` and the kept heads and neurons."""
        params = _params(model_id=model_id, method=method, ratio=ratio, layers=list(layers) if layers is not None else None,
                         calibration=_dataset(calibration), seed=seed, **extra)
        return self.call("model/prune", params, timeout=timeout)

    def quantize_model(
        self,
        model_id: str,
        *,
        format: str = "nf4",
        block_size: Optional[int] = None,
        double_quant: Optional[bool] = None,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``model/quantize`` to NF4: a new ``modelId`` and its ``bytes``."""
        params = _params(model_id=model_id, format=format, block_size=block_size, double_quant=double_quant, **extra)
        return self.call("model/quantize", params, timeout=timeout)

    # ------------------------------------------------------------------ text

    def tokenize(self, model_id: str, text: str, *, add_bos: Optional[bool] = None, timeout: Optional[float] = None) -> List[int]:
        """``tokenize``: the ids of ``text`` (with BOS unless ``add_bos=False``)."""
        return self.call("tokenize", _params(model_id=model_id, text=text, add_bos=add_bos), timeout=timeout)["ids"]

    def detokenize(
        self, model_id: str, ids: Iterable[int], *, skip_special_tokens: Optional[bool] = None, timeout: Optional[float] = None
    ) -> str:
        """``detokenize``: the text of ``ids``."""
        params = _params(model_id=model_id, ids=list(ids), skip_special_tokens=skip_special_tokens)
        return self.call("detokenize", params, timeout=timeout)["text"]

    def forward(
        self,
        model_id: str,
        ids: Iterable[int],
        *,
        adapter_id: Optional[str] = None,
        logits: Optional[str] = None,
        encoding: Optional[str] = "base64",
        numpy: bool = False,
        timeout: Optional[float] = None,
    ) -> Any:
        """``model/forward``: fp32 logits rows, one (``logits="last"``, the default) or one per id (``"all"``).

        The rows travel as base64 float32 by default (``encoding="base64"``, about 5.3 bytes a
        logit; ``"json"`` or ``None`` for JSON numbers, up to 25): a list of lists of floats either
        way, or a float32 numpy array of shape (rows, vocab) with ``numpy=True``."""
        params = _params(model_id=model_id, adapter_id=adapter_id, ids=list(ids), logits=logits, logits_encoding=encoding)
        return decode_logits(self.call("model/forward", params, timeout=timeout), numpy=numpy)

    def generate(
        self,
        model_id: str,
        prompt: Optional[str] = None,
        *,
        ids: Optional[Iterable[int]] = None,
        max_tokens: int = 64,
        temperature: Optional[float] = None,
        top_p: Optional[float] = None,
        top_k: Optional[int] = None,
        seed: Optional[int] = None,
        stop: Optional[Sequence[str]] = None,
        adapter_id: Optional[str] = None,
        add_bos: Optional[bool] = None,
        stream: bool = False,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Union[Generation, GenerationStream]:
        """``generate`` from ``prompt`` (text) or ``ids``; ``temperature`` 0 is greedy.

        ``stream=False``: waits and returns a :class:`Generation`. ``stream=True``: returns a
        :class:`GenerationStream` at once; iterating it yields the new text piece by piece, its
        ``result`` is the Generation, ``cancel()`` stops at the next token.
        """
        params = _params(
            model_id=model_id, adapter_id=adapter_id, prompt=prompt, ids=list(ids) if ids is not None else None,
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
            stop=list(stop) if stop is not None else None, add_bos=add_bos, **extra,
        )
        if stream:
            return GenerationStream(self, params, timeout=timeout)
        return Generation.from_json(self.call("generate", params, timeout=timeout))

    def perplexity(
        self,
        model_id: str,
        data: Dataset,
        *,
        adapter_id: Optional[str] = None,
        seq_len: Optional[int] = None,
        max_samples: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """``eval/perplexity`` on a dataset: ``loss``, ``perplexity``, ``tokens``."""
        params = _params(model_id=model_id, adapter_id=adapter_id, dataset=_dataset(data), seq_len=seq_len, max_samples=max_samples)
        return self.call("eval/perplexity", params, timeout=timeout)

    # ------------------------------------------------------------------ adapters

    def create_adapter(
        self,
        model_id: str,
        *,
        r: int = 8,
        alpha: float = 16,
        targets: Sequence[str] = DECODER_TARGETS,
        dropout: Optional[float] = None,
        seed: Optional[int] = None,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``adapter/create`` a LoRA adapter (B = 0, so it changes nothing until trained):
        ``adapterId``, ``parameters``, ``bytes``, ..."""
        params = _params(model_id=model_id, r=r, alpha=alpha, targets=list(targets), dropout=dropout, seed=seed, **extra)
        return self.call("adapter/create", params, timeout=timeout)

    def load_adapter(self, model_id: str, path: PathLike, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``adapter/load`` a PEFT adapter directory onto ``model_id``."""
        return self.call("adapter/load", _params(model_id=model_id, path=path), timeout=timeout)

    def save_adapter(
        self, adapter_id: str, path: PathLike, *, format: Optional[str] = None, timeout: Optional[float] = None
    ) -> List[str]:
        """``adapter/save`` in PEFT's layout, or with ``format="gguf"`` as the one file llama.cpp
        loads beside its base GGUF; returns the files written."""
        return self.call("adapter/save", _params(adapter_id=adapter_id, path=path, format=format), timeout=timeout)["files"]

    def compare_models(
        self, model_id: str, other_model_id: str, dataset: Mapping[str, Any], *, seq_len: Optional[int] = None,
        max_samples: Optional[int] = None, timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """``model/compare``: how far ``other_model_id`` (a carrier) is from ``model_id`` (its
        original) on ``dataset``: perplexities, their ratio, ``klPerToken`` and a ``verdict``."""
        return self.call("model/compare", _params(model_id=model_id, other_model_id=other_model_id, dataset=dict(dataset),
                                                  seq_len=seq_len, max_samples=max_samples), timeout=timeout)

    def merge_adapter(self, model_id: str, adapter_id: str, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``adapter/merge``: a new model with W + (alpha/r)·B·A folded in."""
        return self.call("adapter/merge", _params(model_id=model_id, adapter_id=adapter_id), timeout=timeout)

    def unload_adapter(self, adapter_id: str, *, timeout: Optional[float] = None) -> None:
        """``adapter/unload`` (loramd's own): its memory goes back to the budget."""
        self.call("adapter/unload", _params(adapter_id=adapter_id), timeout=timeout)

    def recover_adapter(
        self, adapter_id: str, target_model_id: str, *, fill: Optional[str] = None, timeout: Optional[float] = None, **extra: Any
    ) -> Dict[str, Any]:
        """``adapter/recover`` an adapter trained on a pruned model onto the original
        (``fill`` ``zero`` or ``normal`` for the pruned rows and columns): a new ``adapterId``."""
        params = _params(adapter_id=adapter_id, target_model_id=target_model_id, fill=fill, **extra)
        return self.call("adapter/recover", params, timeout=timeout)

    # ------------------------------------------------------------------ training

    def train_create(
        self,
        model_id: str,
        data: Dataset,
        *,
        steps: int,
        lr: float,
        adapter_id: Optional[str] = None,
        seq_len: int = 512,
        micro_batch: int = 1,
        grad_accum: Optional[int] = None,
        eval_dataset: Optional[Dataset] = None,
        freeze: Optional[Sequence[str]] = None,
        schedule: Optional[str] = None,
        warmup_steps: Optional[int] = None,
        weight_decay: Optional[float] = None,
        max_grad_norm: Optional[float] = None,
        checkpointing: Optional[str] = None,
        activation_dtype: Optional[str] = None,
        matmul_dtype: Optional[str] = None,
        seed: Optional[int] = None,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``train/create`` a job (LoRA with ``adapter_id``, else full-parameter training):
        ``jobId``, ``plan``, ``parameters``, ``examples``, ``warnings``. OverBudget if it cannot fit.
        ``activation_dtype="bf16"`` keeps each layer's activations in bf16 (SmolLM2-135M 4 x 256: a
        third less planned peak for about 8% of the step's speed; the loss is fp32's, the gradients
        move by bf16 rounding). ``matmul_dtype="bf16"`` computes the frozen weights' products in bf16
        with fp32 sums on Intel AMX (default: the daemon's, ``initialize``'s ``matmulDtype``); the
        plan's ``matmulDtype`` says what runs (``f32`` on a CPU without AMX, with a warning)."""
        params = _params(
            model_id=model_id, adapter_id=adapter_id, freeze=list(freeze) if freeze is not None else None,
            dataset=_dataset(data), eval_dataset=_dataset(eval_dataset), seq_len=seq_len, micro_batch=micro_batch,
            grad_accum=grad_accum, steps=steps, lr=lr, schedule=schedule, warmup_steps=warmup_steps,
            weight_decay=weight_decay, max_grad_norm=max_grad_norm, checkpointing=checkpointing,
            activation_dtype=activation_dtype, matmul_dtype=matmul_dtype, seed=seed, **extra,
        )
        return self.call("train/create", params, timeout=timeout)

    def train_step(self, job_id: str, steps: Optional[int] = None, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``train/step``: ``step``, ``losses`` (one per optimizer step), ``lr``, ``gradNorm``, ..."""
        return self.call("train/step", _params(job_id=job_id, steps=steps), timeout=timeout)

    def train_run(
        self,
        job_id: str,
        *,
        eval_every: Optional[int] = None,
        save_every: Optional[int] = None,
        out_dir: Optional[PathLike] = None,
        progress: Progress = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """``train/run`` the job's remaining steps: ``step``, ``loss``, ``evalLoss?``, ``checkpoints``.

        ``progress=True`` shows a bar (tqdm's if installed, else one plain stderr line) with the
        loss; a callable gets each ``$/progress`` value instead (reports carry ``step``, ``loss``,
        ``lr``, ``tokensPerSecond``, ``peakBytes``, ``etaSeconds``, ``percentage``).
        """
        params = _params(job_id=job_id, eval_every=eval_every, save_every=save_every, out_dir=out_dir)
        if progress is True:
            with make_bar(self._job_steps(job_id), title="train") as bar:
                return self.call("train/run", params, timeout=timeout, on_progress=_training_bar(bar))
        return self.call("train/run", params, timeout=timeout, on_progress=progress or None)

    def train_run_async(self, job_id: str, *, on_progress: Optional[ProgressCallback] = None, **options: Any) -> RequestFuture:
        """``train/run`` without waiting: a future whose ``cancel_request()`` stops the job at the
        next step boundary (the future then fails with RequestCancelled; the job keeps its state).
        ``options`` as :meth:`train_run` (``eval_every``, ``save_every``, ``out_dir``)."""
        return self.request_async("train/run", _params(job_id=job_id, **options), on_progress=on_progress)

    def train_save(self, job_id: str, path: PathLike, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``train/save``: adapter (or model) + optimizer state + step + RNG, to resume exactly."""
        return self.call("train/save", _params(job_id=job_id, path=path), timeout=timeout)

    def train_resume(self, path: PathLike, *, model_id: Optional[str] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``train/resume`` a saved job: ``jobId``, ``step``, ``plan``."""
        return self.call("train/resume", _params(path=path, model_id=model_id), timeout=timeout)

    def train_close(self, job_id: str, *, timeout: Optional[float] = None) -> None:
        """``train/close``: the job's memory goes back to the budget."""
        self.call("train/close", _params(job_id=job_id), timeout=timeout)

    def _job_steps(self, job_id: str) -> int:
        for job in self.list_models().get("jobs", []):
            if job.get("jobId") == job_id:
                return int(job.get("steps") or 100)
        return 100

    # ------------------------------------------------------------------ planning and the pipeline

    def memory_plan(
        self,
        model: Union[str, Mapping[str, Any]],
        *,
        kind: str = "train",
        seq_len: int = 512,
        micro_batch: Optional[int] = None,
        grad_accum: Optional[int] = None,
        new_tokens: Optional[int] = None,
        lora_r: Optional[int] = 8,
        lora_targets: Optional[Sequence[str]] = None,
        base_dtype: Optional[str] = None,
        prune: Union[float, Mapping[str, Any], None] = None,
        checkpointing: Union[bool, str, None] = None,
        activation_dtype: Optional[str] = None,
        cap_bytes: Optional[int] = None,
        search: Optional[bool] = None,
        accounting: Optional[str] = None,
        detail: Optional[bool] = None,
        svg: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> MemoryPlan:
        """``memory/plan``, a dry run: does ``kind`` (``train``/``generate``) fit ``cap_bytes``?

        ``model`` is a modelId or ``{"preset": ...}`` / ``{"path": ...}`` / ``{"config": {...}}``.
        ``lora_r=None`` plans full-parameter training. ``prune`` is a ratio (structured pruning)
        or the contract's ``{method, ratio, layers}``. ``search`` adds the cheapest change that
        fits; ``detail`` adds every buffer (for :func:`loram_client.plots.plot_plan`); ``svg`` adds
        the daemon's own picture of the arena (``plan.raw["svg"]``).
        """
        workload = _params(kind=kind, seq_len=seq_len, micro_batch=micro_batch, grad_accum=grad_accum, new_tokens=new_tokens,
                           checkpointing=checkpointing, activation_dtype=activation_dtype)
        if base_dtype is not None:
            workload["baseDtype"] = base_dtype
        if lora_r is not None:
            workload["lora"] = _params(r=lora_r, targets=list(lora_targets) if lora_targets is not None else None)
        if prune is not None:
            workload["prune"] = dict(prune) if isinstance(prune, Mapping) else {"method": "l2", "ratio": float(prune)}
        params: Dict[str, Any] = {"model": model if isinstance(model, str) else dict(model), "workload": workload}
        params.update(_params(hbm_cap_bytes=cap_bytes, search=search, accounting=accounting, detail=detail, svg=svg))
        return MemoryPlan.from_json(self.call("memory/plan", params, timeout=timeout))

    def loram_run(
        self,
        path: PathLike,
        *,
        train: Mapping[str, Any],
        out_dir: PathLike,
        prune: Optional[Mapping[str, Any]] = None,
        carrier: Optional[Mapping[str, Any]] = None,
        align: Optional[Mapping[str, Any]] = None,
        quantize: Optional[str] = None,
        recover: Optional[Mapping[str, Any]] = None,
        eval: Optional[Mapping[str, Any]] = None,
        progress: Progress = None,
        timeout: Optional[float] = None,
        **extra: Any,
    ) -> Dict[str, Any]:
        """``loram/run``, the whole pipeline: prune ``path``'s model (or start from a saved
        ``carrier {path}``), check how far the carrier is, optionally align and quantize it, train
        LoRA on it (``train`` as :meth:`train_create`'s params, in the contract's camelCase),
        recover the adapter onto the original. Returns ``prunedModelId``, ``adapterId`` (on the
        original) and ``report`` (with ``diagnostics`` and ``verdict``). ``progress`` as in
        :meth:`train_run`."""
        params = _params(path=path, prune=dict(prune) if prune is not None else None, carrier=carrier, align=align, quantize=quantize, train=dict(train), recover=recover,
                         eval=eval, out_dir=out_dir, **extra)
        if progress is True:
            with make_bar(100, title="loram") as bar:
                return self.call("loram/run", params, timeout=timeout, on_progress=_percentage_bar(bar))
        return self.call("loram/run", params, timeout=timeout, on_progress=progress or None)


def _training_bar(bar: ProgressBar) -> ProgressCallback:
    def show(value: Dict[str, Any]) -> None:
        if value.get("kind") == "report" and "step" in value:
            postfix = {"loss": value.get("loss")}
            if "tokensPerSecond" in value:
                postfix["tok/s"] = round(float(value["tokensPerSecond"]))
            bar.update(float(value["step"]), postfix)

    return show


def _percentage_bar(bar: ProgressBar) -> ProgressCallback:
    # The stage and the training step, not the message: a warning is 600 characters, and the
    # result carries it (a report without a percentage, such as a warning, leaves the bar as it is).
    def show(value: Dict[str, Any]) -> None:
        if value.get("kind") == "report" and "percentage" in value:
            postfix: Dict[str, Any] = {"stage": value["stage"]} if "stage" in value else {}
            if "step" in value:
                postfix["step"] = "%s/%s" % (value["step"], value["steps"]) if "steps" in value else value["step"]
            if "loss" in value:
                postfix["loss"] = value["loss"]
            bar.update(float(value["percentage"]), postfix)

    return show

