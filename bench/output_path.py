"""What the bot side adds between a reply's first TTS audio and the packet on the wire.

    .venv/bin/python -m bench.output_path [--replies 20] [--chunks 4] [--rate 48000]

In one process, over loopback: Pipecat's SmallWebRTC connection and our transport
(``transports.webrtc.webrtc_transport``, with the product's patches) on the bot side, and an
aiortc client like the latency bench's on the other. A pipeline of just the output transport
(at the transport's 48 kHz, as in a call; ``--rate 24000`` was Pipecat's default) is given
Piper replies (22050 Hz ``TTSAudioRawFrame``, in the pieces the Piper service pushes) after
a second or more of silence. Per reply, from the moment the first audio frame is queued
(monotonic clock, ms):

- *track*: our output track's ``recv()`` returns the reply's first voiced frame (the output
  transport's chunking and resampling, its audio queue, the track's queue and pacing);
- *encoded*: aiortc's Opus encoder has that frame's packet (the encoder's resampling to
  48 kHz and buffering, the thread-pool hop);
- *received*: the client's RTP receiver gets that packet (loopback UDP, SRTP; a voiced Opus
  packet is taken to be one of more than 30 bytes: silence codes to a few);
- *client*: the client's ``recv()`` returns the first voiced decoded frame (loopback UDP,
  the client's jitter buffer, decoding).

"Voiced" is RMS > 300 (int16), as in ``bench.latency``; the replies are trimmed of leading
silence, so the first frame holding speech is voiced. ``--chunks`` is the output transport's
``audio_out_10ms_chunks`` (Pipecat's default 4: 40 ms writes). Writes
``bench/results/output_path_<rate>_chunks<n>.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from testkit.webrtc_client import frame_rms
from transports.webrtc import AUDIO_OUT_SAMPLE_RATE

OUT = Path(__file__).parent / "results"
VOICED_RMS = 300
REPLIES = [
    "Sure, the capital of France is Paris.",
    "That sounds like a lovely idea.",
    "Hello there, how can I help you today?",
    "Well, it depends on the weather.",
    "Of course! Biscuit is a great name for a dog.",
]


class Probes:
    """Monotonic times of voiced frames at the three points (see the module docstring)."""

    def __init__(self) -> None:
        self.track: list[float] = []
        self.encoded: list[float] = []
        self.received: list[float] = []
        self.client: list[float] = []

    def first_after(self, times: list[float], t0: float) -> float | None:
        return next((t for t in times if t >= t0), None)


def install_probes(probes: Probes) -> None:
    """Wrap the output track's recv() and the Opus encoder to note voiced frames."""
    from aiortc.codecs.opus import OpusEncoder

    from transports.webrtc import PacketSizedAudioTrack

    recv = PacketSizedAudioTrack.recv

    async def timed_recv(self):
        frame = await recv(self)
        if frame_rms(frame) > VOICED_RMS:
            probes.track.append(time.monotonic())
        return frame

    encode = OpusEncoder.encode

    def timed_encode(self, frame, force_keyframe=False):
        voiced = frame_rms(frame) > VOICED_RMS
        out = encode(self, frame, force_keyframe)
        if voiced:
            probes.encoded.append(time.monotonic())
        return out

    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    handle = RTCRtpReceiver._handle_rtp_packet

    async def timed_handle(self, packet, arrival_time_ms):
        if len(packet.payload) > 30:
            probes.received.append(time.monotonic())
        return await handle(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = timed_handle  # type: ignore[method-assign]
    PacketSizedAudioTrack.recv = timed_recv  # type: ignore[method-assign]
    OpusEncoder.encode = timed_encode  # type: ignore[method-assign]


def piper_replies() -> list[bytes]:
    """The replies as Piper's 22050 Hz int16 audio, leading silence trimmed."""
    from piper import PiperVoice

    from bots.config import BUILTIN_AVATARS
    from bots.models import piper_voice

    voice = PiperVoice.load(piper_voice(BUILTIN_AVATARS.load("lumina").voice.piper_voice))
    out = []
    for text in REPLIES:
        pcm = np.concatenate([c.audio_int16_array for c in voice.synthesize(text)])
        loud = np.nonzero(np.abs(pcm) > VOICED_RMS * 2)[0]
        out.append(pcm[max(0, loud[0] - 220) :].tobytes())  # keep 10 ms before the onset
    return out


async def measure(replies: list[bytes], count: int, chunks: int, rate: int) -> list[dict]:
    """Play ``count`` replies through a real output transport; per-reply delays (ms)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcconfiguration import RTCBundlePolicy
    from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

    from testkit.webrtc_client import SpeechTrack, listen
    from transports.webrtc import webrtc_transport

    probes = Probes()
    install_probes(probes)
    client = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    client.addTrack(SpeechTrack())
    client.createDataChannel("chat", ordered=True)
    listening: list[asyncio.Task] = []

    def heard(rms: float) -> None:
        if rms > VOICED_RMS:
            probes.client.append(time.monotonic())

    @client.on("track")
    def _on_track(track):
        listening.append(listen(track, heard))

    await client.setLocalDescription(await client.createOffer())
    connection = SmallWebRTCConnection()
    await connection.initialize(sdp=client.localDescription.sdp, type="offer")
    transport = webrtc_transport(connection)
    transport.output()._params.audio_out_10ms_chunks = chunks
    transport.output()._params.audio_out_sample_rate = rate
    answer = connection.get_answer()
    assert answer is not None
    await client.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    task = PipelineTask(
        Pipeline([transport.output()]), params=PipelineParams(audio_out_sample_rate=rate)
    )
    runner = asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))
    records: list[dict] = []
    try:
        await connection.connect()
        await asyncio.sleep(2.0)  # audio flowing (silence) before the first reply
        for i in range(count):
            pcm = replies[i % len(replies)]
            await asyncio.sleep(1.0 + random.random() * 0.2)  # any phase of the 20 ms clock
            t0 = time.monotonic()
            frames = [TTSStartedFrame()]
            piece = 22050 // 5 * 2  # Piper's service pushes ~200 ms pieces
            frames += [
                TTSAudioRawFrame(pcm[j : j + piece], 22050, 1) for j in range(0, len(pcm), piece)
            ]
            await task.queue_frames([*frames, TTSStoppedFrame()])
            deadline = time.monotonic() + 5
            while probes.first_after(probes.client, t0) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            points = {
                name: probes.first_after(getattr(probes, name), t0)
                for name in ("track", "encoded", "received", "client")
            }
            records.append({k: round((t - t0) * 1000, 1) if t else None for k, t in points.items()})
            print(f"  reply {i + 1}: {records[-1]}", flush=True)
            await asyncio.sleep(len(pcm) / 2 / 22050)  # let it play out
    finally:
        await task.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        for t in listening:
            t.cancel()
        await client.close()
        await connection.disconnect()
    return records


def summary(records: list[dict]) -> dict:
    """p50/p95 per point."""
    out = {}
    for key in ("track", "encoded", "received", "client"):
        vals = [r[key] for r in records if r[key] is not None]
        out[key] = {
            "p50": round(float(np.percentile(vals, 50)), 1) if vals else None,
            "p95": round(float(np.percentile(vals, 95)), 1) if vals else None,
            "n": len(vals),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.output_path", description=__doc__)
    parser.add_argument("--replies", type=int, default=20)
    parser.add_argument("--chunks", type=int, default=4, help="audio_out_10ms_chunks")
    parser.add_argument("--rate", type=int, default=AUDIO_OUT_SAMPLE_RATE, help="output Hz")
    args = parser.parse_args(argv)

    from bots.patches import install_patches
    from bots.runtime import run

    install_patches()
    replies = piper_replies()
    records = run(measure(replies, args.replies, args.chunks, args.rate))
    s = summary(records)
    md = [
        "# The bot's output path: first TTS audio -> track -> Opus packet -> client",
        "",
        f"`.venv/bin/python -m bench.output_path --replies {args.replies} --chunks "
        f"{args.chunks} --rate {args.rate}` ({time.strftime('%Y-%m-%d')}); ms after the "
        "reply's first audio "
        "frame was queued.",
        "",
        "| point | p50 | p95 | replies |",
        "|---|---|---|---|",
        *(f"| {k} | {v['p50']} ms | {v['p95']} ms | {v['n']} |" for k, v in s.items()),
        "",
    ]
    OUT.mkdir(exist_ok=True)
    name = f"output_path_{args.rate}_chunks{args.chunks}"
    (OUT / f"{name}.json").write_text(json.dumps({"summary": s, "records": records}, indent=2))
    (OUT / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
