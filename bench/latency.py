"""Voice-to-voice latency over real WebRTC: our bot vs a stock Pipecat bot, and under load.

    .venv/bin/python -m bench.latency [--turns 20] [--concurrency 1,2,4,8] [--quick]

Starts the embedded LLM engine, our bot (``python -m bots lumina --no-greeting``) and a stock
Pipecat 1.14 peer on the same models (``bench/peer_bot.py``, with an engine of its own: the
same llama-server, so neither evicts the other's prompt cache), then plays the fixed utterances
(``bench/utterances.py``) into each over WebRTC in real time with the same aiortc client and
measures, per turn (``bench/latency_turns.py``): voice-to-voice latency at the client, the
server's breakdown, barge-in stop time and transcript WER. The bots take turns in blocks of 5
(one session each), so drifting background load hits both alike. Then N simultaneous sessions
against our bot. Writes ``bench/results/latency.{json,md}`` and ``latency_concurrency.png``;
server logs go to ``bench/results/logs/``. ``--quick``: 4 turns per system, N = 1, 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.latency_report import (
    HOW_MEASURED,
    comparison_table,
    concurrency_table,
    paused_table,
    pct,
    plot_concurrency,
    summarize,
)
from bench.latency_turns import (
    FINISH_TIMEOUT,
    INTERRUPTION,
    VOICED_RMS,
    Clip,
    TurnRecord,
    run_turn,
)
from bench.servers import (
    RssSampler,
    Server,
    ServerError,
    free_port,
    llm_server,
    our_bot,
    peer_bot,
    tree_rss,
)
from bench.utterances import PAUSED, UTTERANCES, synthesize, synthesize_paused, trim_silence
from bots.runtime import run
from testkit.webrtc_client import BotCall, call_bot

OUT = Path(__file__).parent / "results"
TURNS_PER_CALL = 5  # a fresh session every 5 turns keeps the context inside n_ctx
CONCURRENCY_TURNS = 3  # per session (2 with --quick)
STAGGER_SECS = 1.0
CONNECT_TIMEOUT = 30.0


def load_clips() -> tuple[list[Clip], Clip]:
    """The utterances and the interruption, synthesized once."""
    from testkit.speech import piper_say

    clips = [
        Clip(text, synthesize(text, engine, opts), engine) for text, engine, opts in UTTERANCES
    ]
    return clips, Clip(INTERRUPTION, trim_silence(piper_say(INTERRUPTION)))


def load_paused_clips() -> list[Clip]:
    """Sentences said with a pause in the middle (``bench.utterances.PAUSED``)."""
    return [Clip(f"{a} {b}", synthesize_paused(a, b), "piper-paused") for a, b in PAUSED]


async def run_paused(name: str, base_url: str, clips: list[Clip]) -> list[dict]:
    """One session of mid-sentence-pause turns: the answer must wait for the whole sentence.

    ``run_turn`` marks a turn "bot talked while the user was speaking" when any voiced bot
    audio arrives during the clip, i.e. in the pause: an answer to half a sentence.
    """
    records: list[dict] = []
    call, _ = await open_call(base_url)
    try:
        await warm_up(call, clips[-1])
        for clip in clips:
            rec = await run_turn(call, clip, None)
            records.append(rec.as_dict())
            print(f"  {name} paused: {brief(rec)}", flush=True)
            if rec.call_lost:
                break
    finally:
        await call.close()
    return records


async def open_call(base_url: str) -> tuple[BotCall, float]:
    """Connect and wait until the bot's (silent) audio flows; returns the max silent RMS."""
    call = await call_bot(base_url)
    if not await call.wait_silent(1.0, CONNECT_TIMEOUT, threshold=VOICED_RMS):
        await call.close()
        age = f"{time.time() - call.heard[-1].at:.1f} s ago" if call.heard else "never"
        types = sorted({m.get("type", "?") for m in call.messages})
        raise RuntimeError(
            f"no steady audio {CONNECT_TIMEOUT:.0f} s after connecting ({len(call.heard)} chunks"
            f" heard, last {age}; messages: {', '.join(types) or 'none'})"
        )
    return call, max(h.rms for h in call.heard)


