"""Keep a long-running child process up: start it, wait until it is ready, restart on crash.

Used for the embedded LLM server. Readiness is an HTTP URL answering 200, not "the process
exists": llama.cpp needs a moment to map the model, and a client that connects before that
gets refused connections. A crash restarts the child with exponential backoff (capped), and a
child that stays up for a while resets the backoff. SIGINT/SIGTERM stop the child cleanly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loguru import logger


def url_ready(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Supervisor:
    """Run ``cmd`` forever (until stopped), restarting it when it dies.

    Args:
        name: label for logs.
        cmd: the child's argv.
        ready_url: polled until it answers 200 after each start.
        ready_timeout: seconds to wait for readiness before killing and restarting.
        max_backoff: longest pause between restarts.
        stable_after: seconds of uptime after which the backoff resets.
        env: the child's environment (default: this process's).
        on_ready: called with the child's pid once it is ready (from the supervising thread).
        on_exit: called with its exit code when a ready child exits (crash or stop).
    """

    name: str
    cmd: Sequence[str]
    ready_url: str
    ready_timeout: float = 120.0
    max_backoff: float = 30.0
    stable_after: float = 60.0
    env: dict[str, str] | None = None
    on_ready: Callable[[int], None] | None = None
    on_exit: Callable[[int], None] | None = None
    restarts: int = 0
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _stopping: bool = False
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def start_child(self) -> bool:
        """Start the child and wait until it is ready; False if it died or timed out."""
        logger.info(f"[{self.name}] starting: {' '.join(self.cmd)}")
        self._proc = subprocess.Popen(list(self.cmd), env=self.env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and not self._stopping:
            if self._proc.poll() is not None:
                logger.error(f"[{self.name}] exited with {self._proc.returncode} while starting")
                return False
            if url_ready(self.ready_url):
                logger.info(f"[{self.name}] ready at {self.ready_url}")
                return True
            time.sleep(0.2)
        if not self._stopping:
            logger.error(f"[{self.name}] not ready after {self.ready_timeout:.0f}s; restarting")
        self.stop_child()
        return False

    def stop_child(self) -> None:
        """Terminate the child (kill it if it ignores SIGTERM for 10 s)."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._wait_child(kill_after=10.0)

    def _wait_child(self, kill_after: float | None = None) -> int:
        """Poll until the child exits; once stopping, SIGKILL it after ``kill_after`` s.

        Polling (not ``Popen.wait``) keeps the signal handler from ever blocking on the
        same process the main loop waits for.
        """
        assert self._proc is not None
        deadline = None
        while (code := self._proc.poll()) is None:
            if self._stopping or kill_after is not None:
                deadline = deadline or time.monotonic() + (kill_after or 10.0)
                if time.monotonic() > deadline:
                    self._proc.kill()
            time.sleep(0.1)
        return code

    def stop(self, *_: object) -> None:
        """Signal handler: ask the loop to end and forward SIGTERM to the child."""
        self._stopping = True
        self._stopped.set()
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()

    def run(self, *, handle_signals: bool = True) -> int:
        """Supervise until stopped; returns the exit code for the process.

        Args:
            handle_signals: stop on SIGINT/SIGTERM (only possible in the main thread).
        """
        if handle_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        backoff = 1.0
        while not self._stopping:
            started = time.monotonic()
            if self.start_child():
                assert self._proc is not None
                if self.on_ready:
                    self.on_ready(self._proc.pid)
                code = self._wait_child()
                if self.on_exit:
                    self.on_exit(code)
                if self._stopping:
                    break
                logger.error(f"[{self.name}] crashed with exit code {code}")
            if self._stopping:
                break
            if time.monotonic() - started > self.stable_after:
                backoff = 1.0
            self.restarts += 1
            logger.warning(f"[{self.name}] restart #{self.restarts} in {backoff:.0f}s")
            self._stopped.wait(min(backoff, self.max_backoff))  # wakes at once on stop()
            backoff = min(backoff * 2, self.max_backoff)
        logger.info(f"[{self.name}] stopped")
        return 0


if __name__ == "__main__":  # pragma: no cover - manual use: python -m bots.supervisor URL CMD...
    sys.exit(Supervisor("child", sys.argv[2:], sys.argv[1]).run())
