"""Admission control over real WebRTC: limits, refusals, and offers that leave nothing behind.

A room of its own (``python -m bots lumina`` with a capacity of 3 calls, 2 per person and a
5 s connect timeout) called by aiortc clients, as the hostile tester of issue 15 did: a burst
of 30 offers from one account, malformed offers, offers that never connect, tabs that close.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from aiortc import RTCPeerConnection

from testkit.net import wait_for
from testkit.webrtc_client import BotCall, OfferRefused, call_bot, sign_up
from tests.conftest import bot_server

pytestmark = pytest.mark.slow

CAPACITY = 3
PER_PERSON = 2
CONNECT_TIMEOUT_SECS = 5


@pytest.fixture(scope="module")
def small_room(llm_backend):
    with bot_server(
        AVATARS_ROOM_CAPACITY=str(CAPACITY),
        AVATARS_CALLS_PER_PERSON=str(PER_PERSON),
        AVATARS_CONNECT_TIMEOUT_SECS=str(CONNECT_TIMEOUT_SECS),
    ) as base:
        yield base


async def stats(base: str, cookies: dict) -> dict:
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=10) as http:
        return (await http.get("/api/stats")).json()


async def idle(base: str, cookies: dict, within: float) -> dict:
    """Stats once no call holds anything (sessions, their memory writes, peer connections,
    seats)."""
    deadline = time.monotonic() + within
    while True:
        now = await stats(base, cookies)
        held = now["sessions"], now["finishing"], now["peer_connections"], now["peer_owners"]
        if not any(held) and now["admitted"]["calls"] == 0:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"still held after {within} s: {now}")
        await asyncio.sleep(0.25)


def split(results: list) -> tuple[list[BotCall], list[OfferRefused]]:
    calls = [r for r in results if isinstance(r, BotCall)]
    refused = [r for r in results if isinstance(r, OfferRefused)]
    others = [r for r in results if not isinstance(r, BotCall | OfferRefused)]
    assert not others, others
    return calls, refused


async def test_a_burst_of_offers_gets_the_limit_and_clear_refusals(small_room):
    ana = await sign_up(small_room)
    baseline = await idle(small_room, ana, 30)
    results = await asyncio.gather(
        *(call_bot(small_room, cookies=ana) for _ in range(30)), return_exceptions=True
    )
    calls, refused = split(results)
    try:
        assert len(calls) == PER_PERSON and len(refused) == 30 - PER_PERSON
        assert {r.status for r in refused} == {429}
        assert "You already have 2 calls open" in refused[0].detail
        now = await stats(small_room, ana)
        # The refused offers built nothing: no peer connection, no session.
        assert now["peer_connections"] == PER_PERSON and now["sessions"] == PER_PERSON
        await wait_for(lambda: all(c.heard for c in calls), 30, "audio on both calls")

        # Another person takes the last place; the next one is told the room is full.
        ben, cat = await sign_up(small_room), await sign_up(small_room)
        calls.append(await call_bot(small_room, cookies=ben))
        with pytest.raises(OfferRefused) as full:
            await call_bot(small_room, cookies=cat)
        assert full.value.status == 503
        assert full.value.detail == "The room is full: 2 people are talking. Try again in a minute."
    finally:
        await asyncio.gather(*(c.close() for c in calls))
    after = await idle(small_room, ana, 30)
    assert after["tasks"] <= baseline["tasks"] + 2, (baseline, after)
    # Seats came back: the same account may call again.
    again = await call_bot(small_room, cookies=ana)
    await again.close()


MALFORMED = [
    "v=0\r\n",
    "not an sdp at all",
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
    "v=0\r\n" + "a=x\r\n" * 2000,
]


async def test_offers_that_fail_or_never_connect_leave_nothing_behind(small_room):
    ana = await sign_up(small_room)
    baseline = await idle(small_room, ana, 30)
    async with httpx.AsyncClient(base_url=small_room, cookies=ana, timeout=20) as http:
        bad = await asyncio.gather(
            *(http.post("/api/offer", json={"sdp": sdp, "type": "offer"}) for sdp in MALFORMED * 5)
        )
    assert {r.status_code for r in bad} == {400}, [r.text for r in bad]
    assert "offer's SDP could not be read" in bad[0].json()["detail"]
    now = await stats(small_room, ana)
    assert now["peer_connections"] == 0 and now["admitted"]["calls"] == 0, now

    # Offers that are answered but whose peer never connects (the answer is never applied).
    people = [ana, await sign_up(small_room), await sign_up(small_room)]
    ghosts: list[RTCPeerConnection] = []
    for who in people:
        pc = RTCPeerConnection()
        pc.createDataChannel("chat")
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        ghosts.append(pc)
        async with httpx.AsyncClient(base_url=small_room, cookies=who, timeout=20) as http:
            sdp = pc.localDescription.sdp
            resp = await http.post("/api/offer", json={"sdp": sdp, "type": "offer"})
            assert resp.status_code == 200, resp.text
    await asyncio.gather(*(pc.close() for pc in ghosts))
    assert (await stats(small_room, ana))["admitted"]["calls"] == len(people)
    after = await idle(small_room, ana, CONNECT_TIMEOUT_SECS + 10)
    assert after["tasks"] <= baseline["tasks"] + 2, (baseline, after)
    call = await call_bot(small_room, cookies=ana)  # nothing is still counted against her
    await call.close()


async def test_a_tab_that_closes_ends_its_call_within_seconds(small_room):
    ana = await sign_up(small_room)
    await idle(small_room, ana, 30)

    # Killed: the page's pings stop, and nothing says goodbye.
    call = await call_bot(small_room, cookies=ana)
    await wait_for(lambda: call.heard, 30, "audio from the bot")
    gone = time.monotonic()
    call.vanish()
    await idle(small_room, ana, 20)
    print(f"a vanished page's call ended after {time.monotonic() - gone:.1f} s")
    assert time.monotonic() - gone < 15, "a vanished page kept its call"
    await call.close()

    # Closed: the page's beacon (text/plain, as navigator.sendBeacon sends it).
    call = await call_bot(small_room, cookies=ana)
    await wait_for(lambda: call.heard, 30, "audio from the bot")
    beacon = f'{{"pc_id": "{call.pc_id}"}}'
    stranger = await sign_up(small_room)
    async with httpx.AsyncClient(base_url=small_room, cookies=stranger, timeout=10) as http:
        other = await http.post("/api/hangup", content=beacon)
        assert other.json() == {"status": "not live"}  # as for an unknown call
    assert (await stats(small_room, ana))["sessions"] == 1, "someone else hung up her call"
    async with httpx.AsyncClient(base_url=small_room, cookies=ana, timeout=10) as http:
        garbled = await http.post("/api/hangup", content="pc_id=1")
        assert garbled.status_code == 422
        closed = time.monotonic()
        resp = await http.post("/api/hangup", content=beacon)
        assert resp.json() == {"status": "ended"}, resp.text
        again = await http.post("/api/hangup", content=beacon)  # the tab's own, a moment later
        assert again.status_code == 200, again.text
    await idle(small_room, ana, 10)
    print(f"a hung-up call ended after {time.monotonic() - closed:.1f} s")
    assert time.monotonic() - closed < 5
    await wait_for(lambda: call.pc.connectionState in ("closed", "failed"), 30, "hang-up")
    await call.close()
