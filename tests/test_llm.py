"""coder.llm against the scripted server: wire shape, assembly, failures."""

from __future__ import annotations

import json
import threading

import orjson
import pytest

from coder.config import Sampling
from coder.llm import AnswerStream, Client, LLMError, parse_text_calls, render_json_messages
from tests.scripted_server import (
    Drop,
    Json,
    ScriptedServer,
    Status,
    Stream,
    chunk,
    completion,
    final_chunks,
    stream_text,
    stream_tool_calls,
    text_chunks,
)

S = Sampling(temperature=0.0, max_tokens=32, seed=7)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "relative path"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "list_dir",
            "description": "List a directory.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    },
]
MSGS = [
    {"role": "system", "content": "You are a coder."},
    {"role": "user", "content": "Read README.md"},
]


@pytest.fixture
def client(srv):
    c = Client(srv.base_url, backoff=0.001)
    yield c
    c.close()


def chat(client, **kw):
    kw.setdefault("sampling", S)
    kw.setdefault("protocol", "native")
    return client.chat(kw.pop("messages", MSGS), kw.pop("tools", TOOLS), **kw)


def test_text_streams_through_on_text_with_usage_and_timings(srv, client):
    srv.enqueue(stream_text(["Hel", "lo", " world"]))
    seen = []
    r = chat(client, on_text=seen.append)
    assert seen == ["Hel", "lo", " world"]
    assert r.message == {"role": "assistant", "content": "Hello world"}
    assert r.tool_calls == [] and r.finish_reason == "stop" and r.error is None
    assert r.usage["prompt_tokens"] == 12 and r.timings["predicted_n"] == 3
    assert r.duration_ms > 0


def test_native_request_shape(srv, client):
    srv.enqueue(stream_text("ok"))
    r = chat(client, logprobs=True)
    sent = srv.chat_requests()[-1]
    assert sent.json == r.request
    assert sent.body == orjson.dumps(r.request)  # byte for byte what went out
    body = r.request
    assert body["messages"] == MSGS and body["tools"] == TOOLS
    assert "response_format" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.0,
        0.95,
        32,
        7,
    )
    assert (
        body["top_k"],
        body["min_p"],
        body["repeat_penalty"],
        body["repeat_last_n"],
        body["mirostat"],
    ) == (40, 0.05, 1.0, 64, 0)
    # llama.cpp refuses logprobs with tools + stream (HTTP 400): not asked for here...
    assert "logprobs" not in body and "top_logprobs" not in body
    # ...but asked for whenever the request carries no tools
    srv.enqueue(stream_text("ok"))
    plain = chat(client, tools=[], logprobs=True).request
    assert plain["logprobs"] is True and plain["top_logprobs"] == 1


