"""`coder train`: data -> base copy -> trainer -> adapter (PEFT + GGUF) + card.json, all
written into a temporary directory beside --out and renamed to it at the end, so --out
is either complete or untouched."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from coder.train.card import CARD, CARD_VERSION, MAKER, sha256
from coder.train.data import Data
from coder.train.methods import Hyper

ADAPTER_GGUF = "adapter.gguf"
PEFT_DIR = "peft"


@dataclass
class Result:
    out: Path
    gguf: Path
    card: dict


def train(
    data: Data,
    gguf: Path,
    h: Hyper,
    out: Path,
    say=print,
    rich: bool | None = None,
    recipe: str | None = None,
) -> Result:
    from coder.train.base import ensure_base
    from coder.train.convert import converter_dir, to_gguf
    from coder.train.methods import build_trainer
    from coder.train.progress import Progress
    from coder.train.template import TEMPLATE

    started = time.time()
    t0 = time.monotonic()
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    base = ensure_base(gguf, say)
    converter_dir(say)  # fetched before training, so a network failure costs no steps
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    progress = Progress(rich=rich)
    try:
        trainer = build_trainer(data, base.hf_dir, h, tmp / "work", [progress])
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # Progress prints the steps
        setup_s = time.monotonic() - t0
        say(f"training {data.method} on {len(trainer.train_dataset)} rows from {base.gguf.name}")
        try:
            trainer.train()
        finally:
            progress.close()
        r = progress.report
        if r.steps == 0:
            raise KeyboardInterrupt  # stopped before any step finished: nothing to save
        trainer.model.save_pretrained(tmp / PEFT_DIR)
        _record_base(tmp / PEFT_DIR, base.gguf)
        shutil.rmtree(tmp / "work", ignore_errors=True)
        say("converting the adapter to GGUF (llama.cpp's convert_lora_to_gguf.py)")
        to_gguf(tmp / PEFT_DIR, base.hf_dir, tmp / ADAPTER_GGUF, say)
        card = {
            "version": CARD_VERSION,
            "made_by": MAKER,
            "created": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "method": data.method,
            "base": {"gguf": str(base.gguf), "sha256": base.sha256},
            "chat_template": TEMPLATE,
            "data": {
                "exported_from_logs": data.exported,
                "files": [{"path": str(p.resolve()), "sha256": sha256(p)} for p in data.files],
                "rows": len(trainer.train_dataset),
                "skipped": dict(data.skipped),
            },
            "hyperparameters": h.card(),
            "recipe": recipe,
            # the tools the rows offered: the tool set the adapter is served with
            "tools": trained_tools(data.rows),
            "steps": r.steps,
            "interrupted": r.interrupted,
            "final_loss": r.final_loss,
            "losses": r.losses,
            "trained_tokens": r.tokens,
            "tokens_per_s": round(r.tokens_per_s, 1),
            "seconds": {
                "setup": round(setup_s, 1),
                "first_step": round(r.first_step_s or 0.0, 1),
                "training": round(r.seconds, 1),
                "total": round(time.monotonic() - t0, 1),
            },
            "base_copy_cached": base.cached,
            "adapter": ADAPTER_GGUF,
        }
        (tmp / CARD).write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Result(out, out / ADAPTER_GGUF, card)


def _record_base(peft_dir: Path, gguf: Path) -> None:
    """PEFT records the cache path of the base copy; name the GGUF instead, which is what
    the adapter is served on (the converter is given the copy with --base)."""
    cfg_path = peft_dir / "adapter_config.json"
    cfg = orjson.loads(cfg_path.read_bytes())
    cfg["base_model_name_or_path"] = str(gguf)
    cfg_path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2))


def _replace(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def trained_tools(rows: list[dict]) -> list[str]:
    """The tool names most rows were trained with (rows of one export usually agree)."""
    from collections import Counter

    sets = Counter(
        tuple(t.get("function", {}).get("name", "") for t in row.get("tools") or [])
        for row in rows
        if isinstance(row, dict)
    )
    return list(sets.most_common(1)[0][0]) if sets else []
