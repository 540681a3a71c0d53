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
import functools
import ipaddress
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import aioice.stun
import aiortc.sdp
from aiortc.jitterbuffer import JitterBuffer
from loguru import logger
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, SmallWebRTCTransport

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


# Pipecat's output track hands aiortc 10 ms frames, silence included, so each call's sender
# makes 100 trips a second through recv(), a thread-pool hop for the Opus encoder, and the
# encoder's own buffering, which only emits a packet every other frame (Opus packets are
# 20 ms). These per-frame trips, not the codec (~1 % of a core), are most of what an idle call
# costs (py-spy: the pool's threads were 25 % of an idle room's samples). Frames of one packet
# each halve the trips; the audio, its pacing and the packets on the wire are the same.
OUTPUT_FRAME_MS = 20


class PacketSizedAudioTrack(RawAudioTrack):
    """Pipecat's output track, in ``OUTPUT_FRAME_MS`` frames (one Opus packet) instead of 10 ms.

    Pipecat's track sizes everything by its ``_samples_per_10ms``/``_bytes_per_10ms``; they
    are set to one packet here. Writes are padded with silence to whole frames (Pipecat
    writes 40 ms chunks, so this only matters for an unusual ``audio_out_10ms_chunks``).
    """

    def __init__(self, sample_rate: int, auto_silence: bool = True):
        super().__init__(sample_rate, auto_silence)
        self._samples_per_10ms = sample_rate * OUTPUT_FRAME_MS // 1000
        self._bytes_per_10ms = self._samples_per_10ms * 2

    def add_audio_bytes(self, audio_bytes: bytes):
        """Queue audio (padded to whole frames); the future resolves once it is sent."""
        if short := len(audio_bytes) % self._bytes_per_10ms:
            audio_bytes += bytes(self._bytes_per_10ms - short)
        return super().add_audio_bytes(audio_bytes)


# The bot's audio goes out at Opus's own 48 kHz. At Pipecat's default 24 kHz, aiortc's encoder
# resamples every frame to 48 kHz, and the resampler's delay plus its 20 ms framing put each
# packet's audio one packet late: a reply's first voiced packet left 37 ms after its first TTS
# audio, against 13 ms at 48 kHz (client hears it 76 -> 47 ms; bench/output_path.py). Piper's
# 22050 Hz is resampled once, by the TTS service, straight to this.
AUDIO_OUT_SAMPLE_RATE = 48000


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
            audio_out_sample_rate=AUDIO_OUT_SAMPLE_RATE,
            audio_out_write_timeout_secs=AUDIO_WRITE_TIMEOUT_SECS,
            audio_out_filter=audio_out_filter,
        ),
    )


class OfferError(ValueError):
    """The offer itself is bad (its SDP does not parse): the caller's fault, a 400."""


MAX_SDP_CHARS = 32_000  # a browser's offer is 2-8 KB, with every candidate it gathered
MAX_MEDIA_SECTIONS = 8


def check_offer(
    sdp: str, type_: str, caller: str | None = None, *, candidates: bool = True
) -> None:
    """Refuse an offer no call can come of, before a peer connection is made for it.

    aiortc accepts text with no media section at all ("not an sdp at all" parses as an empty
    session), which would leave a peer connection that can never connect; an offer must carry
    an audio section with the ICE credentials and DTLS fingerprint a connection needs.

    Raises:
        OfferError: what is wrong, in words fit for the caller.
    """
    if type_ != "offer":
        raise OfferError(f"expected an SDP offer, got {type_!r}")
    if len(sdp) > MAX_SDP_CHARS:
        raise OfferError(f"the SDP is {len(sdp)} characters long; at most {MAX_SDP_CHARS}")
    try:
        session = aiortc.sdp.SessionDescription.parse(sdp)
    except Exception as e:
        raise OfferError(f"the offer's SDP could not be read ({e})") from e
    if not 0 < len(session.media) <= MAX_MEDIA_SECTIONS:
        raise OfferError(
            f"the offer's SDP could not be read: {len(session.media)} media sections "
            f"(expected 1-{MAX_MEDIA_SECTIONS}, one of them audio)"
        )
    if not any(m.kind == "audio" for m in session.media):
        raise OfferError("the offer's SDP could not be read: it has no audio section")
    named = [c for m in session.media for c in m.ice_candidates] if candidates else []
    if len(named) > MAX_SDP_CANDIDATES:
        raise OfferError(f"the offer names {len(named)} ICE candidates; at most 32")
    for c in named:
        check_candidate(aiortc.sdp.candidate_to_sdp(c), caller)
    for m in session.media:
        ice_ok = m.ice is not None and m.ice.usernameFragment and m.ice.password
        if not ice_ok or not m.dtls or not m.dtls.fingerprints:
            raise OfferError(
                f"the offer's SDP could not be read: its {m.kind} section lacks ICE credentials "
                "or a DTLS fingerprint"
            )


MAX_CANDIDATES_PER_PATCH = 8
"""A browser trickles one to a few candidates per message; more is someone probing."""
MAX_SDP_CANDIDATES = 32
MAX_CANDIDATE_CHARS = 512


@functools.cache
def _own_addresses() -> frozenset[str]:
    return frozenset(a.lower() for a in aioice.ice.get_host_addresses(True, True))


