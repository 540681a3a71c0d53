"""Silero VAD that reports speech starting, pausing, resuming and stopping as it sees them.

Pipecat's VAD announces speech *started* after ``start_secs`` and *stopped* after ``stop_secs``
of silence, as frames that queue behind other work. Two latency tricks need the analyzer's
own view, at once and without a frame hop:

* **pause** (first silent frame after speech): the STT service starts transcribing then, so
  the transcript is (nearly) ready when the turn ends (``processors.whisper_stt``);
* **onset** (first frame Silero scores as speech): the bot's audio is held at once
  (``processors.playback_gate``). Pipecat's own start also needs ``min_volume``, measured over
  a 400 ms loudness window with smoothing, which lags speech onset by 200-400 ms; Silero's
  score alone reacts in ~60-80 ms. Then ``start_secs`` and the barge-in guard confirm a real
  interruption ~0.4 s later. A **false start** releases the hold: no speech-like frame for
  150 ms while the VAD is still quiet, or speech-like sound the VAD hasn't confirmed within
  0.5 s (too quiet: a TV in the next room must not keep the avatar silent).

This is not a frame processor: it is the VAD analyzer the user aggregator runs. It emits no
frames; it calls the listeners' callbacks on the event loop.

Silero runs on the event loop, not in Pipecat's per-analyzer worker thread: a 20 ms frame
costs ~0.3 ms of inference, less than the hop to the thread and back on a busy loop (the
thread must win the GIL back each time). With 8 calls in one room the hops made each call's
user aggregator fall behind its audio; audio frames are system frames, which a processor takes
before anything else queued, so the data frames behind them (the greeting, transcripts) never
got through (``bench/room_load.py``). Silent windows skip Silero altogether
(``SILENCE_DBFS``).

Every call shares one ONNX Runtime session (as smart-turn does, ``processors.shared_smart_turn``):
Silero's recurrent state and context live in the per-call model wrapper
(:class:`SileroOnCallState`) and are passed into each ``run``, so the session itself is
stateless, and ``run`` is thread-safe. Pipecat's analyzer opens a session per instance, i.e. per
call, whose native arena the process keeps after the call. The caller (the process's
``Runtime``) opens the session once and hands each call a wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState


def load_silero_session() -> Any:
    """A Silero ONNX Runtime session, loaded by Pipecat's own code (same model, same options)."""
    return SileroVADAnalyzer()._model.session


class SileroOnCallState(SileroOnnxModel):
    """Pipecat's Silero wrapper (one call's recurrent state) on a shared session.

    Args:
        session: the process's Silero session (:func:`load_silero_session`).
    """

    def __init__(self, session: Any):  # not SileroOnnxModel's: it would open a new session
        self.session = session
        self.reset_states()
        self.sample_rates = [8000, 16000]


@dataclass
class VADListener:
    """Callbacks for the VAD's transitions (any may be None)."""

    on_onset: Callable[[], None] | None = None
    """First frame whose Silero score passes ``onset_confidence`` while the VAD is quiet."""
    on_false_start: Callable[[], None] | None = None
    """No speech-like frame for ``FALSE_START_SECS`` after an onset, VAD still quiet."""
    on_start: Callable[[], None] | None = None
    """Speech confirmed (``start_secs`` of it): ``STARTING`` -> ``SPEAKING``."""
    on_pause: Callable[[], None] | None = None
    """First silent frame after speech: ``SPEAKING`` -> ``STOPPING``."""
    on_resume: Callable[[], None] | None = None
    """Speech again before the stop: ``STOPPING`` -> ``SPEAKING``."""
    on_stop: Callable[[], None] | None = None
    """``stop_secs`` of silence: ``STOPPING`` -> ``QUIET``."""


# Windows quieter than this, while the VAD is quiet, are silence without asking Silero: a
# person talking is 30-50 dB louder, and Pipecat's min_volume would not count them anyway. A
# microphone with the browser's noise suppression, and a listening tester, send mostly such
# windows, so most Silero runs (~0.3 ms each, 31 a second per call, on the event loop) are skipped.
SILENCE_DBFS = -60.0
SILENCE_RMS = 32768 * 10 ** (SILENCE_DBFS / 20)


def _rms(buffer: bytes) -> float:
    """Root mean square of 16-bit PCM (0 for an empty buffer)."""
    samples = np.frombuffer(buffer, np.int16).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


