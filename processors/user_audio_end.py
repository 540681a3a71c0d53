"""Where the person's audio stops travelling down the frame graph.

Consumes ``InputAudioRawFrame`` (downstream), emits every other frame unchanged.

Pipecat's user aggregator passes every frame on, the person's audio included, so each 20 ms
frame would go on through memory, LLM, TTS, output transport and assistant aggregator, none of
which use it: 8 more queue hops per frame, 50 frames a second per call, and every hop also
wakes each observer's task. Nothing after the user aggregator needs that audio (STT and VAD
are before or in it, the page's mic meter is computed in the browser), so it ends here. With
8 calls in one room those hops were a large share of the event loop's time
(``bench/room_load.py``).
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.filters.function_filter import FunctionFilter


async def _not_user_audio(frame: Frame) -> bool:
    return not isinstance(frame, InputAudioRawFrame)


def user_audio_end() -> FunctionFilter:
    """A filter that drops the person's audio and lets everything else through."""
    # Audio frames are system frames, which FunctionFilter passes unless told otherwise.
    return FunctionFilter(_not_user_audio, filter_system_frames=True)
