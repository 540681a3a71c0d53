"""Sends each chunk's face cues to the page as its audio starts playing.

The TTS puts a ``FaceCuesFrame`` ahead of every chunk of audio (``processors.piper_tts``). The
output transport passes it on once the audio before it has been handed to the connection,
which is when this chunk starts to play on the wire; this observer sees it leave the
transport and sends it as an RTVI server message::

    {"type": "face", "visemes": [[0, "rest"], [35, "KG"], ...],
     "expressions": [[410, "happy", 1.0]], "duration_ms": 1690}

Times are ms from the chunk's first sample; the page adds its own playout delay (jitter
buffer and output latency, from the receiver's stats) and schedules on its clock. An
interruption flushes the transport's queue, so cues for audio never played are never sent.

Consumes (observes): ``FaceCuesFrame`` pushed by the output transport. Emits: RTVI
``server-message`` with the cues.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_output import BaseOutputTransport

from processors.face_frames import FaceCuesFrame

FACE_MESSAGE = "face"


def face_message(frame: FaceCuesFrame) -> dict[str, Any]:
    """The cues as the page gets them."""
    return {
        "type": FACE_MESSAGE,
        "visemes": [list(v) for v in frame.visemes],
        "expressions": [list(e) for e in frame.expressions],
        "duration_ms": frame.duration_ms,
    }


class FaceCueSender(BaseObserver):
    """Forwards face cues leaving the output transport to the page.

    Args:
        send: sends one RTVI server message (``RTVIProcessor.send_server_message``).
    """

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], **kwargs):
        super().__init__(**kwargs)
        self._send = send

    async def on_push_frame(self, data: FramePushed):
        """Send cues when the transport releases them (each frame leaves it once)."""
        if isinstance(data.frame, FaceCuesFrame) and isinstance(data.source, BaseOutputTransport):
            await self._send(face_message(data.frame))
