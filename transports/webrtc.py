"""SmallWebRTC: the default transport, peer-to-peer from the browser, no server in between.

Signaling is Pipecat's (``POST /api/offer`` with ``{sdp, type, pc_id?}``, ``PATCH /api/offer``
for trickle ICE), so standard Pipecat clients work. No ICE servers are configured: host
candidates are enough on one machine or a LAN, and nothing is sent to a STUN server outside.
"""

from __future__ import annotations

from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport


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
