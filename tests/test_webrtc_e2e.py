"""`python -m bots lumina` over real WebRTC: an aiortc client speaks and hears an answer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest

from bench.webrtc_client import call_bot
from tests.conftest import ROOT, free_port, wait_http
from tests.speech import piper_say

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lumina_server(llm_backend):
    port = free_port()
    env = {**os.environ, "AVATARS_LLM_BACKEND": "embedded"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots", "lumina", "--port", str(port)], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health", 120, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_browser_style_call_greets_then_answers_a_spoken_question(lumina_server):
    health = httpx.get(f"{lumina_server}/api/health").json()
    assert health["ok"] and health["llm"]["backend"] == "embedded"

    call = await call_bot(lumina_server)
    try:
        connected = time.time()
        # The avatar greets first; wait for it to finish (a second of silence).
        await wait_for(lambda: call.voiced(since=connected), 15, "the greeting")
        await wait_for(
            lambda: not call.voiced(since=time.time() - 1.0) and call.heard, 20, "greeting end"
        )
        start, end = await call.mic.say(piper_say("Hello, what is your name?"))
        answer = await wait_for(lambda: call.voiced(since=end), 15, "a spoken answer")
        assert answer[0].at - end < 10
        await wait_for(call.transcriptions, 10, "the transcription over the data channel")
        said = call.transcriptions()[-1].lower()
        assert "name" in said, said
        types = {m.get("type") for m in call.messages}
        assert {"bot-ready", "user-started-speaking", "bot-started-speaking"} <= types, types
    finally:
        await call.close()
