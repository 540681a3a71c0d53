"""Room sessions over real WebRTC: calls end cleanly and leave nothing behind, and an expired
sign-in lets the reply being spoken finish before the call ends with a message.

Runs against ``python -m bots lumina`` (the ``lumina_server`` fixture) with aiortc clients.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from testkit.net import wait_for
from testkit.speech import piper_say
from testkit.webrtc_client import call_bot, sign_up
from web.accounts import AccountStore
from web.auth import COOKIE

pytestmark = pytest.mark.slow

CALLS = 20
AT_ONCE = 4


async def stats(base: str, cookies: dict) -> dict:
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=10) as http:
        return (await http.get("/api/stats", params={"collect": 1})).json()


async def settled(base: str, cookies: dict, timeout: float = 90) -> dict:
    """Stats once no session, peer connection or memory write is left."""
    deadline = time.monotonic() + timeout
    while True:
        now = await stats(base, cookies)
        if not any(now[k] for k in ("sessions", "finishing", "peer_connections", "peer_owners")):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"calls did not end: {now}")
        await asyncio.sleep(0.5)


async def one_call(base: str, cookies: dict, drop: bool) -> None:
    call = await call_bot(base, cookies=cookies)
    # Connected once the bot's audio flows (the greeting, or silence).
    await wait_for(lambda: call.heard, 30, "audio from the bot")
    # The call reads what it receives as it comes (a growing backlog: the bot hears late).
    assert (await stats(base, cookies))["audio_in_backlog_ms"] < 2000
    if drop:
        call.vanish()
    else:
        await call.close()


async def calls(base: str, n: int) -> None:
    """``n`` calls, ``AT_ONCE`` at a time, each by a new person (an account's earlier calls
    may still hold its 2 seats while they end); every tenth one drops off the network."""
    kinds = [i % 10 == 9 for i in range(n)]
    for wave in range(0, n, AT_ONCE):
        people = [await sign_up(base) for _ in kinds[wave : wave + AT_ONCE]]
        await asyncio.gather(
            *(
                one_call(base, who, d)
                for who, d in zip(people, kinds[wave : wave + AT_ONCE], strict=True)
            )
        )


async def test_twenty_calls_end_cleanly_and_leave_nothing_behind(lumina_server):
    cookies = await sign_up(lumina_server)
    # Warm-up: lazy imports, model caches, and the allocator's high-water mark for AT_ONCE
    # calls at a time (memory freed then is kept by the process for reuse, not leaked).
    await calls(lumina_server, 2 * AT_ONCE)
    before = await settled(lumina_server, cookies)
    await calls(lumina_server, CALLS)
    after = await settled(lumina_server, cookies)
    print(f"before {before}\nafter {after}")
    assert after["in_memory"] <= 1, "ended sessions are still referenced"  # 1: the last, in GC
    assert after["tasks"] <= before["tasks"] + 2, (before, after)
    # Measured ~100 MB over 20 calls (~5 MB a call stays native; Python objects are freed:
    # see in_memory). One ONNX session per call for smart-turn and Silero was 12-20 MB a call
    # (240-400 MB here): this bound catches their return. README "Known issues".
    grown = after["rss_mb"] - before["rss_mb"]
    assert grown < 160, f"RSS grew {grown:.0f} MB over {CALLS} calls"


async def test_an_expired_sign_in_lets_the_reply_finish_then_ends_the_call(lumina_server):
    cookies = await sign_up(lumina_server)
    call = await call_bot(lumina_server, cookies=cookies)
    try:
        connected = time.time()
        await wait_for(lambda: call.voiced(since=connected), 20, "the greeting")
        assert await call.wait_silent(1.0, 30), "the greeting did not end"
        _, said = await call.mic.say(piper_say("Tell me a little about the city of Paris."))
        speaking = await call.wait_voiced(said, 60)
        assert speaking, "the bot did not answer"
        # The sign-in runs out while the bot is talking.
        accounts = AccountStore(Path(os.environ["AVATARS_DATA_DIR"]) / "accounts.sqlite3")
        accounts.expire(cookies[COOKIE])
        expired = time.time()
        ended = await wait_for(
            lambda: [m for _, m in call.messages_between(expired) if _call_ended(m)], 90, "end"
        )
        ended_at = next(t for t, m in call.messages_between(expired) if _call_ended(m))
        assert "sign-in expired" in ended[0]["data"]["reason"]
        later = [m.get("type") for _, m in call.messages_between(expired, ended_at)]
        assert "bot-interrupted" not in later, "the reply was cut off"
        assert later.count("bot-stopped-speaking") >= 1, "the call ended before the reply did"
        assert call.voiced(since=expired + 0.3, until=ended_at), "the reply stopped at the expiry"
        # The server closes the call: the session is gone, and the sign-in no longer works.
        await wait_for(lambda: call.pc.connectionState in ("closed", "failed"), 30, "hang-up")
    finally:
        await call.close()
    async with httpx.AsyncClient(base_url=lumina_server, cookies=cookies) as http:
        assert (await http.get("/api/me")).status_code == 401


def _call_ended(message: dict) -> bool:
    return message.get("type") == "server-message" and (
        message.get("data", {}).get("type") == "call-ended"
    )
