"""The verifier of a generated task set: `python3 check.py TASK_ID`, run in the attempt's
worktree with $CODER_TASK_DIR (where checks/TASK_ID.json lies) and $CODER_ANSWER_FILE.

A spec holds any of:
    "answer": [text, ...]   each text appears in the final answer (case and spacing aside)
    "number": n             the answer holds n as a number (digits or a word)
    "equals": {path: text}  the file holds exactly text (trailing newlines aside)
    "python": {"module": m, "asserts": [expr, ...]}  after `import m` (and from m import *),
                            each expression is true
Exit 0 when all hold; otherwise exit 1 and say which failed. Standard library only: this
file is copied beside the tasks and runs with any python3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def failures(spec: dict, answer: str) -> list[str]:
    bad = []
    for text in spec.get("answer", []):
        if _norm(text) not in _norm(answer):
            bad.append(f"the answer does not contain {text!r}")
    if "number" in spec:
        n = spec["number"]
        words = re.findall(r"[a-z]+|\d+", answer.lower())
        if str(n) not in words and (n >= len(NUMBER_WORDS) or NUMBER_WORDS[n] not in words):
            bad.append(f"the answer does not say {n}")
    for path, text in spec.get("equals", {}).items():
        try:
            got = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            bad.append(f"{path}: {exc.__class__.__name__}")
            continue
        if got.rstrip("\n") != text.rstrip("\n"):
            bad.append(f"{path} is not as expected")
    py = spec.get("python")
    if py:
        code = f"import {py['module']}\nfrom {py['module']} import *\n" + "".join(
            f"assert {e}, {e!r}\n" for e in py["asserts"]
        )
        try:
            run = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            bad.append("the python check timed out")
        else:
            if run.returncode:
                last = (run.stderr.strip().splitlines() or ["failed"])[-1]
                bad.append(f"python check: {last}")
    return bad


def main() -> int:
    task_id = sys.argv[1]
    spec = json.loads(
        (Path(os.environ["CODER_TASK_DIR"]) / "checks" / f"{task_id}.json").read_text()
    )
    answer_file = os.environ.get("CODER_ANSWER_FILE")
    answer = Path(answer_file).read_text() if answer_file and Path(answer_file).exists() else ""
    bad = failures(spec, answer)
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
