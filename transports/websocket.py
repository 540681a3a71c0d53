"""FastAPI WebSocket transport with Pipecat's protobuf serializer.

For clients that can't do WebRTC (scripts, embedded devices). Audio is 16-bit PCM inside
protobuf frames, as Pipecat's WebSocket clients send it. WebRTC is preferred in browsers: it
has echo cancellation and jitter buffering built in.
"""

from __future__ import annotations

from fastapi import WebSocket
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)


def websocket_transport(
    websocket: WebSocket, *, audio_out_filter: BaseAudioFilter | None = None
) -> FastAPIWebsocketTransport:
    """A transport for one accepted WebSocket (``audio_out_filter``: see ``webrtc_transport``)."""
    return FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=ProtobufFrameSerializer(),
            audio_out_filter=audio_out_filter,
        ),
    )