async def warm_up(call: BotCall, clip: Clip) -> None:
    """One unmeasured turn per session: first inference of freshly loaded models."""
    await run_turn(call, clip, None)


async def run_block(
    name: str, base_url: str, clips: list[Clip], interruption: Clip, turns: range
) -> tuple[list[dict], float]:
    """One session of sequential turns (after a warm-up turn); records and max silent RMS."""
    records: list[dict] = []
    call, silent_rms = await open_call(base_url)
    try:
        await warm_up(call, clips[-1])
        for i in turns:
            rec = await run_turn(call, clips[i % len(clips)], interruption)
            records.append(rec.as_dict())
            print(f"  {name} turn {i + 1}: {brief(rec)}", flush=True)
            if rec.call_lost:
                break
    finally:
        await call.close()
    return records, silent_rms


def failed_turn(clip: Clip, error: str) -> dict:
    """The record of a turn that could not be played."""
    return TurnRecord(clip.text, clip.engine, error=error).as_dict()


def run_sequential(
    bots: dict[str, str], clips: list[Clip], interruption: Clip, turns: int, results: dict
) -> None:
    """Blocks of TURNS_PER_CALL turns, alternating between the bots; fills results["systems"].

    Alternating (ours, peer, ours, peer...) rather than one bot after the other keeps a
    change in background load (the machine is shared) from favouring either bot.
    """
    records: dict[str, list[dict]] = {name: [] for name in bots}
    silent: dict[str, list[float]] = {name: [] for name in bots}
    for first in range(0, turns, TURNS_PER_CALL):
        for name, base_url in bots.items():
            done = len(records[name])  # a lost connection ends a block early
            block = range(done, min(first + TURNS_PER_CALL, turns))
            try:
                recs, rms = run(run_block(name, base_url, clips, interruption, block))
            except RuntimeError as e:  # could not connect: the block's turns are errors
                print(f"  {name}: {e}", flush=True)
                recs = [failed_turn(clips[i % len(clips)], f"connect: {e}") for i in block]
                rms = 0.0
            records[name] += recs
            silent[name].append(rms)
            results["systems"][name] = {
                "summary": summarize(records[name]),
                "turns": records[name],
                "max_silent_rms": max(silent[name]),
            }
            save_partial(results)


def brief(rec: TurnRecord) -> str:
    """One progress line per turn."""
    if rec.error:
        return f"ERROR {rec.error}"
    b = rec.barge_in
    stop = b.get("stop_ms", b.get("skipped", b.get("error")))
    return f"v2v {rec.v2v_ms:.0f} ms, barge-in stop {stop}, heard {rec.heard_text!r}"


async def session(base_url: str, index: int, clips: list[Clip], turns: int) -> list[dict]:
    """One of N simultaneous sessions: a few turns without barge-in."""
    await asyncio.sleep(index * STAGGER_SECS)
    try:
        call, _ = await open_call(base_url)
    except Exception as e:  # a refused or silent session is a result, not a crash
        return [{"session": index, "v2v_ms": None, "error": f"connect: {e}"}] * turns
    out: list[dict] = []
    try:
        for k in range(turns):
            rec = await run_turn(call, clips[(index + k) % len(clips)], None)
            out.append({"session": index, **rec.as_dict()})
            if rec.call_lost:
                break
    finally:
        await call.close()
    missing = turns - len(out)
    return out + [{"session": index, "v2v_ms": None, "error": "connection lost"}] * missing


async def bounded_session(base_url: str, index: int, clips: list[Clip], turns: int) -> list[dict]:
    """A session that gives up (as errors) after a generous time budget."""
    budget = CONNECT_TIMEOUT + index * STAGGER_SECS + turns * (2 * FINISH_TIMEOUT)
    try:
        return await asyncio.wait_for(session(base_url, index, clips, turns), budget)
    except TimeoutError:
        return [{"session": index, "v2v_ms": None, "error": "session timed out"}] * turns


