"""Text every machine has, as datasets for the examples and benchmarks: a domain split by file of
the Python standard library's own source (train on modules a-m, held-out on n-z), and general
English prose from Debian's package READMEs for alignment. Each function writes JSONL files
(``{"text": ...}`` per line) and returns the ``dataset`` params plus an exact record of what went in.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import sys
import sysconfig
from typing import Any, Dict, List, Tuple

__all__ = ["python_stdlib_domain", "debian_prose"]


def _chunks(text: str, size: int) -> List[str]:
    """Splits text into pieces of about `size` characters at line ends."""
    out: List[str] = []
    current: List[str] = []
    n = 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        n += len(line)
        if n >= size:
            out.append("".join(current))
            current, n = [], 0
    if current and "".join(current).strip():
        out.append("".join(current))
    return out


def _write_jsonl(path: str, texts: List[str]) -> str:
    data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def python_stdlib_domain(out_dir: str, *, train_bytes: int = 400_000, train_file_bytes: int = 8_192,
                         eval_samples: int = 32, eval_chunk_bytes: int = 4_096) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """``train.jsonl`` (the first ``train_file_bytes`` of each top-level module a-m, in name order,
    up to ``train_bytes``, in ~2 KB lines) and ``eval.jsonl`` (one ``eval_chunk_bytes`` piece from
    a third of the way into each of ``eval_samples`` modules n-z, spread evenly over the names).
    Returns (train dataset, held-out dataset, record)."""
    os.makedirs(out_dir, exist_ok=True)
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(stdlib, "*.py")))
    record: Dict[str, Any] = {"stdlib": stdlib, "python": sys.version.split()[0]}

    texts, used, total = [], [], 0
    for name in (f for f in files if "a" <= f[0] <= "m"):
        if total >= train_bytes:
            break
        with open(os.path.join(stdlib, name), "rb") as f:
            data = f.read(min(train_file_bytes, train_bytes - total))
        texts += _chunks(data.decode("utf-8", errors="replace"), 2048)
        used.append({"file": name, "bytes": len(data)})
        total += len(data)
    train_path = os.path.join(out_dir, "train.jsonl")
    record["train"] = {"path": train_path, "sha256": _write_jsonl(train_path, texts), "examples": len(texts), "bytes": total, "files": used,
                       "rule": "top-level stdlib *.py, name starts a-m; first %d bytes of each, name order, %d bytes at most; "
                       "lines of ~2 KB" % (train_file_bytes, train_bytes)}

    eligible = [n for n in files if "n" <= n[0] <= "z" and os.path.getsize(os.path.join(stdlib, n)) >= 3 * eval_chunk_bytes // 2]
    k = min(eval_samples, len(eligible))
    texts, used = [], []
    for name in (eligible[(i * len(eligible)) // k] for i in range(k)):
        with open(os.path.join(stdlib, name), "rb") as f:
            data = f.read()
        start = data.find(b"\n", len(data) // 3) + 1
        piece = data[start:start + eval_chunk_bytes]
        texts.append(piece.decode("utf-8", errors="replace"))
        used.append({"file": name, "start": start, "bytes": len(piece)})
    eval_path = os.path.join(out_dir, "eval.jsonl")
    record["eval"] = {"path": eval_path, "sha256": _write_jsonl(eval_path, texts), "examples": len(texts),
                      "bytes": sum(u["bytes"] for u in used), "files": used,
                      "rule": "top-level stdlib *.py, name starts n-z, >= 1.5 chunks long; %d files evenly spread over name order; "
                      "%d bytes from the first line start after a third of the file" % (k, eval_chunk_bytes)}
    return {"path": train_path, "format": "text"}, {"path": eval_path, "format": "text"}, record


def debian_prose(out_dir: str, *, total_bytes: int = 400_000, file_bytes: int = 8_192) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``align.jsonl``: Debian's /usr/share/doc/*/README* files (gz decoded, UTF-8 only, none about
    Python), the first ``file_bytes`` of each in path order, up to ``total_bytes``: English prose
    about software, unrelated to the Python domain. Returns (dataset, record)."""
    os.makedirs(out_dir, exist_ok=True)
    docs = sorted(p for p in glob.glob("/usr/share/doc/*/README*")
                  if "python" not in p.lower() and os.path.isfile(p) and not os.path.islink(p))
    texts, used, total = [], [], 0
    for path in docs:
        if total >= total_bytes:
            break
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read(min(file_bytes, total_bytes - total))
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError, EOFError):
            continue
        if len(text.strip()) < 200:
            continue
        texts += _chunks(text, 2048)
        used.append({"file": path, "bytes": len(data)})
        total += len(data)
    path = os.path.join(out_dir, "align.jsonl")
    return {"path": path, "format": "text"}, {"path": path, "sha256": _write_jsonl(path, texts), "examples": len(texts),
                                              "bytes": total, "files": used,
                                              "rule": "/usr/share/doc/*/README* (gz decoded; paths containing 'python' skipped; UTF-8 "
                                              "only, >= 200 chars), first %d bytes of each, path order, %d bytes at most" % (file_bytes, total_bytes)}
