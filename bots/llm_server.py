"""The embedded LLM server: llama-cpp-python's OpenAI-compatible server, supervised.

``python -m bots.llm_server`` serves the bundled SmolLM2-135M-Instruct GGUF (or ``--model``)
on 127.0.0.1 (``AVATARS_LLM_PORT``, default 8089) under the model name ``local``. It is used
when no Ollama server is running. One server is shared by every bot process; it restarts by
itself if it crashes (see ``bots.supervisor``).

llama.cpp's prompt cache is on: each turn's prompt shares its prefix (system prompt and
earlier turns) with the previous one, so only the new tokens are evaluated.

``interrupt_requests`` is off. llama-cpp-python's default ends a streaming reply with
``[DONE]`` as soon as another request arrives, so with two people in the room, the second
person's question silently cut the first person's answer to nothing (found by the two-person
browser test). Off, requests queue and each reply is whole; the small model streams far
faster than speech, so the wait is short.
"""

from __future__ import annotations

import argparse
import os
import sys

from bots.models import ModelMissingError, smollm2_gguf
from bots.settings import load_settings
from bots.supervisor import Supervisor

MODEL_ALIAS = "local"


def server_command(model: str, host: str, port: int, threads: int, n_ctx: int) -> list[str]:
    """Argv for llama-cpp-python's server."""
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", model,
        "--model_alias", MODEL_ALIAS,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--cache", "true",
        "--cache_type", "ram",
        "--verbose", "false",
        "--interrupt_requests", "false",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and supervise the server until interrupted."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m bots.llm_server", description=__doc__)
    parser.add_argument("--model", help="GGUF file (default: the bundled SmolLM2-135M)")
    parser.add_argument("--host", default=settings.llm_host)
    parser.add_argument("--port", type=int, default=settings.llm_port)
    parser.add_argument("--threads", type=int, default=settings.llm_threads)
    parser.add_argument("--n-ctx", type=int, default=settings.llm_ctx)
    parser.add_argument(
        "--nice", type=int, default=settings.llm_nice, help="CPU priority penalty (0-19)"
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the LLM server will listen on {args.host}, beyond this machine")
    try:
        model = args.model or str(smollm2_gguf())
    except ModelMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cmd = server_command(model, args.host, args.port, args.threads, args.n_ctx)
    ready = f"http://{args.host}:{args.port}/v1/models"
    # llama-cpp-python's settings read HOST/PORT from the environment over its flags, and
    # process managers (honcho, foreman) export PORT: keep them away from the child.
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)  # inherited by the server: speech work on this machine goes first
    return Supervisor("llm", cmd, ready, env=env).run()


if __name__ == "__main__":
    sys.exit(main())
