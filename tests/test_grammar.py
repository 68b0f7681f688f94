"""The json protocol's GBNF: what it expresses, and where it hands back to response_format.

Whether llama.cpp accepts it and what the model then writes is tested against the real
engine (test_llm_engine.py, test_agent_engine.py) and measured in bench/bench_json_grammar.py.
"""

from __future__ import annotations

from coder import tools
from coder.llm.grammar import reply_grammar


def rules(text: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in text.strip().splitlines())


def test_every_tool_of_coder_has_a_grammar_branch():
    grammar = reply_grammar(tools.schemas(tools.REGISTRY))  # the opt-in tools too
    assert grammar is not None
    r = rules(grammar)
    assert r["root"] == " | ".join([f"call{i}" for i in range(len(tools.REGISTRY))] + ["answer"])
    assert r["s"] == '" "?'  # one space at most between tokens: no padding
    assert r["answer"] == '"{" s "\\"answer\\"" s ":" s string s "}"'


def test_properties_keep_their_order_and_only_optional_ones_may_be_left_out():
    tool = {
        "name": "t",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "depth": {"type": "integer", "minimum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    }
    r = rules(reply_grammar([tool]))
    assert r["t0f0"] == '"\\"path\\"" s ":" s string t0r1'  # required: always first
    assert r["t0r1"] == '("," s "\\"depth\\"" s ":" s natural)? t0r2'
    assert r["t0r2"] == '("," s "\\"mode\\"" s ":" s ("\\"a\\"" | "\\"b\\"")) ? t0r3'.replace(
        ") ?", ")?"
    )


def test_a_schema_beyond_the_grammar_keeps_response_format():
    for params in (
        {"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"x": {"type": "string", "pattern": "a+"}}},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"type": "object", "properties": {}, "required": ["missing"]},
    ):
        assert reply_grammar([{"name": "t", "parameters": params}]) is None


def test_no_tools_leaves_the_answer_only():
    assert rules(reply_grammar([]))["root"] == "answer"