FALSE_START_SECS = 0.15
MAX_UNCONFIRMED_SECS = 0.5

_EVENTS = {
    (VADState.STARTING, VADState.SPEAKING): "on_start",
    (VADState.QUIET, VADState.SPEAKING): "on_start",
    (VADState.SPEAKING, VADState.STOPPING): "on_pause",
    (VADState.STOPPING, VADState.SPEAKING): "on_resume",
    (VADState.STOPPING, VADState.QUIET): "on_stop",
    (VADState.SPEAKING, VADState.QUIET): "on_stop",
}


class ReportingSileroVAD(SileroVADAnalyzer):
    """``SileroVADAnalyzer`` that calls its listeners on state transitions.

    Args:
        model: this call's Silero model (:class:`SileroOnCallState`; a test may pass any
            callable ``model(audio_float32, sample_rate) -> [confidence]`` with
            ``reset_states()``).
        listeners: who to tell.
        onset_confidence: Silero score that counts as a speech-like frame for the onset. Lower
            than the VAD's own threshold: an onset only holds the bot's voice for a moment,
            so reacting one frame sooner is worth a few more false starts.
        sample_rate: as for ``SileroVADAnalyzer``.
        params: ``VADParams``, as for ``SileroVADAnalyzer``.
    """

    def __init__(
        self,
        *,
        model: Any,
        listeners: list[VADListener] | None = None,
        onset_confidence: float = 0.5,
        sample_rate: int | None = None,
        params=None,
    ):
        # SileroVADAnalyzer.__init__ minus opening a session of its own.
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self.listeners = listeners or []
        self._onset_confidence = onset_confidence
        self._reported = VADState.QUIET
        self._peak_confidence = 0.0  # highest Silero score in the current analyze_audio call
        self._audio_secs = 0.0
        self._onset = False
        self._onset_at = 0.0
        self._last_speechlike = 0.0
        self._ignore_until_gap = False  # unconfirmed sound: no new onset until a silent gap
        self._silent = False  # the last window was below SILENCE_DBFS (model not run)

    def voice_confidence(self, buffer) -> float:
        """Silero's score for one window (0 for silence), remembered for the onset check."""
        # Only between utterances: inside one, a stop consonant's closure can be this quiet,
        # and Silero must keep its state through it or the turn ends mid-word.
        if self._vad_state == VADState.QUIET and _rms(buffer) < SILENCE_RMS:
            # Silero starts afresh after it, as Pipecat's own periodic reset does when quiet.
            if not self._silent:
                self._model.reset_states()
                self._silent = True
            return 0.0
        self._silent = False
        confidence = super().voice_confidence(buffer)
        self._peak_confidence = max(self._peak_confidence, confidence)
        return confidence

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Analyze like Silero does, then report the transitions, if any."""
        self._peak_confidence = 0.0
        state = self._run_analyzer(buffer)  # inline: see the module docstring
        # Audio time, not wall time: the same decisions however the frames are delivered.
        self._audio_secs += len(buffer) / (2 * self.sample_rate)
        now = self._audio_secs
        unconfirmed = state in (VADState.QUIET, VADState.STARTING) and self._reported in (
            VADState.QUIET,
            VADState.STARTING,
        )
        if self._peak_confidence >= min(self._onset_confidence, self.params.confidence):
            self._last_speechlike = now
        elif now - self._last_speechlike >= FALSE_START_SECS:
            self._ignore_until_gap = False
        if (
            not self._onset
            and not self._ignore_until_gap
            and unconfirmed
            and self._last_speechlike == now
        ):
            self._onset, self._onset_at = True, now
            self._emit("on_onset")
        elif self._onset and unconfirmed:
            if now - self._last_speechlike >= FALSE_START_SECS:
                self._onset = False
                self._emit("on_false_start")
            elif now - self._onset_at >= MAX_UNCONFIRMED_SECS:
                self._onset, self._ignore_until_gap = False, True
                self._emit("on_false_start")
        before, self._reported = self._reported, state
        if event := _EVENTS.get((before, state)):
            if event == "on_stop":
                self._onset = False
            self._emit(event)
        return state

    def _emit(self, event: str) -> None:
        for listener in self.listeners:
            if callback := getattr(listener, event):
                callback()
