"""Smart-turn v3 with one ONNX Runtime session per process instead of one per call.

Consumes and emits no frames itself: it is the turn analyzer inside the user aggregator's stop
strategy. Pipecat's ``LocalSmartTurnAnalyzerV3`` opens its own ``InferenceSession`` in every
instance, i.e. for every call. The model is stateless (each inference sees the whole turn's
audio) and ``InferenceSession.run`` is thread-safe, so calls can share one session: a call then
starts without loading the model, and opening and closing many calls does not churn native
memory (each session's arena is ~20 MB that the process did not give back). The caller (the
process's ``Runtime``) opens the session once with :func:`load_smart_turn_session`. Each
inference first lets a running whisper pass finish (``processors.speech_first``).
"""

from __future__ import annotations

from typing import Any

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from processors.speech_first import SPEECH_FIRST


def load_smart_turn_session() -> Any:
    """A smart-turn v3 session, loaded by Pipecat's own code (same model, same options)."""
    return LocalSmartTurnAnalyzerV3()._session


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """``LocalSmartTurnAnalyzerV3`` on a shared session.

    Args:
        session: the process's smart-turn session (:func:`load_smart_turn_session`).
        **kwargs: as for ``BaseSmartTurn`` (``params``, ``sample_rate``).
    """

    def __init__(self, *, session: Any, **kwargs):
        BaseSmartTurn.__init__(self, **kwargs)  # not LocalSmartTurnAnalyzerV3's: no new session
        self._log_data = False
        self._session = session

    def _predict_endpoint(self, audio_array: Any) -> dict[str, Any]:
        # In the analyzer's worker thread: let a running whisper pass finish first.
        SPEECH_FIRST.wait_idle()
        return super()._predict_endpoint(audio_array)
