"""The README's claims that can rot: its two commands (the first fenced sh block) name scripts and
files that exist and the main job runs (here in its quick offline form: the random model, 2 steps,
4 held-out samples; well under 2 minutes in a debug build), the bench/results files its figures
cite exist, and the initialize reply it shows is about as long as the daemon's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from hang import HANG

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _sh_blocks():
    return re.findall(r"^```sh\n(.*?)^```", README, re.S | re.M)


def _commands():
    """The first sh block's commands, comments dropped, split at &&."""
    commands = []
    for line in _sh_blocks()[0].splitlines():
        line = line.split("#", 1)[0].strip()
        commands += [shlex.split(part) for part in line.split("&&") if part.strip()]
    return commands


def test_the_two_commands_name_what_exists():
    commands = _commands()
    assert [c[0] for c in commands] == ["scripts/setup", ".venv/bin/python", "scripts/test"], commands
    assert commands[1][1] == "clients/python/examples/loram_pipeline.py"
    for path in ("scripts/setup", "scripts/test", "clients/python/examples/loram_pipeline.py"):
        assert os.access(os.path.join(ROOT, path), os.X_OK if path.startswith("scripts/") else os.R_OK), path
    # .venv/bin/python is what scripts/setup makes (and scripts/test runs pytest with).
    setup = open(os.path.join(ROOT, "scripts", "setup"), encoding="utf-8").read()
    assert "venv=.venv" in setup and '-m venv "$venv"' in setup
    assert "python=.venv/bin/python" in open(os.path.join(ROOT, "scripts", "test"), encoding="utf-8").read()


def test_the_main_job_runs_in_its_quick_offline_form(loramd_path, tmp_path):
    _, script = _commands()[1]
    env = dict(os.environ, LORAMD=loramd_path, PYTHONPATH=os.path.join(ROOT, "clients", "python"))
    done = subprocess.run([sys.executable, os.path.join(ROOT, script), "--random", "--steps", "2", "--eval-samples", "4",
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^plan: LoRA on the original [0-9]+ MiB, on the pruned NF4 carrier [0-9]+ MiB \([0-9.]+x less\)$", out, re.M), out
    for arm in ("original, untuned", "carrier, untuned", "carrier + its adapter (train small, infer small)",
                "original + recovered adapter (LoRAM)"):
        assert re.search(r"^  %s\s+[0-9.]+$" % re.escape(arm), out, re.M), arm
    assert re.search(r"^  original \+ LoRA trained on it \(plain LoRA\)\s+not run\s+\(--lora runs it", out, re.M), out
    assert re.search(r"^verdict        The recovered adapter ", out, re.M) and "the whole job took" in out
    assert "align:" not in out and "hbmCapBytes" not in out, "RPC syntax in a script's output"


def test_the_results_files_it_cites_exist():
    cited = set(re.findall(r"bench/results/[A-Za-z0-9._-]+[A-Za-z0-9]", README))
    assert cited, "the README's figures name their bench/results files"
    missing = [path for path in sorted(cited) if not os.path.exists(os.path.join(ROOT, path))]
    assert not missing, missing


def test_the_initialize_reply_is_as_long_as_it_says(loramd_path):
    block = next(b for b in _sh_blocks() if "initialize" in b and "Content-Length" in b)
    claimed = int(re.search(r"^Content-Length: (\d+)$", block, re.M).group(1))
    request = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'
    reply = subprocess.run([loramd_path], input=b"Content-Length: %d\r\n\r\n%s" % (len(request), request),
                           capture_output=True, timeout=HANG).stdout
    actual = int(re.match(rb"Content-Length: (\d+)\r\n", reply).group(1))
    # The device part names this machine's cores and memory, so a few bytes differ between machines.
    assert abs(actual - claimed) <= 0.05 * claimed, "README says %d, the daemon sent %d" % (claimed, actual)


def test_bf16_speed_figures_say_they_need_amx():
    paragraphs = [p for p in README.split("\n\n") if "bf16" in p and "tokens/s" in p]
    assert paragraphs, "the README's bf16 speed figures moved: update this test"
    for paragraph in paragraphs:
        assert "with Intel AMX" in paragraph and "without AMX" in paragraph, paragraph