def test_json_protocol_request_shape(srv, client):
    srv.props = None  # not llama.cpp: the reply is constrained by response_format
    srv.enqueue(stream_text('{"answer": "hi"}'))
    history = MSGS + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "print(1)"},
        {"role": "assistant", "content": "It prints 1."},
        {"role": "user", "content": "thanks"},
    ]
    r = chat(client, protocol="json", messages=history)
    body = r.request
    assert "tools" not in body
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"]
    branches = rf["json_schema"]["schema"]["anyOf"]
    assert [b["properties"].get("tool", {}).get("const") for b in branches[:2]] == [
        "read_file",
        "list_dir",
    ]
    assert branches[0]["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]
    assert branches[-1]["properties"] == {"answer": {"type": "string"}}
    assert branches[-1]["required"] == ["answer"]
    wire = body["messages"]
    assert [m["role"] for m in wire] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert wire[0]["content"].startswith("You are a coder.\n\n")
    assert "\n- read_file(path): " in wire[0]["content"]  # one line per tool, args named
    assert json.loads(wire[2]["content"]) == {"tool": "read_file", "arguments": {"path": "a.py"}}
    assert wire[3]["content"] == "Result of read_file:\nprint(1)"
    assert json.loads(wire[4]["content"]) == {"answer": "It prints 1."}
    assert all(set(m) == {"role", "content"} for m in wire)
    assert r.protocol == "json" and r.message == {"role": "assistant", "content": "hi"}


def test_json_protocol_reply_becomes_tool_call(srv, client):
    srv.enqueue(stream_text('{\n  "tool": "read_file",\n  "arguments": {"path": "README.md"}\n}'))
    seen = []
    r = chat(client, protocol="json", on_text=seen.append)
    assert seen == []  # no raw JSON on the terminal
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [
        ("read_file", {"path": "README.md"})
    ]
    call = r.message["tool_calls"][0]
    assert (
        r.message["content"] is None
        and call["type"] == "function"
        and call["id"].startswith("call_")
    )
    assert call["function"] == {"name": "read_file", "arguments": r.tool_calls[0].arguments}
    assert r.raw_content.startswith('{\n  "tool"')


def test_json_protocol_streams_only_the_answer(srv, client):
    pieces = [
        "{",
        '\n  "',
        "answer",
        '": "',
        "Line\\",
        "none \\u00e9",
        "\\ud83d",
        "\\ude00 done",
        '"\n}',
    ]
    srv.enqueue(stream_text(pieces))
    seen = []
    r = chat(client, protocol="json", on_text=seen.append)
    assert "".join(seen) == "Line\none \u00e9\U0001f600 done" == r.message["content"]
    assert len(seen) > 2  # incremental, not once at the end


def test_answer_stream_ignores_tool_calls():
    a = AnswerStream()
    assert a.feed('{"tool": "x", "arguments": {"answer": "no"}}') == "" and a.state == "off"


def test_tool_call_deltas_split_across_chunks(srv, client):
    srv.enqueue(stream_tool_calls([("read_file", '{"path": "src/main.py"}')], pieces=5))
    r = chat(client)
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_0", "read_file", '{"path": "src/main.py"}')
    ]
    assert r.message["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "read_file", "arguments": '{"path": "src/main.py"}'},
        }
    ]
    assert (
        r.message["content"] is None and r.finish_reason == "tool_calls" and r.parse_error is None
    )


def test_two_tool_calls_interleaved(srv, client):
    calls = [("read_file", '{"path": "a.py"}'), ("list_dir", '{"path": "src"}')]
    srv.enqueue(stream_tool_calls(calls, interleave=True, pieces=4))
    r = chat(client)
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_0", "read_file", '{"path": "a.py"}'),
        ("call_1", "list_dir", '{"path": "src"}'),
    ]


def test_malformed_arguments_are_reported_not_raised(srv, client):
    srv.enqueue(stream_tool_calls([("read_file", '{"path": "a.py"')]))
    r = chat(client)
    assert len(r.tool_calls) == 1 and r.tool_calls[0].arguments == '{"path": "a.py"'
    assert r.tool_calls[0].error and "not valid JSON" in r.tool_calls[0].error
    assert "read_file" in r.parse_error


def test_stream_disconnect_keeps_partial_text(srv, client):
    srv.enqueue(Stream(text_chunks(["par", "tial", " more"]) + final_chunks(), disconnect_after=3))
    r = chat(client)
    assert r.message["content"] == "partial" and r.raw_content == "partial"
    assert r.error and "mid-stream" in r.error and not r.interrupted


def test_stream_disconnect_drops_half_received_call(srv, client):
    s = stream_tool_calls([("read_file", '{"path": "a.py"}')])
    s.disconnect_after = 3
    srv.enqueue(s)
    r = chat(client)
    assert r.error and r.tool_calls == [] and "tool_calls" not in r.message


def test_stream_without_done_is_an_error(srv, client):
    srv.enqueue(Stream(text_chunks("cut"), done=False))
    r = chat(client)
    assert r.message["content"] == "cut" and "ended before" in r.error


