"""A worker process of the room: ``python -m web.worker --port N``.

``web.workers`` starts it on this machine; on a Ray cluster, ``web.ray_workers`` on any node.

It runs calls (``web.calls.LocalCalls``) on an event loop of its own, with a runtime of its own:
models loaded and warmed once per worker, its own memory store (the same LanceDB as the room's)
and its own LLM client. The room keeps pages, accounts, admission and the lobby, and places
each new call on the least busy worker through this small API (on 127.0.0.1, or on its node's
address in a cluster):

    GET    /ready             200 once the models are loaded and warm (the supervisor waits)
    POST   /calls             a WebRTC offer for a new call (or a renegotiation) -> the answer
    PATCH  /calls/{pc_id}     trickled ICE candidates
    DELETE /calls/{pc_id}     hang up
    GET    /load              live calls, sessions, peer connections, tasks, loop lag, RSS
    POST   /end_calls         end someone's calls after their turn (sign-out)
    POST   /forget            before "forget me": end the person's calls, drop their writes
    WS     /ws                a call over a WebSocket (the room relays the page's socket)

The worker that owns a call's media produces its SDP answer, so ICE and media go straight
between the page and this process. Every route but ``/ready`` needs the pool's token
(``X-Worker-Token``, from ``AVATARS_WORKER_TOKEN``): another local program can't place calls.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import signal
import sys
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Header, HTTPException, Query, WebSocket
from loguru import logger
from pydantic import BaseModel

from bots.runtime import EVENT_LOOP, Runtime
from bots.warmup import warm_llm, warm_up_models
from web.accounts import AccountStore
from web.calls import CallError, CallRequest, IceCandidateBody, LocalCalls, OfferBody

TOKEN_ENV = "AVATARS_WORKER_TOKEN"
TOKEN_HEADER = "X-Worker-Token"


class WorkerOffer(OfferBody):
    """A page's offer, as the room forwards it, with whom the call is for."""

    avatar_id: str
    user_id: str
    username: str = ""
    login: str | None = None


class WorkerPatch(BaseModel):
    """Candidates for one call."""

    candidates: list[IceCandidateBody]


class EndCalls(BaseModel):
    """Whose calls to end, and what they are told."""

    reason: str
    user_id: str | None = None
    login: str | None = None


class Forget(BaseModel):
    """Whose calls and writes to drop."""

    user_id: str


def create_worker_app(runtime: Runtime, token: str, *, greet: bool = True) -> FastAPI:
    """The worker's API over a :class:`LocalCalls` on ``runtime``."""
    settings = runtime.settings
    accounts = AccountStore(settings.data_dir / "accounts.sqlite3", ttl=settings.login_hours * 3600)
    calls = LocalCalls(
        runtime, greet=greet, still_valid=lambda login: accounts.user_for(login) is not None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        avatars = []
        for avatar_id in runtime.avatars.ids():
            try:
                avatars.append(runtime.avatars.load(avatar_id))
            except Exception as e:  # a broken file is the lobby's to report, not ours
                logger.warning(f"not warming {avatar_id}: {e}")
        await asyncio.to_thread(warm_up_models, runtime, avatars)
        warm = asyncio.create_task(warm_llm(runtime, avatars, 120.0))
        orphan = asyncio.create_task(_exit_with_parent())
        await calls.start()
        yield
        warm.cancel()
        orphan.cancel()
        await calls.stop()
        await runtime.close()

    def pool_only(x_worker_token: str = Header("")) -> None:
        if not hmac.compare_digest(x_worker_token, token):
            raise HTTPException(403, "not the room's worker pool")

    app = FastAPI(title="Room worker", lifespan=lifespan, dependencies=[])
    app.state.calls = calls
    guarded = [Depends(pool_only)]

    @app.get("/ready")
    async def ready() -> dict:
        return {"ok": True, "pid": os.getpid()}

    @app.post("/calls", dependencies=guarded)
    async def offer(body: WorkerOffer) -> dict:
        call = CallRequest(body.avatar_id, body.user_id, body.username, body.login)
        try:
            return await calls.offer(body.request(), call)
        except CallError as e:
            raise HTTPException(e.status, e.message) from None

    @app.patch("/calls/{pc_id}", dependencies=guarded)
    async def patch(pc_id: str, body: WorkerPatch) -> dict:
        try:
            await calls.patch(pc_id, [c.candidate_of() for c in body.candidates])
        except CallError as e:
            raise HTTPException(e.status, e.message) from None
        return {"status": "ok"}

    @app.delete("/calls/{pc_id}", dependencies=guarded)
    async def hangup(pc_id: str) -> dict:
        try:
            await calls.hangup(pc_id)
        except CallError as e:
            raise HTTPException(e.status, e.message) from None
        return {"status": "ended"}

    @app.get("/load", dependencies=guarded)
    async def load(collect: bool = Query(False)) -> dict:
        return {"pid": os.getpid(), "calls": calls.calls(), **await calls.stats(collect)}

    @app.post("/end_calls", dependencies=guarded)
    async def end_calls(body: EndCalls) -> dict:
        calls.end_calls(body.reason, user_id=body.user_id, login=body.login)
        return {"status": "ok"}

    @app.post("/forget", dependencies=guarded)
    async def forget(body: Forget) -> dict:
        await calls.forget(body.user_id)
        return {"status": "ok"}

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket,
        avatar_id: str,
        user_id: str,
        username: str = "",
        login: str | None = None,
    ):
        if not hmac.compare_digest(websocket.headers.get(TOKEN_HEADER, ""), token):
            await websocket.close(code=4403)
            return
        await websocket.accept()
        try:
            await calls.websocket(websocket, CallRequest(avatar_id, user_id, username, login))
        except CallError as e:
            await websocket.close(code=1011, reason=e.message[:120])

    return app


async def _exit_with_parent(every_secs: float = 1.0) -> None:
    """End this worker when the room that started it is gone (killed, not stopped).

    A stopped room stops its workers; a killed one can't, and an orphaned worker would keep
    its models in memory and its port taken.
    """
    parent = os.getppid()
    while True:
        await asyncio.sleep(every_secs)
        if os.getppid() != parent:
            logger.warning("the room is gone: stopping")
            os.kill(os.getpid(), signal.SIGTERM)
            return


def main(argv: list[str] | None = None) -> int:
    """Serve the worker API on 127.0.0.1 until stopped."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m web.worker", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--host", default="127.0.0.1", help="this machine's address the room reaches it at"
    )
    parser.add_argument("--name", default="worker", help="for the logs")
    parser.add_argument("--no-greeting", action="store_true")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"error: {TOKEN_ENV} is not set (the room's worker pool sets it)", file=sys.stderr)
        return 2
    logger.remove()
    logger.add(sys.stderr, format=f"{args.name} | {{time:HH:mm:ss.SSS}} | {{level}} | {{message}}")
    runtime = Runtime.start()
    app = create_worker_app(runtime, token, greet=not args.no_greeting)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", loop=EVENT_LOOP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
