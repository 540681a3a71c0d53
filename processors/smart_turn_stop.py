"""Smart-turn's end-of-turn call, checked against the words: "...the name of" is not an end.

Smart-turn v3 judges from the audio alone, and a phrase spoken with a falling voice sounds
finished to it even when the words stop at "of" or "the" (measured: "Could you tell me the
name of", then a 400 ms pause, was called complete, and the avatar answered half a
sentence). When the transcript ends on a word an English sentence does not end on, the turn
is treated as smart-turn's "incomplete": it ends only after ``smart_turn_max_wait_secs`` of
silence, so a person who goes on is heard out. A wrong guess costs that wait, never words.

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
        **kwargs: As ``TurnAnalyzerUserTurnStopStrategy`` (``turn_analyzer``).
    """

    def __init__(self, *, max_wait_secs: float, **kwargs):
        super().__init__(**kwargs)
        self._max_wait = max_wait_secs
        self._speech_ended_at = 0.0
        self._unfinished_task: asyncio.Task | None = None
        self._waited_out = False

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame):
        self._speech_ended_at = time.monotonic() - frame.stop_secs
        await super()._handle_vad_user_stopped_speaking(frame)

    async def _maybe_trigger_user_turn_stopped(self):
        if self._turn_complete and not self._waited_out and ends_unfinished(self._text):
            if self._unfinished_task is None:
                self._unfinished_task = self.task_manager.create_task(
                    self._wait_out(), f"{self}::unfinished"
                )
            return
        await super()._maybe_trigger_user_turn_stopped()

    async def _wait_out(self):
        await asyncio.sleep(max(0.0, self._speech_ended_at + self._max_wait - time.monotonic()))
        self._unfinished_task = None
        self._waited_out = True
        await self._maybe_trigger_user_turn_stopped()

    async def _discard_pending_end_of_turn(self):
        """Speech again, or a turn boundary: an unfinished turn's wait is over."""
        self._waited_out = False
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
