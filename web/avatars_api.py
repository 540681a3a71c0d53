"""The avatars REST API: the lobby's list, and the browser's avatar editor.

Routes (all need a signed-in person):
    GET    /api/avatars             the avatars this server offers (and who may edit each)
    GET    /api/avatars/{id}        one avatar's every setting, for the editor
    GET    /api/avatar-template     the settings a new avatar starts from (the defaults)
    POST   /api/avatars             create an avatar (you own it)
    PUT    /api/avatars/{id}        change an avatar you own
    DELETE /api/avatars/{id}        delete an avatar you own (and its VRM model), and everyone's
                                    memories of it
    GET    /api/voices              the Piper voices avatars can use
    POST   /api/voices/preview      a WAV of a voice at given settings ("preview voice")
    GET    /api/llm/models          the models the LLM server can run for an avatar

Who may change what: an avatar made in the editor belongs to whoever made it; shipped
avatars and hand-written files belong to the room and are read-only here (anyone may copy
one into a new avatar of their own). That keeps one tester from rewriting the character
another is in a call with, without needing roles.

Deleting an avatar deletes every conversation and memory anyone had with it: memories are
per avatar, and once the avatar is gone nobody could see or delete them any more. While
someone is in a call with it, deletion is refused (the call would keep writing).

Validation errors come back as 422 ``{"detail": "...", "errors": [{"field", "message"}]}``
with fields named as in the TOML file (``voice.speed``), so the page can show each message
next to its input.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from bots.avatar_files import delete_avatar_file, save_avatar
from bots.config import (
    AvatarConfig,
    AvatarConfigError,
    AvatarValidationError,
    VoiceConfig,
    field_errors,
    validate_avatar,
)
from bots.models import ModelMissingError, piper_voice, piper_voice_names
from bots.runtime import Runtime
from web.accounts import AccountStore, User
from web.auth import SignedIn
from web.calls import Calls
from web.guards import without_paths
from web.vrm import has_vrm

PREVIEW_MAX_CHARS = 300


class PreviewRequest(BaseModel):
    """What to say, in which voice, for "preview voice"."""

    voice: VoiceConfig
    text: str = Field("Hello! This is how I sound. Shall we talk?", min_length=1)


def invalid(errors: list[tuple[str, str]]) -> JSONResponse:
    """The 422 the editor shows field by field."""
    detail = "Please fix: " + "; ".join(f"{f}: {m}" for f, m in errors)
    listed = [{"field": f, "message": m} for f, m in errors]
    return JSONResponse({"detail": detail, "errors": listed}, status_code=422)


def avatars_router(
    runtime: Runtime,
    offered: Callable[[], list[str]],
    accounts: AccountStore,
    calls: Calls,
) -> APIRouter:
    """The avatar routes.

    Args:
        runtime: the process's runtime (avatar catalog, voices, memory store, LLM servers).
        offered: the avatar ids this server offers, in lobby order.
        accounts: who owns which editor-made avatar.
        calls: live calls (an avatar in a call cannot be deleted).
    """
    router = APIRouter(prefix="/api", tags=["avatars"])
    catalog = runtime.avatars
    voices_dir = runtime.settings.voices_dir
    preview_lock = asyncio.Lock()  # one synthesis at a time: it competes with live calls

    def describe(avatar_id: str, me: User, owners: dict[str, User]) -> dict[str, Any]:
        owner = owners.get(avatar_id)
        kind = "yours" if owner and owner.id == me.id else "theirs" if owner else "room"
        base: dict[str, Any] = {
            "id": avatar_id,
            "owner": owner.username if owner else None,
            "kind": kind,
            "editable": kind == "yours",
        }
        try:
            a = catalog.load(avatar_id)
        except AvatarConfigError as e:
            return {**base, "error": without_paths(str(e))}  # the lobby shows a broken file
        return {
            **base,
            "name": a.name,
            "blurb": a.blurb,
            "greeting": a.greeting,
            "voice": a.voice.piper_voice,
            "speed": a.voice.speed,
            "face": a.face.model_dump(),
            "vrm": has_vrm(catalog, avatar_id),  # an uploaded model (web.vrm_api)
        }

    def own(avatar_id: str, me: User) -> AvatarConfig:
        """The avatar, if ``me`` may change it (404 / 403 saying why not)."""
        if avatar_id not in offered():
            raise HTTPException(404, f"There is no avatar {avatar_id!r} here.")
        owner = accounts.avatar_owners().get(avatar_id)
        config = catalog.load(avatar_id)
        if owner is None:
            raise HTTPException(
                403,
                f"{config.name} is one of the room's avatars, so it can't be changed here. "
                "Make a copy and change that.",
            )
        if owner.id != me.id:
            raise HTTPException(
                403, f"{config.name} belongs to {owner.username}. Make a copy and change that."
            )
        return config

    def parse(data: Any, avatar_id: str | None = None) -> AvatarConfig | JSONResponse:
        if not isinstance(data, dict):
            return invalid([("(form)", "must be a JSON object of avatar settings")])
        if avatar_id is not None:
            if data.get("id", avatar_id) != avatar_id:
                return invalid([("id", "can't be changed; make a copy under the new id")])
            data = {**data, "id": avatar_id}
        try:
            config = validate_avatar(data)
        except AvatarValidationError as e:
            return invalid(e.errors)
        # Hand-written files may name any voice file on this machine; the editor only the
        # installed ones. A path from a request would otherwise break TTS (and the room's
        # next start-up) for everyone.
        installed = piper_voice_names(voices_dir)
        if config.voice.piper_voice not in installed:
            return invalid(
                [("voice.piper_voice", f"is not an installed voice (installed: {installed})")]
            )
        return config

    async def save(config: AvatarConfig):
        try:
            return await asyncio.to_thread(save_avatar, catalog, config)
        except (OSError, AvatarConfigError) as e:  # a full disk, a read-only folder
            raise HTTPException(
                500, f"Could not save the avatar file: {without_paths(str(e))}"
            ) from None

    @router.get("/avatars")
    async def list_avatars(me: SignedIn) -> list[dict]:
        owners = accounts.avatar_owners()
        return [describe(a, me, owners) for a in offered()]

    @router.get("/avatars/{avatar_id}")
    async def get_avatar(avatar_id: str, me: SignedIn) -> dict:
        if avatar_id not in offered():
            raise HTTPException(404, f"There is no avatar {avatar_id!r} here.")
        config = catalog.load(avatar_id)
        return {
            **describe(avatar_id, me, accounts.avatar_owners()),
            "config": config.model_dump(),
        }

    @router.get("/avatar-template")
    async def template(_me: SignedIn) -> dict:
        return avatar_template()

    @router.post("/avatars", status_code=201, response_model=None)
    async def create(me: SignedIn, data: Any = Body(...)) -> dict | JSONResponse:  # noqa: B008
        config = parse(data)
        if isinstance(config, JSONResponse):
            return config
        if catalog.path(config.id) is not None:
            return JSONResponse(
                {
                    "detail": f"There is already an avatar with the id {config.id!r}.",
                    "errors": [{"field": "id", "message": "is taken; pick another"}],
                },
                status_code=409,
            )
        if not accounts.claim_avatar(config.id, me):
            raise HTTPException(409, f"Someone just created {config.id!r}; pick another id.")
        try:
            path = await save(config)
        except HTTPException:
            accounts.release_avatar(config.id)
            raise
        # The command that launches it on its own; never where it lives on the server.
        return {
            **describe(config.id, me, accounts.avatar_owners()),
            "launch": f"python -m bots {path.stem}",
        }

    @router.put("/avatars/{avatar_id}", response_model=None)
    async def update(
        avatar_id: str,
        me: SignedIn,
        data: Any = Body(...),  # noqa: B008
    ) -> dict | JSONResponse:
        own(avatar_id, me)
        config = parse(data, avatar_id)
        if isinstance(config, JSONResponse):
            return config
        path = await save(config)
        # Calls already running keep the avatar they started with; the next call gets this.
        # The command that launches it on its own; never where it lives on the server.
        return {
            **describe(avatar_id, me, accounts.avatar_owners()),
            "launch": f"python -m bots {path.stem}",
        }

    @router.delete("/avatars/{avatar_id}")
    async def delete(avatar_id: str, me: SignedIn) -> dict:
        config = own(avatar_id, me)
        live = calls.calls_with(avatar_id)
        if live:
            raise HTTPException(
                409,
                f"{config.name} is in {live} call{'s' if live > 1 else ''} right now; "
                "delete it when they have ended.",
            )
        await asyncio.to_thread(delete_avatar_file, catalog, avatar_id)
        accounts.release_avatar(avatar_id)
        forgotten = 0
        store = await asyncio.to_thread(lambda: runtime.memory)
        if store is not None:
            forgotten = await asyncio.to_thread(store.forget_avatar, avatar_id)
        return {"deleted": avatar_id, "conversations_deleted": forgotten}

    @router.get("/voices")
    async def voices(_me: SignedIn) -> list[str]:
        return piper_voice_names(voices_dir)

    @router.post("/voices/preview", response_class=Response)
    async def preview(me: SignedIn, data: Any = Body(...)) -> Response:  # noqa: B008
        try:
            request = PreviewRequest.model_validate(data)
        except ValidationError as e:
            return invalid(field_errors(e))
        text = request.text.strip()[:PREVIEW_MAX_CHARS]
        try:
            path = piper_voice(request.voice.piper_voice, voices_dir)
        except ModelMissingError as e:
            return invalid([("voice.piper_voice", str(e))])
        async with preview_lock:
            voice = await asyncio.to_thread(runtime.models.voice, str(path))
            wav = await asyncio.to_thread(_synthesize_wav, voice, request.voice, text)
        return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    @router.get("/llm/models")
    async def llm_models(_me: SignedIn) -> dict:
        return await asyncio.to_thread(_llm_models, runtime)

    return router


def avatar_template() -> dict[str, Any]:
    """A new avatar's settings: every default, and empty text where a person must write."""
    out: dict[str, Any] = {"id": "", "name": "", "persona": ""}
    for name, field in AvatarConfig.model_fields.items():
        if not field.is_required():
            value = field.get_default(call_default_factory=True)
            out[name] = value.model_dump() if isinstance(value, BaseModel) else value
    return out


def _synthesize_wav(piper: Any, voice: VoiceConfig, text: str) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        piper.synthesize_wav(text, wav, syn_config=voice.synthesis_config())
    return out.getvalue()


def _llm_models(runtime: Runtime) -> dict:
    """What the editor's model field can offer, and what a choice means on this server."""
    settings, llm = runtime.settings, runtime.llm
    if settings.llm_backend != "embedded" and llm.ollama_running():
        try:
            models = llm.ollama_models()
        except Exception:  # went away since the probe: offer no list, the field stays free text
            models = []
        return {
            "backend": "ollama",
            "models": models,
            "note": "Ollama answers with the model you pick; one it doesn't have yet is "
            "downloaded at the first call (needs internet).",
        }
    served = llm.embedded_model() if settings.llm_backend != "ollama" else None
    return {
        "backend": "embedded" if served else None,
        "models": [],
        "note": (
            f"No Ollama is running, so every avatar is answered by the embedded server's "
            f"{served or 'model'}; the model you pick is used whenever Ollama runs."
        ),
    }
