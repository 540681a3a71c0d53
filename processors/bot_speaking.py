"""Whether the bot's voice is playing right now, from the output transport's own frames.

An observer, not a processor: it consumes and emits no frames. It watches
``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` (sent when audio really starts and
stops playing) so a call can be ended after the reply the person is hearing, not merely after
the LLM has finished writing it (the assistant turn can close before its audio has played).
"""

from __future__ import annotations

import time

from pipecat.frames.frames import BotStartedSpeakingFrame, BotStoppedSpeakingFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed


class BotSpeakingObserver(BaseObserver):
    """``speaking`` and ``quiet_secs()``: is the bot audible, and for how long it has not been."""

    def __init__(self):
        """Start quiet (told of each frame once, not at every hop: the flags are idempotent)."""
        super().__init__(observe_every_push=False)
        self.speaking = False
        self._stopped_at = time.monotonic()

    async def on_push_frame(self, data: FramePushed) -> None:
        """Follow the speaking frames."""
        if isinstance(data.frame, BotStartedSpeakingFrame):
            self.speaking = True
        elif isinstance(data.frame, BotStoppedSpeakingFrame) and self.speaking:
            self.speaking = False
            self._stopped_at = time.monotonic()

    def quiet_secs(self) -> float:
        """Seconds since the bot's voice last stopped (0 while it speaks)."""
        return 0.0 if self.speaking else time.monotonic() - self._stopped_at
