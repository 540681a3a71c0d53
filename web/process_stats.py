"""What this process costs: resident memory, and how far behind its calls read their audio."""

from __future__ import annotations

from pathlib import Path

from transports.webrtc import Signaling


def audio_in_backlog_ms(webrtc: Signaling) -> int:
    """The most received audio any call has not yet handed to its frame graph, in ms.

    aiortc queues decoded 20 ms frames for the session to read; a queue that grows means the
    event loop can't keep up and the bot hears people late (and holds their audio in memory).
    """
    frames = 0
    for connection in webrtc.connections():
        for receiver in connection.pc.getReceivers():
            queue = getattr(receiver.track, "_queue", None)  # aiortc keeps no public size
            if queue is not None:
                frames = max(frames, queue.qsize())
    return frames * 20


def rss_mb() -> float:
    """This process's resident memory (Linux ``/proc``; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
