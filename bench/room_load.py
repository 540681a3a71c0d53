"""Load on the room: N people in WebRTC calls at once, talking for minutes.

    .venv/bin/python -m bench.room_load [--sessions 8] [--minutes 5] [--think 2,6]
    .venv/bin/python -m bench.room_load --sessions 4 --turns 4 --together   # all at once

Starts the embedded LLM server and the room (``python -m web``: accounts, every avatar), then
N simulated people, each with their own account, call an avatar (Lumina and Captain Rook in
turn) over real WebRTC (aiortc) and hold a conversation at a person's pace for ``--minutes``:
say a real synthesized utterance (``bench/utterances.py``, Piper and espeak-ng voices), wait
for the whole answer, think for a few seconds, say the next. The calls start a second apart
and all stay up until the end; then everyone hangs up. With ``--together`` everyone speaks at
the same instant, turn after turn (``--turns`` each): the worst case for the machine.

Measured per turn (``bench/latency_turns.run_turn``): voice-to-voice latency at the client
(end of the person's speech to the first audible answer), the server's breakdown, what the
bot transcribed. An answer may take up to ``--answer-timeout`` s (queued behind others);
later is an error. A *dropped* session is one whose connection died, whose microphone
stopped being read, or that the server no longer counts as live before the person hung up.
The server's ``/api/stats`` (live sessions, peer connections, tasks, RSS) is sampled every 2 s
and checked after everyone has hung up: no session, peer connection or task may be left.

Writes ``bench/results/room_load.{json,md}``; server logs go to ``bench/results/logs/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.latency_report import pct
from bench.latency_turns import VOICED_RMS, Clip, run_turn, wer
from bench.servers import ROOT, RssSampler, Server, free_port, llm_server
from bench.utterances import UTTERANCES, synthesize
from bots.runtime import run as run_on_event_loop
from testkit.webrtc_client import BotCall, call_bot, sign_up
from web.loop_lag import LoopLagMonitor

OUT = Path(__file__).parent / "results"
AVATARS = ["lumina", "captain"]
CONNECT_TIMEOUT = 60.0
STAGGER_SECS = 1.0


def room_server(port: int, llm_port: int, workers: int | None = None) -> Server:
    """``python -m web``: the room every tester opens (``workers``: its default when None)."""
    argv = [sys.executable, "-m", "web", "--port", str(port)]
    env = {"AVATARS_LLM_BACKEND": "embedded", "AVATARS_LLM_PORT": str(llm_port)}
    if workers is not None:
        env["AVATARS_WORKERS"] = str(workers)
    return Server("room", argv, f"http://127.0.0.1:{port}/api/health", env)


async def workers_ready(base_url: str, timeout: float = 300) -> None:
    """Wait until every call worker of the room is up (the room answers pages before)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        while True:
            workers = (await http.get("/api/health")).json().get("workers", [])
            if all(w["ready"] for w in workers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the room's workers did not start: {workers}")
            await asyncio.sleep(0.5)


async def open_call(base_url: str, avatar: str, cookies: dict) -> BotCall:
    """Connect, hear the avatar's greeting out, then wait for its silent audio to flow.

    The greeting can be slow to come when the room is busy; talking before it starts would
    measure the greeting as an answer (and talk over it).
    """
    call = await call_bot(base_url, avatar=avatar, cookies=cookies, timeout=CONNECT_TIMEOUT)
    since = time.time()
    greeted = await call.wait_voiced(since, CONNECT_TIMEOUT, threshold=VOICED_RMS)
    # 2.5 s: on a busy machine the greeting's next sentence can take over a second to come.
    if greeted is None or not await call.wait_silent(
        2.5, CONNECT_TIMEOUT, threshold=VOICED_RMS, idle=True
    ):
        await call.close()
        raise RuntimeError(f"no greeting, or no quiet after it, {CONNECT_TIMEOUT:.0f} s in")
    return call


async def person(
    index: int,
    base_url: str,
    clips: list[Clip],
    deadline: float,
    think: tuple[float, float],
    answer_timeout: float,
    done_talking: asyncio.Event,
    hang_up: asyncio.Event,
    max_turns: int = 0,
    together: asyncio.Barrier | None = None,
) -> dict:
    """One simulated tester: sign up, call, talk until ``deadline``, stay until ``hang_up``."""
    rng = random.Random(index)
    avatar = AVATARS[index % len(AVATARS)]
    out: dict = {"session": index, "avatar": avatar, "turns": [], "dropped": None}
    await asyncio.sleep(index * STAGGER_SECS)
    try:
        cookies = await sign_up(base_url, f"load-{index}-{os.getpid()}")
        call = await open_call(base_url, avatar, cookies)
    except Exception as e:  # a refused or silent call is a result, not a crash
        out["dropped"] = f"connect: {e}"
        done_talking.set()
        if together:
            await together.abort()
        return out
    out["connected_at"] = time.time()
    try:
        k = index
        while time.time() < deadline and not (max_turns and len(out["turns"]) >= max_turns):
            if together:  # everyone starts speaking at the same instant
                await together.wait()
            clip = clips[k % len(clips)]
            k += 1
            rec = await run_turn(call, clip, None, answer_timeout=answer_timeout)
            out["turns"].append({"at": rec.start, **rec.as_dict()})
            tag = f"{rec.v2v_ms:.0f} ms" if rec.v2v_ms is not None else f"ERROR {rec.error}"
            print(f"  [{index} {avatar}] {tag}  heard {rec.heard_text!r}", flush=True)
            if rec.call_lost:
                out["dropped"] = rec.error
                if together:
                    await together.abort()
                break
            await asyncio.sleep(rng.uniform(*think))
        done_talking.set()
        await hang_up.wait()
        state = call.pc.connectionState
        if out["dropped"] is None and state != "connected":
            out["dropped"] = f"connection {state} before hanging up"
    finally:
        done_talking.set()
        await call.close()
    return out


def udp_receive_drops() -> int | None:
    """UDP packets this machine's kernel dropped because a socket's receive buffer was full.

    Every call's audio, data-channel messages and ICE consent checks are UDP: when a process
    reads its sockets too late, this counter goes up (``RcvbufErrors`` in ``/proc/net/snmp``).
    """
    try:
        rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return None
    names, values = [r for r in rows if r[0] == "Udp:"][:2]
    return int(values[names.index("RcvbufErrors")])


async def sample_stats(base_url: str, cookies: dict, into: list[dict], stop: asyncio.Event):
    """``/api/stats`` every 2 s until ``stop``."""
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=10) as http:
        while not stop.is_set():
            try:
                stats = (await http.get("/api/stats")).json()
                into.append(
                    {
                        "at": time.time(),
                        **stats,
                        "loadavg": os.getloadavg()[0],
                        "udp_drops": udp_receive_drops(),
                    }
                )
            except (httpx.HTTPError, ValueError) as e:
                into.append({"at": time.time(), "error": str(e)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def run_load(args: argparse.Namespace, base_url: str, room: Server) -> dict:
    """Everyone calls, talks, hangs up; then check what the server still holds."""
    clips = [Clip(t, synthesize(t, e, o), e) for t, e, o in UTTERANCES]
    await workers_ready(base_url)
    watcher = await sign_up(base_url, f"load-watch-{os.getpid()}")
    async with httpx.AsyncClient(base_url=base_url, cookies=watcher, timeout=10) as http:
        before = (await http.get("/api/stats")).json()
    stats: list[dict] = []
    udp_drops_before = udp_receive_drops()
    stop, hang_up = asyncio.Event(), asyncio.Event()
    sampler = asyncio.create_task(sample_stats(base_url, watcher, stats, stop))
    # The simulated people share this process's loop: when it lags, their measurements do.
    client_lag = LoopLagMonitor(warn_ms=float("inf"))
    client_lag_task = asyncio.create_task(client_lag.run())
    started = time.time()
    deadline = started + args.minutes * 60
    assert room.proc is not None
    with RssSampler(room.proc.pid) as rss:
        finished = [asyncio.Event() for _ in range(args.sessions)]
        together = asyncio.Barrier(args.sessions) if args.together else None
        people = [
            asyncio.create_task(
                person(
                    i, base_url, clips, deadline, args.think, args.answer_timeout,
                    finished[i], hang_up, args.turns, together,
                )
            )
            for i in range(args.sessions)
        ]  # fmt: skip
        # Everyone stays on the line until the last person has finished talking.
        await asyncio.gather(*(f.wait() for f in finished))
        talking_done = time.time()
        hang_up.set()
        sessions = await asyncio.gather(*people)
    ended = time.time()
    await asyncio.sleep(10)  # calls finish ending (memory writes, peer connections closing)
    stop.set()
    await sampler
    client_lag_task.cancel()
    async with httpx.AsyncClient(base_url=base_url, cookies=watcher, timeout=10) as http:
        after = (await http.get("/api/stats")).json()
    return {
        "sessions": sessions,
        "stats": stats,
        "before": before,
        "after": after,
        "started": started,
        "talking_done": talking_done,
        "ended": ended,
        "peak_rss_mb": round(rss.peak / 2**20),
        "client_loop_lag_max_ms": client_lag.stats()["max_ms"],
        "udp_drops": None
        if udp_drops_before is None
        else (udp_receive_drops() or 0) - udp_drops_before,
    }


def summarize(run: dict, args: argparse.Namespace) -> dict:
    """The numbers for the report."""
    turns = [t for s in run["sessions"] for t in s["turns"]]
    v2v = [t["v2v_ms"] for t in turns if t["v2v_ms"] is not None]
    # Steady state: everyone has had time to connect, nobody has hung up yet.
    window = (run["started"] + 30, run["talking_done"])
    steady = [s for s in run["stats"] if "sessions" in s and window[0] < s["at"] < window[1]]
    server = [t["server"] for t in turns if t.get("server")]
    breakdown = {
        k: pct([s.get(k) for s in server], 50) for k in ("turn_end", "stt", "llm_ttfb", "tts_ttfb")
    }
    dropped = [s for s in run["sessions"] if s["dropped"]]
    refs = [t["text"] for t in turns if t["heard_text"]]
    hyps = [t["heard_text"] for t in turns if t["heard_text"]]
    return {
        "sessions": args.sessions,
        "minutes": args.minutes,
        "think_secs": list(args.think),
        "answer_timeout_secs": args.answer_timeout,
        "turns": len(turns),
        "answered": len(v2v),
        "answered_within_5s": sum(v <= 5000 for v in v2v),
        "answered_within_10s": sum(v <= 10000 for v in v2v),
        "errors": sum(1 for t in turns if t["error"]),
        "error_kinds": sorted({t["error"] for t in turns if t["error"]}),
        "dropped_sessions": len(dropped),
        "dropped": [{"session": s["session"], "why": s["dropped"]} for s in dropped],
        "v2v_ms": {q: pct(v2v, q) for q in (50, 90, 95, 99)} | {"max": pct(v2v, 100)},
        "server_p50_ms": breakdown,
        "wer": round(wer(refs, hyps), 3) if refs else None,
        "turns_per_session": [len(s["turns"]) for s in run["sessions"]],
        "min_live_sessions": min((s["sessions"] for s in steady), default=None),
        "peak_rss_mb": run["peak_rss_mb"],
        "rss_mb_before": round(run["before"]["rss_mb"]),
        "rss_mb_after": round(run["after"]["rss_mb"]),
        "server_loop_lag_max_ms": max(
            (s["loop_lag"]["recent_max_ms"] for s in steady if "loop_lag" in s), default=None
        ),
        "client_loop_lag_max_ms": run["client_loop_lag_max_ms"],
        "udp_drops": run.get("udp_drops"),
        "audio_in_backlog_max_ms": max(
            (s.get("audio_in_backlog_ms", 0) for s in steady), default=None
        ),
        "mean_loadavg": round(float(np.mean([s["loadavg"] for s in steady])), 2)
        if steady
        else None,
        "left_after": {
            k: run["after"][k] for k in ("sessions", "finishing", "peer_connections", "peer_owners")
        }
        | {"tasks_added": run["after"]["tasks"] - run["before"]["tasks"]},
    }


def markdown(summary: dict, meta: dict) -> str:
    """The human-readable report."""
    v = summary["v2v_ms"]
    b = summary["server_p50_ms"]
    left = summary["left_after"]
    lines = [
        f"# Room load: {summary['sessions']} people talking for {summary['minutes']} min",
        "",
        f"`{meta['command']}` on {meta['nproc']} cores ({meta['cpu']}), {meta['date']}, "
        f"commit {meta['git_head']}. The simulated people (aiortc clients) run on the same "
        "machine as the room and the LLM server.",
        "",
        "| | |",
        "|---|---|",
        f"| turns answered / played | {summary['answered']} / {summary['turns']} |",
        f"| answered within 5 s / 10 s | {summary['answered_within_5s']} / "
        f"{summary['answered_within_10s']} |",
        f"| errors | {summary['errors']} {summary['error_kinds'] or ''} |",
        f"| dropped sessions | {summary['dropped_sessions']} |",
        f"| voice-to-voice p50 / p90 / p95 / p99 / max | {v[50]} / {v[90]} / {v[95]} / {v[99]}"
        f" / {v['max']} ms |",
        f"| server p50: turn end / STT / LLM TTFB / TTS TTFB | {b['turn_end']} / {b['stt']} / "
        f"{b['llm_ttfb']} / {b['tts_ttfb']} ms |",
        f"| transcript WER | {summary['wer']} |",
        f"| turns per person | {summary['turns_per_session']} |",
        f"| live sessions (server, steady state, min) | {summary['min_live_sessions']} |",
        f"| room RSS before / peak / after | {summary['rss_mb_before']} / "
        f"{summary['peak_rss_mb']} / {summary['rss_mb_after']} MB |",
        f"| mean 1-min load average | {summary['mean_loadavg']} |",
        f"| worst event-loop lag: room / simulated people | "
        f"{summary['server_loop_lag_max_ms']} / {summary['client_loop_lag_max_ms']} ms |",
        f"| UDP packets dropped by the kernel (receive buffers full) | {summary['udp_drops']} |",
        "| received audio not yet read by its call (worst, steady state) | "
        f"{summary['audio_in_backlog_max_ms']} ms |",
        f"| left after hang-up | {left['sessions']} sessions, {left['peer_connections']} peer "
        f"connections, {left['tasks_added']:+d} tasks |",
        "",
        f"Each person: an utterance, the whole answer, {summary['think_secs'][0]}-"
        f"{summary['think_secs'][1]} s of thinking, the next utterance. An answer that starts "
        f"more than {summary['answer_timeout_secs']:.0f} s after the person stops is an error.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.room_load", description=__doc__)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument(
        "--think",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(2.0, 6.0),
        help="seconds a person pauses between an answer and their next utterance: MIN,MAX",
    )
    parser.add_argument("--answer-timeout", type=float, default=30.0)
    parser.add_argument("--turns", type=int, default=0, help="turns per person (0: until done)")
    parser.add_argument("--together", action="store_true", help="everyone speaks at once")
    parser.add_argument("--workers", type=int, help="the room's call workers (AVATARS_WORKERS)")
    parser.add_argument("--out", default="room_load", help="results file name (no suffix)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the load and write the report."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    llm_port, room_port = free_port(), free_port()
    llm = llm_server(llm_port)
    room = room_server(room_port, llm_port, args.workers)
    try:
        print(f"starting the LLM server and the room (logs: {room.log_path.parent})", flush=True)
        llm.start()
        room.start()
        run = run_on_event_loop(run_load(args, f"http://127.0.0.1:{room_port}", room))
    finally:
        room.stop()
        llm.stop()
    from bench.latency import machine_info

    meta = machine_info([])
    meta["command"] = shlex.join([".venv/bin/python", "-m", "bench.room_load", *argv])
    summary = summarize(run, args)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "run": run}, indent=2, default=str)
    )
    report = markdown(summary, meta)
    (OUT / f"{args.out}.md").write_text(report)
    print(report)
    ok = summary["dropped_sessions"] == 0 and not any(
        summary["left_after"][k] for k in ("sessions", "peer_connections")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
