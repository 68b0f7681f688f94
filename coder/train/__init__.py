"""`coder train`: LoRA fine-tuning on coder's own logs with TRL, the adapter converted to
GGUF for the managed server (docs/training.md).

- flags.py     the subcommand's flags (import-light: the CLI builds them on every start)
- command.py   cmd_train: arguments -> run, errors -> exit codes
- data.py      rows for a method: an export file or logs exported in-process; checked
- base.py      the trainable copy of the served GGUF, cached by its sha256
- template.py  the one tool-aware chat template, with the training marks
- methods.py   one TRL trainer per method (sft, dpo, kto, grpo) with a peft LoRA
- progress.py  step / loss / tokens per second / ETA, and Ctrl-C
- convert.py   PEFT -> GGUF with llama.cpp's convert_lora_to_gguf.py (pinned sdist)
- run.py       the whole run into a temporary directory renamed to --out
- card.py      card.json, written and read back (the server serves coder's adapters
               with the template they were trained with)

Nothing here is imported by the REPL or `coder --version`; the heavy libraries (torch,
transformers, trl, peft, datasets) only inside the functions that train.
"""

from __future__ import annotations

import importlib.util

# the `train` extra's import names; find_spec looks without importing
EXTRA_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "gguf")
INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install 'coder[train]'  "
    "(in a checkout: pip install torch==2.13.0 && pip install -e '.[train]'; "
    "torch first, pinned, so pip takes the CPU build instead of GBs of CUDA)"
)


def missing_extra() -> list[str]:
    return [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
