"""SmallWebRTC: the default transport, peer-to-peer from the browser, no server in between.

Signaling is Pipecat's (``POST /api/offer`` with ``{sdp, type, pc_id?}``, ``PATCH /api/offer``
for trickle ICE), so standard Pipecat clients work. No ICE servers are configured: host
candidates are enough on one machine or a LAN, and nothing is sent to a STUN server outside.

The bot's receive jitter buffer is shortened (see ``ShortAudioJitterBuffer``). Many calls in
one process load its event loop, so UDP sockets get larger buffers
(``with_big_receive_buffer``) and ICE consent checks tolerate a late loop
(``tolerant_query_consent``): bench/room_load.py measured calls dropping without these.
aiortc and aioice have no options for them, so they replace library code; this module only
defines the replacements. They are installed in one place, with a check of the exact library
version each was written against, by ``bots.patches`` (when the process's ``Runtime`` starts).

The process runs on uvloop (``bots.runtime.run``), which reads a ready UDP socket up to 32
datagrams per wakeup as libuv does. asyncio's own loop reads one per socket per iteration, so
8 calls in one loop, whose iterations outlast the 20 ms between a call's packets, lost audio
and consent checks (6 of 8 calls closed) until a patch drained sockets the way libuv does;
uvloop makes that patch unnecessary (``bench/udp_drain.py``: 150 of 150 packets read in time
on a loop busy 20 ms per iteration, as with the patch; asyncio's own read: 42).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket

import aioice.ice
import aioice.stun
from aiortc.jitterbuffer import JitterBuffer
from loguru import logger
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

# aiortc releases an incoming audio frame only once 4 newer frames have arrived (prefetch=4):
# 80 ms added to everything the user says, before the VAD even hears it (end of turn and
# barge-in alike). That buffer smooths playback for a listener; the bot doesn't play what it
# receives, it analyzes it, and a late or reordered packet still waits in the buffer (nothing
# is dropped). aiortc has no option for it, so its receiver gets this class instead.
AUDIO_PREFETCH = 1


class ShortAudioJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing audio after ``AUDIO_PREFETCH`` frames (not 4)."""

    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False):
        if not is_video:
            prefetch = min(prefetch, AUDIO_PREFETCH)
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)


# ICE consent freshness (RFC 7675) is how a peer that vanished is noticed. aioice sends one
# check every ~5 s with no retransmission: an answer later than 0.5 s is a failure, and 6 in a
# row close the connection. On a loaded 2-core machine, where every call shares one Python
# event loop, answers are often that late, and every call in the room was closed ~35 s in at
# once (bench/room_load.py). Browsers wait far longer. Here each check is retransmitted (0.5,
# 1, 2, 4 s: an answer up to 7.5 s late still counts), and 3 failed checks in a row close the
# connection: a peer that is really gone is noticed after ~35 s, as before.
CONSENT_RETRANSMISSIONS = 3
CONSENT_FAILURES = 3


async def tolerant_query_consent(self: aioice.ice.Connection) -> None:
    """``aioice.ice.Connection.query_consent`` with retransmissions (see above)."""
    assert self.remote_password is not None
    failures = 0
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        for pair in self._nominated.values():
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=self.remote_password.encode("utf8"),
                    retransmissions=CONSENT_RETRANSMISSIONS,
                )
                failures = 0
            except aioice.stun.TransactionError as e:
                failures += 1
                logger.debug(f"ICE consent check unanswered ({failures} in a row): {e!r}")
            if failures >= CONSENT_FAILURES:
                logger.warning(f"ICE consent expired ({failures} checks unanswered): closing")
                self._query_consent_task = None
                await self.close()
                return


# Every call's WebRTC traffic (audio RTP, RTCP, data channel, STUN) arrives on a UDP socket of
# its own, read by the one event loop. Linux gives a socket ~208 KB of receive buffer, about
# 1-2 s of a call's packets on loopback; when the loop falls behind for that long (several
# people talking at once on 2 cores), the kernel drops what does not fit: audio, and also the
# consent checks above, so calls closed. The buffer is raised to 4 MB (Linux caps it at
# net.core.rmem_max without privileges; then it is as large as allowed).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def with_big_receive_buffer(connection_made):
    """Wrap ``aioice.ice.StunProtocol.connection_made`` to enlarge the socket's buffer first."""

    def connection_made_with_big_buffer(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        connection_made(self, transport)

    return connection_made_with_big_buffer


# Pipecat ends a session when one audio write takes longer than this, taking it for a peer
# that stopped reading (default 10 s). Over SmallWebRTC a write waits for our own aiortc
# sender to pace the audio out, whatever the peer does, so a slow write means this process
# is overloaded (several people talking at once on 2 cores), not that anyone left: a closed
# connection ends the session through its disconnect event. With 10 s, an overloaded room
# dropped every call at once (bench/room_load.py); now it answers late instead.
AUDIO_WRITE_TIMEOUT_SECS = 60.0


def webrtc_transport(
    connection: SmallWebRTCConnection, *, audio_out_filter: BaseAudioFilter | None = None
) -> SmallWebRTCTransport:
    """A transport for one browser peer connection (16 kHz in; the bot's audio out).

    Args:
        connection: the peer connection.
        audio_out_filter: what the bot's audio passes through before it is sent (the
            session's playback gate).
    """
    return SmallWebRTCTransport(
        webrtc_connection=connection,
        params=TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_enabled=True,
            audio_out_write_timeout_secs=AUDIO_WRITE_TIMEOUT_SECS,
            audio_out_filter=audio_out_filter,
        ),
    )
