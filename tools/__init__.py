"""coder's tools: what the model can call, each a plain function with a JSON schema.

The registry, argument checks, permission modes and output capping live in modules of
their own; this package face re-exports their public names and imports the tool families,
which register their tools on import.
"""

from __future__ import annotations

from .arguments import coerce, object_schema, parse_arguments, signature, validate
from .output import ToolError, cap_bytes, cap_text, error_text
from .permissions import MODES, asks, check_approval, decide, offered
from .registry import (
    REGISTRY,
    Tool,
    ToolContext,
    ToolResult,
    default_tools,
    dispatch,
    register,
    schemas,
)

# Imported for their side effect: each registers its tools, in this order (the order of
# `schemas()`, and so of the tools in every prompt).
from . import reading, editing, listing, git, search, shell  # noqa: F401  # isort: skip

# opt-in (default=False): offered only when agent.tools names them
from . import project, lint  # noqa: F401  # isort: skip

# not registered: the agent offers it while a plan has unfinished steps
from .plan import UPDATE_PLAN  # noqa: E402  # isort: skip

__all__ = [
    "MODES",
    "REGISTRY",
    "UPDATE_PLAN",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "asks",
    "cap_bytes",
    "cap_text",
    "check_approval",
    "coerce",
    "decide",
    "default_tools",
    "dispatch",
    "error_text",
    "object_schema",
    "offered",
    "parse_arguments",
    "register",
    "schemas",
    "signature",
    "validate",
]
