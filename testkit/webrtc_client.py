"""A WebRTC client for bots that speak Pipecat's SmallWebRTC signaling (aiortc).

It plays real speech as its microphone in real time, records what the bot says back (with
wall-clock timestamps per 20 ms), and collects the RTVI messages of the data channel. Used by
the end-to-end tests and by the latency benchmark, for our bot and for a stock Pipecat peer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fractions
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from av import AudioFrame

from bots.patches import install_patches

# The client stands in for a browser, whose ICE consent checks are as patient as the room's
# (see transports/webrtc.py): the same patches apply here.
install_patches()

RATE = 48000
FRAME = RATE // 50  # 20 ms


class SpeechTrack(MediaStreamTrack):
    """A microphone track: queued speech, else silence, paced in real time."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self._pending = np.zeros(0, dtype=np.int16)
        self._start: float | None = None
        self._pts = 0
        self.spoken: list[tuple[float, float]] = []  # (start, end) wall clock of each utterance
        self._drained = asyncio.Event()
        self._drained.set()

    async def say(self, pcm16k: np.ndarray) -> tuple[float, float]:
        """Queue 16 kHz int16 speech; returns (start, end) wall-clock once it has been sent."""
        import soxr

        up = soxr.resample(pcm16k.astype(np.float32) / 32768, 16000, RATE)
        self._pending = np.concatenate([self._pending, (up * 32767).astype(np.int16)])
        self._drained.clear()
        self.spoken.append((0.0, 0.0))
        await self._drained.wait()
        return self.spoken[-1]

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if len(self._pending):
            if self.spoken and self.spoken[-1][0] == 0.0:
                self.spoken[-1] = (time.time(), 0.0)
            chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
            if not len(self._pending):
                self.spoken[-1] = (self.spoken[-1][0], time.time())
                self._drained.set()
        else:
            chunk = np.zeros(FRAME, dtype=np.int16)
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


@dataclass
class Heard:
    """20 ms of bot audio as received: arrival time and loudness."""

    at: float
    rms: float


def _arrival(h: Heard) -> float:
    return h.at


@dataclass
class BotCall:
    """One call to a bot: the mic, what came back, and the data-channel messages."""

    pc: RTCPeerConnection
    mic: SpeechTrack
    heard: list[Heard] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    received: list[float] = field(default_factory=list)  # wall-clock arrival of each message
    pc_id: str = ""  # the server's id of this peer connection (from its answer)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def voiced(self, since: float = 0.0, until: float = float("inf"), threshold: float = 300):
        """Bot audio chunks louder than ``threshold`` between two wall-clock times."""
        return [h for h in self.heard_between(since, until) if h.rms > threshold]

    def heard_between(self, since: float, until: float = float("inf")) -> list[Heard]:
        """Received chunks in ``[since, until)`` (binary search: ``heard`` is in time order)."""
        lo = bisect.bisect_left(self.heard, since, key=_arrival)
        hi = bisect.bisect_left(self.heard, until, lo=lo, key=_arrival)
        return self.heard[lo:hi]

    def messages_between(
        self, since: float = 0.0, until: float = float("inf")
    ) -> list[tuple[float, dict]]:
        """``(arrival, message)`` for data-channel messages received in ``[since, until)``."""
        lo = bisect.bisect_left(self.received, since)
        hi = bisect.bisect_left(self.received, until, lo=lo)
        return list(zip(self.received[lo:hi], self.messages[lo:hi], strict=True))

    async def wait_voiced(
        self, since: float, timeout: float, threshold: float = 300
    ) -> Heard | None:
        """The first voiced chunk at or after ``since``, waiting up to ``timeout`` s for it."""
        deadline = time.monotonic() + timeout
        while True:
            if voiced := self.voiced(since, threshold=threshold):
                return voiced[0]
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.02)

    async def wait_silent(
        self, quiet: float, timeout: float, threshold: float = 300, *, idle: bool = False
    ) -> bool:
        """Wait until the bot has been silent for ``quiet`` s (audio flowing); False on timeout.

        With ``idle``, the data channel must have been quiet too (no transcripts, LLM text or
        metrics still coming): the bot has finished with the last thing it was told.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.time()
            flowing = self.heard and self.heard[-1].at > now - 0.5
            busy = idle and self.received and self.received[-1] > now - quiet
            if flowing and not busy and not self.voiced(now - quiet, threshold=threshold):
                return True
            await asyncio.sleep(0.05)
        return False

    def transcriptions(self) -> list[str]:
        """Final user transcriptions the bot reported (RTVI ``user-transcription``)."""
        return [
            m["data"]["text"]
            for m in self.messages
            if m.get("type") == "user-transcription" and m.get("data", {}).get("final")
        ]

    def vanish(self) -> None:
        """Stop answering without saying goodbye, as a laptop that leaves the Wi-Fi does (or a
        tab that is killed): ICE stops, pings stop; no DTLS close_notify, no RTCP BYE."""
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.sender.transport.transport
            asyncio.ensure_future(ice.stop())
        for t in self._tasks:
            t.cancel()

    async def close(self, timeout: float = 10) -> None:
        """Hang up (giving up on a clean close after ``timeout`` s)."""
        for t in self._tasks:
            t.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pc.close(), timeout)


async def sign_up(base_url: str, username: str | None = None) -> dict[str, str]:
    """A fresh account on our room (its sign-in cookie); ``{}`` for a server without accounts
    (the stock Pipecat peer in the latency benchmark)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        if (await http.get("/api/room")).status_code == 404:
            return {}
        username = username or f"bench-{uuid.uuid4().hex[:8]}"
        resp = await http.post(
            "/api/signup",
            json={"username": username, "password": "bench password", "passcode": ""},
        )
        resp.raise_for_status()
        return dict(http.cookies)


