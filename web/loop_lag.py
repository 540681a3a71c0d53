"""How late the server's event loop runs: the first sign that the room is overloaded.

Every call's audio, WebRTC and frame graph share one asyncio loop. When the machine has more
work than cores (several people talking at once on 2 cores), the loop falls behind: audio is
paced out late, and WebRTC consent checks, which must be answered within 0.5 s, fail. This
measures that lateness (a timer that should fire every 100 ms) so ``/api/stats`` can show it
and the log can say why answers are slow before calls start to suffer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from loguru import logger


class LoopLagMonitor:
    """Samples the loop's lateness; ``stats()`` gives the recent and overall worst."""

    def __init__(self, *, interval: float = 0.1, window_secs: float = 60.0, warn_ms: float = 500):
        """Set up; call :meth:`run` as a task.

        Args:
            interval: how often to sample.
            window_secs: how far back ``recent_max_ms`` looks.
            warn_ms: lateness worth a log line (at most one every 10 s).
        """
        self.interval = interval
        self.window_secs = window_secs
        self.warn_ms = warn_ms
        self.max_ms = 0.0
        self._recent: deque[tuple[float, float]] = deque()
        self._last_warning = 0.0

    async def run(self) -> None:
        """Forever: sleep ``interval`` and record how much later than that we woke up."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.record((now - asked - self.interval) * 1000, now)

    def record(self, lag_ms: float, now: float) -> None:
        """Keep one sample (and warn when it is bad)."""
        self.max_ms = max(self.max_ms, lag_ms)
        self._recent.append((now, lag_ms))
        while self._recent and self._recent[0][0] < now - self.window_secs:
            self._recent.popleft()
        if lag_ms >= self.warn_ms and now - self._last_warning > 10:
            self._last_warning = now
            logger.warning(
                f"the event loop ran {lag_ms:.0f} ms late: this machine is overloaded, so "
                "answers come late (fewer people talking at once, or a faster machine, helps)"
            )

    def stats(self) -> dict[str, float]:
        """Worst lateness in the last ``window_secs`` and since start, in ms."""
        recent = max((lag for _, lag in self._recent), default=0.0)
        return {"recent_max_ms": round(recent, 1), "max_ms": round(self.max_ms, 1)}
