"""The FastAPI app that serves avatars to browsers.

Routes:
    GET  /                 the talk page (``web/static``; loads nothing from outside)
    GET  /memory           what each avatar remembers about you, and deleting it
    /api/memory/...        the memory REST API (``web.memory_api``)
    GET  /api/avatars      the avatars this server offers
    GET  /api/health       LLM, STT and TTS status, with what to do when one is down
    POST /api/offer        SmallWebRTC signaling (Pipecat-compatible), one session per offer
    PATCH /api/offer       trickle ICE candidates
    WS   /ws?avatar=ID     the same session over a WebSocket (Pipecat protobuf frames)
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pydantic import BaseModel, Field

from bots.config import AvatarConfigError, list_avatars, load_avatar
from bots.llm_backend import LLMUnavailableError, llm_health
from bots.models import ModelMissingError
from bots.warmup import warm_llm, warm_up_models
from transports.webrtc import webrtc_transport
from transports.websocket import websocket_transport
from web.memory_api import memory_router
from web.sessions import SessionManager

STATIC = Path(__file__).parent / "static"


class OfferBody(BaseModel):
    """A WebRTC offer, as Pipecat clients send it."""

    sdp: str = Field(min_length=1)
    type: str = Field(pattern="^(offer|answer)$")
    pc_id: str | None = None
    restart_pc: bool | None = None
    request_data: dict[str, Any] | None = None


class IceCandidateBody(BaseModel):
    """One trickled ICE candidate."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class PatchBody(BaseModel):
    """Trickle ICE: candidates for an existing peer connection."""

    pc_id: str
    candidates: list[IceCandidateBody]


def create_app(avatars: list[str] | None = None, *, greet: bool = True) -> FastAPI:
    """Build the app.

    Args:
        avatars: the avatar ids to offer (all found when None); the first is the default.
        greet: whether avatars say their greeting when someone connects.
    """
    offered = avatars or list_avatars()
    for avatar_id in offered:
        load_avatar(avatar_id)  # fail at start-up, naming the bad field, not at first call
    sessions = SessionManager(greet=greet)
    webrtc = SmallWebRTCRequestHandler()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Load and warm every model before the first person connects, off the event loop.
        avatars = [load_avatar(a) for a in offered]
        await asyncio.to_thread(warm_up_models, avatars)
        health = await asyncio.to_thread(llm_health)
        if not health["ok"]:
            logger.warning(health["fix"])
        # The LLM server may still be starting (make run starts both): warm it when it is up.
        warm = asyncio.create_task(asyncio.to_thread(warm_llm, avatars, 120.0))
        yield
        warm.cancel()
        await sessions.stop_all()
        await webrtc.close()

    app = FastAPI(title="Local avatars", lifespan=lifespan)
    app.state.sessions = sessions
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(memory_router(lambda: offered))

    def pick_avatar(requested: str | None) -> str:
        avatar_id = requested or offered[0]
        if avatar_id not in offered:
            raise HTTPException(404, f"no avatar {avatar_id!r} here (offered: {offered})")
        return avatar_id

    async def prepare(avatar_id: str):
        try:
            return await sessions.prepare(avatar_id)
        except LLMUnavailableError as e:
            raise HTTPException(503, str(e)) from None
        except (AvatarConfigError, ModelMissingError) as e:
            raise HTTPException(500, str(e)) from None

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/memory", include_in_schema=False)
    async def memory_page():
        return FileResponse(STATIC / "memory.html")

    @app.get("/api/avatars")
    async def avatars_list():
        out = []
        for avatar_id in offered:
            a = load_avatar(avatar_id)
            out.append(
                {
                    "id": a.id,
                    "name": a.name,
                    "blurb": a.blurb,
                    "greeting": a.greeting,
                    "voice": a.voice.piper_voice,
                    "speed": a.voice.speed,
                }
            )
        return out

    @app.get("/api/health")
    async def health():
        llm = await asyncio.to_thread(llm_health)
        return {
            "ok": llm["ok"],
            "llm": llm,
            "stt": {"ok": True, "engine": "whisper.cpp"},
            "tts": {"ok": True, "engine": "piper"},
            "sessions": len(sessions.active),
        }

    @app.post("/api/offer")
    async def offer(body: OfferBody, avatar: str | None = Query(None)):
        avatar_id = pick_avatar(avatar or (body.request_data or {}).get("avatar"))
        # Check that a session can start before answering, so a missing LLM is a readable 503
        # rather than a call that connects and stays silent. (Cheap: a file and a probe.)
        prepared = await prepare(avatar_id)

        async def on_connection(connection):
            # Called for new peer connections only (also for a stale pc_id, e.g. after a
            # server restart); renegotiations of a live one reuse its session.
            await sessions.start(*prepared, webrtc_transport(connection))

        request = SmallWebRTCRequest(
            sdp=body.sdp,
            type=body.type,
            pc_id=body.pc_id,
            restart_pc=body.restart_pc,
            request_data=body.request_data,
        )
        try:
            answer = await webrtc.handle_web_request(request, on_connection)
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(400, f"could not accept the WebRTC offer: {e}") from None
        if not answer:
            raise HTTPException(500, "no WebRTC answer was produced")
        return answer

    @app.patch("/api/offer")
    async def ice_candidate(body: PatchBody):
        request = SmallWebRTCPatchRequest(
            pc_id=body.pc_id,
            candidates=[
                IceCandidate(
                    candidate=c.candidate, sdp_mid=c.sdp_mid, sdp_mline_index=c.sdp_mline_index
                )
                for c in body.candidates
            ],
        )
        await webrtc.handle_patch_request(request)
        return {"status": "ok"}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, avatar: str | None = Query(None)):
        await websocket.accept()
        try:
            config, backend = await prepare(pick_avatar(avatar))
        except HTTPException as e:
            await websocket.close(code=1011, reason=str(e.detail)[:120])
            return
        running = await sessions.start(config, backend, websocket_transport(websocket))
        await running.task

    @app.exception_handler(AvatarConfigError)
    async def avatar_error(_request, exc: AvatarConfigError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
