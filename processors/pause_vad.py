"""Silero VAD that also reports the moment speech pauses, before the turn is declared over.

Pipecat's VAD only announces speech *stopped* once ``stop_secs`` of silence have passed (0.2 s
here); in between, its analyzer sits in the ``STOPPING`` state and nobody hears of it. That
window is dead time on the critical path. Reporting the pause at its first silent frame lets
the STT service start transcribing speculatively (see ``processors.whisper_stt``), so the
transcript is (nearly) ready when the turn ends instead of starting then.

This is not a frame processor: it is the VAD analyzer the user aggregator runs. It emits no
frames; it calls ``on_pause()`` when speech gives way to silence and ``on_resume()`` when
speech comes back before the stop is declared.
"""

from __future__ import annotations

from collections.abc import Callable

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState


class PauseReportingSileroVAD(SileroVADAnalyzer):
    """``SileroVADAnalyzer`` with pause/resume callbacks (called on the event loop).

    Args:
        on_pause: called when speech turns into silence (``SPEAKING`` -> ``STOPPING``).
        on_resume: called when speech resumes before the stop (``STOPPING`` -> ``SPEAKING``).
        **kwargs: ``SileroVADAnalyzer`` arguments.
    """

    def __init__(
        self,
        *,
        on_pause: Callable[[], None] | None = None,
        on_resume: Callable[[], None] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.on_pause = on_pause
        self.on_resume = on_resume
        self._reported = VADState.QUIET

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyze like Silero does, then report pause/resume transitions."""
        state = await super().analyze_audio(buffer)
        before, self._reported = self._reported, state
        if before == VADState.SPEAKING and state == VADState.STOPPING and self.on_pause:
            self.on_pause()
        elif before == VADState.STOPPING and state == VADState.SPEAKING and self.on_resume:
            self.on_resume()
        return state
