"""Fixtures of the evaluation tests: scripted policies and a local OpenAI-compatible chat server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from taskplan.evaluate.policies import Turn


class ScriptedPolicy:
    """Answers turn number n of an episode with `script(turn, n)`; records every turn it saw."""

    def __init__(self, script: Callable[[Turn, int], str], name: str = "scripted"):
        self.name, self.script = name, script
        self.seen: dict[str, list[Turn]] = {}
        self.batches: list[int] = []

    def act(self, turns: Sequence[Turn]) -> list[str]:
        self.batches.append(len(turns))
        out = []
        for turn in turns:
            history = self.seen.setdefault(turn.key, [])
            out.append(self.script(turn, len(history)))
            history.append(turn)
        return out


@pytest.fixture
def scripted():
    return ScriptedPolicy


def valid_actions_of(user_message: str) -> list[str]:
    """The valid-action lines of an observation inside a user message."""
    block = user_message.split("Valid Actions:\n", 1)[1]
    return [ln for ln in block.split("\n\n", 1)[0].splitlines() if ln.strip()]


@pytest.fixture
def chat_server():
    """A local OpenAI-compatible endpoint that answers with the first valid action of the prompt.

    Yields (base_url, requests) where `requests` collects (headers, body) of every call.
    """
    requests: list[tuple[dict, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append((dict(self.headers), body))
            if self.path != "/v1/chat/completions":
                self.send_response(404)
                self.end_headers()
                return
            action = valid_actions_of(body["messages"][-1]["content"])[0]
            reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant",
                                              "content": f"Reasoning: take the first.\nAction: {action}"}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