def test_server_error_event_mid_stream(srv, client):
    srv.enqueue(Stream(text_chunks("ab") + [{"error": {"code": 500, "message": "context full"}}]))
    r = chat(client)
    assert r.raw_content == "ab" and "context full" in r.error


LLAMA_UNPARSED = (
    "Failed to parse tool call arguments as JSON: [json.exception.parse_error.101] parse "
    "error at line 1, column 9: syntax error while parsing value - invalid string: missing "
    "closing quote; last read: '\"def read_file():\\ndef read_file():"
)


def test_a_tool_call_the_server_cannot_parse_is_the_models_parse_error(srv, client):
    # llama.cpp answers 500 when the model's call was cut off mid-arguments: not retried,
    # not a server failure, but a reply the loop can ask the model to correct
    srv.enqueue(Status(500, {"error": {"code": 500, "message": LLAMA_UNPARSED}}), stream_text("x"))
    r = chat(client, stream=False)
    assert r.error is None and not r.interrupted and not r.tool_calls
    assert "could not parse" in r.parse_error and "missing closing quote" in r.parse_error
    assert "last read" not in r.parse_error
    assert r.message == {"role": "assistant", "content": ""}
    assert len(srv.chat_requests()) == 1


def test_other_500s_stay_server_errors(srv, client):
    srv.enqueue(Status(500, {"error": {"code": 500, "message": "out of memory"}}))
    with pytest.raises(LLMError, match="out of memory"):
        chat(client)


def test_503_then_success_is_retried(srv, client):
    srv.enqueue(Status(503), Drop(), stream_text("ok"))
    r = chat(client)
    assert r.message["content"] == "ok"
    assert len(srv.chat_requests()) == 3
    assert srv.chat_requests()[0].body == srv.chat_requests()[2].body


def test_400_is_not_retried(srv, client):
    srv.enqueue(
        Status(
            400, {"error": {"code": 400, "message": "bad grammar", "type": "invalid_request_error"}}
        ),
        stream_text("never"),
    )
    with pytest.raises(LLMError) as err:
        chat(client)
    assert (
        err.value.status == 400
        and "bad grammar" in str(err.value)
        and srv.base_url in str(err.value)
    )
    assert len(srv.chat_requests()) == 1


def test_retries_exhausted_names_the_url(srv):
    srv.enqueue(*[Status(503)] * 3)
    with Client(srv.base_url, retries=2, backoff=0.001) as c, pytest.raises(LLMError) as err:
        chat(c)
    assert err.value.status == 503 and "after 3 attempts" in str(err.value)
    assert len(srv.chat_requests()) == 3


def test_unreachable_server():
    with ScriptedServer() as s:
        url = s.base_url
    with Client(url, retries=1, backoff=0.001) as c, pytest.raises(LLMError) as err:
        chat(c)
    assert url in str(err.value) and "2 attempts" in str(err.value)


def test_cancel_event_stops_the_stream(srv, client):
    cancel = threading.Event()
    srv.enqueue(Stream(text_chunks(["a", "b", "c", "d", "e", "f"]) + final_chunks(), delay=0.02))
    seen = []

    def on_text(t):
        seen.append(t)
        if t == "b":
            cancel.set()

    r = chat(client, on_text=on_text, cancel=cancel)
    assert r.interrupted and r.error is None
    assert r.message["content"] == "ab" == "".join(seen)


def test_cancel_before_start(srv, client):
    cancel = threading.Event()
    cancel.set()
    r = chat(client, cancel=cancel)
    assert r.interrupted and r.message["content"] == "" and srv.chat_requests() == []


def test_keyboard_interrupt_returns_partial(srv, client):
    srv.enqueue(stream_text(["x", "y", "z"]))

    def on_text(t):
        if t == "y":
            raise KeyboardInterrupt

    r = chat(client, on_text=on_text)
    assert r.interrupted and r.raw_content == "xy"


