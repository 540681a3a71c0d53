"""Shared fixtures: a real embedded LLM server, started once per test run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Tests never use a developer's running Ollama or LLM server: they start their own.
os.environ["AVATARS_LLM_BACKEND"] = "embedded"
os.environ.setdefault("AVATARS_LLM_PORT", str(free_port()))
# ...and never read or write a developer's memories: each run gets its own data dir.
os.environ["AVATARS_DATA_DIR"] = tempfile.mkdtemp(prefix="avatars-test-")
# End-of-session LLM distillation would run between tests and slow the next test's first
# reply on the one shared LLM server; test_memory_e2e exercises it directly.
os.environ["AVATARS_MEMORY_DISTILL"] = "0"


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {timeout}s")


async def wait_for(cond, timeout: float, what: str):
    """Poll ``cond`` until it returns something truthy; fail naming ``what`` on timeout."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def llm_backend():
    """The embedded llama.cpp server (python -m bots.llm_server), as an LLMBackend."""
    from bots.llm_backend import LLMBackend
    from bots.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots.llm_server", "--port", str(settings.llm_port)], cwd=ROOT
    )
    try:
        wait_http(f"{settings.embedded_llm_url}/models", 120, proc)
        from bots.config import load_avatar
        from bots.warmup import warm_llm

        warm_llm([load_avatar("lumina")])  # as the product does at start-up
        yield LLMBackend("embedded", settings.embedded_llm_url, "local")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def lumina_server(llm_backend):
    """`python -m bots lumina` on a free port, talking to the test LLM server."""
    port = free_port()
    # Sign-ins are checked often, so the expiry test need not wait long.
    env = {
        **os.environ,
        "AVATARS_LLM_BACKEND": "embedded",
        "AVATARS_LOGIN_CHECK_SECS": "0.5",
        "MALLOC_ARENA_MAX": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots", "lumina", "--port", str(port)], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/room", 120, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
