"""Holds a preemptive reply's voice until its turn is confirmed; drops it if it is withdrawn.

Pipecat holds a speculative response inside the LLM service (its ``SpeculationGate``), so the
TTS starts only once the turn is confirmed. Here the same gate sits after the TTS, right before
the output transport: the reply's first sentence is already synthesized when the turn is
confirmed, and its audio leaves at once. The LLM service lets speculative text through
(``bots.pipeline.LocalLLMService``) and says, ahead of each reply, whether it answers an
unconfirmed turn (``ReplyStartFrame``).

While holding, every frame of the reply waits here in order (audio, spoken-word text, face
cues, the response's start and end), so neither the person nor the assistant aggregator after
the transport sees any of it. A ``UserStoppedSpeakingFrame`` (the turn confirmed) releases it;
an ``EagerEndOfTurnCancelFrame`` or an ``InterruptionFrame`` discards it. System frames are
never held.

Consumes: ``ReplyStartFrame`` (not passed on) and everything of a reply. Emits: the same
frames, later or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import ControlFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.speculation_gate import SpeculationGate, SpeculationState


@dataclass
class ReplyStartFrame(ControlFrame):
    """Sent by the LLM service ahead of each reply it starts.

    Parameters:
        preemptive: the reply answers a turn that is not confirmed yet.
    """

    preemptive: bool = False


class PreemptiveReplyHold(FrameProcessor):
    """Pipecat's speculation gate, placed before the output transport."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._gate = SpeculationGate(name=f"{self}::gate")

    @property
    def holding(self) -> bool:
        """Whether a preemptive reply is being held."""
        return self._gate.state is SpeculationState.HOLDING

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold, release or drop the frame (see the module docstring)."""
        await super().process_frame(frame, direction)
        if isinstance(frame, ReplyStartFrame):
            self._gate.begin_speculation(frame.preemptive)
            return
        for gated, gated_direction in self._gate.process(frame, direction):
            await self.push_frame(gated, gated_direction)
