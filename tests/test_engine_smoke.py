import json
import urllib.request


def test_engine_answers_chat(engine_url):
    body = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8, "temperature": 0}
    req = urllib.request.Request(
        engine_url + "/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = json.load(resp)
    assert data["choices"][0]["message"]["content"]
    assert data["usage"]["completion_tokens"] > 0
    assert "timings" in data
