"""The trainable base: a Hugging Face copy of the served GGUF, made once and cached by
the GGUF's sha256 (DESIGN.md, "Training on the export"). transformers dequantises the
GGUF to fp32; its quantizer must be detached before the copy can be saved."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coder.train.card import sha256


class BaseModelError(Exception):
    """No base model to train: the GGUF is missing or unreadable."""


@dataclass
class Base:
    gguf: Path
    sha256: str
    hf_dir: Path  # the saved copy: config, safetensors, tokenizer
    cached: bool  # True when the copy was already there


def base_gguf(model_path: str | None) -> Path:
    """The GGUF the managed server uses: --model / llm.server.model_path, else the
    default model `coder setup` unpacks."""
    from coder import provision

    path = Path(model_path).expanduser() if model_path else provision.default_model_path()
    if not path.is_file():
        where = "llm.server.model_path / --model" if model_path else "run `coder setup`"
        raise BaseModelError(f"base model not found: {path} ({where})")
    return path.resolve()


def cache_root() -> Path:
    from coder import provision

    return provision.cache_dir() / "train"


def ensure_base(gguf: Path, say=lambda m: None) -> Base:
    digest = sha256(gguf)
    target = cache_root() / "base" / digest[:32]
    if (target / "config.json").is_file():
        return Base(gguf, digest, target, cached=True)
    say(f"making the trainable copy of {gguf.name} (once; cached in {target})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        _convert(gguf, tmp)
        try:
            tmp.rename(target)
        except OSError:  # another coder made it meanwhile
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Base(gguf, digest, target, cached=False)


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelError(f"cannot load {gguf} as a trainable model: {exc}") from None
    # save_pretrained refuses a model "quantized with gguf"; the weights are fp32 already
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
