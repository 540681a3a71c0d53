"""The embedded engine (llama-server) serves conversations in parallel, each in its own slot.

Two conversations stream at the same time, each pinned to its slot (``id_slot``) with its
prompt cache on, as sessions do (``LLMBackend.request_fields``). Their second turns must find
their whole first turn already evaluated: asserted from the engine's own cached-token counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import pytest

from testkit.net import free_port, wait_http
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@dataclass
class Reply:
    """One streamed chat completion: its text, when its tokens came, and the engine's counts."""

    text: str = ""
    token_times: list[float] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0


async def stream_chat(http: httpx.AsyncClient, messages: list[dict], fields: dict) -> Reply:
    body = {
        "model": "local",
        "messages": messages,
        "max_tokens": 32,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **fields,
    }
    reply = Reply()
    async with http.stream("POST", "/chat/completions", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                if piece := (choice.get("delta") or {}).get("content"):
                    reply.text += piece
                    reply.token_times.append(time.monotonic())
            if usage := chunk.get("usage"):
                reply.prompt_tokens = usage["prompt_tokens"]
                details = usage.get("prompt_tokens_details") or {}
                reply.cached_tokens = details.get("cached_tokens", reply.cached_tokens)
            if timings := chunk.get("timings"):  # llama-server's own: cache_n = reused tokens
                reply.cached_tokens = timings.get("cache_n", reply.cached_tokens)
    assert reply.text and reply.prompt_tokens, reply
    return reply


CONVERSATIONS = [
    [
        {"role": "system", "content": "You are Lumina, a warm guide to the night sky. " * 6},
        {"role": "user", "content": "What is the brightest star I can see tonight?"},
        "And how far away is it?",
    ],
    [
        {"role": "system", "content": "You are Basil, a gardener who loves tomatoes. " * 6},
        {"role": "user", "content": "When should I plant tomatoes outside?"},
        "Do they need a lot of water?",
    ],
]


async def test_two_conversations_stream_at_once_each_keeping_its_prompt_cache(llm_backend):
    assert llm_backend.slots >= 2, "the engine has fewer than 2 slots"
    fields = [llm_backend.request_fields(slot) for slot in (0, 1)]
    assert fields[1] == {"cache_prompt": True, "id_slot": 1}
    # llama-server closes a connection after a streamed reply; one reused at once would fail.
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=llm_backend.base_url, timeout=60, limits=fresh) as http:
        first = await asyncio.gather(
            *(stream_chat(http, c[:2], f) for c, f in zip(CONVERSATIONS, fields, strict=True))
        )
        # Both streamed at once: each began before the other had finished.
        a, b = first
        assert a.token_times[0] < b.token_times[-1] and b.token_times[0] < a.token_times[-1]

        seconds = [
            [*c[:2], {"role": "assistant", "content": r.text}, {"role": "user", "content": c[2]}]
            for c, r in zip(CONVERSATIONS, first, strict=True)
        ]
        second = await asyncio.gather(
            *(stream_chat(http, m, f) for m, f in zip(seconds, fields, strict=True))
        )
    for one, two in zip(first, second, strict=True):
        print(f"turn 1: {one.prompt_tokens} prompt tokens; turn 2: {two.prompt_tokens}, "
              f"{two.cached_tokens} of them cached")  # fmt: skip
        # The second turn re-read at most the new user message (plus the template's markers):
        # the first turn's whole prompt came from its slot's cache, not from the other's.
        assert two.cached_tokens >= one.prompt_tokens, (one, two)
        assert two.prompt_tokens - two.cached_tokens < 40, (one, two)


@contextlib.contextmanager
def another_engine(slots: int = 3):
    """A second llama-server (as on another machine), on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots.llm_server", "--port", str(port), "--parallel", str(slots)],
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_sessions_are_spread_over_several_engines_and_each_keeps_its_own(llm_backend, make_runtime):
    with another_engine() as second:
        runtime = make_runtime(llm_urls=f"{llm_backend.base_url}, {second}")
        llm = runtime.llm
        engines = llm.health()["engines"]
        assert [e["url"] for e in engines] == [llm_backend.base_url, second]
        assert [e["slots"] for e in engines] == [llm_backend.slots, 3]
        sessions = []
        for _ in range(4):
            engine = llm.resolve("unused")
            sessions.append((engine, llm.slots.acquire(engine)))
        # Balanced by sessions, each pinned to a slot of its own engine.
        assert [e.base_url for e, _ in sessions].count(second) == 2
        on_second = [slot for e, slot in sessions if e.base_url == second]
        assert sorted(on_second) == [0, 1]
        for engine, slot in sessions:  # each session's request is answered by its engine
            body = {"model": engine.model, "messages": [{"role": "user", "content": "Hi"}]}
            body |= {"max_tokens": 2, **engine.request_fields(slot)}
            resp = httpx.post(f"{engine.base_url}/chat/completions", json=body, timeout=60)
            assert resp.status_code == 200, resp.text
        for engine, slot in sessions:
            llm.slots.release(engine, slot)
    # The second engine is gone: new sessions go to the one that answers.
    assert {llm.resolve("unused").base_url for _ in range(3)} == {llm_backend.base_url}
