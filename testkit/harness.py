"""A scripted microphone and a recording speaker, as a Pipecat transport, for tests.

The microphone streams 20 ms frames of 16 kHz audio in real time, like a browser does:
silence unless speech has been queued with :meth:`ScriptedInput.say`. The speaker plays the
bot's audio out in real time (so interruption timing is what a person would hear) and records
every chunk with a timestamp. Everything between them is the real graph.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame, StartFrame
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

RATE = 16000
FRAME_SAMPLES = RATE // 50  # 20 ms


class ScriptedInput(BaseInputTransport):
    """A microphone that plays queued speech, then silence, forever, in real time."""

    def __init__(self, params: TransportParams, transport: ScriptedTransport):
        super().__init__(params)
        self._transport = transport
        self._pending = np.zeros(0, dtype=np.int16)
        self._mic_task: asyncio.Task | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self.speech_started_at: float | None = None
        self.speech_ended_at: float | None = None

    async def start(self, frame: StartFrame):
        await super().start(frame)
        await self.set_transport_ready(frame)
        if not self._mic_task:
            self._mic_task = self.create_task(self._mic())
            await self._transport.connected()

    async def cleanup(self):
        if self._mic_task:
            await self.cancel_task(self._mic_task)
            self._mic_task = None
        await super().cleanup()

    async def say(self, pcm: np.ndarray) -> None:
        """Queue 16 kHz int16 speech; returns once it has all been 'spoken' into the mic."""
        self._drained.clear()
        self._pending = np.concatenate([self._pending, pcm.astype(np.int16)])
        await self._drained.wait()

    async def _mic(self):
        next_at = time.monotonic()
        while True:
            if len(self._pending):
                if self.speech_started_at is None or self._drained.is_set():
                    self.speech_started_at = time.time()
                chunk = self._pending[:FRAME_SAMPLES]
                self._pending = self._pending[FRAME_SAMPLES:]
                if len(chunk) < FRAME_SAMPLES:
                    chunk = np.pad(chunk, (0, FRAME_SAMPLES - len(chunk)))
                if not len(self._pending):
                    self.speech_ended_at = time.time()
            else:
                chunk = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            await self.push_audio_frame(
                InputAudioRawFrame(audio=chunk.tobytes(), sample_rate=RATE, num_channels=1)
            )
            if not len(self._pending) and not self._drained.is_set():
                self._drained.set()
            next_at += FRAME_SAMPLES / RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


@dataclass
class HeardChunk:
    """One chunk the speaker played: when (wall clock; ``mono``: monotonic) and how loud."""

    at: float
    duration: float
    rms: float
    mono: float = 0.0
    audio: bytes = b""
    """The samples played (int16, ``sample_rate``), to transcribe what the bot said."""
    sample_rate: int = 0


class RecordingOutput(BaseOutputTransport):
    """A speaker that plays out in real time and remembers what it played (and was told)."""

    def __init__(self, params: TransportParams):
        super().__init__(params)
        self.heard: list[HeardChunk] = []
        self.messages: list[Any] = []
        """Messages for the client (RTVI), as a browser would receive them."""
        self.message_times: list[float] = []
        """When each of ``messages`` was sent (monotonic)."""
        self._clock = 0.0

    async def send_message(self, frame) -> None:
        self.messages.append(frame.message)
        self.message_times.append(time.monotonic())

    async def start(self, frame: StartFrame):
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        samples = np.frombuffer(frame.audio, dtype=np.int16)
        duration = len(samples) / frame.sample_rate / frame.num_channels
        now = time.monotonic()
        # Pace like a sound card: a chunk takes its own duration to play.
        self._clock = max(self._clock, now) + duration
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
        self.heard.append(
            HeardChunk(time.time(), duration, rms, now, frame.audio, frame.sample_rate)
        )
        await asyncio.sleep(max(0.0, self._clock - now - duration))
        return True


@dataclass
class ScriptedTransport(BaseTransport):
    """Transport with a scripted mic and a recording speaker.

    The class is a ``TransportFactory`` (``bots.session``): a session builds it with its
    ``audio_out_filter`` (the playback gate) and keeps it as ``session.transport``. The client
    "connects" when the microphone starts.
    """

    audio_out_filter: BaseAudioFilter | None = None
    params: TransportParams = field(init=False)

    def __post_init__(self):
        super().__init__()
        self.params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=RATE,
            audio_out_enabled=True,
            audio_out_filter=self.audio_out_filter,
        )
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")
        self.mic = ScriptedInput(self.params, self)
        self.speaker = RecordingOutput(self.params)

    async def connected(self) -> None:
        await self._call_event_handler("on_client_connected", self)

    def input(self) -> ScriptedInput:
        return self.mic

    def output(self) -> RecordingOutput:
        return self.speaker

    def silent_for(self, secs: float) -> bool:
        """Whether the speaker has played nothing for ``secs`` (the bot's reply is over)."""
        if not self.speaker.heard:
            return True
        last = self.speaker.heard[-1]
        return time.monotonic() > last.mono + last.duration + secs

    def voiced(self, since: float = 0.0, threshold: float = 300.0) -> list[HeardChunk]:
        """Chunks with audible bot speech played after ``since`` (wall clock)."""
        return [c for c in self.speaker.heard if c.at >= since and c.rms > threshold]
