"""Chat models behind one small interface, through their official SDKs (imported lazily).

``openai`` covers OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio,
OpenRouter) through ``base_url``; ``anthropic`` covers Claude. Retries are the SDKs' own: they
back off exponentially on 429, 408/409, 5xx, timeouts and dropped connections, and honour
``retry-after``. ratchet sets their ``max_retries`` and does not retry on top (a second layer
would multiply the attempts and the wait).

The API key is read from the environment variable the config names, handed to the SDK client
and nowhere else; error messages are scrubbed of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from ratchet.config import LLMProposerSection

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
INSTALL_HINT = "pip install 'ratchet[llm]'"
# Rough characters per token of prompts that mix prose and code; low on purpose, so that a
# budget check made before a call over-estimates rather than under-estimates.
CHARS_PER_TOKEN = 3.0


class ChatError(Exception):
    """A call that failed after the SDK's retries. ``fatal``: trying again cannot help."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Reply:
    text: str
    tokens_in: int
    tokens_out: int
    retries: int = 0
    truncated: bool = False  # stopped at max_tokens
    estimated: bool = False  # the server sent no usage: counted from the text


class ChatClient(Protocol):
    def complete(self, system: str, messages: list[Message]) -> Reply: ...


def key_env_name(section: LLMProposerSection) -> str:
    return DEFAULT_KEY_ENV[section.provider] if section.api_key_env is None else section.api_key_env


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def open_client(section: LLMProposerSection) -> ChatClient:
    """A client for the section's provider. Raises ChatError (fatal) for a missing SDK or key."""
    env_name = key_env_name(section)
    if env_name:
        key = os.environ.get(env_name, "")
        if not key:
            raise ChatError(
                f"no API key: set the environment variable {env_name} (or name another one in [proposer] api_key_env; "
                "api_key_env = \"\" for a local server that needs none)",
                fatal=True,
            )
    else:
        key = "unused"  # OpenAI-compatible local servers ignore it, but the SDKs want one
    if section.provider == "anthropic":
        return _AnthropicClient(section, key)
    return _OpenAIClient(section, key)


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ChatError(f"the {name} package is not installed: {INSTALL_HINT}", fatal=True) from None


class _SDKClient:
    """What both SDK wrappers share: error translation and key scrubbing."""

    sdk: Any

    def __init__(self, section: LLMProposerSection, key: str) -> None:
        self.section = section
        self._key = key

    @staticmethod
    def _reply(
        system: str, messages: list[Message], text: str, tokens: tuple[int, int] | None, retries: int, truncated: bool
    ) -> Reply:
        """The answer with its token counts; estimated from the text when the server sent none."""
        if tokens is None:
            sent = system + "".join(m.content for m in messages)
            return Reply(text, estimate_tokens(sent), estimate_tokens(text), retries, truncated, estimated=True)
        return Reply(text, tokens[0], tokens[1], retries, truncated)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and self._key != "unused" else text

    def _failure(self, exc: Exception) -> ChatError:
        """One line saying why the call failed, after the SDK gave up retrying."""
        sdk = self.sdk
        retries = self.section.max_retries
        after = f" (after {retries} retr{'y' if retries == 1 else 'ies'})" if retries else ""
        where = self.section.base_url or "the API"
        if isinstance(exc, sdk.APITimeoutError):
            return ChatError(f"no answer from {where} within {self.section.timeout:g}s{after}")
        if isinstance(exc, sdk.APIConnectionError):
            return ChatError(f"cannot reach {where}{after}: {exc}")
        if isinstance(exc, sdk.APIStatusError):
            status = exc.status_code
            message = self._scrub(_status_message(exc))
            if status in (401, 403):
                return ChatError(f"{where} rejected the API key from ${key_env_name(self.section)} ({status}): {message}", fatal=True)
            if status == 404:
                return ChatError(f"{where} answered 404 for model {self.section.model!r}: {message}", fatal=True)
            if status == 429:
                return ChatError(f"rate limited (429){after}: {message}")
            if status >= 500:
                return ChatError(f"server error {status}{after}: {message}")
            return ChatError(f"the request was refused ({status}): {message}")
        if isinstance(exc, sdk.APIError):
            return ChatError(f"malformed response from {where}: {self._scrub(str(exc))}")
        # The SDK could not read the body (not JSON, not the expected shape).
        return ChatError(f"malformed response from {where}: {type(exc).__name__}: {self._scrub(str(exc))[:200]}")


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return " ".join(str(inner["message"]).split())[:300]
    return " ".join(str(getattr(exc, "message", exc)).split())[:300]


