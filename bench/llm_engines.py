"""The LLM engines side by side: llama-cpp-python's server (before) vs llama-server (now).

    .venv/bin/python -m bench.llm_engines [--rounds 5] [--levels 1,2,4,8] [--parallel 8]

Same model (the bundled SmolLM2-135M Q4_1), same threads (2), same prompts, one engine at a
time on an otherwise idle machine. At each level N, N callers send a streaming chat request at
the same instant (Lumina's system prompt, every turn they had before, a new question; at most
60 tokens out, temperature 0), ``--rounds`` times. Reported per level: time to first token
(p50, p95 over every request) and total tokens/s (all tokens generated, as the engine counts
them, / the round's wall time, median over rounds). Replies are short (10-60 tokens), so the
tokens/s include the time to first token, as a caller waits it. llama-server gets each caller
on its own slot with ``cache_prompt``, as the product sends it. Writes
``bench/results/llm_engines.{json,md}``.

The old engine needs ``make bench-deps`` (llama-cpp-python, built once).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bots.capacity import cores
from bots.config import BUILTIN_AVATARS
from bots.llm_server import engine_env, llama_server_binary, server_command
from bots.models import smollm2_gguf
from bots.settings import load_settings
from testkit.net import free_port, wait_http

OUT = Path(__file__).parent / "results"
QUESTIONS = [
    "What is the capital of France?",
    "Tell me a joke about computers.",
    "How do I make a cup of tea?",
    "What should I read this weekend?",
    "Why is the sky blue?",
    "Give me a tip for sleeping better.",
    "What is a good name for a cat?",
    "How far away is the moon?",
]
MAX_TOKENS = 60


def old_engine_command(model: str, port: int, threads: int = 2, n_ctx: int = 4096) -> list[str]:
    """llama-cpp-python's server as the product ran it before (one request at a time)."""
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", model,
        "--model_alias", "local",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--cache", "true",
        "--cache_type", "ram",
        "--verbose", "false",
        "--interrupt_requests", "false",
    ]  # fmt: skip


async def one_request(
    client: httpx.AsyncClient, url: str, messages: list[dict], fields: dict
) -> tuple[float, int]:
    """Stream one reply; (time to first token, tokens)."""
    started = time.perf_counter()
    ttft = None
    tokens = 0
    body = {
        "model": "local",
        "messages": messages,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **fields,
    }
    async with client.stream("POST", f"{url}/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            delta = chunk.get("choices")
            if delta and delta[0].get("delta", {}).get("content"):
                tokens += 1
                if ttft is None:
                    ttft = time.perf_counter() - started
            if usage := chunk.get("usage"):  # the engine's own count, when it gives one
                tokens = usage.get("completion_tokens", tokens)
    return (ttft if ttft is not None else time.perf_counter() - started), tokens


async def measure(url: str, levels: list[int], rounds: int, slots: int) -> dict:
    system = {"role": "system", "content": BUILTIN_AVATARS.load("lumina").system_prompt()}
    histories: dict[int, list[dict]] = {i: [] for i in range(max(levels))}
    out: dict = {}
    # No keep-alive: llama-server closes a connection after each streamed reply, and one
    # reused at that moment fails (the product's client does the same, bots.pipeline).
    fresh = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=fresh) as client:
        await one_request(client, url, [system, {"role": "user", "content": "Hi"}], {})
        for level in levels:
            ttfts: list[float] = []
            rates: list[float] = []
            for r in range(rounds):
                jobs = []
                for i in range(level):
                    q = {"role": "user", "content": QUESTIONS[(r + i) % len(QUESTIONS)]}
                    fields = {"id_slot": i % slots, "cache_prompt": True} if slots else {}
                    messages = [system, *histories[i], q]  # a conversation: its prefix is cached
                    jobs.append(one_request(client, url, messages, fields))
                started = time.perf_counter()
                results = await asyncio.gather(*jobs)
                wall = time.perf_counter() - started
                ttfts += [t for t, _ in results]
                rates.append(sum(n for _, n in results) / wall)
                for i in range(level):
                    q = QUESTIONS[(r + i) % len(QUESTIONS)]
                    histories[i] += [
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": "I see. Let me think about that."},
                    ]
            out[str(level)] = {
                "ttft_p50_s": round(float(np.percentile(ttfts, 50)), 3),
                "ttft_p95_s": round(float(np.percentile(ttfts, 95)), 3),
                "ttft_max_s": round(max(ttfts), 3),
                "total_tokens_per_s": round(statistics.median(rates), 1),
                "requests": len(ttfts),
            }
            print(f"  {level} at once: {out[str(level)]}", flush=True)
    return out


def run_engine(name: str, cmd: list[str], env: dict | None, port: int, slots: int, args) -> dict:
    print(f"{name}: {' '.join(cmd[:3])} ...", flush=True)
    log = (OUT / "logs").resolve()
    log.mkdir(parents=True, exist_ok=True)
    with (log / f"llm_engine_{name}.log").open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", 180, proc)
        time.sleep(1.0)
        return asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args.levels, args.rounds, slots))
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--parallel", type=int, default=8, help="llama-server slots")
    args = parser.parse_args()
    args.levels = args.levels or [1, 2, 4, 8]
    model = str(smollm2_gguf())
    results: dict = {
        "machine": f"{platform.machine()}, {cores()} cores, {platform.python_version()}",
        "command": " ".join(["python -m bench.llm_engines", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "max_tokens": MAX_TOKENS,
        "rounds": args.rounds,
        "engines": {},
    }
    if importlib.util.find_spec("llama_cpp") is not None:
        port = free_port()
        results["engines"]["llama-cpp-python server"] = run_engine(
            "old", old_engine_command(model, port), None, port, 0, args
        )
    else:
        print("llama-cpp-python is not installed (make bench-deps): the old engine is skipped")
    port = free_port()
    binary = llama_server_binary()
    cmd = server_command(binary, model, "127.0.0.1", port, 2, 4096, args.parallel)
    env = engine_env(binary, load_settings().cache_dir)
    results["engines"][f"llama-server -np {args.parallel}"] = run_engine(
        "new", cmd, env, port, args.parallel, args
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "llm_engines.json").write_text(json.dumps(results, indent=2))
    lines = [
        "# LLM engines: time to first token and total tokens/s at N requests at once",
        "",
        f"{results['machine']}; {results['date']}; `{results['command']}`; "
        f"{MAX_TOKENS} tokens out, {args.rounds} rounds per level.",
        "",
        "| at once | "
        + " | ".join(f"{e}: TTFT p50 / p95, tok/s" for e in results["engines"])
        + " |",
        "|---|" + "---|" * len(results["engines"]),
    ]
    for level in args.levels:
        cells = []
        for rows in results["engines"].values():
            row = rows[str(level)]
            cells.append(
                f"{row['ttft_p50_s']:.2f} / {row['ttft_p95_s']:.2f} s, "
                f"{row['total_tokens_per_s']:.0f}"
            )
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    (OUT / "llm_engines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
