"""The room's calls on worker processes: spread over them, and a crash ends only its own calls.

Against ``python -m web`` with 2 workers (``AVATARS_WORKERS=2``) and the test LLM server,
called by aiortc clients speaking Piper audio.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from urllib.parse import quote

import httpx
import pytest

from testkit.net import wait_for
from testkit.speech import piper_say
from testkit.webrtc_client import BotCall, call_bot, sign_up
from tests.conftest import bot_server
from tests.test_page_browser import needs_chromium

pytestmark = pytest.mark.slow


async def health(base: str) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return (await http.get("/api/health")).json()


async def workers_ready(base: str, within: float = 180) -> list[dict]:
    deadline = time.monotonic() + within
    while True:
        workers = (await health(base))["workers"]
        if all(w["ready"] for w in workers):
            return workers
        assert time.monotonic() < deadline, f"workers not ready: {workers}"
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def room(llm_backend):
    with bot_server("web", AVATARS_WORKERS="2") as base:
        asyncio.run(workers_ready(base))
        yield base


async def answered(call: BotCall, text: str) -> bool:
    """Say ``text``; True once the bot heard it and answered out loud."""
    connected = time.time()
    await wait_for(lambda: call.voiced(since=connected - 30), 30, "the greeting")
    await call.wait_silent(1.0, 30)
    _, said = await call.mic.say(piper_say(text))
    return bool(await call.wait_voiced(said, 30))


async def placed(base: str, n: int) -> list[dict]:
    """The workers once ``n`` calls are placed on them."""
    deadline = time.monotonic() + 10
    while True:
        workers = (await health(base))["workers"]
        if sum(w["calls"] for w in workers) == n:
            return workers
        assert time.monotonic() < deadline, workers
        await asyncio.sleep(0.2)


async def test_calls_on_two_workers_at_once_are_each_heard_and_answered(room):
    workers = await two_people_talk_at_once(room)
    assert [w["calls"] for w in workers] == [1, 1], "both calls went to one worker"


async def two_people_talk_at_once(room: str) -> list[dict]:
    """Two people call and ask a question at the same time; each is heard and answered.

    Returns the workers as they were with both calls placed.
    """
    people = [await sign_up(room), await sign_up(room)]
    calls = [await call_bot(room, cookies=p) for p in people]
    try:
        workers = await placed(room, 2)
        questions = ["What is the capital of France?", "Tell me about the moon."]
        results = await asyncio.gather(
            *(answered(c, q) for c, q in zip(calls, questions, strict=True))
        )
        assert results == [True, True]
        heard = [" ".join(c.transcriptions()).lower() for c in calls]
        assert "france" in heard[0] and "moon" in heard[1], heard
        return workers
    finally:
        await asyncio.gather(*(c.close() for c in calls))


async def test_a_killed_worker_ends_only_its_calls_and_comes_back(room):
    people = [await sign_up(room), await sign_up(room)]
    calls = [await call_bot(room, cookies=p) for p in people]
    try:
        workers = await placed(room, 2)
        await wait_for(lambda: all(c.heard for c in calls), 30, "audio on both calls")
        # Which call is on which worker: the one killed is the first call's.
        async with httpx.AsyncClient(base_url=room, cookies=people[0], timeout=10) as http:
            stats = (await http.get("/api/stats")).json()
        assert stats["peer_owners"] == 2
        victim = next(w for w in workers if w["calls"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()

        # Exactly one call ended, with a server error its page can show.
        async def status(i: int) -> dict:
            async with httpx.AsyncClient(base_url=room, cookies=people[i], timeout=10) as http:
                return (await http.get(f"/api/calls/{quote(calls[i].pc_id, safe='')}")).json()

        deadline = time.monotonic() + 10
        while True:
            states = [await status(0), await status(1)]
            if any(s["ended"] for s in states):
                break
            assert time.monotonic() < deadline, states
            await asyncio.sleep(0.2)
        print(f"the page can tell after {time.monotonic() - killed:.1f} s: {states}")
        lost = [i for i, s in enumerate(states) if s["ended"]]
        assert len(lost) == 1, states
        assert "server error" in states[lost[0]]["ended"]
        survivor = calls[1 - lost[0]]
        assert states[1 - lost[0]]["live"]
        # The other call goes on: heard and answered.
        assert await answered(survivor, "What is the capital of France?")
        assert (await health(room))["room"]["calls"] == 1  # the lost call's seat came back

        # The worker comes back, and takes calls again.
        back = await workers_ready(room, 120)
        assert next(w for w in back if w["name"] == victim["name"])["restarts"] >= 1
        print(f"{victim['name']} back after {time.monotonic() - killed:.1f} s")
        again = await call_bot(room, cookies=people[lost[0]])
        calls.append(again)
        assert await answered(again, "Tell me about the moon.")
    finally:
        await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)


async def test_a_websocket_call_is_relayed_to_a_worker_and_answered(room):
    from tests.test_websocket_e2e import websocket_turn

    answer, said = await websocket_turn(room)
    assert answer, "the bot answered out loud over the relayed WebSocket"
    assert "hear" in " ".join(said).lower(), said


@needs_chromium
def test_the_page_says_its_call_ended_on_a_server_error_and_can_call_again(room, tmp_path):
    from tests.test_room_browser import _browsers, _person, _silence, _start_call, _wav

    expect = pytest.importorskip("playwright.sync_api").expect
    problems: list[str] = []
    with _browsers(_wav(tmp_path / "quiet.wav", _silence(60))) as (browser,):
        _, page, _ = _person(browser, room, problems)
        page.goto("/talk?avatar=lumina")
        _start_call(page, expect)
        # Playwright's sync API holds this thread's event loop: plain HTTP here.
        workers = httpx.get(f"{room}/api/health").json()["workers"]
        victim = next(w for w in workers if w["calls"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()
        expect(page.locator("#status")).to_contain_text("server error", timeout=30_000)
        print(f"the page said so after {time.monotonic() - killed:.1f} s")
        deadline = time.monotonic() + 120
        while not all(w["ready"] for w in httpx.get(f"{room}/api/health").json()["workers"]):
            assert time.monotonic() < deadline, "the worker did not come back"
            time.sleep(0.5)
        _start_call(page, expect)  # Talk again: a new call, on a live worker
    assert not problems, problems
