"""Smart-turn's end-of-turn call, checked against the words and the silence.

Smart-turn v3 judges from the audio alone, and a phrase spoken with a falling voice sounds
finished to it even when the words stop at "of" or "the" (measured: "Could you tell me the
name of", then a 400 ms pause, was called complete, and the avatar answered half a
sentence). When the transcript ends on a word an English sentence does not end on, the turn
is treated as smart-turn's "incomplete": it ends only after ``smart_turn_max_wait_secs`` of
silence, so a person who goes on is heard out. A wrong guess costs that wait, never words.

Nor does a "complete" end the turn before ``min_silence_secs`` of silence (0.5 s): the VAD
stops after 0.2 s, and a 400 ms pause mid-sentence that whisper misheard ("...the name
mode?") was still answered. The wait is nearly free: the transcript itself is ready about
0.45 s after the speech on this machine, and a preemptive reply
(``processors.preemptive_turn``) is being generated meanwhile. The VAD confirms speech again
only ``vad_start_secs`` after it resumes, so while Silero hears a sound it has not yet
confirmed or dismissed (:meth:`SmartTurnStopStrategy.sound_onset`, a ``VADListener``
callback) the turn does not end either.

When smart-turn hears a turn as unfinished, the words are read by a language model as well
(``sentence_end``, ``bots.sentence_end``: the LLM engine's odds that the sentence ends
there). If they read as a finished sentence, the turn ends after ``min_silence_secs`` instead
of ``max_wait_secs``; without an answer from the model smart-turn decides as before. They are
not read when smart-turn calls the turn complete: there the check would run beside the reply's
own prompt on the same engine and slow its first token by 50-100 ms (measured in the latency
bench), and the minimum silence already guards a short pause.

Consumes (as a stop strategy): what ``TurnAnalyzerUserTurnStopStrategy`` does. Emits: the turn
end, as it does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from loguru import logger
from pipecat.frames.frames import (
    EagerTranscriptionFrame,
    Frame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import (
    TurnAnalyzerUserTurnStopStrategy,
)

# Words a sentence practically never ends on: articles, possessives, conjunctions, "of",
# hesitations. (Prepositions in general do end questions: "Where are you from?")
UNFINISHED_ENDINGS = frozenset(
    "a an the my your our their his its and or but because if than of um uh er erm".split()
)
_LAST_WORD = re.compile(r"([a-z']+)\W*$")


SentenceEndCheck = Callable[[str], Awaitable[Literal["finished", "unfinished"] | None]]
"""Reads a transcript: a finished sentence, cut off, or no answer (None)."""


def ends_unfinished(text: str) -> bool:
    """Whether ``text`` (a transcript) stops on a word a sentence does not end on."""
    match = _LAST_WORD.search(text.lower())
    return bool(match) and match.group(1) in UNFINISHED_ENDINGS


class SmartTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Pipecat's smart-turn stop strategy that waits out transcripts ending mid-phrase.

    Args:
        max_wait_secs: silence after the speech before an unfinished-sounding turn ends
            anyway (the avatar's ``smart_turn_max_wait_secs``).
        min_silence_secs: silence after the speech before a turn smart-turn calls complete
            ends (the avatar's ``smart_turn_min_silence_secs``).
        sentence_end: reads the words (see the module docstring); None: no such check.
        **kwargs: As ``TurnAnalyzerUserTurnStopStrategy`` (``turn_analyzer``).
    """

    def __init__(
        self,
        *,
        max_wait_secs: float,
        min_silence_secs: float = 0.0,
        sentence_end: SentenceEndCheck | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._sentence_end = sentence_end
        self._read: tuple[str, Literal["finished", "unfinished"] | None] = ("", None)
        self._early_text = ""  # the STT's early pass, before the VAD's stop
        self._reading: asyncio.Task | None = None
        self._max_wait = max_wait_secs
        self._min_silence = min(min_silence_secs, max_wait_secs)
        self._speech_ended_at = 0.0
        self._unfinished_task: asyncio.Task | None = None
        self._waited_out = False
        self._sound = False  # Silero hears something the VAD has not confirmed yet

    def sound_onset(self) -> None:
        """Silero scored a frame as speech while the VAD is quiet: perhaps the person goes on.

        Called by the VAD (``processors.vad_events.VADListener.on_onset``); the VAD's start
        (the turn goes on) or :meth:`sound_false_start` settles it.
        """
        self._sound = True

    def sound_false_start(self) -> None:
        """The sound was no speech after all: a turn end held back by it may happen now."""
        if self._sound:
            self._sound = False
            self.task_manager.create_task(
                self._maybe_trigger_user_turn_stopped(), f"{self}::false_start"
            )

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """As the base class; a turn smart-turn heard unfinished has its words read too."""
        if isinstance(frame, EagerTranscriptionFrame):
            self._early_text = frame.text
        result = await super().process_frame(frame)
        if isinstance(frame, TranscriptionFrame):
            self._read_words(frame.text)
            await self._apply_reading()
        return result

    def _read_words(self, text: str) -> None:
        # Only where the reading can change the outcome: smart-turn said "incomplete" (its
        # verdict comes with the VAD's stop) and no word list settles it. A check running
        # beside every reply's prompt would slow each first token by 50-100 ms (measured).
        if (
            self._sentence_end is None
            or not text.strip()
            or self._read[0] == text
            or not self._vad_stopped
            or self._vad_user_speaking
            or self._turn_complete
            or ends_unfinished(text)
        ):
            return
        self._read = (text, None)
        if self._reading:
            self._reading.cancel()
        self._reading = self.task_manager.create_task(self._read_out(text), f"{self}::read")

    async def _read_out(self, text: str) -> None:
        assert self._sentence_end is not None
        said = await self._sentence_end(text)
        self._reading = None
        if self._read[0] == text:  # else newer words came meanwhile
            self._read = (text, said)
            if said:
                logger.debug(f"{self}: the words read as {said}: {text!r}")
            await self._apply_reading()

    async def _apply_reading(self) -> None:
        """A finished sentence smart-turn heard unfinished ends after the minimum silence."""
        text, said = self._read
        if said != "finished" or text != self._text or self._turn_complete:
            return
        if self._vad_stopped and not self._vad_user_speaking:
            self._turn_complete = True
            await self._maybe_trigger_user_turn_stopped()

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        self._speech_ended_at = time.monotonic() - frame.stop_secs
        await super()._handle_vad_user_stopped_speaking(frame)
        # Smart-turn's verdict is in; the words may be too (the early pass, or a transcript
        # that came before the stop).
        self._read_words(self._text or self._early_text)

    def _earliest_end(self) -> float:
        """When the turn may end at the soonest, given the words so far (monotonic)."""
        wait = self._max_wait if ends_unfinished(self._text) else self._min_silence
        return self._speech_ended_at + wait

    async def _maybe_trigger_user_turn_stopped(self):
        if self._sound:
            return  # the VAD's start, or the false start, decides
        if self._turn_complete and not self._waited_out and time.monotonic() < self._earliest_end():
            if self._unfinished_task is None:
                self._unfinished_task = self.task_manager.create_task(
                    self._wait_out(), f"{self}::wait"
                )
            return
        await super()._maybe_trigger_user_turn_stopped()

    async def _wait_out(self):
        # Words may come in while waiting (the transcript): the deadline follows them.
        while (delay := self._earliest_end() - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._unfinished_task = None
        self._waited_out = True
        await self._maybe_trigger_user_turn_stopped()

    async def _discard_pending_end_of_turn(self):
        """Speech again, or a turn boundary: an unfinished turn's wait is over."""
        self._waited_out = False
        self._sound = False
        if self._unfinished_task:
            await self.task_manager.cancel_task(self._unfinished_task)
            self._unfinished_task = None
        await super()._discard_pending_end_of_turn()

    async def _reset(self):
        """A turn boundary: the next words are read afresh."""
        self._read = ("", None)
        self._early_text = ""
        if self._reading:
            await self.task_manager.cancel_task(self._reading)
            self._reading = None
        await super()._reset()

    async def cleanup(self):
        """Stop the wait with the strategy."""
        if self._reading:
            await self.task_manager.cancel_task(self._reading)
            self._reading = None
        if self._unfinished_task:
            await self.task_manager.cancel_task(self._unfinished_task)
            self._unfinished_task = None
        await super().cleanup()
