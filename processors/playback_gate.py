"""Pause the bot's voice the moment the user starts talking; resume it if it was only a noise.

A real interruption needs proof that the user is talking to the bot (``processors.barge_in``:
a minimum speech length, no backchannels), which takes ~250 ms more after the VAD fires. Until
then the bot used to keep talking over the user. The gate holds the output transport's audio
from the VAD's first speech-like frame instead: the bot falls silent within a frame or two.
If the interruption is confirmed, Pipecat drops the queued audio as usual; if it was a cough or
an "mm-hm", the gate opens again when the VAD reports silence, and the reply continues from
the same word: nothing was skipped, only paused.

It is the output transport's audio filter (Pipecat's ``TransportParams.audio_out_filter``):
the transport's audio task passes every ~20-40 ms chunk through ``filter`` right before
writing it, so holding ``filter`` holds playback, and returning no audio drops the chunk.
Consumes and emits no frames.

Pipecat lets the chunk being written when an interruption comes finish (it only drops what is
queued). Here that chunk is the one the gate holds, so it would play when the gate opens,
after the person's barge-in: a chunk held across an interruption (``TurnState.interruptions``
moved) is dropped instead.
"""

from __future__ import annotations

import asyncio

from loguru import logger
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import FilterControlFrame

from processors.turn_state import TurnState


class PlaybackGate(BaseAudioFilter):
    """Holds a transport's outgoing audio while the user speaks.

    Args:
        turns: the session's turn state (interruptions are counted there; holds are noted).
        name: label for logs.
    """

    def __init__(self, turns: TurnState, *, name: str = ""):
        self._turns = turns
        self._name = name
        self._open = asyncio.Event()
        self._open.set()

    @property
    def holding(self) -> bool:
        """Whether the bot's audio is being held."""
        return not self._open.is_set()

    async def start(self, sample_rate: int) -> None:
        """Nothing to prepare: the gate passes audio through unchanged."""

    async def stop(self) -> None:
        """Let a write that is waiting go (the transport is shutting down)."""
        self._open.set()

    async def process_frame(self, frame: FilterControlFrame) -> None:
        """No control frames apply to the gate."""

    async def filter(self, audio: bytes) -> bytes:
        """Pass ``audio`` on once the gate is open; nothing if it went stale meanwhile."""
        if self._open.is_set():
            return audio
        interruptions = self._turns.interruptions
        await self._open.wait()
        if self._turns.interruptions != interruptions:
            self._turns.note("dropped")
            return b""  # held across an interruption: the old reply, not to be played
        return audio

    def pause(self) -> None:
        """The user started speaking: hold the bot's audio."""
        if self._open.is_set():
            self._open.clear()
            self._turns.note("held")
            logger.debug(f"[{self._name}] playback held")

    def resume(self) -> None:
        """The user stopped: let audio flow (what is left of the reply, or the answer)."""
        if not self._open.is_set():
            self._open.set()
            self._turns.note("released")
            logger.debug(f"[{self._name}] playback released")
