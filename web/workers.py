"""The room's worker processes: calls spread over N event loops, each in a process of its own.

All calls in one event loop saturate it long before 2 cores are used (an idle call costs ~30 %
of a core in SRTP, Opus and frame hops, README "Many people at once"), and one slow call makes
every other call late. So the room process keeps pages, accounts, admission, the memory API
and the lobby, and places each new call on one of ``AVATARS_WORKERS`` prewarmed workers
(``web.worker``; default one per core), as LiveKit Agents runs each job in a prewarmed worker
process and Pipecat's deployment guide recommends a process per session.

- **Placing.** A new call goes to the ready worker with the fewest calls (ties: the one whose
  loop runs least late). The worker answers the offer itself, so media flows between the page
  and that worker; ICE candidates, hang-ups and the WebSocket relay follow the call there.
- **Knowing.** The pool asks every worker for its load twice a second (``GET /load``): the
  live calls, so a call that ends there gives its seat back here, and the busy-ness the lobby
  shows (``/api/health`` ``workers``).
- **Crashes.** Each worker runs under ``bots.supervisor`` (readiness URL, restart with
  backoff). A worker that dies ends only its own calls: they are marked ended "because of a
  server error" (the page asks ``/api/calls/{pc_id}`` when its connection drops, and offers to
  reconnect), their seats are given back, and the worker is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from fastapi import WebSocket, WebSocketDisconnect
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import IceCandidate, SmallWebRTCRequest

from bots.settings import Settings
from bots.supervisor import Supervisor
from web.admission import Seat
from web.calls import ENDED_KEPT, SERVER_ERROR, CallError, CallRequest
from web.process_stats import rss_mb
from web.worker import TOKEN_ENV, TOKEN_HEADER

LOAD_EVERY_SECS = 0.5
STARTING = "The room is still starting its call workers; try again in a few seconds."


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Placed:
    """A call on a worker, and the seat it holds in the room."""

    pc_id: str
    user_id: str
    username: str
    avatar_id: str
    seat: Seat | None
    placed_at: float = field(default_factory=time.monotonic)


@dataclass
class Worker:
    """One worker process: where it listens, whether it is ready, what it runs."""

    name: str
    port: int
    supervisor: Supervisor | None = None
    """Its local supervisor (None: it runs elsewhere, ``web.ray_workers``)."""
    host: str = "127.0.0.1"
    node: str = ""
    """The machine it runs on (a Ray node id; empty: this one)."""
    ready: bool = False
    pid: int | None = None
    restarts: int = 0
    load: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, Placed] = field(default_factory=dict)
    pending: int = 0  # offers sent, not yet answered
    websockets: int = 0

    @property
    def url(self) -> str:
        """Its API's base URL."""
        return f"http://{self.host}:{self.port}"

    def busy(self) -> tuple[int, float]:
        """Sort key for placing: calls (live, being answered, relayed), then loop lateness."""
        lag = (self.load.get("loop_lag") or {}).get("recent_max_ms") or 0.0
        return len(self.calls) + self.pending + self.websockets, float(lag)