def check_candidate(text: str, caller: str | None = None) -> None:
    """Refuse an ICE candidate that is malformed or names an address beyond the LAN.

    The server runs connectivity checks against every address a client names: a client
    naming others' addresses would have the room send STUN packets wherever it likes. The
    room serves this machine and its LAN (no STUN or TURN servers), so a real caller's
    candidates are loopback, private, link-local or mDNS (``<uuid>.local``) names, the
    caller's own address (``caller``, as HTTP saw it: a LAN of public addresses), or one of
    this machine's (a caller here names every interface it has).

    Raises:
        OfferError: what is wrong with it.
    """
    if len(text) > MAX_CANDIDATE_CHARS:
        raise OfferError(f"an ICE candidate is at most {MAX_CANDIDATE_CHARS} characters")
    try:
        candidate = aiortc.sdp.candidate_from_sdp(text.removeprefix("candidate:"))
    except Exception:
        raise OfferError("an ICE candidate could not be read") from None
    if candidate.protocol.lower() not in ("udp", "tcp") or candidate.component not in (1, 2):
        raise OfferError("an ICE candidate must be UDP or TCP, component 1 or 2")
    if not 0 < candidate.port < 65536:
        raise OfferError("an ICE candidate's port must be 1-65535")
    host = candidate.ip.lower()
    if host.endswith(".local"):
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise OfferError("an ICE candidate must name an IP address or a .local name") from None
    if caller is not None and host == caller.lower():
        return
    if host in _own_addresses():  # a caller on this machine names all its interfaces
        return
    if not (address.is_private or address.is_loopback or address.is_link_local):
        raise OfferError("ICE candidates must be on this machine or its local network")


class Signaling(SmallWebRTCRequestHandler):
    """Pipecat's SmallWebRTC signaling, where an offer that fails leaves nothing behind.

    Pipecat's handler logs and swallows an error of the connection callback (a session that
    could not start), answers the offer with 200 anyway and keeps the connection in its map;
    and an SDP that does not parse leaves the half-made peer connection open. Both kept peer
    connections and their tasks alive long after (a burst of bad offers: 5 connections with no
    session two minutes later). Here either error closes the connection and is raised: a bad
    SDP as :class:`OfferError`, a failed callback as itself. Renegotiations of a live
    connection are Pipecat's own.
    """

    async def handle_web_request(
        self,
        request: SmallWebRTCRequest,
        webrtc_connection_callback: Callable[[Any], Awaitable[None]],
    ) -> dict[str, str] | None:
        """Answer an offer: a new peer connection, or a renegotiation of a live one."""
        if request.pc_id and request.pc_id in self._pcs_map:
            return await super().handle_web_request(request, webrtc_connection_callback)
        # Its candidates were checked where the caller's address is known (web.app).
        check_offer(request.sdp, request.type, candidates=False)
        connection = SmallWebRTCConnection(ice_servers=self._ice_servers)
        try:
            try:
                await connection.initialize(sdp=request.sdp, type=request.type)
            except Exception as e:
                raise OfferError(f"the offer's SDP could not be read ({e})") from e
            connection.add_event_handler("closed", self._forget)
            await webrtc_connection_callback(connection)
            answer = connection.get_answer()
            if answer is None:
                raise RuntimeError("the peer connection produced no SDP answer")
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.disconnect()
            raise
        if connection.pc.connectionState != "closed":  # not already gone again
            self._pcs_map[answer["pc_id"]] = connection
        return answer

    async def _forget(self, connection: SmallWebRTCConnection) -> None:
        self._pcs_map.pop(connection.pc_id, None)

    def connection(self, pc_id: str) -> SmallWebRTCConnection | None:
        """The live peer connection ``pc_id``, if any."""
        return self._pcs_map.get(pc_id)

    def count(self) -> int:
        """Live peer connections."""
        return len(self._pcs_map)

    def connections(self) -> list[SmallWebRTCConnection]:
        """Every live peer connection."""
        return list(self._pcs_map.values())


# A page pings over the data channel every second. One that stops (a closed tab, a crashed
# browser, a laptop that left the network) is gone: aiortc itself only notices when ICE
# consent checks fail, ~35-60 s later, and the lobby showed the person "talking" until then.
# A silence is only judged while the event loop is on time: a loop that was itself stalled for
# a second or more may simply not have read the pings waiting in its socket yet.
PEER_SILENCE_SECS = 6.0
WATCH_EVERY_SECS = 0.5


async def watch_peer(
    connection: SmallWebRTCConnection,
    *,
    connect_timeout_secs: float,
    silence_secs: float = PEER_SILENCE_SECS,
) -> str:
    """Close a peer connection that never connects, or whose page went quiet.

    Returns why it ended: ``"closed"`` (by either side), ``"never connected"`` or
    ``"went quiet"``. Closing it ends its session (the transport's disconnect event).
    """
    started = time.monotonic()
    connected = False
    while True:
        before = time.monotonic()
        await asyncio.sleep(WATCH_EVERY_SECS)
        on_time = time.monotonic() - before < WATCH_EVERY_SECS + 1.0
        state = connection.pc.connectionState
        if state in ("closed", "failed"):
            return "closed"
        connected = connected or state == "connected"
        if not connected and time.monotonic() - started > connect_timeout_secs:
            logger.warning(f"peer {connection.pc_id} did not connect in {connect_timeout_secs}s")
            await connection.disconnect()
            return "never connected"
        last = connection._last_received_time  # Pipecat keeps the last ping only privately
        if connected and on_time and last is not None and time.time() - last > silence_secs:
            logger.info(f"peer {connection.pc_id} sent nothing for {silence_secs}s: hanging up")
            await connection.disconnect()
            return "went quiet"
