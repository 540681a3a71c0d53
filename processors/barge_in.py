"""When speech from the person may cut the avatar off: a guarded user-turn start strategy.

Two complaints come up with every voice companion: the bot hears its own voice and stops
itself, and a cough or an "mm-hm" cuts it off. Pipecat's default start strategy interrupts on
any VAD speech start. This one keeps that behaviour while the bot is silent, and while the bot
speaks it asks for more:

* Grace window: speech in the first ``grace_ms`` of each bot reply is not enough on its own
  (echo of the bot's onset, or the person finishing their last word).
* Minimum speech: the person must keep talking for ``min_speech_ms`` (counted from their
  speech onset; VAD already needed ``vad_start_secs`` of it). A cough ends first. Whether
  they are still talking is the VAD's first-hand view (``TurnState.user_audible``: false from
  the first silent frame), not its stop event, which comes ``vad_stop_secs`` after the sound
  ended: measured by the stop, any sound that reached the VAD's start (200 ms) "lasted" past
  the 250 ms minimum, so every cough and "mm-hm" that long cut the bot off. Speech that pauses
  before the minimum interrupts if it goes on before the VAD's stop.
* Backchannels: a transcript made only of "mm-hm", "uh-huh", "yeah"... never interrupts; it
  is dropped from the user's aggregation so it does not leak into the next turn.
* A real word that was too short for the timer ("stop!") still interrupts once whisper
  transcribes it.

If a noise does get through and its turn has no transcript, Pipecat's ``EmptyUserTurnConfig``
(set in ``bots.pipeline``) lets the avatar pick up where it was cut off, so a false
interruption is never the end of the reply.

This is a strategy inside the user aggregator, not a processor. It consumes (reads) VAD,
transcription and bot-speaking frames and emits user-turn-started events. Whether the bot is
speaking, and since when, it reads from the session's ``TurnState`` (the one place that knows);
the bot-speaking frames only tell it when to look again.
"""

from __future__ import annotations

import asyncio
import re
import time

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import BaseUserTurnStartStrategy

from processors.turn_state import TurnState

# Acknowledgements people make while listening. "yes"/"okay" alone are backchannels while the
# bot speaks; as answers (bot silent) they start a turn as usual.
BACKCHANNELS = frozenset(
    "mm mhm mmhmm mm-hmm mm-hm hmm hm uh-huh uhhuh uh huh um ah oh ok okay yeah yep yes "
    "right sure i see cool nice wow".split()
)  # fmt: skip
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def is_backchannel(text: str) -> bool:
    """True for acknowledgements that should not interrupt ("Mm-hmm.", "Yeah, okay.")."""
    words = _WORD.findall(text.lower())
    return bool(words) and len(words) <= 3 and all(w in BACKCHANNELS for w in words)


class GuardedUserTurnStartStrategy(BaseUserTurnStartStrategy):
    """Start the user's turn on speech, but guard the bot's speech against false barge-in.

    Args:
        turns: the session's turn state (whether and since when the bot is speaking).
        barge_in: whether speech may interrupt the bot at all.
        grace_ms: ignore speech during the first N ms of each bot reply.
        min_speech_ms: speech that interrupts must last this long from its onset.
        vad_start_secs: how much speech the VAD already required before it reported a start.
    """

    def __init__(
        self,
        turns: TurnState,
        *,
        barge_in: bool = True,
        grace_ms: int = 300,
        min_speech_ms: int = 250,
        vad_start_secs: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._barge_in = barge_in
        self._grace = grace_ms / 1000
        self._min_after_vad = max(0.0, min_speech_ms / 1000 - vad_start_secs)
        self._turns = turns
        self._pending: asyncio.Task | None = None

    async def cleanup(self):
        """Cancel a pending confirmation."""
        await self._cancel_pending()
        await super().cleanup()

    async def handle_user_turn_started(self):
        """A turn started (by us or another strategy): nothing is pending any more."""
        await self._cancel_pending()
        await super().handle_user_turn_started()

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Decide whether this frame starts the user's turn."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self._turns.bot_started()  # in case this frame got here before the observer saw it
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._turns.bot_stopped()
            if self._pending:  # the bot finished while the person was talking: their turn
                await self._cancel_pending()
                await self.trigger_user_turn_started()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            return await self._on_speech_start()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if self._pending:
                logger.debug(f"{self}: speech too short to interrupt the bot; ignored")
                await self._cancel_pending()
        elif isinstance(frame, TranscriptionFrame):
            return await self._on_transcription(frame)
        return ProcessFrameResult.CONTINUE

    async def _on_speech_start(self) -> ProcessFrameResult:
        if not self._turns.bot_speaking:
            await self.trigger_user_turn_started()
            return ProcessFrameResult.STOP
        if not self._barge_in:
            return ProcessFrameResult.CONTINUE
        grace_left = self._turns.bot_started_at + self._grace - time.monotonic()
        delay = max(self._min_after_vad, grace_left)
        if delay <= 0:
            await self.trigger_user_turn_started()
            return ProcessFrameResult.STOP
        await self._cancel_pending()
        self._pending = self.create_task(self._confirm_after(delay))
        return ProcessFrameResult.CONTINUE

    async def _confirm_after(self, delay: float):
        await asyncio.sleep(delay)
        # Long enough: it interrupts while the person is heard, now or if they go on before
        # the VAD's stop (which cancels this).
        await self._turns.until_user_audible()
        self._pending = None
        logger.debug(f"{self}: sustained speech over the bot; interrupting")
        await self.trigger_user_turn_started()

    async def _on_transcription(self, frame: TranscriptionFrame) -> ProcessFrameResult:
        text = frame.text.strip()
        if not text:
            return ProcessFrameResult.CONTINUE
        if self._turns.bot_speaking and (not self._barge_in or is_backchannel(text)):
            logger.debug(f"{self}: {text!r} while the bot speaks: not an interruption")
            await self.trigger_reset_aggregation()
            return ProcessFrameResult.STOP
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP

    async def _cancel_pending(self):
        if self._pending:
            task, self._pending = self._pending, None
            await self.cancel_task(task)