def test_text_fallback_tool_call_tags(srv, client):
    srv.enqueue(
        stream_text(
            'Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>'
        )
    )
    r = chat(client)
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [
        ("read_file", {"path": "a.py"})
    ]
    assert r.message["content"] == "Let me look." and r.message["tool_calls"][0]["id"].startswith(
        "call_"
    )
    assert "<tool_call>" in r.raw_content


def test_text_fallback_fenced_json(srv, client):
    srv.enqueue(stream_text('```json\n{"tool": "list_dir", "arguments": {"path": "."}}\n```'))
    r = chat(client)
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [
        ("list_dir", {"path": "."})
    ]
    assert r.message["content"] is None


def test_text_fallback_variants():
    _, calls, err = parse_text_calls('{"name": "read_file", "arguments": "{\\"path\\": \\"x\\"}"}')
    assert [(c.name, c.arguments) for c in calls] == [
        ("read_file", '{"path": "x"}')
    ] and err is None
    _, calls, _ = parse_text_calls(
        '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {"n": 1}}'
    )
    assert [c.name for c in calls] == ["a", "b"]
    text, calls, err = parse_text_calls(
        '<tool_call>{"name": "read_file", "arguments": {"path": "x"}</tool_call>'
    )
    assert calls == [] and "not valid JSON" in err and "<tool_call>" in err
    text, calls, err = parse_text_calls('Use a dict like {"a": 1} here.')
    assert calls == [] and err is None and text == 'Use a dict like {"a": 1} here.'


def test_api_key_sent_but_not_recorded():
    with ScriptedServer(api_key="sekret-123") as s, Client(s.base_url, api_key="sekret-123") as c:
        s.enqueue(stream_text("ok"))
        r = chat(c)
        assert s.chat_requests()[-1].headers["authorization"] == "Bearer sekret-123"
        assert r.message["content"] == "ok"
        assert "sekret-123" not in json.dumps(r.request) and "sekret-123" not in repr(r)


def test_wrong_api_key_is_a_clear_error():
    with ScriptedServer(api_key="right") as s, Client(s.base_url, api_key="wrong") as c:
        with pytest.raises(LLMError) as err:
            chat(c)
        assert err.value.status == 401 and len(s.chat_requests()) == 1


def test_logprobs_collected(srv, client):
    srv.enqueue(stream_text(["a", "b"], logprobs=True))
    r = chat(client, logprobs=True)
    assert r.logprobs == [
        {"id": 100, "token": "a", "bytes": [97], "logprob": -0.5},
        {"id": 101, "token": "b", "bytes": [98], "logprob": -0.5},
    ]


def test_non_streamed_response(srv, client):
    srv.enqueue(completion(None, [("read_file", '{"path": "x"}')], "tool_calls"))
    r = chat(client, stream=False)
    assert r.request["stream"] is False and "stream_options" not in r.request
    assert [c.name for c in r.tool_calls] == ["read_file"] and r.timings and r.usage


def test_reasoning_content_kept_apart(srv, client):
    srv.enqueue(
        Stream([chunk({"reasoning_content": "hmm"}), chunk({"content": "ok"})] + final_chunks())
    )
    r = chat(client)
    assert r.reasoning == "hmm" and r.message["content"] == "ok"


def test_props_protocol_and_context(srv, client):
    assert client.context_size() == 4096
    assert client.resolve_protocol("auto") == "json"
    assert client.resolve_protocol("native") == "native"
    srv.props["chat_template_caps"]["supports_tools"] = True
    with Client(srv.base_url) as c2:
        assert c2.resolve_protocol("auto") == "native"
    client.props()
    assert sum(r.path == "/props" for r in srv.requests) == 2  # cached per client


def test_no_props_means_native():
    with ScriptedServer(props=None) as s, Client(s.base_url) as c:
        assert (
            c.props() == {} and c.resolve_protocol("auto") == "native" and c.context_size() is None
        )


