"""How many UDP packets a busy event loop reads in time (a room with many calls is one).

A call's packets arrive every ~20 ms. When every loop iteration takes longer than that, a
socket read once per iteration falls behind each second until the kernel drops audio and ICE
consent checks. Used by ``tests/test_webrtc_udp.py`` and ``bench/udp_drain.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time

PACKETS = 150
SEND_EVERY_SECS = 0.005  # 200 packets a second: a few calls' worth
ITERATION_SECS = 0.02  # every loop iteration is this slow (a busy room)


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr) -> None:
        self.received += 1


async def read_on_a_busy_loop() -> int:
    """Packets read by the time the last one was sent (+ 3 iterations), of ``PACKETS``."""
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
        await asyncio.sleep(3 * ITERATION_SECS)
        return counter.received
    finally:
        busy = False
        transport.close()