async def offer_sdp(*kinds: str) -> str:
    """A real offer's SDP (aiortc's, with host candidates) for these media kinds and a data
    channel, from a peer connection that is closed again: for signaling tests."""
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind)
    pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


class OfferRefused(RuntimeError):
    """The server did not answer the offer: its HTTP status and what it said."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"offer refused ({status}): {detail}")
        self.status = status
        self.detail = detail


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return resp.text


def frame_rms(frame: AudioFrame) -> float:
    """The RMS of a received audio frame (int16 scale)."""
    samples = frame.to_ndarray().astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def listen(track: MediaStreamTrack, on_frame: Callable[[float], None]) -> asyncio.Task:
    """Read a received audio track until it ends, calling ``on_frame`` with each frame's RMS."""

    async def read() -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the track ended (MediaStreamError) or the call closed
                return
            on_frame(frame_rms(frame))

    return asyncio.create_task(read())


async def call_bot(
    base_url: str,
    *,
    avatar: str | None = None,
    timeout: float = 20,
    cookies: dict[str, str] | None = None,
) -> BotCall:
    """Connect to a SmallWebRTC bot at ``base_url`` (``POST {base_url}/api/offer``).

    Args:
        base_url: the server.
        avatar: which avatar (the server's default when None).
        timeout: for the signaling request.
        cookies: the sign-in cookie (see :func:`sign_up`); a fresh account when None.
    """
    if cookies is None:
        cookies = await sign_up(base_url)
    # One transport for audio and data, as browsers do (max-bundle). aiortc's default opens
    # one per media type, which under load left the two sides using different sockets.
    pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    mic = SpeechTrack()
    pc.addTrack(mic)
    call = BotCall(pc, mic)
    channel = pc.createDataChannel("chat", ordered=True)

    @channel.on("open")
    def _on_open():
        channel.send(
            json.dumps(
                {
                    "label": "rtvi-ai",
                    "type": "client-ready",
                    "id": uuid.uuid4().hex[:8],
                    "data": {"version": "1.0.0", "about": {"library": "bench-client"}},
                }
            )
        )

        async def keepalive():
            while channel.readyState == "open":
                channel.send("ping")
                await asyncio.sleep(1)

        call._tasks.append(asyncio.create_task(keepalive()))

    @channel.on("message")
    def _on_message(message):
        if isinstance(message, str) and message.startswith("{"):
            call.messages.append(json.loads(message))
            call.received.append(time.time())

    @pc.on("track")
    def _on_track(track):
        call._tasks.append(listen(track, lambda rms: call.heard.append(Heard(time.time(), rms))))

    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)  # aiortc gathers host candidates here
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
    if avatar:
        body["request_data"] = {"avatar": avatar}
    async with httpx.AsyncClient(timeout=timeout, cookies=cookies) as http:
        resp = await http.post(f"{base_url}/api/offer", json=body)
    if resp.status_code != 200:
        await pc.close()
        raise OfferRefused(resp.status_code, _detail(resp))
    answer = resp.json()
    call.pc_id = answer.get("pc_id", "")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return call
