"""`python -m coder.engine`: llama.cpp's HTTP server from the xllamacpp wheel.

It takes llama-server's own flags (the ones coder passes, see server.build_command),
maps them onto xllamacpp's CommonParams and serves until SIGTERM/SIGINT. So the
bundled engine and a real llama-server binary are started by one command-line
builder and managed by one code path.

xllamacpp's Server() raises a bare "Failed to init server" for a missing model or
a busy port, so both are checked here first and reported by name. This module is
the only place that imports xllamacpp (a 106 MB shared library).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

EXIT_BAD_ARGS = 2
EXIT_START_FAILED = 1

GGUF_MAGIC = b"GGUF"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class EngineArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit 2
        raise EngineArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    """llama-server's flags, as far as the engine supports them."""
    p = _Parser(prog="python -m coder.engine", allow_abbrev=False, add_help=True)
    a = p.add_argument
    a("-m", "--model", required=True)
    a("--host", default="127.0.0.1")
    a("--port", type=int, default=8080)
    a("-c", "--ctx-size", type=int, default=4096)
    a("-np", "--parallel", type=int, default=1)
    a("-t", "--threads", type=int)
    a("-tb", "--threads-batch", type=int)
    a("-b", "--batch-size", type=int)
    a("-ub", "--ubatch-size", type=int)
    a("-fa", "--flash-attn", choices=["on", "off", "auto"])
    a("-ctk", "--cache-type-k")
    a("-ctv", "--cache-type-v")
    a("-ngl", "--n-gpu-layers", "--gpu-layers", type=int)
    a("-ncmoe", "--n-cpu-moe", type=int)
    a("--jinja", dest="jinja", action="store_true", default=None)
    a("--no-jinja", dest="jinja", action="store_false")
    a("--chat-template-file")
    a("-a", "--alias")
    a("--api-key")
    a("--api-key-file", metavar="FNAME")
    a("--metrics", action="store_true")
    a("--slots", action="store_true")
    a("--no-slots", action="store_true")
    a("-cram", "--cache-ram", type=int)
    a("--lora", action="append", default=[])
    a("--lora-scaled", nargs=2, action="append", default=[], metavar=("FILE", "SCALE"))
    a("--lora-init-without-apply", action="store_true")
    a("-s", "--seed", type=int)
    a("--no-webui", action="store_true")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse llama-server flags; an unsupported flag is an error naming it."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise EngineArgumentError(
            f"unsupported llama-server flag for the bundled engine: {unknown[0]}"
        )
    return args


def check_model(path: str) -> None:
    model = Path(path)
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    with model.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ValueError(f"not a GGUF model file: {model}")


def check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # Like the server itself: a port in TIME_WAIT is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def to_params(args: argparse.Namespace):
    import xllamacpp as xl

    p = xl.CommonParams()
    p.model.path = str(Path(args.model).resolve())
    p.hostnames = [args.host]
    p.port = args.port
    p.n_ctx = args.ctx_size
    p.n_parallel = args.parallel
    p.model_alias = {
        args.alias or Path(args.model).name
    }  # a set: a str would become its characters
    if args.threads:
        p.cpuparams.n_threads = args.threads
    if args.threads_batch or args.threads:
        p.cpuparams_batch.n_threads = args.threads_batch or args.threads
    if args.batch_size:
        p.n_batch = args.batch_size
    if args.ubatch_size:
        p.n_ubatch = args.ubatch_size
    if args.flash_attn:
        fa = xl.llama_flash_attn_type
        p.flash_attn_type = {
            "on": fa.LLAMA_FLASH_ATTN_TYPE_ENABLED,
            "off": fa.LLAMA_FLASH_ATTN_TYPE_DISABLED,
            "auto": fa.LLAMA_FLASH_ATTN_TYPE_AUTO,
        }[args.flash_attn]
    if args.cache_type_k:
        p.cache_type_k = _ggml_type(xl, args.cache_type_k, "--cache-type-k")
    if args.cache_type_v:
        p.cache_type_v = _ggml_type(xl, args.cache_type_v, "--cache-type-v")
    if args.n_gpu_layers is not None:
        p.n_gpu_layers = args.n_gpu_layers
    # --n-cpu-moe keeps MoE experts on the CPU; this engine is CPU-only, so it holds already.
    if args.jinja is not None:
        p.use_jinja = args.jinja
    if args.chat_template_file:
        p.use_jinja = True
        p.chat_template = Path(args.chat_template_file).read_text(encoding="utf-8")
    keys = api_keys(args)
    if keys:
        p.api_keys = keys
    p.endpoint_metrics = args.metrics
    p.endpoint_slots = not args.no_slots
    if args.cache_ram is not None:
        p.cache_ram_mib = args.cache_ram
    adapters = [xl.CommonAdapterLoraInfo(str(Path(f).resolve()), 1.0) for f in args.lora]
    adapters += [
        xl.CommonAdapterLoraInfo(str(Path(f).resolve()), float(s)) for f, s in args.lora_scaled
    ]
    if adapters:
        p.lora_adapters = adapters
        p.lora_init_without_apply = args.lora_init_without_apply
    if args.seed is not None:
        p.sampling.seed = args.seed
    if args.no_webui:
        p.ui = False
    return p


def api_keys(args: argparse.Namespace) -> list[str]:
    """As llama-server: --api-key, else the non-empty lines of --api-key-file (coder
    passes a pipe, /dev/fd/N), else $LLAMA_API_KEY."""
    if args.api_key:
        return [args.api_key]
    if args.api_key_file:
        try:
            text = Path(args.api_key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise OSError(
                f"--api-key-file: cannot read {args.api_key_file}: {exc.strerror}"
            ) from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    key = os.environ.get("LLAMA_API_KEY")
    return [key] if key else []


def _ggml_type(xl, name: str, flag: str):
    member = f"GGML_TYPE_{name.upper()}"
    if member not in xl.ggml_type.__members__:
        raise EngineArgumentError(f"{flag}: unknown cache type {name!r}")
    return xl.ggml_type.__members__[member]


def serve(args: argparse.Namespace) -> int:
    for path in args.lora + [f for f, _ in args.lora_scaled]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"LoRA adapter not found: {path}")
    check_model(args.model)
    check_port(args.host, args.port)
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    params = to_params(args)
    import xllamacpp as xl

    try:
        server = xl.Server(params)  # blocks until the model is loaded
    except RuntimeError as exc:
        print(
            f"engine: llama.cpp server failed to start: {exc} (see the log above)", file=sys.stderr
        )
        return EXIT_START_FAILED
    print(
        f"engine: serving {args.model} on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    # llama-server's rule: the first signal stops gracefully, a second one at once. The
    # graceful stop waits for a request in flight to finish, inside llama.cpp, holding
    # the GIL: no Python handler could run, so the second signal gets the default action.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    del server
    print("engine: stopped", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except EngineArgumentError as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    try:
        return serve(args)
    except EngineArgumentError as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except (OSError, ValueError) as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return EXIT_START_FAILED


if __name__ == "__main__":
    sys.exit(main())
