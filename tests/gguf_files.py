"""Small synthetic GGUF files: a real header (metadata, vocabulary arrays, a tensor table
entry) and no weights to speak of, written by the format's spec (ggml docs/gguf.md).
llama.cpp's own `gguf` writer needs numpy, which coder does not depend on."""

from __future__ import annotations

import struct
from pathlib import Path

TEMPLATE_TOOLS = (
    "{%- if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
)
TEMPLATE_NO_TOOLS = "{% for m in messages %}{{ m.content }}{% endfor %}"


def _string(s: str) -> bytes:
    data = s.encode()
    return struct.pack("<Q", len(data)) + data


def _value(v: object) -> tuple[int, bytes]:
    if isinstance(v, bool):
        return 7, struct.pack("<?", v)
    if isinstance(v, int):
        return 4, struct.pack("<I", v)
    if isinstance(v, float):
        return 6, struct.pack("<f", v)
    if isinstance(v, str):
        return 8, _string(v)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return 9, struct.pack("<IQ", 8, len(v)) + b"".join(_string(x) for x in v)
    if isinstance(v, list) and all(isinstance(x, int) for x in v):
        return 9, struct.pack("<IQ", 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)
    raise TypeError(v)


def write_gguf(
    path: Path,
    arch: str = "qwen2",
    file_type: int = 15,
    context_length: int = 32768,
    template: str | None = TEMPLATE_TOOLS,
    vocab: int = 1000,
    extra: dict | None = None,
) -> Path:
    meta: dict[str, object] = {
        "general.architecture": arch,
        "general.name": path.stem,
        f"{arch}.context_length": context_length,
        "general.file_type": file_type,
        "tokenizer.ggml.tokens": [f"tok{i}" for i in range(vocab)],
        "tokenizer.ggml.token_type": [1] * vocab,
    }
    if template is not None:
        meta["tokenizer.chat_template"] = template
    meta.update(extra or {})
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 1, len(meta)))
    for key, value in meta.items():
        kind, data = _value(value)
        out += _string(key) + struct.pack("<I", kind) + data
    out += _string("token_embd.weight") + struct.pack("<IQQIQ", 2, 4, 4, 0, 0)  # f32 4x4
    out += b"\0" * (-len(out) % 32) + b"\0" * 64
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path
