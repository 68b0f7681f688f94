"""The one tool-aware chat template, for training and serving alike.

The server renders `prompts/chatml-tools.jinja` (llm.server.chat_template_file); training
renders the same file with `{% generation %}` marks around each assistant reply, which
print nothing but let transformers return the assistant-token mask TRL's
`assistant_only_loss` needs. The marks are added here rather than kept in a second file,
so the two renderings cannot drift apart (tests/test_train_engine.py checks them byte for
byte against the engine's /apply-template).
"""

from __future__ import annotations

TEMPLATE = "prompts/chatml-tools.jinja"

# The assistant branch of the template, and where its reply starts and ends.
_OPEN = "{{- '<|im_start|>assistant\\n' -}}"
_CLOSE = "{{- '<|im_end|>\\n' -}}"


def served_template() -> str:
    from coder import resources

    return resources.read_text(TEMPLATE)


def training_template(text: str | None = None) -> str:
    """The template with the assistant replies (content, calls and the closing
    <|im_end|>, which the model must learn to emit) inside generation marks."""
    text = served_template() if text is None else text
    branch = text.index("{%- if message.role == 'assistant' -%}")
    start = text.index(_OPEN, branch) + len(_OPEN)
    end = text.index(_CLOSE, start)
    return (
        text[:start]
        + "{%- generation -%}"
        + text[start:end]
        + "{{- '<|im_end|>' -}}{%- endgeneration -%}{{- '\\n' -}}"
        + text[end + len(_CLOSE) :]
    )
