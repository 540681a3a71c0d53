"""Soak: the room for ten minutes under callers who come and go and a tester who attacks it.

    .venv/bin/python -m bench.soak [--minutes 10] [--callers 2]

Starts the embedded LLM server and the room (``python -m web``, its default call workers).
Then, for ``--minutes``, at the same time:

* ``--callers`` people, each with an account, call Lumina over real WebRTC (aiortc), say one
  synthesized utterance, wait for the answer, and leave: every other call hangs up properly
  (peer connection closed), the others vanish (their UDP sockets just stop, no goodbye, as a
  closed laptop lid does). Then they call again.
* a hostile tester sends, in a loop: malformed SDP offers, 5 MB bodies, wrong passwords for a
  real account, cross-site form posts, ICE PATCHes with too many or foreign candidates.

Checked: no 5xx and no connection error on any request; every call that connected answered;
after the run, within a minute, the room holds no session and no peer connection (the
vanished ones included), and its RSS did not run away. Writes ``bench/results/soak.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.latency_report import pct
from bench.latency_turns import Clip, run_turn
from bench.room_load import open_call, room_server
from bench.servers import free_port, llm_server
from bench.utterances import UTTERANCES, synthesize
from bots.runtime import run as run_on_event_loop
from testkit.webrtc_client import BotCall, offer_sdp, sign_up

OUT = Path(__file__).parent / "results"
PASSWORD = "correct horse battery"


async def vanish(call: BotCall) -> None:
    """Leave without a goodbye: stop the client's tasks and its ICE sockets, no DTLS close."""
    for t in call._tasks:
        t.cancel()
    for transceiver in call.pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        with contextlib.suppress(Exception):
            await ice._connection.close()  # aioice: sockets closed, nothing sent


async def caller(index: int, base: str, clip: Clip, deadline: float, out: dict) -> None:
    cookies = await sign_up(base, f"soak-{index}-{os.getpid()}")
    n = 0
    while time.time() < deadline:
        n += 1
        try:
            call = await open_call(base, "lumina", cookies)
        except Exception as e:  # refused or silent: counted, then try again
            out["connect_errors"].append(f"{type(e).__name__}: {e}"[:200])
            await asyncio.sleep(2)
            continue
        out["opened"] += 1
        rec = await run_turn(call, clip, None, answer_timeout=60)
        if rec.v2v_ms is not None:
            out["v2v_ms"].append(rec.v2v_ms)
        else:
            out["unanswered"].append(rec.error)
        if n % 2:
            await call.close()
            out["hung_up"] += 1
        else:
            await vanish(call)
            out["vanished"] += 1
        await asyncio.sleep(1)


async def attacker(base: str, deadline: float, out: Counter, errors: list[str]) -> None:
    await sign_up(base, f"soak-owner-{os.getpid()}")  # the account whose password is guessed
    me = await sign_up(base, f"soak-attacker-{os.getpid()}")
    good_offer = await offer_sdp("audio")
    same = {"Origin": base}
    huge = "x" * (5 * 1024 * 1024)
    JSON = {"Content-Type": "application/json"}  # noqa: N806
    foreign = {"candidate": "candidate:1 1 udp 1 8.8.8.8 53 typ host", "sdp_mid": "0"}
    attacks = [
        ("POST", "/api/offer", {"json": {"sdp": "v=0\r\nnot sdp", "type": "offer"}}),
        ("POST", "/api/offer", {"json": {"sdp": good_offer[:200], "type": "offer"}}),
        ("POST", "/api/offer", {"json": {"sdp": huge, "type": "offer"}}),
        ("POST", "/api/signup", {"json": {"username": "x", "password": huge}}),
        ("POST", "/api/avatars", {"content": b"{" * 100_000, "headers": JSON}),
        ("PATCH", "/api/offer", {"json": {"pc_id": "x", "candidates": [foreign] * 100}}),
        ("PATCH", "/api/offer", {"json": {"pc_id": "x", "candidates": [foreign]}}),
        ("POST", "/api/memory/forget", {"data": {"a": "1"}, "headers": {"Origin": "http://evil.test"}}),
        ("GET", "/api/room", {"headers": {"Host": "rebound.example"}}),
    ]  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=base, cookies=me, timeout=30, headers=same) as http,
        httpx.AsyncClient(base_url=base, timeout=30, headers=same) as anon,
    ):
        i = 0
        while time.time() < deadline:
            method, path, kwargs = attacks[i % len(attacks)]
            i += 1
            kwargs = {**kwargs, "headers": {**same, **kwargs.get("headers", {})}}
            try:
                resp = await http.request(method, path, **kwargs)
                out[f"{method} {path} -> {resp.status_code}"] += 1
                if resp.status_code >= 500:
                    errors.append(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
                wrong = {"username": f"soak-owner-{os.getpid()}", "password": "guess"}
                resp = await anon.post("/api/login", json=wrong)
                out[f"POST /api/login (wrong) -> {resp.status_code}"] += 1
            except httpx.HTTPError as e:
                errors.append(f"{method} {path}: {type(e).__name__}: {e}"[:200])
            await asyncio.sleep(0.2)


async def stats(base: str, cookies: dict) -> dict:
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=20) as http:
        return (await http.get("/api/stats")).json()


