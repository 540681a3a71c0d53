"""Preemptive replies: start answering while smart-turn is still confirming the turn.

Pipecat 1.14 can run an inference for a turn that has not ended yet (a *speculation*): the
user aggregator sends the LLM a provisional copy of the context with the turn's text, and
the turn end either confirms it (the context then records the user turn and no second
inference runs) or withdraws it (``EagerEndOfTurnCancelFrame``). Pipecat drives that from
STT services with their own end-of-turn prediction (Deepgram Flux); this strategy drives it
from ours: smart-turn after the VAD, with whisper.cpp's early transcript.

A speculation starts on the first transcript that covers the turn so far while the turn is
still unconfirmed:

* the STT's early pass, done while the VAD's stop window is still running
  (``EagerTranscriptionFrame``, see ``processors.whisper_stt``);
* the committed transcript when smart-turn has not called the turn complete yet (it calls
  many finished sentences incomplete, and then waits up to ``smart_turn_max_wait_secs``).

It is withdrawn when the person speaks again (the VAD starts, or the STT withdraws its early
transcript), when the turn ends on other words than the speculation's, or when the turn ends
unresolved (the stop timeout, an interruption). The LLM then stops, and the held audio is
discarded (``processors.reply_hold``): nothing of it is heard or stored. A turn whose words
changed is answered again, from the prompt cache.

Consumes (fed every frame by the user aggregator, as any stop strategy):
``EagerTranscriptionFrame``, ``TranscriptionFrame``, ``VADUserStartedSpeakingFrame``,
``EagerEndOfTurnCancelFrame``, and what smart-turn needs. Emits (through the aggregator): a
speculative ``LLMContextFrame``, ``EagerEndOfTurnCancelFrame``, the turn end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from loguru import logger
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import NormalizedMatch

from processors.smart_turn_stop import SmartTurnStopStrategy


@dataclass
class PreemptionStats:
    """How preemptive replies fared in one session (counts of speculations)."""

    started: int = 0
    kept: int = 0
    """Confirmed: the reply that was already being generated is the one played."""
    withdrawn: int = 0
    """The person went on speaking (or the turn ended unresolved): thrown away."""
    regenerated: int = 0
    """Newer words came (a later early transcript, or the committed one differs): thrown
    away and started again on them."""
    last: str = ""
    """How the last turn's reply was made: "kept" (preemptively) or "after" the turn ended."""
    last_withdrawn: int = 0
    """Preemptive replies thrown away during the last turn, for either reason."""

    def as_dict(self) -> dict[str, int | str]:
        """Plain counts, for JSON."""
        return asdict(self)

    def turn_ended(self, outcome: Literal["kept", "after"], withdrawn: int) -> None:
        """Count one turn's end."""
        if outcome == "kept":
            self.kept += 1
        self.last, self.last_withdrawn = outcome, withdrawn


def _joined(before: str, text: str) -> str:
    # The user aggregator joins a turn's transcripts with single spaces.
    return f"{before} {text}".strip()


class PreemptiveTurnStopStrategy(SmartTurnStopStrategy):
    """Smart-turn end-of-turn detection that answers the turn speculatively meanwhile.

    Args:
        stats: Counters to update (one per session).
        **kwargs: As ``SmartTurnStopStrategy`` (``turn_analyzer``, ``max_wait_secs``).
    """

    def __init__(self, *, stats: PreemptionStats | None = None, **kwargs):
        super().__init__(**kwargs)
        self.stats = stats or PreemptionStats()
        self._match = NormalizedMatch()
        self._committed = ""  # the turn's committed transcripts so far
        self._speculation: UserTurnSpeculation | None = None
        self._open = False  # a turn has started and not ended
        self._withdrawn = 0  # in this turn

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Follow the turn; start, keep or withdraw a speculation."""
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self._withdraw("the person went on speaking")
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            # Withdrawn elsewhere (the LLM service, for a tool call); the frame reaches every
            # part by itself.
            if self._take():
                self.stats.withdrawn += 1
                self._withdrawn += 1
        elif isinstance(frame, TranscriptionFrame):
            # Before the base class sees it: it may end the turn right away, and the turn
            # end compares against this.
            self._committed = _joined(self._committed, frame.text)
        result = await super().process_frame(frame)
        if not self._open:
            return result
        if isinstance(frame, EagerTranscriptionFrame):
            # Before the VAD reports the stop (so it still counts the person as speaking):
            # the STT checked that everything since the pause was silence.
            await self._speculate(_joined(self._committed, frame.text))
        elif isinstance(frame, TranscriptionFrame) and not self._vad_user_speaking:
            await self._speculate(self._committed)
        return result

    async def trigger_user_turn_stopped(self, *, enable_user_speaking_frames: bool | None = None):
        """End the turn; keep the reply already under way if it answers these words."""
        self._open = False
        speculation = self._take()
        if speculation and self._match.matches(speculation.text, self._committed):
            self.stats.turn_ended("kept", self._withdrawn)
            logger.debug(f"{self}: turn confirmed; keeping the preemptive reply")
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=enable_user_speaking_frames,
                confirms_speculation=True,
            )
            return
        if speculation:
            logger.debug(f"{self}: the turn's words changed; answering it again")
            self.stats.regenerated += 1
            self._withdrawn += 1
            await self.trigger_user_turn_speculation_cancelled()
        self.stats.turn_ended("after", self._withdrawn)
        await super().trigger_user_turn_stopped(
            enable_user_speaking_frames=enable_user_speaking_frames
        )

    async def handle_user_turn_started(self):
        """A turn starts: the next transcripts are its words."""
        await super().handle_user_turn_started()
        self._open = True
        self._withdrawn = 0

    async def handle_user_turn_stopped(self):
        """The turn ended (by this strategy, or another way: the stop timeout)."""
        self._open = False
        await super().handle_user_turn_stopped()

    async def _reset(self):
        """A turn boundary: a speculation still open was never confirmed."""
        await self._withdraw("the turn ended unresolved")
        self._committed = ""
        await super()._reset()

    async def _speculate(self, text: str) -> None:
        if not text:
            return
        if self._speculation:
            if self._match.matches(self._speculation.text, text):
                return  # the reply under way answers these words already
            await self._withdraw("the turn's words changed", regenerated=True)
        self._speculation = UserTurnSpeculation(text=text)
        self.stats.started += 1
        logger.debug(f"{self}: answering preemptively")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self, why: str, *, regenerated: bool = False) -> None:
        if self._take():
            if regenerated:
                self.stats.regenerated += 1
            else:
                self.stats.withdrawn += 1
            self._withdrawn += 1
            logger.debug(f"{self}: preemptive reply withdrawn: {why}")
            await self.trigger_user_turn_speculation_cancelled()

    def _take(self) -> UserTurnSpeculation | None:
        speculation, self._speculation = self._speculation, None
        return speculation
