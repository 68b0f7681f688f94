"""Token-exact rows (`tokens_rows`): prompt ids, completion ids, why a row is incomplete."""

from __future__ import annotations

import math

import orjson

from coder.agent import Agent, run_turn
from coder.chat import ChatResult
from coder.config import Config
from coder.export.output import Options
from coder.export.tokens import tokens_rows
from coder.llm import Client
from coder.llm.token_ids import append_eos
from coder.log import (
    Logger,
    Recorder,
    decode_prompt_ids,
    encode_prompt_ids,
    list_log_files,
    read_sessions,
)
from coder.tools import ToolContext
from coder.tools.workspace import Workspace


def test_a_real_json_session_exports_ids_that_match_the_servers_counts(tmp_path, engine_url):
    (tmp_path / "README.md").write_text("first line\n")
    cfg = Config()
    cfg.llm.tool_protocol = "json"
    cfg.llm.sampling.temperature, cfg.llm.sampling.seed = 0.0, 1
    cfg.llm.sampling.max_tokens = 64
    cfg.agent.max_steps = 2
    logger = Logger(tmp_path / "logs")
    recorder = Recorder(logger)
    client = Client(engine_url, prompt_ids=True)
    agent = Agent(client, cfg, ToolContext(workspace=Workspace(tmp_path)), recorder)
    recorder.session_start(
        config={}, model={"alias": "smollm2"}, tools=agent.tools, workspace="", git_head=None
    )
    run_turn(agent, "Read README.md and tell me its first line", None)
    recorder.session_end("exit")
    logger.close()
    [session] = read_sessions(list_log_files(tmp_path / "logs"))
    rows = list(tokens_rows([session], Options(keep_all=True)))
    assert len(rows) == len(session.calls) >= 1
    eos = client.eos_id()
    assert eos is not None
    ends_with_eos = 0
    for row, call in zip(rows, session.calls, strict=True):
        assert row["group_id"] == rows[0]["group_id"] and len(row["group_id"]) == 32
        assert (row["session_id"], row["turn"], row["step"]) == (session.session_id, 1, call.step)
        assert len(row["prompt_ids"]) == call.usage["prompt_tokens"]
        ids, n = row["completion_ids"], call.usage["completion_tokens"]
        assert len(ids) == len(row["completion_logprobs"])
        sampled = call.tokens.get("text", call.raw_content)
        decoded = _post(client, "/detokenize", {"tokens": ids})["content"]
        if call.finish_reason == "stop" and call.tokens.get("inferred"):
            # the end token the stream leaves out, appended: it decodes to <|im_end|>
            assert ids[-1] == eos and row["completion_logprobs"][-1] is None
            assert decoded == sampled + "<|im_end|>"
            ends_with_eos += 1
        else:
            assert decoded == sampled
        if len(ids) == n:
            assert row["complete"] and row["note"] is None
        else:  # never silently short: the row says so (the fence the server strips)
            assert len(ids) < n and not row["complete"]
            assert f"{len(ids)} ids, usage.completion_tokens {n}" in row["note"]
        orjson.dumps(row)  # a valid JSON row (NaN logprobs became null)
    assert ends_with_eos >= 1
    client.close()


def _post(client: Client, path: str, body: dict) -> dict:
    data = client._post_json(path, body)
    assert isinstance(data, dict)
    return data


def test_prompt_ids_are_logged_as_a_delta_and_read_back_whole():
    packed = encode_prompt_ids([1, 2, 3, 4], [1, 2, 9])
    assert packed == {"keep": 2, "ids": [3, 4], "sum": packed["sum"]} and packed["sum"]
    assert decode_prompt_ids({"keep": 2, "ids": [3, 4]}, [1, 2, 9]) == [1, 2, 3, 4]
    assert decode_prompt_ids({"keep": 3, "ids": []}, [1]) is None  # earlier ids missing
    records: list[dict] = []

    class Sink:
        def log(self, record: dict) -> None:
            records.append(orjson.loads(orjson.dumps(record)))

    rec = Recorder(Sink())
    prompts = [[5, 6, 7], None, [5, 6, 7, 8, 9]]
    for step, ids in enumerate(prompts):
        rec.model_call(1, step, _reply(ids, [{"id": 1, "logprob": -0.5}]))
    calls = [r for r in records if r["type"] == "model_call"]
    packed = [
        c["prompt_ids"] and {k: v for k, v in c["prompt_ids"].items() if k != "sum"} for c in calls
    ]
    assert all(c["prompt_ids"] is None or c["prompt_ids"]["sum"] for c in calls)
    assert packed == [
        {"keep": 0, "ids": [5, 6, 7]},
        None,
        {"keep": 3, "ids": [8, 9]},
    ]
    assert calls[1]["prompt_ids_note"] == "off"
    # one sampled id of the two the server counted: logged as missing, never silently
    assert calls[0]["tokens"]["missing"] == 1 and "1 of 2" in calls[0]["tokens_note"]
    path = _write(records)
    [session] = read_sessions([path])
    assert [c.prompt_ids for c in session.calls] == prompts
    rows = list(tokens_rows([session], Options(keep_all=True)))
    assert [r["complete"] for r in rows] == [False, False, False]
    assert "no prompt ids: off" in rows[1]["note"]


def test_the_end_token_is_appended_only_when_the_server_stopped_on_it():
    got = [{"id": 7, "logprob": -0.1}]
    assert append_eos(got, "eos", 2, 2)[-1]["id"] == 2
    assert math.isnan(append_eos(got, "eos", 2, 2)[-1]["logprob"])
    assert append_eos(got, "limit", 2, 2) is got  # cut at max_tokens: no end token
    assert append_eos(got, "eos", 1, 2) is got  # nothing missing (stream=False)
    assert append_eos(got, "eos", 2, None) is got  # end token unknown


def _reply(prompt_ids: list[int] | None, logprobs: list[dict]) -> ChatResult:
    return ChatResult(
        message={"role": "assistant", "content": "x"},
        tool_calls=[],
        raw_content="x",
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 2},
        timings=None,
        logprobs=logprobs,
        request={"messages": [{"role": "user", "content": "hi"}], "logprobs": True},
        protocol="json",
        prompt_ids=prompt_ids,
        prompt_ids_note=None if prompt_ids else "off",
    )


def _write(records: list[dict]):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "coder-20260101.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_prompt_ids_rebuilt_after_a_lost_call_are_refused_not_wrong():
    from coder.log.schema import decode_prompt_ids, encode_prompt_ids

    first, second, third = [1, 2, 3, 4], [1, 2, 3, 9, 9], [1, 2, 3, 9, 9, 7]
    packed_second = encode_prompt_ids(second, first)
    packed_third = encode_prompt_ids(third, second)
    assert decode_prompt_ids(packed_second, first) == second
    assert decode_prompt_ids(packed_third, second) == third
    # the second call's line was corrupt: the reader still holds the first call's ids,
    # which share the first 4... but not what the third call kept
    assert packed_third["keep"] == 5 and decode_prompt_ids(packed_third, first + [5]) is None
    assert decode_prompt_ids({"keep": 1, "ids": [2]}, [1]) == [1, 2]  # logs before the checksum
