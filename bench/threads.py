"""Thread split between the LLM and Piper on 2 cores.

    .venv/bin/python -m bench.threads [--runs 8]

While the LLM streams the rest of a reply, Piper synthesizes its first chunk: both want the
two cores. For LLM generation threads 1 and 2 (prompt evaluation always uses 2), this starts
the embedded server, then measures LLM time-to-first-token, generation speed, and the time
Piper takes for a six-word chunk while a completion streams. Writes
bench/results/threads.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from piper import PiperVoice

from bench.llm_engines import old_engine_command
from bots.config import BUILTIN_AVATARS
from bots.llm_server import MODEL_ALIAS
from bots.models import piper_voice, smollm2_gguf
from testkit.net import free_port, wait_http

OUT = Path(__file__).parent / "results"


def stream(url: str, prompt: list[dict], out: dict) -> None:
    started = time.perf_counter()
    tokens = 0
    with httpx.stream(
        "POST",
        f"{url}/chat/completions",
        json={"model": MODEL_ALIAS, "messages": prompt, "max_tokens": 120, "stream": True},
        timeout=60,
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                tokens += 1
                out.setdefault("ttft", time.perf_counter() - started)
    out["tok_s"] = tokens / (time.perf_counter() - started - out.get("ttft", 0))


def measure(gen_threads: int, runs: int) -> dict:
    port = free_port()
    # Measured on the engine of that time (llama-cpp-python's server; `make bench-deps`).
    cmd = old_engine_command(str(smollm2_gguf()), port)
    cmd[cmd.index("--n_threads") + 1] = str(gen_threads)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    voice = PiperVoice.load(piper_voice("en_US-joe-medium"))
    system = {"role": "system", "content": BUILTIN_AVATARS.load("lumina").system_prompt()}
    try:
        wait_http(f"{url}/models", 120, proc)
        stream(url, [system, {"role": "user", "content": "Hi"}], {})  # warm
        ttft, toks, piper = [], [], []
        for i in range(runs):
            prompt = [system, {"role": "user", "content": f"Tell me story number {i}."}]
            result: dict = {}
            t = threading.Thread(target=stream, args=(url, prompt, result))
            t.start()
            time.sleep(0.25)  # the first tokens are out; the rest is being generated
            started = time.perf_counter()
            list(voice.synthesize("There was a time when a dragon"))
            piper.append(time.perf_counter() - started)
            t.join()
            ttft.append(result["ttft"])
            toks.append(result["tok_s"])
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "llm_ttft_p50_ms": round(float(np.median(ttft)) * 1000),
        "llm_tokens_per_s": round(float(np.median(toks))),
        "piper_6_words_during_generation_p50_ms": round(float(np.median(piper)) * 1000),
        "piper_6_words_during_generation_p95_ms": round(float(np.percentile(piper, 95)) * 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    results = {f"LLM generation threads {n}": measure(n, args.runs) for n in (2, 1)}
    OUT.mkdir(exist_ok=True)
    (OUT / "threads.json").write_text(json.dumps(results, indent=2))
    lines = ["| | LLM TTFT p50 | tokens/s | Piper 6 words p50 | p95 |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['llm_ttft_p50_ms']} ms | {r['llm_tokens_per_s']} "
            f"| {r['piper_6_words_during_generation_p50_ms']} ms "
            f"| {r['piper_6_words_during_generation_p95_ms']} ms |"
        )
    md = "\n".join(lines) + "\n"
    (OUT / "threads.md").write_text(md)
    print(md)
    sys.exit(0)


if __name__ == "__main__":
    main()
