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

Consumes (as a stop strategy): what ``TurnAnalyzerUserTurnStopStrategy`` does. Emits: the turn
end, as it does.
"""

from __future__ import annotations

import asyncio
import re
import time

from pipecat.frames.frames import VADUserStoppedSpeakingFrame
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import (
    TurnAnalyzerUserTurnStopStrategy,
)

# Words a sentence practically never ends on: articles, possessives, conjunctions, "of",
# hesitations. (Prepositions in general do end questions: "Where are you from?")
UNFINISHED_ENDINGS = frozenset(
    "a an the my your our their his its and or but because if than of um uh er erm".split()
)
_LAST_WORD = re.compile(r"([a-z']+)\W*$")


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
        **kwargs: As ``TurnAnalyzerUserTurnStopStrategy`` (``turn_analyzer``).
    """

    def __init__(self, *, max_wait_secs: float, min_silence_secs: float = 0.0, **kwargs):
        super().__init__(**kwargs)
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

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        self._speech_ended_at = time.monotonic() - frame.stop_secs
        await super()._handle_vad_user_stopped_speaking(frame)

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

    async def cleanup(self):
        """Stop the wait with the strategy."""
        if self._unfinished_task:
            await self.task_manager.cancel_task(self._unfinished_task)
            self._unfinished_task = None
        await super().cleanup()