class WorkerPool:
    """N supervised worker processes and the calls placed on them (``web.calls.Calls``).

    Args:
        settings: the room's settings (workers inherit the environment).
        n: how many workers.
        greet: avatars greet people when they connect.
    """

    def __init__(self, settings: Settings, n: int, *, greet: bool = True):
        self.settings = settings
        self.token = secrets.token_urlsafe(24)
        self.greet = greet
        self.n = n
        self.workers: list[Worker] = []
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._http = httpx.AsyncClient(timeout=30, headers={TOKEN_HEADER: self.token})
        self._tasks: list[asyncio.Task] = []
        self._threads: list[asyncio.Future] = []
        self._make_workers()

    def worker_env(self, index: int) -> dict[str, str]:
        """A worker's environment beyond this process's own.

        The pool's token, and the worker's share of the LLM engine's slots
        (``bots.llm_backend.SlotAllocator``).
        """
        return {TOKEN_ENV: self.token, "AVATARS_LLM_SLOT_SHARE": f"[{index},{self.n}]"}

    def worker_args(self, name: str) -> list[str]:
        """``python -m web.worker`` arguments (without ``--port`` / ``--host``)."""
        return ["--name", name, *([] if self.greet else ["--no-greeting"])]

    def _make_workers(self) -> None:
        for i in range(self.n):
            port = _free_port()
            name = f"worker-{i + 1}"
            cmd = [sys.executable, "-m", "web.worker", "--port", str(port), *self.worker_args(name)]
            env = {**os.environ, **self.worker_env(i)}
            supervisor = Supervisor(
                name, cmd, f"http://127.0.0.1:{port}/ready", ready_timeout=300.0, env=env
            )
            self.workers.append(Worker(name, port, supervisor))

    # -- the processes -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker (in the background: the room serves pages meanwhile)."""
        self._start_workers()
        self._tasks.append(asyncio.create_task(self._watch_loads(), name="worker-loads"))

    def _start_workers(self) -> None:
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            assert worker.supervisor is not None
            worker.supervisor.on_ready = _on_loop(loop, self._on_ready, worker)
            worker.supervisor.on_exit = _on_loop(loop, self._on_exit, worker)
            self._threads.append(
                asyncio.ensure_future(
                    asyncio.to_thread(worker.supervisor.run, handle_signals=False)
                )
            )

    async def stop(self) -> None:
        """Stop the workers (they end their calls) and wait for them."""
        for task in self._tasks:
            task.cancel()
        await self._stop_workers()
        await self._http.aclose()

    async def _stop_workers(self) -> None:
        for worker in self.workers:
            if worker.supervisor:
                worker.supervisor.stop()
        await asyncio.gather(*self._threads, return_exceptions=True)

    def _on_ready(self, worker: Worker, pid: int) -> None:
        worker.ready, worker.pid = True, pid
        logger.info(f"[{worker.name}] ready (pid {pid})")

    def _on_exit(self, worker: Worker, code: int) -> None:
        worker.ready, worker.pid, worker.load = False, None, {}
        worker.restarts += 1  # it is started again (bots.supervisor)
        lost = list(worker.calls.values())
        worker.calls.clear()
        for placed in lost:
            self._end(placed, SERVER_ERROR)
        if lost:
            logger.error(f"[{worker.name}] exited with {code}: {len(lost)} calls ended")

    def _end(self, placed: Placed, reason: str | None) -> None:
        if placed.seat:
            placed.seat.release()
        if reason:
            self._ended[placed.pc_id] = reason
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)

    async def _watch_loads(self) -> None:
        while True:
            await asyncio.gather(*(self._refresh(w) for w in self.workers if w.ready))
            await asyncio.sleep(LOAD_EVERY_SECS)

    async def _refresh(self, worker: Worker, collect: bool = False) -> None:
        try:
            resp = await self._http.get(f"{worker.url}/load", params={"collect": collect})
            resp.raise_for_status()
        except httpx.HTTPError as e:
            logger.debug(f"[{worker.name}] load not read: {e}")
            return
        worker.load = resp.json()
        live = {c["pc_id"] for c in worker.load.get("calls", [])}
        for pc_id, placed in list(worker.calls.items()):
            # A call is registered there before its answer is sent, so one missing now ended.
            if pc_id not in live:
                worker.calls.pop(pc_id, None)
                self._end(placed, None)

    # -- placing calls ---------------------------------------------------------------------------

    def _pick(self) -> Worker:
        ready = [w for w in self.workers if w.ready]
        if not ready:
            raise CallError(503, STARTING)
        return min(ready, key=Worker.busy)

    def _owning(self, pc_id: str) -> tuple[Worker, Placed] | None:
        for worker in self.workers:
            if placed := worker.calls.get(pc_id):
                return worker, placed
        return None

    async def _call(self, method: str, url: str, **kwargs) -> httpx.Response:
        try:
            resp = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise CallError(503, f"{SERVER_ERROR} ({type(e).__name__})") from None
        if resp.status_code >= 400:
            raise CallError(resp.status_code, _detail(resp))
        return resp

    async def offer(self, request: SmallWebRTCRequest, call: CallRequest) -> dict[str, str]:
        """Answer an offer on the least busy worker (a renegotiation: on the call's own)."""
        owning = self._owning(request.pc_id) if request.pc_id else None
        worker = owning[0] if owning else self._pick()
        body = {
            "sdp": request.sdp,
            "type": request.type,
            "pc_id": request.pc_id if owning else None,
            "restart_pc": request.restart_pc,
            "request_data": request.request_data,
            "avatar_id": call.avatar_id,
            "user_id": call.user_id,
            "username": call.username,
            "login": call.login,
        }
        worker.pending += 1
        try:
            answer = (await self._call("POST", f"{worker.url}/calls", json=body)).json()
        finally:
            worker.pending -= 1
        if not owning:
            pc_id = answer["pc_id"]
            worker.calls[pc_id] = Placed(
                pc_id, call.user_id, call.username, call.avatar_id, call.seat
            )
            if call.seat:
                call.seat.in_call = True
        return answer

    async def patch(self, pc_id: str, candidates: list[IceCandidate]) -> None:
        """Forward trickled candidates to the call's worker."""
        owning = self._owning(pc_id)
        if owning is None:
            raise CallError(404, "no such peer connection")
        body = {
            "candidates": [
                {
                    "candidate": c.candidate,
                    "sdp_mid": c.sdp_mid,
                    "sdp_mline_index": c.sdp_mline_index,
                }
                for c in candidates
            ]
        }
        await self._call("PATCH", f"{owning[0].url}/calls/{pc_id}", json=body)

    async def hangup(self, pc_id: str) -> None:
        """Hang up on the call's worker."""
        owning = self._owning(pc_id)
        if owning is None:
            raise CallError(404, "no such call")
        await self._call("DELETE", f"{owning[0].url}/calls/{pc_id}")

    async def websocket(self, websocket: WebSocket, call: CallRequest) -> None:
        """Relay an accepted WebSocket to a session on the least busy worker."""
        worker = self._pick()
        params = {"avatar_id": call.avatar_id, "user_id": call.user_id, "username": call.username}
        if call.login:
            params["login"] = call.login
        url = f"ws://{worker.host}:{worker.port}/ws?" + str(httpx.QueryParams(params))
        worker.websockets += 1
        try:
            async with websockets.connect(
                url, additional_headers={TOKEN_HEADER: self.token}, max_size=None
            ) as upstream:
                await _relay(websocket, upstream)
        except (OSError, websockets.WebSocketException) as e:
            logger.warning(f"[{worker.name}] websocket call lost: {e}")
            with contextlib.suppress(Exception):
                await websocket.close(code=1011, reason=SERVER_ERROR[:120])
        finally:
            worker.websockets -= 1

    # -- what the room shows ---------------------------------------------------------------------

    def owner(self, pc_id: str) -> str | None:
        """Whose live call ``pc_id`` is."""
        owning = self._owning(pc_id)
        return owning[1].user_id if owning else None

    def ended(self, pc_id: str) -> str | None:
        """Why ``pc_id`` ended, when the server ended it (its worker crashed)."""
        return self._ended.get(pc_id)

    def present(self) -> list[dict]:
        """Who talks to which avatar, on every worker."""
        return [
            {"username": c.get("username", ""), "avatar": c.get("avatar", "")}
            for w in self.workers
            for c in w.load.get("calls", [])
            if c.get("username")
        ]

    def calls_with(self, avatar_id: str) -> int:
        """Live calls with ``avatar_id``."""
        return sum(p.avatar_id == avatar_id for w in self.workers for p in w.calls.values())

    def end_calls(self, reason: str, *, user_id: str | None = None, login: str | None = None):
        """Ask every worker to end the matching calls after their turn."""
        body = {"reason": reason, "user_id": user_id, "login": login}
        for worker in self.workers:
            if worker.ready:
                asyncio.ensure_future(self._quietly("POST", f"{worker.url}/end_calls", body))

    async def forget(self, user_id: str) -> None:
        """Every worker ends the person's calls and drops their writes, before the delete."""
        await asyncio.gather(
            *(
                self._call("POST", f"{w.url}/forget", json={"user_id": user_id})
                for w in self.workers
                if w.ready
            )
        )

    async def _quietly(self, method: str, url: str, body: dict) -> None:
        try:
            await self._call(method, url, json=body)
        except CallError as e:
            logger.warning(f"{url}: {e.message}")

    async def stats(self, collect: bool = False) -> dict[str, Any]:
        """The workers' counts summed (and each worker's own), for ``/api/stats``."""
        if collect:
            await asyncio.gather(*(self._refresh(w, True) for w in self.workers if w.ready))
        loads = [w.load for w in self.workers if w.ready and w.load]
        total = {
            key: sum(load.get(key) or 0 for load in loads)
            for key in ("sessions", "finishing", "peer_connections", "tasks")
        }
        lags = [load.get("loop_lag") or {} for load in loads]
        return {
            **total,
            "in_memory": sum(load.get("in_memory") or 0 for load in loads) if collect else None,
            "rss_mb": rss_mb() + sum(load.get("rss_mb") or 0 for load in loads),
            "loop_lag": {  # the latest-running worker's
                key: max((lag.get(key) or 0 for lag in lags), default=0)
                for key in ("recent_max_ms", "max_ms")
            },
            "peer_owners": sum(len(w.calls) for w in self.workers),
            "room_tasks": len(asyncio.all_tasks()),
            "audio_in_backlog_ms": max(
                (load.get("audio_in_backlog_ms") or 0 for load in loads), default=0
            ),
            "workers": self.health()["workers"],
        }

    def health(self) -> dict[str, Any]:
        """Live calls, and each worker: ready, pid, calls, loop lag, RSS, restarts."""
        workers = [
            {
                "name": w.name,
                "ready": w.ready,
                "pid": w.pid,
                "node": w.node,
                "calls": len(w.calls),
                "sessions": w.load.get("sessions", 0),
                "loop_lag_ms": (w.load.get("loop_lag") or {}).get("recent_max_ms"),
                "rss_mb": round(w.load.get("rss_mb") or 0),
                "restarts": w.restarts,
            }
            for w in self.workers
        ]
        return {
            "sessions": sum(w["sessions"] for w in workers),
            "workers": workers,
            "calls_ok": any(w["ready"] for w in workers),  # a call can be placed now
        }


def _detail(resp: httpx.Response) -> str:
    """A worker's error message (FastAPI's ``detail``), else the body."""
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return resp.text


def _on_loop(loop: asyncio.AbstractEventLoop, fn, *args):
    """A callback for the supervisor's thread that runs ``fn(*args, value)`` on ``loop``."""

    def callback(value: int) -> None:
        loop.call_soon_threadsafe(fn, *args, value)

    return callback


async def _relay(page: WebSocket, upstream: websockets.ClientConnection) -> None:
    """Copy frames both ways until either side closes."""

    async def down() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await page.send_bytes(message)
            else:
                await page.send_text(message)

    async def up() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await page.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if (data := message.get("bytes")) is not None:
                    await upstream.send(data)
                elif (text := message.get("text")) is not None:
                    await upstream.send(text)

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await page.close()