async def run_concurrency(
    server: Server, base_url: str, clips: list[Clip], n: int, turns: int
) -> dict:
    """N staggered sessions at once against one bot process; v2v and peak RSS."""
    assert server.proc is not None
    with RssSampler(server.proc.pid) as rss:
        batches = await asyncio.gather(
            *(bounded_session(base_url, i, clips, turns) for i in range(n))
        )
    records = [r for batch in batches for r in batch]
    v2v = [r["v2v_ms"] for r in records if r["v2v_ms"] is not None]
    return {
        "sessions": n,
        "turns_per_session": turns,
        "turns": len(records),
        "answered": len(v2v),
        "errors": sum(1 for r in records if r["error"]),
        "error_kinds": sorted({r["error"] for r in records if r["error"]}),
        "v2v_p50_ms": pct(v2v, 50),
        "v2v_p95_ms": pct(v2v, 95),
        "peak_rss_mb": round(rss.peak / 2**20),
        "records": records,
    }


def machine_info(argv: list[str]) -> dict:
    """Where and how the benchmark ran."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    git = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=OUT.parents[1]
    ).stdout.split("\n")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=OUT.parents[1]
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", "-m", "bench.latency", *argv]),
        "git_head": head,
        "git_uncommitted": [line for line in git if line.strip()],
        "loadavg_start": os.getloadavg(),
    }


def start(server: Server) -> Server:
    """Start a server, printing where its log is."""
    print(f"starting {server.name} (log: {server.log_path})", flush=True)
    return server.start()


def save_partial(results: dict) -> None:
    """Keep what has been measured so far (latency.partial.json), in case a later phase dies."""
    OUT.mkdir(exist_ok=True)
    (OUT / "latency.partial.json").write_text(json.dumps(results, indent=2, default=str))


def bench_concurrency(
    name: str, server: Server, clips: list[Clip], args: argparse.Namespace, results: dict
) -> None:
    """N simultaneous sessions against one running bot, for each N asked for."""
    base_url = server.ready_url.removesuffix("/api/health")
    rows = results["concurrency"].setdefault(name, [])
    for n in args.concurrency_list:
        print(f"{name}: {n} simultaneous sessions", flush=True)
        turns = args.concurrency_turns
        rows.append(run(run_concurrency(server, base_url, clips, n, turns)))
        print(f"  {concurrency_table([rows[-1]]).splitlines()[-1]}", flush=True)
        save_partial(results)


def run_all(args: argparse.Namespace, results: dict, servers: dict[str, Server]) -> None:
    """Start the servers, alternate sequential blocks, then the concurrency runs."""
    clips, interruption = load_clips()
    for server in servers.values():
        start(server)
        assert server.proc is not None
        results["idle_rss_mb"][server.name] = round(tree_rss(server.proc.pid) / 2**20)
    bots = {name: s.ready_url.removesuffix("/api/health") for name, s in servers.items()}
    bots.pop("llm_server")
    bots.pop("peer_llm_server", None)
    print(f"{args.turns} turns per bot, alternating {', '.join(bots)}", flush=True)
    run_sequential(bots, clips, interruption, args.turns, results)
    paused = load_paused_clips()
    for name, base_url in bots.items():
        print(f"{name}: {len(paused)} sentences with a pause in the middle", flush=True)
        try:
            results["paused"][name] = run(run_paused(name, base_url, paused))
        except RuntimeError as e:
            print(f"  {name}: {e}", flush=True)
            results["paused"][name] = [failed_turn(c, f"connect: {e}") for c in paused]
        save_partial(results)
    if "peer" in servers and not args.peer_concurrency:
        servers["peer"].stop()  # an idle bot process is one more thing on the CPU
    bench_concurrency("ours", servers["ours"], clips, args, results)
    if "peer" in servers and args.peer_concurrency:
        bench_concurrency("peer", servers["peer"], clips, args, results)


def error_lines(results: dict) -> list[str]:
    """What went wrong, per system, if anything."""
    lines = []
    for name, system in results["systems"].items():
        s = system["summary"]
        for kinds, what in ((s["error_kinds"], "turn"), (s["barge_in_errors"], "barge-in")):
            lines += [f"- {name}, {what}: {n} x {kind}" for kind, n in kinds.items()]
    return ["Errors:", "", *lines, ""] if lines else []


def write_outputs(results: dict) -> None:
    """latency.json, latency.md and the concurrency plot."""
    OUT.mkdir(exist_ok=True)
    (OUT / "latency.json").write_text(json.dumps(results, indent=2, default=str))
    ours = results["systems"]["ours"]["summary"]
    peer = results["systems"].get("peer", {}).get("summary")
    m = results["machine"]
    md = [
        "# Voice-to-voice latency over WebRTC: ours vs a stock Pipecat 1.14 bot",
        "",
        f"`{m['command']}` on {m['date']}: {m['nproc']} CPUs ({m['cpu']}), "
        f"Python {m['python']}, git {m['git_head']}"
        + (" + uncommitted changes" if m["git_uncommitted"] else "")
        + f"; load average at start {m['loadavg_start'][0]:.2f}, "
        f"at end {m['loadavg_end'][0]:.2f}.",
        "",
        comparison_table(ours, peer),
        "",
        *error_lines(results),
        HOW_MEASURED.format(
            rms=VOICED_RMS,
            ours_silent=results["systems"]["ours"]["max_silent_rms"],
            peer_silent=results["systems"].get("peer", {}).get("max_silent_rms", "n/a"),
            interruption=INTERRUPTION,
            per_call=TURNS_PER_CALL,
        ),
    ]
    if results.get("paused"):
        md += ["## A pause mid-sentence (never answer half a sentence)", ""]
        md += [paused_table(results["paused"]), ""]
    for name, rows in results["concurrency"].items():
        if rows:
            each = rows[0]["turns_per_session"]
            md += [f"## {name}: simultaneous sessions ({each} turns each, no barge-in)", ""]
            md += [concurrency_table(rows), "", f"Idle RSS: {results['idle_rss_mb'][name]} MB.", ""]
    if any(results["concurrency"].values()):
        plot_concurrency(
            {k: v for k, v in results["concurrency"].items() if v}, OUT / "latency_concurrency.png"
        )
    (OUT / "latency.md").write_text("\n".join(md))
    (OUT / "latency.partial.json").unlink(missing_ok=True)
    print("\n".join(md))


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--turns", type=int, default=20, help="measured turns per system")
    parser.add_argument("--concurrency", default="1,2,4,8", help="session counts, e.g. 1,2,4")
    parser.add_argument("--quick", action="store_true", help="4 turns, concurrency 1,2")
    parser.add_argument("--peer-concurrency", action="store_true", help="load-test the peer too")
    parser.add_argument("--no-peer", action="store_true", help="measure our bot only")
    args = parser.parse_args(argv)
    args.concurrency_turns = CONCURRENCY_TURNS
    if args.quick:
        args.turns, args.concurrency, args.concurrency_turns = 4, "1,2", 2
    args.concurrency_list = [int(n) for n in args.concurrency.split(",") if n.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run everything; every server is stopped on the way out."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results: dict = {"machine": machine_info(argv), "systems": {}, "concurrency": {}, "paused": {}}
    results["idle_rss_mb"] = {}
    results["settings"] = {"voiced_rms": VOICED_RMS, "turns_per_call": TURNS_PER_CALL}
    llm_port = free_port()
    servers = {"llm_server": llm_server(llm_port), "ours": our_bot(free_port(), llm_port)}
    if not args.no_peer:
        # An engine of its own (same binary, model and settings): the peer's requests carry
        # no slot, and llama-server would put them in the idle slot most like them, which
        # is our session's (the same system prompt), evicting its conversation.
        peer_llm_port = free_port()
        servers["peer_llm_server"] = llm_server(peer_llm_port, "peer_llm_server")
        servers["peer"] = peer_bot(free_port(), peer_llm_port)
    started = time.monotonic()
    try:
        run_all(args, results, servers)
    except ServerError as e:
        print(f"error: a server failed to start: {e}", file=sys.stderr)
        return 1
    finally:
        for server in reversed(servers.values()):
            server.stop()
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["machine"]["duration_s"] = round(time.monotonic() - started)
    write_outputs(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
