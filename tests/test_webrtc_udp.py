"""The room's UDP sockets keep up when the event loop is busy (see ``bots.runtime.run``).

A call's packets arrive every ~20 ms. When every loop iteration takes longer than that (many
calls in one process), a socket read once per iteration falls further behind each second
until the kernel drops audio and ICE consent checks, and calls close.
"""

from __future__ import annotations

import pytest

from bots.runtime import run
from testkit.udp import PACKETS, read_on_a_busy_loop


def test_a_busy_loop_still_reads_every_packet_as_it_comes():
    # On the loop every process runs on. Read once per 20 ms iteration, as asyncio's own loop
    # does, only ~a third would have arrived by now (bench/udp_drain.py: 42 of 150).
    received = run(read_on_a_busy_loop())
    assert received >= PACKETS - 10, f"{received} of {PACKETS} read"


def test_a_patch_refuses_code_it_was_not_written_for():
    from bots.patches import PATCHES, PatchVersionError

    jitter = next(p for p in PATCHES if p.package == "aiortc")
    moved = type(jitter)(**{**jitter.__dict__, "versions": ("0.0.1",)})
    with pytest.raises(PatchVersionError) as err:
        moved.check()
    message = str(err.value)
    assert "aiortc 0.0.1" in message and "aiortc 1.16.0 is installed" in message
    assert "bots/patches.py" in message and "make install" in message
