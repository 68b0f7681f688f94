"""Model discovery: the GGUF files in `llm.model_dirs`, described from their headers.

`discover(dirs)` walks the directories (names only: no file but a `.gguf` is opened) and
reads each GGUF's header (gguf_header.py: no tensor is read); `resolve(name, dirs)` turns
`--model NAME` or `/model NAME` into one file: a path, or a unique part of a listed name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from coder.config import ConfigError
from coder.gguf_header import ArrayInfo, GGUFError, read_header

# llama.cpp's LLAMA_FTYPE (gguf-py's LlamaFileType): general.file_type -> quantisation
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip
_GUESSED = 1024  # LLAMA_FTYPE_GUESSED, or-ed in by old converters
# the second and later parts of a split model (llama.cpp loads them from the first)
_LATER_SHARD = re.compile(r"-(?!0*1-)\d{5}-of-\d{5}\.gguf$")
_TOOLS = re.compile(r"\btools\b")


class ModelChoiceError(ConfigError):
    """`--model NAME` / `/model NAME` names no listed model, or more than one."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    size: int
    architecture: str | None = None
    file_type: str | None = None  # the quantisation, e.g. "Q4_K_M"
    context_length: int | None = None  # the context the model was trained for
    supports_tools: bool | None = None  # its chat template mentions `tools`; None: no template
    error: str | None = None  # why the header could not be read

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".gguf")


def default_model_dirs() -> list[Path]:
    """Where GGUFs usually are: coder's own cache (the default model), ~/models,
    llama.cpp's cache ($LLAMA_CACHE or ~/.cache/llama.cpp) and the Hugging Face hub
    cache ($HF_HOME/hub or ~/.cache/huggingface/hub)."""
    from coder import provision

    home = Path.home()
    hf = os.environ.get("HF_HUB_CACHE") or (
        Path(os.environ["HF_HOME"]) / "hub"
        if os.environ.get("HF_HOME")
        else home / ".cache" / "huggingface" / "hub"
    )
    return [
        provision.cache_dir() / "models",
        home / "models",
        Path(os.environ.get("LLAMA_CACHE") or home / ".cache" / "llama.cpp"),
        Path(hf),
    ]


def model_dirs(configured: list[str] | None) -> list[Path]:
    """`llm.model_dirs`, or the defaults when it is null."""
    if configured is None:
        return default_model_dirs()
    return [Path(d).expanduser() for d in configured]


def gguf_files(dirs: Iterable[Path]) -> Iterator[Path]:
    """Every *.gguf under `dirs`, once each (by real path), sorted within a directory.
    Hidden directories and directory symlinks are not entered (no loops, no .git); a
    file symlink is followed (the Hugging Face cache links its snapshots to blobs)."""
    seen: set[str] = set()
    for top in dirs:
        for root, subdirs, files in os.walk(top, followlinks=False):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if not name.endswith(".gguf") or _LATER_SHARD.search(name):
                    continue
                path = Path(root, name)
                real = os.path.realpath(path)
                if real in seen or not os.path.isfile(real):
                    continue
                seen.add(real)
                yield path


def describe(path: Path) -> ModelInfo:
    """A GGUF's size, architecture, quantisation, context length and tool support, from
    its header alone."""
    try:
        size = path.stat().st_size
        meta = read_header(path).metadata
    except (OSError, GGUFError) as exc:
        size = path.stat().st_size if path.exists() else 0
        return ModelInfo(path, size, error=str(exc).removeprefix(f"{path}: "))
    arch = meta.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    ftype = meta.get("general.file_type")
    quant = None
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        quant = FILE_TYPES.get(ftype & ~_GUESSED, f"type {ftype}")
    ctx = meta.get(f"{arch}.context_length") if arch else None
    template = meta.get("tokenizer.chat_template")
    tools = None
    if isinstance(template, str):
        tools = bool(_TOOLS.search(template))
    elif isinstance(template, ArrayInfo):  # several named templates: not read here
        tools = None
    return ModelInfo(
        path,
        size,
        architecture=arch,
        file_type=quant,
        context_length=ctx if isinstance(ctx, int) and not isinstance(ctx, bool) else None,
        supports_tools=tools,
    )


def discover(dirs: Iterable[Path]) -> list[ModelInfo]:
    return [describe(p) for p in gguf_files(dirs)]


def resolve(name: str, dirs: Iterable[Path]) -> Path:
    """A model file from NAME: an existing file or any path with a "/" in it (returned as
    is), else the one listed model whose file name contains NAME (case-insensitive; an
    exact name, with or without .gguf, wins over a part of one)."""
    given = Path(name).expanduser()
    if given.is_file():
        return given.resolve()
    if os.sep in name:  # a path: whoever opens it says that it is missing
        return given
    dirs = list(dirs)
    found = list(gguf_files(dirs))
    needle = name.lower().removesuffix(".gguf")
    exact = [p for p in found if p.name.lower().removesuffix(".gguf") == needle]
    matches = exact or [p for p in found if needle in p.name.lower()]
    if len(matches) == 1:
        return matches[0].resolve()
    where = ", ".join(str(d) for d in dirs) or "no directories (llm.model_dirs is empty)"
    if not matches:
        listed = _names([p.name for p in found])
        raise ModelChoiceError(
            f"no model matches {name!r} in {where}"
            + (f"; models: {listed}" if listed else "; no GGUF files there")
        )
    raise ModelChoiceError(
        f"{name!r} matches {len(matches)} models: {_names([str(p) for p in matches])}"
    )


def _names(names: list[str], limit: int = 12) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def report(infos: list[ModelInfo], dirs: list[Path], as_json: bool = False) -> str:
    """`coder models`: a table (or JSON lines) of the models found, and where it looked."""
    if as_json:
        import json

        return "\n".join(
            json.dumps(
                {
                    "name": i.name,
                    "path": str(i.path),
                    "size": i.size,
                    "architecture": i.architecture,
                    "quantization": i.file_type,
                    "context_length": i.context_length,
                    "supports_tools": i.supports_tools,
                    "error": i.error,
                }
            )
            for i in infos
        )
    where = "searched: " + (", ".join(str(d) for d in dirs) or "nothing (llm.model_dirs: [])")
    if not infos:
        return f"no GGUF models found; {where}"
    head = ("NAME", "SIZE", "QUANT", "ARCH", "CONTEXT", "TOOLS", "PATH")
    rows = [head] + [
        (
            i.name,
            human_size(i.size),
            i.file_type or "?",
            i.architecture or (f"unreadable: {i.error}" if i.error else "?"),
            str(i.context_length or "?"),
            {True: "yes", False: "no", None: "?"}[i.supports_tools],
            str(i.path),
        )
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(head) - 1)]
    lines = [
        "  ".join(r[c].ljust(widths[c]) for c in range(len(widths))) + "  " + r[-1] for r in rows
    ]
    tools_note = "TOOLS: the chat template handles tool calls (else coder uses the json protocol)"
    return "\n".join([*lines, "", tools_note, where])


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
