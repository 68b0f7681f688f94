"""Where the model server is, and whether what answers there is a usable llama.cpp server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from coder.config import Config, ConfigError


class ServerError(Exception):
    """The model server cannot be used; the message names host:port or the path."""


@dataclass
class Endpoint:
    host: str
    port: int
    base_url: str  # ".../v1"

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/").removesuffix("/v1")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint(cfg: Config) -> Endpoint:
    parts = urlsplit(cfg.llm.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"llm.base_url is not an http(s) URL: {cfg.llm.base_url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if cfg.llm.server.port is not None and cfg.llm.server.port != port:
        raise ConfigError(
            f"llm.server.port {cfg.llm.server.port} disagrees with llm.base_url {cfg.llm.base_url}; "
            f"set one of them"
        )
    return Endpoint(parts.hostname, port, cfg.llm.base_url.rstrip("/"))


@dataclass
class Probe:
    state: str  # "down" | "loading" | "ready" | "foreign"
    props: dict = field(default_factory=dict)
    detail: str = ""
    # connected, then no answer in time: foreign to connect(), a failed check to health
    timed_out: bool = False


def probe(root: str, api_key: str | None = None, timeout: float = 2.0) -> Probe:
    """What answers at `root`: nothing, a loading or ready llama.cpp server, or something else."""
    status, body = http_get(root + "/health", api_key, timeout)
    if status is None and "timed out" in body:  # connected, then silence: not llama.cpp
        return Probe(
            "foreign",
            detail=f"it accepts connections but gave no HTTP answer in {timeout:g} s",
            timed_out=True,
        )
    if status is None:
        return Probe("down", detail=body)
    if status == 503 and "loading" in body.lower():
        return Probe("loading")
    if status != 200:
        return Probe("foreign", detail=f"/health answered HTTP {status}")
    props = llama_identity(root, api_key, timeout)
    if props is None:
        return Probe(
            "foreign", detail="/health answered but /props and /v1/models are not llama.cpp's"
        )
    return Probe("ready", props)


def llama_identity(root: str, api_key: str | None, timeout: float = 2.0) -> dict | None:
    """/props (or /v1/models) of a llama.cpp server, None when it is not one."""
    status, body = http_get(root + "/props", api_key, timeout)
    if status == 200:
        data = _json(body)
        if isinstance(data, dict) and (
            "default_generation_settings" in data or "model_path" in data
        ):
            return data
    status, body = http_get(root + "/v1/models", api_key, timeout)
    data = _json(body) if status == 200 else None
    models = data.get("data") if isinstance(data, dict) else None
    if models and isinstance(models, list) and models[0].get("owned_by") == "llamacpp":
        return {"model_alias": models[0].get("id"), "model_path": None}
    return None


def http_get(url: str, api_key: str | None, timeout: float) -> tuple[int | None, str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 16).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return None, str(getattr(exc, "reason", exc))


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None