def test_caller_messages_not_aliased(srv, client):
    msgs = [dict(m) for m in MSGS]
    srv.enqueue(stream_text("ok"))
    r = chat(client, messages=msgs)
    msgs[1]["content"] = "changed"
    assert r.request["messages"][1]["content"] == "Read README.md"


def test_render_json_without_system_message():
    wire = render_json_messages([{"role": "user", "content": "hi"}], [])
    assert (
        wire[0]["role"] == "system"
        and '{"answer"' in wire[0]["content"]
        and wire[1] == {"role": "user", "content": "hi"}
    )


def test_dropped_connections_are_retried_but_bounded(srv):
    srv.enqueue(*[Drop()] * 5)
    with Client(srv.base_url, retries=1, backoff=0.001) as c, pytest.raises(LLMError) as err:
        chat(c)
    # one immediate resend (a stale kept-alive connection looks the same) + 1 + 1 retry
    assert len(srv.chat_requests()) == 3 and "RemoteProtocolError" in str(err.value)


def test_props_while_loading_is_not_cached(srv):
    srv.route("GET", "/props", Status(503))
    with Client(srv.base_url) as c:
        assert c.props() == {} and c.resolve_protocol("auto") == "native"
        srv.route("GET", "/props", None)
        assert c.resolve_protocol("auto") == "json"


def test_json_protocol_on_llama_cpp_sends_a_compact_grammar(srv, client):
    srv.enqueue(stream_text('{"tool": "read_file", "arguments": {"path": "a.py"}}'))
    r = chat(client, protocol="json")
    assert "response_format" not in r.request and "tools" not in r.request
    assert r.request["grammar"].startswith("root ::= call0 | call1 | answer")
    assert [c.name for c in r.tool_calls] == ["read_file"]


MALFORMED = [
    "123",
    "[1, 2]",
    "null",
    '"str"',
    '{"choices": 5}',
    '{"choices": [{"delta": 7}]}',
    '{"choices": [{"index": 0, "delta": {"tool_calls": "x"}}]}',
    '{"choices": [{"index": 0, "delta": {"content": 5}}]}',
    '{"choices": [{"index": 0, "delta": {"tool_calls": [{"function": 3}]}}]}',
    '{"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": 1}}]}}]}',
    '{"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [1]}}]}',
    '{"usage": 5, "choices": []}',
    '{"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}',
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_a_chunk_of_the_wrong_shape_is_a_server_error_not_a_crash(srv, client, payload):
    srv.enqueue(Stream([chunk({"content": "so far"}), payload]))
    r = chat(client)
    assert r.error and r.error.startswith("malformed data from the server")
    assert r.tool_calls == [] and r.raw_content == "so far"


@pytest.mark.parametrize("payload", ["123", '{"choices": [{"message": 7}]}'])
def test_a_whole_response_of_the_wrong_shape_is_a_server_error(srv, client, payload):
    srv.enqueue(Json(json.loads(payload)))
    r = chat(client, stream=False)
    assert r.error and r.error.startswith("malformed data from the server")


def test_a_stream_that_never_ends_is_cut_past_max_tokens(srv, client):
    sampling = Sampling(max_tokens=8)
    srv.enqueue(Stream([chunk({"content": "x"})] * 500, done=False))
    r = chat(client, sampling=sampling)
    assert r.error and "past llm.sampling.max_tokens (8)" in r.error
    assert len(r.raw_content) < 200  # stopped reading, not 500 chunks later


def test_a_long_line_that_never_closes_is_an_error_not_a_crash(srv, client):
    srv.enqueue(Stream(['{"choices": [{"index": 0, "delta": {"content": "' + "y" * 300_000]))
    r = chat(client, sampling=Sampling(max_tokens=1))
    assert r.error and r.error.startswith("malformed data from the server")
