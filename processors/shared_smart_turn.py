"""Smart-turn v3 with one ONNX Runtime session per process instead of one per call.

Consumes and emits no frames itself: it is the turn analyzer inside the user aggregator's stop
strategy. Pipecat's ``LocalSmartTurnAnalyzerV3`` opens its own ``InferenceSession`` in every
instance, i.e. for every call. The model is stateless (each inference sees the whole turn's
audio) and ``InferenceSession.run`` is thread-safe, so calls can share one session: a call then
starts without loading the model, and opening and closing many calls does not churn native
memory (each session's arena is ~20 MB that the process did not give back).
"""

from __future__ import annotations

from functools import cache

from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3


@cache
def _shared_session():
    """The process-wide session, loaded by Pipecat's own code (same model, same options)."""
    return LocalSmartTurnAnalyzerV3()._session


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """``LocalSmartTurnAnalyzerV3`` on the shared session."""

    def __init__(self, **kwargs):
        """Same parameters as ``BaseSmartTurn`` (``params``, ``sample_rate``)."""
        BaseSmartTurn.__init__(self, **kwargs)  # not LocalSmartTurnAnalyzerV3's: no new session
        self._log_data = False
        self._session = _shared_session()
