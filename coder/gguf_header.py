"""Read a GGUF file's metadata (its key/value header) without touching its tensors.

Not llama.cpp's `gguf` package: it needs numpy (with requests and tqdm, 82 MB installed),
and its GGUFReader turns every value into numpy arrays, the whole vocabulary and the
tensor table included: 3.1 s and 190 MB of RSS for the 98 MB SmolLM2 here (measured,
gguf 0.19.0), far too slow for listing thousands of files. This reads the fixed header
and the key/value pairs with `struct` from a memory map, keeping scalars and strings and
only the length of arrays (a vocabulary's strings are stepped over, not decoded), and
stops before the tensor table. Only the pages of the header are read.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (versions 2 and 3,
little-endian; a big-endian file is refused).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

MAGIC = b"GGUF"
MAX_KV = 1 << 20  # more keys than any real model has: a corrupt count, not a header
MAX_STRING = 1 << 26  # 64 MiB: chat templates are kilobytes

# value type -> struct format of one scalar (8 is string, 9 is array)
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """Not a GGUF file, or a header this reader cannot follow (the message says where)."""


@dataclass(frozen=True)
class ArrayInfo:
    """An array value, kept as its element type and length (the elements are skipped)."""

    item_type: int
    length: int


@dataclass(frozen=True)
class Header:
    version: int
    tensor_count: int
    metadata: dict[str, object]  # int | float | bool | str | ArrayInfo


def read_header(path: str | os.PathLike[str]) -> Header:
    """The version, tensor count and metadata of the GGUF file at `path`."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            raise GGUFError(f"{os.fspath(path)}: not a GGUF file (only {size} bytes)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                return _parse(buf)
            except (struct.error, IndexError):
                raise GGUFError(f"{os.fspath(path)}: the GGUF header is cut short") from None
            except GGUFError as exc:
                raise GGUFError(f"{os.fspath(path)}: {exc}") from None


def _parse(buf: mmap.mmap) -> Header:
    if buf[:4] != MAGIC:
        raise GGUFError("not a GGUF file (no GGUF magic)")
    version, tensor_count, kv_count = struct.unpack_from("<IQQ", buf, 4)
    if version not in (2, 3):
        what = "big-endian or unknown" if version > 0xFFFF else "unsupported"
        raise GGUFError(f"{what} GGUF version {version}")
    if kv_count > MAX_KV:
        raise GGUFError(f"implausible metadata count {kv_count}")
    reader = _Reader(buf, 24)
    metadata: dict[str, object] = {}
    for _ in range(kv_count):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    return Header(version, tensor_count, metadata)


class _Reader:
    def __init__(self, buf: mmap.mmap, offset: int) -> None:
        self.buf, self.pos, self.end = buf, offset, len(buf)

    def u32(self) -> int:
        (n,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return n

    def u64(self) -> int:
        (n,) = struct.unpack_from("<Q", self.buf, self.pos)
        self.pos += 8
        return n

    def string(self) -> str:
        n = self.u64()
        if n > MAX_STRING or self.pos + n > self.end:
            raise GGUFError(f"a string of {n} bytes at offset {self.pos} runs past the file")
        text = self.buf[self.pos : self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return text

    def value(self, kind: int) -> object:
        if kind in _SCALARS:
            fmt = "<" + _SCALARS[kind]
            (v,) = struct.unpack_from(fmt, self.buf, self.pos)
            self.pos += struct.calcsize(fmt)
            return v
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, length = self.u32(), self.u64()
            self.skip_array(item, length)
            return ArrayInfo(item, length)
        raise GGUFError(f"unknown value type {kind} at offset {self.pos}")

    def skip_array(self, item: int, length: int) -> None:
        if item in _SCALARS:
            self.pos += struct.calcsize("<" + _SCALARS[item]) * length
        elif item == _STRING:  # each element is a u64 length and its bytes
            buf, pos, unpack = self.buf, self.pos, struct.Struct("<Q").unpack_from
            for _ in range(length):
                pos += 8 + unpack(buf, pos)[0]
            self.pos = pos
        elif item == _ARRAY:  # nested arrays: not used by llama.cpp, but allowed
            for _ in range(length):
                self.skip_array(self.u32(), self.u64())
        else:
            raise GGUFError(f"unknown array element type {item} at offset {self.pos}")
        if self.pos > self.end:
            raise GGUFError("an array runs past the end of the file")
