"""Start the benchmark's servers as subprocesses, wait for readiness, measure, and stop them.

Every server logs to a file under ``bench/results/logs/``; a server that exits or does not
become ready raises :class:`ServerError` with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from testkit.net import free_port

__all__ = ["ROOT", "RssSampler", "Server", "ServerError", "free_port", "llm_server"]

ROOT = Path(__file__).resolve().parents[1]
LOGS = Path(__file__).parent / "results" / "logs"


class ServerError(RuntimeError):
    """A server failed to start; the message ends with the tail of its log."""


class Server:
    """One subprocess with a log file and an HTTP readiness URL.

    Args:
        name: label, also the log file's name.
        argv: the command (run from the repository root).
        ready_url: GET returns 200 (and ``{"ok": true}`` when JSON) once the server is up.
        env: extra environment variables.
    """

    def __init__(self, name: str, argv: list[str], ready_url: str, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.ready_url = ready_url
        self.env = {**os.environ, **(env or {})}
        self.log_path = LOGS / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> Server:
        """Launch and wait for readiness; raises ServerError with the log's tail."""
        LOGS.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches its children
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}\n{self.tail()}")
            if self._ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise ServerError(
            f"{self.name} not ready at {self.ready_url} after {timeout}s\n{self.tail()}"
        )

    def _ready(self) -> bool:
        try:
            resp = httpx.get(self.ready_url, timeout=2)
        except httpx.HTTPError:
            return False
        if resp.status_code != 200:
            return False
        try:
            body = resp.json()
        except ValueError:
            return True
        return not isinstance(body, dict) or body.get("ok", True) is True

    def tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- tail of {self.log_path} ---\n" + "\n".join(text)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process (then its group), SIGKILL what is left after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the pid we started
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Children that outlived their parent (e.g. the supervised llama.cpp server).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)


def llm_server(port: int, name: str = "llm_server") -> Server:
    """The embedded LLM engine (``python -m bots.llm_server``: llama-server)."""
    argv = [sys.executable, "-m", "bots.llm_server", "--port", str(port)]
    return Server(name, argv, f"http://127.0.0.1:{port}/health")


def our_bot(port: int, llm_port: int) -> Server:
    """``python -m bots lumina`` on the embedded LLM server."""
    argv = [sys.executable, "-m", "bots", "lumina", "--port", str(port), "--no-greeting"]
    env = {"AVATARS_LLM_BACKEND": "embedded", "AVATARS_LLM_PORT": str(llm_port)}
    return Server("ours", argv, f"http://127.0.0.1:{port}/api/health", env)


def peer_bot(port: int, llm_port: int) -> Server:
    """The stock Pipecat peer (``bench/peer_bot.py``)."""
    argv = [
        sys.executable,
        "-m",
        "bench.peer_bot",
        "--port",
        str(port),
        "--llm-port",
        str(llm_port),
    ]
    return Server("peer", argv, f"http://127.0.0.1:{port}/api/health")


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class RssSampler:
    """Samples a process tree's RSS in a thread; ``peak`` is the highest seen (bytes)."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
