"""The room's UDP sockets keep up when the event loop is busy (see ``transports.webrtc``).

A call's packets arrive every ~20 ms. When every loop iteration takes longer than that (many
calls in one process), a socket read once per iteration falls further behind each second
until the kernel drops audio and ICE consent checks, and calls close.
"""

from __future__ import annotations

import asyncio
import socket
import time

import transports.webrtc  # noqa: F401  (installs the draining read)

PACKETS = 150
SEND_EVERY_SECS = 0.005  # 200 packets a second: a few calls' worth
ITERATION_SECS = 0.02  # every loop iteration is this slow (a busy room)


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr) -> None:
        self.received += 1


async def test_a_busy_loop_still_reads_every_packet_as_it_comes():
    loop = asyncio.get_running_loop()
    transport, counter = await loop.create_datagram_endpoint(_Counter, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    busy = True

    def slow_iteration() -> None:
        # Blocks the loop as a room with many calls does, once per iteration.
        time.sleep(ITERATION_SECS)
        if busy:
            loop.call_soon(slow_iteration)

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(PACKETS):
                sock.sendto(i.to_bytes(4, "big") * 40, ("127.0.0.1", port))
                time.sleep(SEND_EVERY_SECS)

    try:
        loop.call_soon(slow_iteration)
        await asyncio.to_thread(send)
        # Read once per 20 ms iteration, only ~a third would have arrived by now (measured:
        # ~45 of 150 with CPython's own read); drained, the backlog is a wakeup or two.
        await asyncio.sleep(3 * ITERATION_SECS)
        assert counter.received >= PACKETS - 10, f"{counter.received} of {PACKETS} read"
    finally:
        busy = False
        transport.close()


def test_the_patch_is_the_one_asyncio_uses():
    from asyncio.selector_events import _SelectorDatagramTransport

    assert _SelectorDatagramTransport._read_ready is transports.webrtc._draining_read_ready
