"""`python -m bots lumina` over real WebRTC: an aiortc client speaks and hears an answer."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from testkit.net import wait_for
from testkit.speech import piper_say
from testkit.webrtc_client import call_bot

pytestmark = pytest.mark.slow


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
        answer = await wait_for(lambda: call.voiced(since=end), 20, "a spoken answer")
        assert answer[0].at - end < 10
        await wait_for(call.transcriptions, 10, "the transcription over the data channel")
        await asyncio.sleep(1.0)  # a pause at the comma may split it into two segments
        said = " ".join(call.transcriptions()).lower()
        assert "name" in said, said
        types = {m.get("type") for m in call.messages}
        assert {"bot-ready", "user-started-speaking", "bot-started-speaking"} <= types, types
    finally:
        await call.close()
