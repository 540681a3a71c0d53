"""Pause the bot's voice the moment the user starts talking; resume it if it was only a noise.

A real interruption needs proof that the user is talking to the bot (``processors.barge_in``:
a minimum speech length, no backchannels), which takes ~250 ms more after the VAD fires. Until
then the bot used to keep talking over the user. The gate holds the output transport's audio
from the VAD's first speech-like frame instead: the bot falls silent within a frame or two.
If the interruption is confirmed, Pipecat drops the held audio as usual; if it was a cough or
an "mm-hm", the gate opens again when the VAD reports silence, and the reply continues from
the same word: nothing was skipped, only paused.

Pipecat lets the chunk being written when an interruption comes finish (it only drops what is
queued). Here that chunk is the one the gate holds, so it would play when the gate opens,
after the person's barge-in: the gate also watches for ``InterruptionFrame`` (as an observer)
and drops a chunk held across one.

Pipecat has no pause for an output transport's queued audio, so this wraps the transport's
``write_audio_frame`` (every transport writes through it, one ~20-40 ms chunk at a time, and
waits until it is played). Not a frame processor: it consumes and emits no frames.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger
from pipecat.frames.frames import InterruptionFrame, OutputAudioRawFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_output import BaseOutputTransport


class PlaybackGate(BaseObserver):
    """Holds a transport's outgoing audio while the user speaks (add it to the observers)."""

    def __init__(self, *, name: str = ""):
        """Start open."""
        super().__init__(observe_every_push=False)
        self._open = asyncio.Event()
        self._open.set()
        self._name = name
        self._closed_at = 0.0
        self._interruptions = 0

    def attach(self, output: BaseOutputTransport) -> None:
        """Route ``output``'s audio writes through the gate."""
        write = output.write_audio_frame

        async def gated_write(frame: OutputAudioRawFrame) -> bool:
            interruptions = self._interruptions
            await self._open.wait()
            if self._interruptions != interruptions:
                return False  # held across an interruption: the old reply, not to be played
            return await write(frame)

        output.write_audio_frame = gated_write  # type: ignore[method-assign]

    async def on_push_frame(self, data: FramePushed) -> None:
        """Count interruptions (see the module docstring)."""
        if isinstance(data.frame, InterruptionFrame):
            self._interruptions += 1

    def pause(self) -> None:
        """The user started speaking: hold the bot's audio."""
        if self._open.is_set():
            self._closed_at = time.monotonic()
            self._open.clear()
            logger.debug(f"[{self._name}] playback held")

    def resume(self) -> None:
        """The user stopped: let audio flow (what is left of the reply, or the answer)."""
        if not self._open.is_set():
            held = time.monotonic() - self._closed_at
            logger.debug(f"[{self._name}] playback resumed after {held * 1000:.0f} ms")
            self._open.set()
