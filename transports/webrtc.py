"""SmallWebRTC: the default transport, peer-to-peer from the browser, no server in between.

Signaling is Pipecat's (``POST /api/offer`` with ``{sdp, type, pc_id?}``, ``PATCH /api/offer``
for trickle ICE), so standard Pipecat clients work. No ICE servers are configured: host
candidates are enough on one machine or a LAN, and nothing is sent to a STUN server outside.

The bot's receive jitter buffer is shortened (see ``_ShortAudioJitterBuffer``).
"""

from __future__ import annotations

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

# aiortc releases an incoming audio frame only once 4 newer frames have arrived (prefetch=4):
# 80 ms added to everything the user says, before the VAD even hears it (end of turn and
# barge-in alike). That buffer smooths playback for a listener; the bot doesn't play what it
# receives, it analyzes it, and a late or reordered packet still waits in the buffer (nothing
# is dropped). aiortc has no option for it, so its receiver gets this class instead.
AUDIO_PREFETCH = 1


class _ShortAudioJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False):
        if not is_video:
            prefetch = min(prefetch, AUDIO_PREFETCH)
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)


aiortc.rtcrtpreceiver.JitterBuffer = _ShortAudioJitterBuffer  # type: ignore[misc]


def webrtc_transport(connection: SmallWebRTCConnection) -> SmallWebRTCTransport:
    """A transport for one browser peer connection (16 kHz in; the bot's audio out)."""
    return SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_enabled=True,
        ),
    )
