"""A local stand-in for LLM APIs: a real HTTP server on 127.0.0.1 speaking two wire formats.

It answers OpenAI chat completions (``POST /v1/chat/completions``) and Anthropic messages
(``POST /v1/messages``) from a script of :class:`Reply` items, one per request, in order, and
records every request it receives. The real ``openai`` and ``anthropic`` SDK clients are pointed
at it through ``base_url``; nothing is mocked. A reply can be an answer with usage fields, an
HTTP error with headers (429 with retry-after, 500), a body that is not JSON, or a slow answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass
class Reply:
    """One scripted response."""

    text: str = ""
    tokens_in: int | None = 100  # None: the usage field is left out
    tokens_out: int | None = 20
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (to outlast a client timeout)
    raw_body: bytes | None = None  # sent as-is (a malformed body)


def error(status: int, retry_after: str | None = None) -> Reply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(status=status, headers=headers)


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float

    @property
    def prompt(self) -> str:
        """Every text the client sent (system and messages), joined."""
        parts: list[str] = []
        system = self.body.get("system")
        if isinstance(system, str):
            parts.append(system)
        elif isinstance(system, list):
            parts.extend(block.get("text", "") for block in system)
        for message in self.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(block.get("text", "") for block in content if isinstance(block, dict))
        return "\n".join(parts)


class FakeLLM:
    """Serve scripted replies; ``script`` may grow while the server runs."""

    def __init__(self) -> None:
        self.script: list[Reply | Callable[[Request], Reply]] = []
        # Answers every request once the script is used up (a stand-in model: a function of the
        # request); None: an exhausted script answers 500.
        self.fallback: Callable[[Request], Reply] | None = None
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                request = Request(self.path, body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                with fake._lock:
                    fake.requests.append(request)
                    if fake.script:
                        item = fake.script.pop(0)
                    else:
                        item = fake.fallback or Reply(status=500, text="script exhausted")
                reply = item(request) if callable(item) else item
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self._send(request, reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): that is the point of a slow reply

            def _send(self, request: Request, reply: Reply) -> None:
                if reply.raw_body is not None:
                    payload = reply.raw_body
                elif reply.status != 200:
                    payload = json.dumps(_error_body(request.path, reply.status, reply.text)).encode()
                elif request.path.endswith(ANTHROPIC_PATH):
                    payload = json.dumps(_anthropic_body(request, reply)).encode()
                elif request.path.endswith(OPENAI_PATH):
                    payload = json.dumps(_openai_body(request, reply)).encode()
                else:
                    reply = Reply(status=404)
                    payload = json.dumps(_error_body(request.path, 404, "no such endpoint")).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, provider: str) -> str:
        return self.anthropic_url if provider == "anthropic" else self.openai_url

    def add(self, *replies: Reply | Callable[[Request], Reply]) -> None:
        with self._lock:
            self.script.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _openai_body(request: Request, reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"chatcmpl-{len(reply.text)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": "stop", "logprobs": None}],
    }
    if reply.tokens_in is not None:
        body["usage"] = {
            "prompt_tokens": reply.tokens_in,
            "completion_tokens": reply.tokens_out or 0,
            "total_tokens": reply.tokens_in + (reply.tokens_out or 0),
        }
    return body


def _anthropic_body(request: Request, reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.body.get("model", "fake"),
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    if reply.tokens_in is not None:
        body["usage"] = {"input_tokens": reply.tokens_in, "output_tokens": reply.tokens_out or 0}
    return body


def _error_body(path: str, status: int, message: str) -> dict[str, Any]:
    text = message or f"fake error {status}"
    if path.endswith(ANTHROPIC_PATH):
        kind = {429: "rate_limit_error", 401: "authentication_error", 500: "api_error"}.get(status, "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": text}}
    return {"error": {"message": text, "type": "server_error" if status >= 500 else "invalid_request_error", "code": None}}


def serve() -> Iterator[FakeLLM]:
    """The body of a test module's ``fake_llm`` fixture: a server for one test, then shut down."""
    server = FakeLLM()
    try:
        yield server
    finally:
        server.close()