async def soak(base: str, minutes: float, callers: int, room_pid: int) -> dict:
    from bench.servers import tree_rss

    text, engine, opts = UTTERANCES[0]
    clip = Clip(text, synthesize(text, engine, opts), engine)
    watcher = await sign_up(base, f"soak-watch-{os.getpid()}")
    deadline = time.time() + minutes * 60
    calls = {
        "opened": 0, "hung_up": 0, "vanished": 0, "v2v_ms": [], "unanswered": [],
        "connect_errors": [],
    }  # fmt: skip
    answers: Counter = Counter()
    errors: list[str] = []
    rss = [tree_rss(room_pid)]
    start = time.time()

    async def sample() -> None:
        while time.time() < deadline:
            await asyncio.sleep(30)
            rss.append(tree_rss(room_pid))
            s = await stats(base, watcher)
            at, mb = time.time() - start, rss[-1] / 2**20
            print(f"  {at:5.0f} s: {s.get('sessions')} sessions, {calls['opened']} calls so far, "
                  f"RSS {mb:.0f} MB", flush=True)  # fmt: skip

    await asyncio.gather(
        *(caller(i, base, clip, deadline, calls) for i in range(callers)),
        attacker(base, deadline, answers, errors),
        sample(),
    )
    settle_deadline = time.monotonic() + 90
    left = await stats(base, watcher)
    busy = ("sessions", "finishing", "peer_connections")
    while time.monotonic() < settle_deadline and any(left.get(k) for k in busy):
        await asyncio.sleep(2)
        left = await stats(base, watcher)
    rss.append(tree_rss(room_pid))
    return {"calls": calls, "answers": dict(answers), "errors": errors, "left": left, "rss": rss}


def markdown(r: dict, cmd: str) -> str:
    c = r["calls"]
    v2v = c["v2v_ms"]
    lines = [
        "# Soak: calls coming and going, and an attacker, at once",
        "",
        f"`{cmd}`",
        "",
        f"- calls: {c['opened']} opened and answered {len(v2v)}; {c['hung_up']} hung up, "
        f"{c['vanished']} vanished without goodbye; {len(c['unanswered'])} unanswered, "
        f"{len(c['connect_errors'])} refused or silent at connect",
        f"- voice-to-voice p50 {pct(v2v, 50):.0f} ms, p95 {pct(v2v, 95):.0f} ms"
        if v2v
        else "- no answers",
        f"- hostile requests: {sum(r['answers'].values())}, server errors or dropped: "
        f"**{len(r['errors'])}**",
        f"- left after the run: {r['left'].get('sessions')} sessions, "
        f"{r['left'].get('peer_connections')} peer connections",
        f"- room RSS: {r['rss'][0] / 2**20:.0f} MB at start, {max(r['rss']) / 2**20:.0f} MB "
        f"at most, {r['rss'][-1] / 2**20:.0f} MB at the end",
        "",
        "| hostile request | answers |",
        "|---|---|",
        *(f"| `{k}` | {v} |" for k, v in sorted(r["answers"].items())),
    ]  # fmt: skip
    if r["errors"]:
        lines += ["", "Errors:", *(f"- {e}" for e in r["errors"][:20])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=2)
    args = parser.parse_args(argv)
    llm_port, port = free_port(), free_port()
    llm = llm_server(llm_port).start()
    room = room_server(port, llm_port).start()
    try:
        assert room.proc is not None
        result = run_on_event_loop(
            soak(f"http://127.0.0.1:{port}", args.minutes, args.callers, room.proc.pid)
        )
    finally:
        room.stop()
        llm.stop()
    cmd = ".venv/bin/python -m bench.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    OUT.mkdir(exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result, cmd.strip())
    (OUT / "soak.md").write_text(md)
    print(md)
    bad = result["errors"] or result["left"].get("sessions") or result["calls"]["unanswered"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
