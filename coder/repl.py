"""Interactive REPL (the prompt-toolkit version replaces this line loop)."""

from __future__ import annotations


def main(cfg, args) -> int:
    from coder.cli import line_loop

    return line_loop(cfg)
