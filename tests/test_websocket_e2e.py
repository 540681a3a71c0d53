"""The same avatar over the WebSocket transport, with Pipecat's protobuf frames."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import websockets
from pipecat.frames.protobufs import frames_pb2

from testkit.speech import piper_say
from testkit.webrtc_client import sign_up

pytestmark = pytest.mark.slow


def audio_message(pcm: np.ndarray) -> bytes:
    frame = frames_pb2.Frame()
    frame.audio.audio = pcm.astype(np.int16).tobytes()
    frame.audio.sample_rate = 16000
    frame.audio.num_channels = 1
    return frame.SerializeToString()


def cookie_header(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


async def test_websocket_client_speaks_and_hears_an_answer(lumina_server):
    answer, said = await websocket_turn(lumina_server)
    assert answer, "the bot answered out loud over the WebSocket"
    assert "hear" in " ".join(said).lower(), said


async def websocket_turn(base: str) -> tuple[list[tuple[float, float]], list[str]]:
    """Sign up, say "Hello, can you hear me?" over ``base``'s /ws; (the bot's loud audio
    after it, the user transcriptions the bot reported)."""
    url = base.replace("http://", "ws://") + "/ws?avatar=lumina"
    speech = piper_say("Hello, can you hear me?")
    heard: list[tuple[float, float]] = []
    messages: list[dict] = []
    login = cookie_header(await sign_up(base))
    async with websockets.connect(url, max_size=None, additional_headers=login) as ws:

        async def receive():
            async for data in ws:
                frame = frames_pb2.Frame.FromString(data)
                kind = frame.WhichOneof("frame")
                if kind == "audio":
                    samples = np.frombuffer(frame.audio.audio, dtype=np.int16).astype(float)
                    heard.append((time.time(), float(np.sqrt(np.mean(samples**2)))))
                elif kind == "message":
                    messages.append(json.loads(frame.message.data))

        receiver = asyncio.create_task(receive())
        # A microphone: 20 ms frames in real time; silence, the question, then silence.
        mic = np.concatenate([np.zeros(16000, np.int16), speech, np.zeros(16000 * 12, np.int16)])
        spoken_end = 0.0
        started = time.monotonic()
        for i, chunk in enumerate(np.array_split(mic, len(mic) // 320)):
            await ws.send(audio_message(chunk))
            if i * 320 >= 16000 + len(speech) and not spoken_end:
                spoken_end = time.time()
            answered = [h for h in heard if h[0] > spoken_end and h[1] > 300]
            if spoken_end and answered and time.time() - answered[0][0] > 1.0:
                break
            await asyncio.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))
        receiver.cancel()

    answer = [h for h in heard if h[0] > spoken_end and h[1] > 300]
    said = [m["data"]["text"] for m in messages if m.get("type") == "user-transcription"]
    return answer, said


async def test_websocket_to_an_unknown_avatar_is_refused_with_a_reason(lumina_server):
    url = lumina_server.replace("http://", "ws://") + "/ws?avatar=nobody"
    login = cookie_header(await sign_up(lumina_server))
    async with websockets.connect(url, additional_headers=login) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert "nobody" in closed.value.rcvd.reason


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not signed in
        {"Cookie": "avatars_login=forged-token"},
        # A signed-in browser tricked by another site into opening the socket.
        "cross-site",
    ],
)
async def test_websocket_without_a_valid_sign_in_is_refused(lumina_server, headers):
    url = lumina_server.replace("http://", "ws://") + "/ws?avatar=lumina"
    if headers == "cross-site":
        # Refused at the handshake (web.guards): the socket never opens for another site.
        headers = {**cookie_header(await sign_up(lumina_server)), "Origin": "http://evil.test"}
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(url, additional_headers=headers)
        assert refused.value.response.status_code == 403
        return
    async with websockets.connect(url, additional_headers=headers) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4401 and "Sign in" in closed.value.rcvd.reason