class _OpenAIClient(_SDKClient):
    def __init__(self, section: LLMProposerSection, key: str) -> None:
        super().__init__(section, key)
        self.sdk = _import("openai")
        self._client = self.sdk.OpenAI(
            api_key=key, base_url=section.base_url, timeout=section.timeout, max_retries=section.max_retries
        )

    def complete(self, system: str, messages: list[Message]) -> Reply:
        section = self.section
        arguments: dict[str, Any] = {
            "model": section.model,
            "messages": [{"role": "system", "content": system}] + [{"role": m.role, "content": m.content} for m in messages],
        }
        # OpenAI's own newer models only take max_completion_tokens; compatible servers
        # (vLLM, Ollama, llama.cpp) know max_tokens.
        arguments["max_tokens" if section.base_url else "max_completion_tokens"] = section.max_tokens
        if section.temperature is not None:
            arguments["temperature"] = section.temperature
        try:
            raw = self._client.chat.completions.with_raw_response.create(**arguments)
            completion = raw.parse()
            choices = completion.choices or []
            text = choices[0].message.content if choices else None
            usage = getattr(completion, "usage", None)
            truncated = bool(choices) and choices[0].finish_reason == "length"
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            raise self._failure(exc) from None
        if not isinstance(text, str):
            raise ChatError(f"malformed response from {self.section.base_url or 'the API'}: no text in the answer")
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        tokens = (int(prompt_tokens), int(getattr(usage, "completion_tokens", None) or 0)) if prompt_tokens is not None else None
        return self._reply(system, messages, text, tokens, raw.retries_taken, truncated)


class _AnthropicClient(_SDKClient):
    def __init__(self, section: LLMProposerSection, key: str) -> None:
        super().__init__(section, key)
        self.sdk = _import("anthropic")
        self._client = self.sdk.Anthropic(
            api_key=key, base_url=section.base_url, timeout=section.timeout, max_retries=section.max_retries
        )

    def complete(self, system: str, messages: list[Message]) -> Reply:
        section = self.section
        arguments: dict[str, Any] = {
            "model": section.model,
            "max_tokens": section.max_tokens,
            "system": system,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if section.temperature is not None:
            # Sent as a raw field: recent SDK releases no longer list sampling parameters.
            arguments["extra_body"] = {"temperature": min(section.temperature, 1.0)}  # Anthropic's range is 0..1
        try:
            raw = self._client.messages.with_raw_response.create(**arguments)
            message = raw.parse()
            text = "".join(block.text for block in (message.content or []) if getattr(block, "type", "") == "text")
            usage = getattr(message, "usage", None)
            truncated = message.stop_reason == "max_tokens"
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line
            raise self._failure(exc) from None
        tokens = None
        if usage is not None and getattr(usage, "input_tokens", None) is not None:
            # Cached input is still input: counted in full (priced at the input rate, an upper bound).
            cached = (getattr(usage, "cache_creation_input_tokens", 0) or 0) + (getattr(usage, "cache_read_input_tokens", 0) or 0)
            tokens = (usage.input_tokens + cached, getattr(usage, "output_tokens", 0) or 0)
        return self._reply(system, messages, text, tokens, raw.retries_taken, truncated)
